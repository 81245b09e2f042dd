#!/usr/bin/env python3
"""Side-by-side benchmark of Ballast and etcd on this machine.

Starts real etcd (Debian's etcd-server, installed with apt-get when missing)
and Ballast with the same flags on 127.0.0.1, as one member and as three
members, runs the same ballast-bench workloads against each (a fresh cluster
per workload and server), and prints a table with both results and the ratio
Ballast/etcd. It also records the servers' RSS (/proc/PID/status), CPU time
(/proc/PID/stat utime+stime around the measured run) and data size (du of the
data directories and the dbSize of Maintenance.Status), and writes everything
to a JSON file (schema "ballast-compare/v1").

Usage: bench/compare.py [--members 1,3] [--workloads put-1,...] [--big-keys N | --full]
                        [--duration 10s] [--json FILE] [--markdown FILE] [--data-root DIR]
       bench/compare.py --render FILE.json [--markdown FILE]
       bench/compare.py profile [--members 1] [--workload put-1000] [--seconds 10]
Run with --help (or profile --help) for all options. Python 3.11 standard
library only. See bench/README.md; results and analysis in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import http.client
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = "ballast-compare/v2"
SNAPSHOT_COUNT = 10_000  # etcd 3.6's default
QUOTA = 8 * 1024 * 1024 * 1024  # same --quota-backend-bytes for both: room for 1M x 1 KiB
CLK_TCK = os.sysconf("SC_CLK_TCK")
# etcd 3.6 is the reference (the release users run); 3.4 (Debian's) a second column.
SERVERS = ("etcd36", "etcd34", "ballast")
SERVER_TITLES = {"etcd36": "etcd 3.6", "etcd34": "etcd 3.4", "ballast": "Ballast"}
# The two load generators: ours (tonic) and etcd's own tools/benchmark (Go clientv3/grpc-go,
# the client stack kube-apiserver uses).
CLIENTS = ("ballast-bench", "etcd-benchmark")
MIB = 1024 * 1024


def log(msg: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], timeout: float, check: bool = True, env=None, cwd=None) -> subprocess.CompletedProcess:
    """Runs a helper command with a time limit; its output is captured."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... exited {p.returncode}: {p.stderr.strip()[-800:]}")
    return p


# ---------------------------------------------------------------- setup

def ensure_etcd() -> None:
    need = [pkg for tool, pkg in (("etcd", "etcd-server"), ("etcdctl", "etcd-client")) if not shutil.which(tool)]
    if not need:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    log(f"installing {' '.join(need)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(sudo + ["apt-get", "update", "-qq"], timeout=600, env=env)
    run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + need, timeout=600, env=env)


def etcd36_tool(script: str) -> str:
    """Runs a scripts/etcd36-*.sh builder (a no-op when its binaries are cached) and
    returns the path it prints: the etcd 3.6 directory or etcd's benchmark binary."""
    log(f"scripts/{script}")
    out = run([os.path.join(ROOT, "scripts", script)], timeout=1800).stdout.strip().splitlines()
    return out[-1]


def build(skip: bool) -> tuple[str, str]:
    """Builds the release binaries and returns (ballast, ballast-bench) paths."""
    meta = json.loads(run(["cargo", "metadata", "--format-version", "1", "--no-deps"], timeout=120,
                          cwd=ROOT).stdout)
    target = meta["target_directory"]
    if not skip:
        log("cargo build --release -p ballast -p ballast-bench")
        p = subprocess.run(["cargo", "build", "--release", "-p", "ballast", "-p", "ballast-bench"],
                           cwd=ROOT, timeout=3600)
        if p.returncode != 0:
            raise RuntimeError("cargo build failed")
    bins = (os.path.join(target, "release", "ballast"), os.path.join(target, "release", "ballast-bench"))
    for b in bins:
        if not os.access(b, os.X_OK):
            raise RuntimeError(f"{b} is missing (build it, or drop --no-build)")
    return bins


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def machine_info(data_root: str) -> dict:
    info = {"nproc": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()}
    try:
        with open("/proc/meminfo") as f:
            info["mem_total_kib"] = int(f.readline().split()[1])
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), None)
    except OSError:
        pass
    try:
        src = run(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "-T", data_root], timeout=10).stdout.split()
        info["data_fs"] = {"source": src[0], "fstype": src[1]}
        dev = os.path.basename(src[0])
        rota = f"/sys/block/{dev}/queue/rotational"
        if os.path.exists(rota):
            with open(rota) as f:
                info["data_fs"]["rotational"] = f.read().strip() == "1"
    except Exception:  # informational only
        pass
    return info


def versions(ballast: str, etcd36: str | None) -> dict:
    out = {}
    cmds = [("etcd34", ["etcd", "--version"]), ("etcdctl", ["etcdctl", "version"]), ("ballast", [ballast, "--version"])]
    if etcd36:
        cmds.append(("etcd36", [etcd36, "--version"]))
    for name, cmd in cmds:
        try:
            out[name] = run(cmd, timeout=20, check=False, env=dict(os.environ, ETCDCTL_API="3")).stdout.strip()
        except Exception as e:
            out[name] = f"unknown ({e})"
    try:
        out["ballast_binary"] = {"path": ballast, "mtime": _dt.datetime.fromtimestamp(
            os.path.getmtime(ballast), _dt.timezone.utc).isoformat(timespec="seconds")}
    except OSError:
        pass
    try:
        head = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], timeout=10).stdout.strip()
        # only changes that go into the server binary count
        dirty = run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "--",
                     "server/src", "proto", "Cargo.toml", "Cargo.lock", "server/Cargo.toml"], timeout=30).stdout.strip()
        out["ballast_git"] = head + ("+uncommitted changes in server/src or proto" if dirty else "")
    except Exception:
        pass
    return out


# ---------------------------------------------------------------- /proc

def proc_cpu_secs(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK  # utime, stime


def proc_mem_kib(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
    return out


def machine_busy_secs() -> float:
    """CPU seconds all processes on the machine have used (from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    total = sum(v[:8])  # user nice system idle iowait irq softirq steal
    return (total - v[3] - v[4]) / CLK_TCK


def du_bytes(path: str) -> int:
    p = run(["du", "-s", "--block-size=1", path], timeout=120, check=False)
    try:
        return int(p.stdout.split()[0])
    except (IndexError, ValueError):
        return 0


class RssSampler(threading.Thread):
    """Samples the sum of the members' VmRSS every 0.2 s; keeps the maximum."""

    def __init__(self, pids: list[int]):
        super().__init__(daemon=True)
        self.pids, self.max_kib, self.stop_evt = pids, 0, threading.Event()

    def run(self) -> None:
        while not self.stop_evt.wait(0.2):
            try:
                self.max_kib = max(self.max_kib, sum(proc_mem_kib(p).get("VmRSS", 0) for p in self.pids))
            except OSError:
                return

    def stop(self) -> int:
        self.stop_evt.set()
        self.join(timeout=5)
        return self.max_kib


# ---------------------------------------------------------------- clusters

@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: str
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"


@dataclass
class Cluster:
    kind: str  # "etcd36", "etcd34" or "ballast"
    binary: str
    root: str
    members: list[Member] = field(default_factory=list)

    @property
    def endpoints(self) -> str:
        return ",".join(m.endpoint for m in self.members)

    @property
    def pids(self) -> list[int]:
        return [m.proc.pid for m in self.members if m.proc]

    def start(self, n: int, timeout: float = 60.0) -> None:
        ports = free_ports(2 * n)
        for i in range(n):
            name = f"m{i + 1}"
            self.members.append(Member(name, ports[2 * i], ports[2 * i + 1], os.path.join(self.root, name)))
        initial = ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in self.members)
        token = f"compare-{self.kind}-{os.getpid()}-{time.monotonic_ns()}"
        for m in self.members:
            # Identical flags for every server (Ballast takes etcd's flags).
            # Durability is the default of all: the WAL is fsynced before a
            # write is acknowledged. --snapshot-count is etcd 3.6's default for all
            # three (etcd 3.4 and Ballast default to 3.5's 100 000): how many Raft
            # entries a member keeps in memory follows from it, so the RSS rows
            # compare the same setting.
            args = [self.binary, "--name", m.name, "--data-dir", m.data_dir,
                    "--listen-client-urls", f"http://127.0.0.1:{m.client_port}",
                    "--advertise-client-urls", f"http://127.0.0.1:{m.client_port}",
                    "--listen-peer-urls", f"http://127.0.0.1:{m.peer_port}",
                    "--initial-advertise-peer-urls", f"http://127.0.0.1:{m.peer_port}",
                    "--initial-cluster", initial, "--initial-cluster-state", "new",
                    "--initial-cluster-token", token,
                    "--quota-backend-bytes", str(QUOTA), "--snapshot-count", str(SNAPSHOT_COUNT)]
            logf = open(os.path.join(self.root, f"{m.name}.log"), "ab")
            m.proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            logf.close()
        deadline = time.monotonic() + timeout
        pending = list(self.members)
        while pending:
            for m in list(pending):
                if m.proc.poll() is not None:
                    raise RuntimeError(f"{self.kind} {m.name} exited with {m.proc.returncode} during startup; "
                                       f"log: {self.log_tail(m)}")
                if healthy(m.client_port):
                    pending.remove(m)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind}: {[m.name for m in pending]} not healthy after {timeout:.0f}s")
            if pending:
                time.sleep(0.1)

    def log_tail(self, m: Member) -> str:
        try:
            with open(os.path.join(self.root, f"{m.name}.log"), "rb") as f:
                return f.read()[-1500:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM each member by PID, SIGKILL after 15 s."""
        for m in self.members:
            if m.proc and m.proc.poll() is None:
                m.proc.send_signal(signal.SIGTERM)
        for m in self.members:
            if not m.proc:
                continue
            try:
                m.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait(timeout=15)

    def check_alive(self) -> None:
        for m in self.members:
            if m.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} {m.name} exited with {m.proc.returncode}; log: {self.log_tail(m)}")

    def ctl(self, args: list[str], endpoints: str | None = None, timeout: float = 60) -> str:
        cmd = ["etcdctl", "--endpoints", endpoints or self.endpoints,
               "--command-timeout", f"{int(timeout)}s"] + args
        return run(cmd, timeout=timeout + 30, env=dict(os.environ, ETCDCTL_API="3")).stdout

    def status(self) -> list[dict]:
        out = json.loads(self.ctl(["endpoint", "status", "-w", "json"], timeout=30))
        return [e["Status"] for e in out]

    def cpu_secs(self) -> float:
        return sum(proc_cpu_secs(p) for p in self.pids)

    def mem(self) -> dict:
        tot: dict = {}
        for p in self.pids:
            for k, v in proc_mem_kib(p).items():
                tot[k] = tot.get(k, 0) + v
        return tot

    def data_bytes(self) -> int:
        return sum(du_bytes(m.data_dir) for m in self.members)


DISK_METRICS = ("etcd_disk_wal_fsync_duration_seconds_count", "etcd_disk_wal_fsync_duration_seconds_sum",
                "etcd_disk_backend_commit_duration_seconds_count", "etcd_disk_backend_commit_duration_seconds_sum")


def disk_metrics(ports: list[int]) -> dict:
    """WAL fsync and backend commit counters from /metrics, summed over members
    (both servers export etcd's names)."""
    tot = dict.fromkeys(DISK_METRICS, 0.0)
    for port in ports:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode(errors="replace")
            c.close()
        except (OSError, http.client.HTTPException):
            continue
        for line in text.splitlines():
            name, _, val = line.partition(" ")
            if name in tot:
                try:
                    tot[name] += float(val)
                except ValueError:
                    pass
    return tot


def healthy(port: int) -> bool:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/health")
        r = c.getresponse()
        body = r.read().decode(errors="replace")
        c.close()
        return r.status == 200 and '"true"' in body
    except (OSError, http.client.HTTPException):
        return False


# ---------------------------------------------------------------- workloads

@dataclass
class Workload:
    id: str
    title: str
    args: list[str]          # ballast-bench arguments (endpoints and --json are added)
    target_leader: bool      # writes go to the leader, as in etcd's performance docs
    timeout: float           # limit for the bench process
    prepare: str | None = None
    big: bool = False        # compaction + defrag afterwards, size and RSS are the point
    # etcd's benchmark: its arguments without --total (None: it cannot express the workload)
    # and what it runs when that differs from the title. It has no --duration, so its
    # --total is the request rate ballast-bench measured on the same server times --duration.
    etcd_args: list[str] | None = None
    etcd_title: str | None = None
    # ballast-bench arguments run (untimed) before etcd's benchmark, to write the keys it reads
    etcd_seed: list[str] | None = None


K8S_PODS = "/registry/pods/"


def workloads(a) -> list[Workload]:
    d = f"{a.duration_s:g}s"
    t = a.duration_s + 90
    big_timeout = max(300.0, a.big_keys / 500)  # >= 500 puts/s or give up
    watch_puts = int(a.watch_rate * a.duration_s)
    put_flags = ["--key-size", "8", "--val-size", "256", "--sequential-keys", "--key-space-size", "100000"]
    return [
        Workload("put-1", "put, 1 client, 256 B values",
                 ["--conns", "1", "--clients", "1", "--total", "100000", "--duration", d, "put"] + put_flags,
                 True, t, etcd_args=["--conns", "1", "--clients", "1", "put"] + put_flags),
        Workload("put-1000", "put, 100 conns / 1000 clients, 256 B",
                 ["--conns", "100", "--clients", "1000", "--total", "1000000", "--duration", d, "put"] + put_flags,
                 True, t, etcd_args=["--conns", "100", "--clients", "1000", "put"] + put_flags),
        Workload("range-l", "range linearizable, 1000 clients",
                 ["--conns", "100", "--clients", "1000", "--total", "10000000", "--duration", d,
                  "range", "foo", "--consistency", "l"],
                 False, t, prepare="foo",
                 etcd_args=["--conns", "100", "--clients", "1000", "range", "foo", "--consistency", "l"]),
        Workload("range-s", "range serializable, 1000 clients",
                 ["--conns", "100", "--clients", "1000", "--total", "10000000", "--duration", d,
                  "range", "foo", "--consistency", "s"],
                 False, t, prepare="foo",
                 etcd_args=["--conns", "100", "--clients", "1000", "range", "foo", "--consistency", "s"]),
        Workload("txn-put", "txn-put, 1000 clients",
                 ["--conns", "100", "--clients", "1000", "--total", "1000000", "--duration", d,
                  "txn-put", "--txn-ops", "1", "--key-size", "8", "--val-size", "256", "--key-space-size", "100000"],
                 True, t,
                 etcd_args=["--conns", "100", "--clients", "1000", "txn-put", "--txn-ops", "1", "--key-size", "8",
                            "--val-size", "256", "--key-space-size", "100000"]),
        Workload("watch", f"watch, {a.watchers} watchers on 100 keys, {a.watch_rate} puts/s",
                 ["--conns", "10", "--clients", "10",
                  "watch", "--watchers", str(a.watchers), "--streams", "100", "--watched-keys", "100",
                  "--puts", str(watch_puts), "--put-rate", str(a.watch_rate), "--drain-timeout", "10s"],
                 False, a.duration_s + 120),
        # Kubernetes-shaped (issue 15).
        # A whole list moves ~30 MB through one client: 2 clients, and time for a slow list
        # on a busy machine (the default 30 s request timeout failed every list at load 18).
        Workload("k8s-list", f"k8s: list {a.list_keys} keys under a prefix, pages of 500, 2 clients",
                 ["--conns", "2", "--clients", "2", "--request-timeout", "300s", "--total", "100000", "--duration", d,
                  "list", K8S_PODS, "--keys", str(a.list_keys), "--page-size", "500", "--val-size", "256"],
                 False, t + 600,
                 etcd_args=["--conns", "2", "--clients", "2", "range", K8S_PODS, "/registry/pods0",
                            "--limit", "500", "--consistency", "l"],
                 etcd_title="first page only (range limit 500): it cannot follow `more`",
                 etcd_seed=["--conns", "10", "--clients", "1", "--total", "1", "--request-timeout", "300s",
                            "list", K8S_PODS, "--keys", str(a.list_keys), "--val-size", "256"]),
        Workload("k8s-watch", f"k8s: {a.watchers} watchers on 100 prefixes, {a.watch_rate} new keys/s",
                 ["--conns", "10", "--clients", "10",
                  "watch", "--prefix", "--watchers", str(a.watchers), "--streams", "100", "--watched-keys", "100",
                  "--puts", str(watch_puts), "--put-rate", str(a.watch_rate), "--drain-timeout", "10s"],
                 False, a.duration_s + 120),
        Workload("k8s-lease-keys", "k8s: lease (TTL 5 s) + put with it, 100 clients; then expiry",
                 ["--conns", "10", "--clients", "100", "--total", "1000000", "--duration", d,
                  "lease-keys", "--ttl", "5", "--val-size", "256", "--expiry-wait", "60s"],
                 True, t + 70),
        Workload("k8s-guarded-update", "k8s: mod_revision-guarded update of 1000 keys, 1000 clients",
                 ["--conns", "100", "--clients", "1000", "--total", "1000000", "--duration", d,
                  "guarded-update", "--key-space-size", "1000", "--val-size", "256"],
                 True, t,
                 etcd_args=["--conns", "100", "--clients", "1000", "stm", "--keys", "1000", "--keys-per-txn", "1",
                            "--txn-wr-percent", "100", "--isolation", "r", "--val-size", "256"],
                 etcd_title="stm, 1 key per txn (a Get, then a Txn guarded by its mod_revision)"),
        Workload("big", f"{a.big_keys} keys of 1 KiB",
                 ["--conns", "100", "--clients", "1000", "--total", str(a.big_keys),
                  "put", "--key-size", "16", "--val-size", "1024", "--sequential-keys",
                  "--key-space-size", str(a.big_keys)],
                 True, big_timeout, big=True),
    ]


def space_needed(w: Workload, members: int, a) -> int:
    """A generous estimate of the disk a run needs (etcd preallocates 64 MiB WAL
    segments; the big load writes each value to the WAL and to the db)."""
    per_member = 150 * MIB  # etcd: two preallocated 64 MiB WAL segments + db
    if w.big:
        per_member += a.big_keys * 1100 * 3
    if w.id == "k8s-list":
        per_member += a.list_keys * 300 * 3
    return members * per_member


def parse_etcd_report(text: str) -> dict:
    """etcd's benchmark prints a text report (pkg/report); this turns it into the
    fields of ballast-bench's JSON that the table reads. It prints no request count,
    so requests = Requests/sec x Total."""
    out: dict = {"latency": {}, "errors": 0, "error_messages": []}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.endswith(":") and not line[0].isdigit():
            section = line[:-1]
            continue
        if line.startswith("Total:"):
            out["total_secs"] = float(line.split()[1])
        elif line.startswith("Requests/sec:"):
            out["requests_per_sec"] = float(line.split()[1])
        elif line.startswith(("Slowest:", "Fastest:", "Average:", "Stddev:")):
            key = {"Slowest": "max_ms", "Fastest": "min_ms", "Average": "average_ms", "Stddev": "stddev_ms"}[
                line.split(":")[0]]
            out["latency"][key] = float(line.split()[1]) * 1000
        elif section == "Latency distribution" and "% in " in line:
            pct, _, rest = line.partition("% in ")
            key = "p" + pct.replace(".", "_") + "_ms"
            out["latency"][key] = float(rest.split()[0]) * 1000
        elif section.startswith("Error distribution") and line.startswith("["):
            count, _, msg = line[1:].partition("]")
            out["errors"] += int(count)
            out["error_messages"].append({"message": msg.strip(), "count": int(count)})
    if "requests_per_sec" not in out or "total_secs" not in out:
        raise RuntimeError(f"no summary in etcd benchmark output: {text[-600:]}")
    out["requests"] = round(out["requests_per_sec"] * out["total_secs"])
    return out


def bench_once(cmd: list[str], cl: Cluster, w: Workload, client: str) -> dict:
    """One measured run of `cmd` (endpoints already in it) against a started cluster."""
    rec: dict = {}
    if w.prepare:
        cl.ctl(["put", w.prepare, "v" * 256])
    rec["bench_args"] = cmd[1:]
    load0, busy0 = os.getloadavg(), machine_busy_secs()
    disk0 = disk_metrics([m.client_port for m in cl.members])
    cpu0 = cl.cpu_secs()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler = RssSampler(cl.pids)
    sampler.start()
    t0 = time.monotonic()
    try:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = p.communicate(timeout=w.timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate(timeout=30)
            raise RuntimeError(f"{client} did not finish within {w.timeout:.0f}s")
    finally:
        rss_sampled = sampler.stop()
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = cl.cpu_secs()
    busy1, load1 = machine_busy_secs(), os.getloadavg()
    disk1 = disk_metrics([m.client_port for m in cl.members])
    rec["disk"] = {k.replace("etcd_disk_", "").replace("_duration_seconds", ""): disk1[k] - disk0[k]
                   for k in DISK_METRICS}
    if p.returncode != 0:
        raise RuntimeError(f"{client} exited {p.returncode}: {(err or out).strip()[-800:]}")
    rec["bench"] = json.loads(out) if client == "ballast-bench" else parse_etcd_report(out)
    server_cpu = cpu1 - cpu0
    client_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    rec["wall_secs"] = wall
    rec["server_cpu_secs"] = server_cpu
    rec["client_cpu_secs"] = client_cpu
    # CPU used on the machine by everything else (other users of the 2 cores).
    rec["other_cpu_secs"] = max(0.0, (busy1 - busy0) - server_cpu - client_cpu)
    rec["loadavg_before"], rec["loadavg_after"] = list(load0), list(load1)
    rec["rss_sampled_peak_kib"] = rss_sampled
    cl.check_alive()
    if w.big:
        rec["after_load"] = {"mem_kib": cl.mem(), "data_bytes": cl.data_bytes(),
                             "db_size_bytes": sum(s["dbSize"] for s in cl.status())}
        rev = max(s["header"]["revision"] for s in cl.status())
        t1 = time.monotonic()
        cl.ctl(["compact", str(rev), "--physical"], endpoints=cl.members[0].endpoint, timeout=300)
        cl.ctl(["defrag"], timeout=600)
        rec["compact_defrag_secs"] = time.monotonic() - t1
        rec["compacted_revision"] = rev
    st = cl.status()
    rec["mem_kib"] = cl.mem()  # VmHWM = peak since start (fresh cluster per run), VmRSS = now
    rec["data_bytes"] = cl.data_bytes()
    rec["db_size_bytes"] = sum(s["dbSize"] for s in st)
    rec["server_version"] = st[0].get("version")
    return rec


# ---------------------------------------------------------------- table

@dataclass
class Metric:
    label: str
    better: str  # "higher" / "lower" / "" (informational)
    get: object  # rec -> value or None
    fmt: str = "{:.1f}"
    ratio: bool = True  # False: a Ballast/etcd ratio means nothing (other processes' CPU)


def _lat(key):
    return lambda r: (r["bench"].get("latency") or {}).get(key)


def _wlat(sub, key):
    return lambda r: ((r["bench"].get("watch") or {}).get(sub) or {}).get(key)


def _per_req_us(r):
    n = r["bench"]["requests"]
    return r["server_cpu_secs"] / n * 1e6 if n else None


def _client_per_req_us(r):
    n = r["bench"]["requests"]
    return r["client_cpu_secs"] / n * 1e6 if n else None


def _details(*path):
    def get(r):
        v = r["bench"].get("details")
        for p in path:
            v = v[p]
        return v
    return get


COMMON_TAIL = [
    Metric("server CPU s (utime+stime)", "lower", lambda r: r["server_cpu_secs"], "{:.2f}"),
    Metric("server CPU µs per request", "lower", _per_req_us, "{:.0f}"),
    Metric("peak RSS MiB (VmHWM)", "lower", lambda r: r["mem_kib"].get("VmHWM", 0) / 1024, "{:.0f}"),
    Metric("WAL fsyncs (all members)", "", lambda r: r["disk"]["wal_fsync_count"], "{:.0f}"),
    Metric("WAL fsync s (all members)", "", lambda r: r["disk"]["wal_fsync_sum"], "{:.2f}"),
    Metric("bench client CPU s", "", lambda r: r["client_cpu_secs"], "{:.2f}"),
    # The client shares the cores: with them saturated, what it spends per request bounds the
    # throughput ratio (docs/benchmarks.md, session 16).
    Metric("bench client CPU µs per request", "", _client_per_req_us, "{:.1f}"),
    Metric("other processes' CPU s", "", lambda r: r["other_cpu_secs"], "{:.2f}", ratio=False),
]
THROUGHPUT = [Metric("throughput req/s", "higher", lambda r: r["bench"]["requests_per_sec"], "{:.0f}"),
              Metric("average latency ms", "lower", _lat("average_ms"), "{:.2f}"),
              Metric("p99 latency ms", "lower", _lat("p99_ms"), "{:.2f}")] + COMMON_TAIL
WATCH = [Metric("events delivered / expected", "", lambda r: "{}/{}{}".format(
             r["bench"]["watch"]["events_received"], r["bench"]["watch"]["events_expected"],
             "" if r["bench"]["watch"]["all_delivered_once_in_order"] else " (CHECK FAILED)"), "{}"),
         Metric("lost events (missing)", "lower", lambda r: r["bench"]["watch"]["missing"], "{:.0f}", ratio=False),
         Metric("p99 delivery ms (put ack → event)", "lower", _lat("p99_ms"), "{:.3f}"),
         Metric("p99 write → event ms", "lower", _wlat("write_to_event_latency", "p99_ms"), "{:.3f}"),
         Metric("p99 put latency ms", "lower", _wlat("put_latency", "p99_ms"), "{:.3f}"),
         Metric("events/s", "higher", lambda r: r["bench"]["requests_per_sec"], "{:.0f}")] + COMMON_TAIL
METRICS = {
    "put-1": [Metric("average latency ms", "lower", _lat("average_ms"), "{:.3f}"),
              Metric("p99 latency ms", "lower", _lat("p99_ms"), "{:.3f}"),
              Metric("throughput req/s", "higher", lambda r: r["bench"]["requests_per_sec"], "{:.0f}")] + COMMON_TAIL,
    "watch": WATCH,
    "k8s-watch": WATCH,
    "k8s-list": [Metric("throughput req/s", "higher", lambda r: r["bench"]["requests_per_sec"], "{:.1f}"),
                 Metric("average latency ms", "lower", _lat("average_ms"), "{:.2f}"),
                 Metric("p99 latency ms", "lower", _lat("p99_ms"), "{:.2f}")] + COMMON_TAIL,
    "k8s-lease-keys": THROUGHPUT[:3] + [
        Metric("keys left after TTL + wait (lost expiries)", "lower", _details("expiry", "keys_left"), "{:.0f}",
               ratio=False),
        Metric("s from end of load to all expired", "lower", _details("expiry", "secs_after_run"), "{:.1f}"),
    ] + COMMON_TAIL,
    "k8s-guarded-update": THROUGHPUT[:3] + [
        Metric("conflicts (retried)", "", _details("conflicts"), "{:.0f}", ratio=False)] + COMMON_TAIL,
    "big": [Metric("load throughput req/s", "higher", lambda r: r["bench"]["requests_per_sec"], "{:.0f}"),
            Metric("server CPU s for the load", "lower", lambda r: r["server_cpu_secs"], "{:.2f}"),
            Metric("peak RSS MiB (VmHWM)", "lower", lambda r: r["mem_kib"].get("VmHWM", 0) / 1024, "{:.0f}"),
            Metric("RSS MiB after load", "lower", lambda r: r["after_load"]["mem_kib"].get("VmRSS", 0) / 1024, "{:.0f}"),
            Metric("RSS MiB after compact+defrag", "lower", lambda r: r["mem_kib"].get("VmRSS", 0) / 1024, "{:.0f}"),
            Metric("db size MiB after load", "lower", lambda r: r["after_load"]["db_size_bytes"] / MIB, "{:.0f}"),
            Metric("db size MiB after compact+defrag", "lower", lambda r: r["db_size_bytes"] / MIB, "{:.0f}"),
            Metric("data dir MiB after compact+defrag (du)", "lower", lambda r: r["data_bytes"] / MIB, "{:.0f}"),
            Metric("WAL fsyncs (all members)", "", lambda r: r["disk"]["wal_fsync_count"], "{:.0f}"),
            Metric("compact+defrag s", "lower", lambda r: r["compact_defrag_secs"], "{:.1f}"),
            Metric("other processes' CPU s", "", lambda r: r["other_cpu_secs"], "{:.2f}", ratio=False)],
}

# The targets against etcd 3.6 at 3 members: (metric label, kind, factor). Kinds:
# "ge"/"le" compare the ratio Ballast/etcd 3.6, "all" needs every watch event delivered,
# "zero" needs Ballast's value to be 0.
TARGETS = {
    "put-1": [("average latency ms", "le", 0.8)],
    "put-1000": [("throughput req/s", "ge", 2.0), ("p99 latency ms", "le", 0.5)],
    "range-l": [("throughput req/s", "ge", 2.0)],
    "range-s": [("throughput req/s", "ge", 2.0)],
    "watch": [("events delivered / expected", "all", 1.0)],
    "k8s-list": [("throughput req/s", "ge", 1.0)],
    "k8s-watch": [("events delivered / expected", "all", 1.0), ("p99 delivery ms (put ack → event)", "le", 1.0)],
    "k8s-lease-keys": [("throughput req/s", "ge", 1.0), ("keys left after TTL + wait (lost expiries)", "zero", 0)],
    "k8s-guarded-update": [("throughput req/s", "ge", 1.0)],
    "big": [("peak RSS MiB (VmHWM)", "le", 0.5), ("RSS MiB after load", "le", 0.5)],
}


def safe(get, rec):
    try:
        return get(rec)
    except (KeyError, TypeError, ZeroDivisionError, IndexError):
        return None


def _ratio(m: Metric, b, e):
    if m.ratio and isinstance(e, (int, float)) and isinstance(b, (int, float)) and e:
        return b / e
    return None


def rows_for(wid: str, members: int, client: str, recs: dict) -> list[dict]:
    """Table rows of one workload, cluster size and client; recs maps server -> record."""
    out = []
    targets = {lbl: (kind, f) for lbl, kind, f in TARGETS.get(wid, [])} if members == 3 else {}
    for m in METRICS.get(wid, THROUGHPUT):
        vals = {s: (safe(m.get, recs[s]) if s in recs and "error" not in recs[s] else None) for s in SERVERS}
        b = vals["ballast"]
        r36, r34 = _ratio(m, b, vals["etcd36"]), _ratio(m, b, vals["etcd34"])
        target = ""
        if m.label in targets:
            kind, f = targets[m.label]
            if kind == "all":
                ok = "ballast" in recs and "error" not in recs["ballast"] and \
                    recs["ballast"]["bench"]["watch"]["all_delivered_once_in_order"]
                target = "all delivered: " + ("met" if ok else "NOT met")
            elif kind == "zero":
                target = "0: " + ("n/a" if b is None else "met" if b == 0 else "NOT met")
            elif r36 is None:
                target = ("≥ " if kind == "ge" else "≤ ") + f"{f:g}×: n/a"
            else:
                ok = r36 >= f if kind == "ge" else r36 <= f
                target = ("≥ " if kind == "ge" else "≤ ") + f"{f:g}×: " + ("met" if ok else "NOT met")
        out.append({"members": members, "workload": wid, "client": client, "metric": m.label,
                    "better": m.better, **{s: vals[s] for s in SERVERS},
                    "ratio_etcd36": r36, "ratio_etcd34": r34, "target": target,
                    **{f"{s}_text": fmt(m, vals[s]) for s in SERVERS}})
    return out


def fmt(m: Metric, v) -> str:
    if v is None:
        return "–"
    return m.fmt.format(v) if not isinstance(v, str) else v


def render(rows: list[dict], titles: dict, markdown: bool) -> str:
    head = ["members", "workload", "client", "metric", "better", "etcd 3.6", "etcd 3.4", "Ballast",
            "Ballast/3.6", "Ballast/3.4", "target vs 3.6 (3 members)"]
    body = []
    last = None
    ratio = lambda v: f"{v:.2f}" if v is not None else "–"
    for r in rows:
        key = (r["members"], r["workload"], r.get("client"))
        first = key != last
        last = key
        client = r.get("client", "ballast-bench")
        title = titles.get((r["workload"], client)) or titles.get(r["workload"], r["workload"])
        body.append([str(r["members"]) if first else "", title if first else "", client if first else "",
                     r["metric"], r["better"], r["etcd36_text"], r["etcd34_text"], r["ballast_text"],
                     ratio(r["ratio_etcd36"]), ratio(r["ratio_etcd34"]), r["target"]])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [line(head), line(["-" * w for w in widths])]
    for row in body:
        if row[0] or row[1]:
            out.append("")
        out.append(line(row))
    return "\n".join(out)


def titles_of(ws: list[Workload]) -> dict:
    t: dict = {w.id: w.title for w in ws}
    for w in ws:
        if w.etcd_title:
            t[(w.id, "etcd-benchmark")] = f"{w.title} — etcd's tool: {w.etcd_title}"
    return t


# ---------------------------------------------------------------- profile

# Where Ballast's CPU time goes: `perf record` (cpu-clock, DWARF call graphs)
# on every member while a workload runs, then each sample is put in one
# bucket. User-space samples go to the first frame, from the leaf up, that
# belongs to a known component; kernel samples by what the kernel was doing.
COMPONENTS = [
    ("WAL append + fdatasync", r"fdatasync|\bfsync\b|ballast::raft::wal"),
    ("redb (storage engine)", r"\bredb::"),
    ("MVCC/apply (key index, revisions, watch/lease hooks)",
     r"ballast::mvcc|ballast::apply|ballast::watch|ballast::lease|ballast::alarm"),
    ("protobuf encode/decode (prost)", r"\bprost::|as prost::Message>|prost_types"),
    ("Raft (raft-rs, node driver, peer transport)", r"^<?raft::|^<?raft_proto::|ballast::raft|ballast::peer|ballast_proto::raftpb"),
    ("request handlers (ballast::api, propose/wait, metrics layer)",
     r"ballast::api|ballast::server|ballast::listen|ballast::metrics|ballast::http"),
    ("gRPC/HTTP/2 libraries (tonic, h2, hyper, axum, tower)",
     r"\btonic::|\bh2::|\bhyper::|\bhyper_util::|\baxum::|\btower::|\bhttp::|\bhttp_body|_server::"),
    ("tokio runtime (scheduling, timers, I/O driver)", r"\btokio::|\bmio::|parking_lot|crossbeam|std::sync|std::thread"),
]
KERNEL = [
    ("kernel: TCP over loopback", r"tcp_|sock_|inet_|__sys_send|__sys_recv|sendmsg|recvmsg|skb|net_rx|napi|loopback|__dev_queue_xmit|ip_"),
    ("kernel: file I/O (write, fdatasync, ext4)", r"ext4|jbd2|blk_|fdatasync|fsync|vfs_write|vfs_read|iomap|filemap|file_write|pwrite|generic_perform_write"),
    ("kernel: scheduling, futex, epoll", r"schedule|finish_task_switch|futex|wake_up|ep_poll|epoll|__x64_sys_sched|hrtimer|nanosleep"),
]
LEAF = [
    ("malloc/free", r"malloc|_int_free|\bfree\b|cfree|realloc|calloc|unlink_chunk|malloc_consolidate|__rust_alloc|__rust_dealloc|tcache"),
    ("memcpy/memmove/memcmp/memset", r"memcpy|memmove|memcmp|memset|bcmp"),
]


def fold_perf(perf_data: str, pid_roles: dict) -> dict:
    import re
    comp = [(n, re.compile(p)) for n, p in COMPONENTS]
    kern = [(n, re.compile(p)) for n, p in KERNEL]
    leaf = [(n, re.compile(p)) for n, p in LEAF]
    p = subprocess.Popen(["perf", "script", "-i", perf_data, "-F", "comm,pid,ip,sym,dso"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, errors="replace")
    counts = {"samples": 0, "by_thread": {}, "by_component": {}, "by_leaf": {}, "by_member": {},
              "by_symbol": {}, "by_ballast_frame": {}}

    def bump(d, k):
        d[k] = d.get(k, 0) + 1

    def classify(head, frames):
        if not frames:
            return
        counts["samples"] += 1
        comm, _, pid = head.rpartition(" ")
        role = pid_roles.get(int(pid) if pid.isdigit() else -1, "?")
        bump(counts["by_member"], role)
        thread = comm.strip()
        thread = "tokio-rt-worker (gRPC, peers)" if thread.startswith("tokio-rt") else thread
        bump(counts["by_thread"], thread)
        syms = [(sym, k) for sym, k in frames]
        bump(counts["by_symbol"], syms[0][0][:140])
        # the innermost Ballast function on the stack (what Ballast code the time is spent for)
        own = next((sym for sym, k in syms if not k and "ballast" in sym and "{{closure}}" not in sym), None) \
            or next((sym for sym, k in syms if not k and "ballast" in sym), "(no Ballast frame)")
        bump(counts["by_ballast_frame"], own[:140])
        if syms[0][1]:  # kernel leaf
            name = next((n for n, rx in kern for sym, k in syms if k and rx.search(sym)), "kernel: other")
            bump(counts["by_component"], name)
            bump(counts["by_leaf"], "kernel")
            return
        bump(counts["by_leaf"], next((n for n, rx in leaf if rx.search(syms[0][0])), "other user code"))
        name = next((n for sym, k in syms if not k for n, rx in comp if rx.search(sym)), "other")
        bump(counts["by_component"], name)

    head, frames = None, []
    for line in p.stdout:
        if not line.strip():
            continue
        if not line[0].isspace():
            classify(head, frames)
            head, frames = line.strip(), []
            continue
        parts = line.strip().split(" ", 1)
        if len(parts) < 2:
            continue
        rest = parts[1]
        dso = rest[rest.rfind(" ("):] if rest.endswith(")") else ""
        sym = rest[: len(rest) - len(dso)] if dso else rest
        frames.append((sym, "kernel" in dso))
    classify(head, frames)
    p.wait(timeout=60)
    return counts


def profile_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="compare.py profile",
                                 description="Profile Ballast with perf under one of the comparison's workloads "
                                             "and print where its CPU time goes.")
    ap.add_argument("--members", type=int, default=1)
    ap.add_argument("--workload", default="put-1000", help="a workload id of the comparison (not big)")
    ap.add_argument("--seconds", type=float, default=10, help="perf record time (default 10)")
    ap.add_argument("--frequency", type=int, default=499, help="samples per second per CPU (default 499)")
    ap.add_argument("--perf-data", default=None, help="keep perf's data here (default: a temporary file)")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--json", default=None, help="also write the summary as JSON here")
    a = ap.parse_args(argv)
    if not shutil.which("perf"):
        sys.exit("perf is missing: apt-get install linux-perf")
    ensure_etcd()  # etcdctl, for the range workloads' key and endpoint status
    ballast, bench = build(a.no_build)
    a.duration_s, a.big_keys, a.watchers, a.watch_rate, a.list_keys = a.seconds + 4, 0, 10_000, 1000, 100_000
    w = {x.id: x for x in workloads(a)}.get(a.workload)
    if w is None or w.big:
        ap.error("--workload must be one of put-1, put-1000, range-l, range-s, txn-put, watch")
    data_root = a.data_root or tempfile.gettempdir()
    root = tempfile.mkdtemp(prefix="ballast-profile-", dir=data_root)
    perf_data = a.perf_data or os.path.join(root, "perf.data")
    cl = Cluster("ballast", ballast, root)
    out: dict = {"schema": "ballast-profile/v1", "members": a.members, "workload": a.workload,
                 "command": " ".join(["bench/compare.py", "profile"] + argv), "loadavg_start": list(os.getloadavg())}
    try:
        cl.start(a.members)
        if w.prepare:
            cl.ctl(["put", w.prepare, "v" * 256])
        st = json.loads(cl.ctl(["endpoint", "status", "-w", "json"], timeout=30))
        roles = {}
        for m, e in zip(cl.members, st):
            roles[m.proc.pid] = "leader" if e["Status"]["leader"] == e["Status"]["header"]["member_id"] else "follower"
        out["roles"] = {str(k): v for k, v in roles.items()}
        args = [bench, "--endpoints", cl.endpoints, "--json"] + (["--target-leader"] if w.target_leader else []) + w.args
        disk0, cpu0 = disk_metrics([m.client_port for m in cl.members]), cl.cpu_secs()
        b = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)  # connections and watchers are set up
        pr = subprocess.run(["perf", "record", "-e", "cpu-clock", "-F", str(a.frequency), "--call-graph", "dwarf,32768",
                             "-o", perf_data, "-p", ",".join(str(p) for p in cl.pids), "--", "sleep", str(a.seconds)],
                            capture_output=True, text=True, timeout=a.seconds + 120)
        cpu1, disk1 = cl.cpu_secs(), disk_metrics([m.client_port for m in cl.members])
        try:
            bout, berr = b.communicate(timeout=w.timeout)
        except subprocess.TimeoutExpired:
            b.kill()
            b.communicate(timeout=30)
            raise RuntimeError("ballast-bench did not finish")
        if pr.returncode != 0:
            raise RuntimeError(f"perf record failed: {pr.stderr.strip()[-500:]}")
        rep = json.loads(bout)
        out["bench"] = {k: rep[k] for k in ("requests", "errors", "requests_per_sec", "latency")}
        out["window_secs"] = a.seconds
        out["server_cpu_secs_in_window"] = cpu1 - cpu0
        out["disk_in_window"] = {k.replace("etcd_disk_", "").replace("_duration_seconds", ""): disk1[k] - disk0[k]
                                 for k in DISK_METRICS}
    finally:
        cl.stop()
    out["loadavg_end"] = list(os.getloadavg())
    log("folding perf samples (perf script; this takes a while)")
    out["profile"] = fold_perf(perf_data, roles)
    if not a.perf_data:
        shutil.rmtree(root, ignore_errors=True)
    else:
        for m in cl.members:
            shutil.rmtree(m.data_dir, ignore_errors=True)
    prof, n = out["profile"], max(1, out["profile"]["samples"])
    print(f"Ballast, {a.members} member(s), workload {a.workload} ({w.title}); perf {a.seconds:g}s window, "
          f"{prof['samples']} samples at {a.frequency} Hz (cpu-clock, DWARF call graphs)")
    print(f"bench (whole run, slowed by perf): {out['bench']['requests_per_sec']:.0f} req/s, "
          f"{out['bench']['errors']} errors")
    d = out["disk_in_window"]
    print(f"in the window: server CPU {out['server_cpu_secs_in_window']:.2f}s of {a.seconds:g}s wall; "
          f"WAL fdatasync {d['wal_fsync_count']:.0f} calls, {d['wal_fsync_sum']:.2f}s "
          f"({d['wal_fsync_sum'] / max(1, d['wal_fsync_count']) * 1000:.3f} ms each); "
          f"backend commits {d['backend_commit_count']:.0f}, {d['backend_commit_sum']:.2f}s")
    for title, key, top in (("by member", "by_member", 99), ("by thread", "by_thread", 99),
                            ("by component (first known frame from the leaf up)", "by_component", 99),
                            ("by leaf function", "by_leaf", 99), ("top leaf symbols", "by_symbol", 15),
                            ("top innermost Ballast functions (inclusive of what they call)", "by_ballast_frame", 15)):
        print(f"\n{title}:")
        for k, v in sorted(prof[key].items(), key=lambda kv: -kv[1])[:top]:
            print(f"  {100 * v / n:5.1f}%  {k}")
    print(f"\nload average at start {out['loadavg_start'][0]:.2f}, at end {out['loadavg_end'][0]:.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


# ---------------------------------------------------------------- main

def parse_duration(s: str) -> float:
    s = s.strip()
    for suf, mul in (("ms", 0.001), ("s", 1), ("m", 60)):
        if s.endswith(suf):
            return float(s[: -len(suf)]) * mul
    return float(s)


def table_rows(runs: list[dict]) -> list[dict]:
    """Table rows from run records, in the order the runs were made."""
    rows, seen = [], []
    key = lambda r: (r["members"], r["workload"], r.get("client", "ballast-bench"))
    for r in runs:
        if key(r) not in seen:
            seen.append(key(r))
    for k in seen:
        recs = {r["server"]: r for r in runs if key(r) == k}
        rows += rows_for(k[1], k[0], k[2], recs)
    return rows


# The 1000-client throughput workloads, where the cores are saturated (see cpu_bound_table).
BOUND_WORKLOADS = ("put-1000", "range-l", "range-s", "txn-put")


def cpu_bound_table(runs: list[dict], nproc: int) -> str:
    """With the machine's cores saturated, a throughput ratio is what a request costs the
    machine, members (S) plus client (C), for etcd 3.6 over the same for Ballast. Prints that
    prediction beside the measured ratio, how much of the cores each run used, and the Ballast
    S that 2x would need ((S + C of etcd 3.6) / 2 - C of Ballast), in microseconds per request
    (docs/benchmarks.md, run 13)."""
    def costs(r):
        n = r["bench"]["requests"]
        used = (r["server_cpu_secs"] + r["client_cpu_secs"] + r["other_cpu_secs"]) / r["wall_secs"] / nproc
        return r["server_cpu_secs"] / n * 1e6, r["client_cpu_secs"] / n * 1e6, r["bench"]["requests_per_sec"], used

    lines = ["| workload | client | etcd 3.6: S + C µs | Ballast: S + C µs | predicted B/3.6 | measured "
             "| CPU used, Ballast / etcd 3.6 | Ballast S needed for 2× |",
             "|---|---|---|---|---|---|---|---|"]
    for wl in BOUND_WORKLOADS:
        for client in CLIENTS:
            pair = {r["server"]: r for r in runs if r["members"] == 3 and r["workload"] == wl
                    and r["client"] == client and "error" not in r and r["bench"]["requests"]}
            if "etcd36" not in pair or "ballast" not in pair:
                continue
            (se, ce, te, ue), (sb, cb, tb, ub) = costs(pair["etcd36"]), costs(pair["ballast"])
            lines.append(f"| {wl} | {client} | {se:.0f} + {ce:.0f} | {sb:.0f} + {cb:.0f} | {(se + ce) / (sb + cb):.2f} "
                         f"| {tb / te:.2f} | {ub:.0%} / {ue:.0%} | ≤ {(se + ce) / 2 - cb:.0f} (now {sb:.0f}) |")
    return "\n".join(lines) if len(lines) > 2 else ""


def render_saved(path: str, markdown: str | None) -> int:
    with open(path) as f:
        result = json.load(f)
    if result.get("schema") != SCHEMA:
        sys.exit(f"{path}: not a {SCHEMA} file")
    s = result["settings"]
    a = argparse.Namespace(duration_s=s["duration_secs"], big_keys=s["big_keys"], watchers=s["watchers"],
                           watch_rate=s["watch_rate"], list_keys=s.get("list_keys", 100_000))
    titles = titles_of(workloads(a))
    rows = table_rows(result["runs"])
    print(render(rows, titles, markdown=False))
    bound = cpu_bound_table(result["runs"], result["machine"]["nproc"])
    if bound:
        print("\nthroughput bound by CPU (S = members' CPU, C = client's, per request):\n" + bound)
    if markdown:
        with open(markdown, "w") as f:
            f.write(render(rows, titles, markdown=True) + "\n")
            if bound:
                f.write("\n" + bound + "\n")
    return 0


DEFAULT_WORKLOADS = ("put-1,put-1000,range-l,range-s,txn-put,watch,"
                     "k8s-list,k8s-watch,k8s-lease-keys,k8s-guarded-update,big")


def etcd_total(w: Workload, a, earlier: dict | None) -> int:
    """etcd's benchmark runs a fixed --total: the rate ballast-bench measured on the
    same server times --duration, so both clients load each server for about as long."""
    rate = None
    if earlier and "error" not in earlier:
        rate = earlier["bench"]["requests_per_sec"]
        if w.id == "k8s-list":  # ballast-bench counted whole lists; etcd's tool counts pages
            rate *= max(1, a.list_keys // 500)
    if not rate:
        rate = 1000
    return max(100, int(rate * a.duration_s))


def command_for(client: str, w: Workload, cl: Cluster, tools: dict, a, earlier: dict | None) -> list[str]:
    leader = ["--target-leader"] if w.target_leader else []
    if client == "ballast-bench":
        return [tools["ballast-bench"], "--endpoints", cl.endpoints, "--json"] + leader + w.args
    return [tools["etcd-benchmark"], "--endpoints", cl.endpoints, "--precise"] + leader + \
        ["--total", str(etcd_total(w, a, earlier))] + w.etcd_args


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", default="3", help="cluster sizes to run (default 3; e.g. 1,3)")
    ap.add_argument("--workloads", default=DEFAULT_WORKLOADS,
                    help=f"comma-separated subset of: {DEFAULT_WORKLOADS}")
    ap.add_argument("--servers", default=",".join(SERVERS), help="subset of etcd36,etcd34,ballast")
    ap.add_argument("--clients", default=",".join(CLIENTS),
                    help="load generators: ballast-bench,etcd-benchmark (etcd's tools/benchmark)")
    ap.add_argument("--duration", default="5s", help="measured time of each throughput run (default 5s)")
    ap.add_argument("--big-keys", type=int, default=100_000,
                    help="keys of 1 KiB for the big-data workload (default 100000; the issue's size is --full)")
    ap.add_argument("--full", action="store_true", help="the issue's full size: 1,000,000 keys of 1 KiB")
    ap.add_argument("--list-keys", type=int, default=100_000, help="keys the k8s-list workload lists")
    ap.add_argument("--watchers", type=int, default=10_000)
    ap.add_argument("--watch-rate", type=int, default=1000, help="puts/s of the watch workloads")
    ap.add_argument("--json", default=None, help="results file (default ./ballast-compare-<time>.json)")
    ap.add_argument("--markdown", default=None, help="also write the table as Markdown to this file")
    ap.add_argument("--data-root", default=None, help="parent of the temporary data directories "
                    "(default: $TMPDIR or /tmp; must be a real disk for fsync to cost what it costs)")
    ap.add_argument("--big-data-root", default=None, help="parent of the data directories of the big-data "
                    "workload only (default: --data-root), e.g. /dev/shm when the disk is short of space")
    ap.add_argument("--no-build", action="store_true", help="use the existing release binaries")
    ap.add_argument("--ballast-bin", default=None, metavar="PATH",
                    help="run this ballast binary instead of the one built (e.g. a copy of an earlier build, "
                         "for before/after runs)")
    ap.add_argument("--deadline", default="30m", help="start no new run after this much time (default 30m)")
    ap.add_argument("--render", default=None, metavar="JSON",
                    help="only print the table of an earlier run's results file (with --markdown: write it too)")
    a = ap.parse_args()
    if a.render:
        return render_saved(a.render, a.markdown)
    a.duration_s = parse_duration(a.duration)
    if a.full:
        a.big_keys = 1_000_000
    deadline = time.monotonic() + parse_duration(a.deadline)
    sizes = [int(x) for x in a.members.split(",") if x]
    all_w = {w.id: w for w in workloads(a)}
    wanted = [x for x in a.workloads.split(",") if x]
    servers = [x for x in a.servers.split(",") if x]
    clients = [x for x in a.clients.split(",") if x]
    unknown = [x for x in wanted if x not in all_w] + [x for x in servers if x not in SERVERS] + \
        [x for x in clients if x not in CLIENTS]
    if unknown or any(n < 1 for n in sizes) or not servers or not clients:
        ap.error(f"unknown workloads, servers or clients {unknown}, or bad --members")
    started = time.time()
    ensure_etcd()
    ballast, bench = build(a.no_build)
    if a.ballast_bin:
        ballast = os.path.abspath(a.ballast_bin)
    tools = {"ballast-bench": bench, "etcd34": shutil.which("etcd"), "ballast": ballast}
    if "etcd36" in servers:
        tools["etcd36"] = os.path.join(etcd36_tool("etcd36-tools.sh"), "etcd")
    if "etcd-benchmark" in clients:
        tools["etcd-benchmark"] = etcd36_tool("etcd36-benchmark.sh")
    data_root = a.data_root or tempfile.gettempdir()
    os.makedirs(data_root, exist_ok=True)
    result = {
        "schema": SCHEMA,
        "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(data_root),
        "big_data_fs": machine_info(a.big_data_root).get("data_fs") if a.big_data_root else None,
        "versions": dict(versions(ballast, tools.get("etcd36")), built_by_this_run=not a.no_build,
                         etcd_benchmark=tools.get("etcd-benchmark")),
        "settings": {"duration_secs": a.duration_s, "big_keys": a.big_keys, "watchers": a.watchers,
                     "watch_rate": a.watch_rate, "list_keys": a.list_keys, "quota_backend_bytes": QUOTA,
                     "data_root": data_root, "big_data_root": a.big_data_root or data_root,
                     "servers": servers, "clients": clients,
                     "server_flags": "--name --data-dir --listen-client-urls --advertise-client-urls "
                                     "--listen-peer-urls --initial-advertise-peer-urls --initial-cluster "
                                     "--initial-cluster-state new --initial-cluster-token "
                                     f"--quota-backend-bytes {QUOTA} (same for all; defaults otherwise)"},
        "loadavg_start": list(os.getloadavg()),
        "runs": [],
    }
    log(f"machine: {result['machine']}; load average {result['loadavg_start']}")
    titles = titles_of(list(all_w.values()))
    idx = 0
    for n in sizes:
        for wid in wanted:
            w = all_w[wid]
            for client in clients:
                if client == "etcd-benchmark" and w.etcd_args is None:
                    continue
                # Rotate which server goes first, so slow drift on the shared machine
                # (other engineers' builds) does not always hit the same server.
                order = servers[idx % len(servers):] + servers[:idx % len(servers)]
                idx += 1
                for kind in order:
                    rec = {"members": n, "workload": wid, "client": client, "server": kind}
                    root_of_run = (a.big_data_root or data_root) if w.big else data_root
                    need = space_needed(w, n, a)
                    free = shutil.disk_usage(root_of_run).free
                    if time.monotonic() > deadline:
                        rec["error"] = "skipped: --deadline reached"
                        log(f"{n} member(s) {wid} {client} {kind}: skipped (deadline)")
                    elif free < need:
                        rec["error"] = (f"skipped: needs about {need // MIB} MiB free under {root_of_run}, "
                                        f"{free // MIB} MiB free (see --data-root, --big-data-root, --big-keys)")
                        log(f"{n} member(s) {wid} {client} {kind}: {rec['error']}")
                    else:
                        root = tempfile.mkdtemp(prefix=f"ballast-compare-{kind}-", dir=root_of_run)
                        rec["data_root"] = root_of_run
                        cl = Cluster(kind, tools[kind], root)
                        log(f"{n} member(s) {wid} {client} {kind}: starting")
                        try:
                            cl.start(n)
                            if client == "etcd-benchmark" and w.etcd_seed:
                                run([bench, "--endpoints", cl.endpoints, "--json"] + w.etcd_seed,
                                    timeout=w.timeout)
                            earlier = next((r for r in result["runs"] if (r["members"], r["workload"], r["server"],
                                            r["client"]) == (n, wid, kind, "ballast-bench")), None)
                            cmd = command_for(client, w, cl, tools, a, earlier)
                            rec.update(bench_once(cmd, cl, w, client))
                            b = rec["bench"]
                            log(f"  {b['requests']} requests, {b['errors']} errors, {b['requests_per_sec']:.0f}/s, "
                                f"server CPU {rec['server_cpu_secs']:.1f}s, client CPU {rec['client_cpu_secs']:.1f}s, "
                                f"other CPU {rec['other_cpu_secs']:.1f}s, load {rec['loadavg_after'][0]:.2f}")
                        except Exception as e:  # record and go on with the next run
                            rec["error"] = str(e)
                            log(f"  FAILED: {e}")
                        finally:
                            cl.stop()
                            shutil.rmtree(root, ignore_errors=True)
                    result["runs"].append(rec)
    rows = table_rows(result["runs"])
    result["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    result["elapsed_secs"] = time.time() - started
    result["loadavg_end"] = list(os.getloadavg())
    result["table"] = [{k: v for k, v in r.items() if not k.endswith("_text")} for r in rows]
    path = a.json or time.strftime("ballast-compare-%Y%m%d-%H%M%S.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(render(rows, titles, markdown=False))
    bound = cpu_bound_table(result["runs"], result["machine"]["nproc"])
    if bound:
        print("\nthroughput bound by CPU (S = members' CPU, C = client's, per request):\n" + bound)
    errors = [r for r in result["runs"] if "error" in r]
    for r in errors:
        print(f"\n{r['members']} member(s) {r['workload']} {r['client']} {r['server']}: {r['error']}")
    print("\nratios = Ballast / etcd 3.6 and Ballast / etcd 3.4, each measured with the same client; "
          "'better' says which direction wins. RSS, CPU and sizes are sums over the members.")
    print(f"elapsed {result['elapsed_secs']:.0f}s; load average at start {result['loadavg_start'][0]:.2f}, "
          f"at end {result['loadavg_end'][0]:.2f}; results: {path}")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(render(rows, titles, markdown=True) + "\n")
            if bound:
                f.write("\n" + bound + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "profile":
        sys.exit(profile_main(sys.argv[2:]))
    sys.exit(main())
