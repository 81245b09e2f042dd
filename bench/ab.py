#!/usr/bin/env python3
"""Before/after runs of Ballast variants against each other, alternating.

On a shared machine one run of a workload moves by 10-25 % from the next, so a change
is judged on several alternating runs (A B B A A B ...) of each variant, on the median.
Each variant is a Ballast binary with, optionally, environment variables for it:

    bench/ab.py --rounds 6 --workload put-1 base=/tmp/ballast-before \\
        new=target/release/ballast one-worker=/tmp/ballast-before,TOKIO_WORKER_THREADS=1

Every run is `bench/compare.py --no-build --servers ballast` with one client (ballast-bench
by default), 3 members; add `--with-etcd` to run etcd 3.6 in the same pass and print the
ratio as well. Prints each run's average latency (the figure that moves for every
workload, throughput ones included) and the median of each variant. Like compare.py it
uses the release build of ballast-bench under CARGO_TARGET_DIR (or target/). Python 3.11
standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_variant(spec: str) -> tuple[str, str, dict[str, str]]:
    """`name=BINARY[,VAR=VALUE...]`."""
    name, sep, rest = spec.partition("=")
    if not sep or not rest:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected name=BINARY[,VAR=VALUE...]")
    binary, *env = rest.split(",")
    pairs = {}
    for e in env:
        var, sep, value = e.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{spec!r}: {e!r} is not VAR=VALUE")
        pairs[var] = value
    if not os.access(binary, os.X_OK):
        raise argparse.ArgumentTypeError(f"{binary}: not an executable file")
    return name, os.path.abspath(binary), pairs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("variants", nargs="+", type=parse_variant, help="name=BINARY[,VAR=VALUE...]")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--workload", default="put-1", help="one bench/compare.py workload")
    p.add_argument("--client", default="ballast-bench", choices=("ballast-bench", "etcd-benchmark"))
    p.add_argument("--with-etcd", action="store_true", help="also run etcd 3.6 in each pass")
    args = p.parse_args()

    servers = "etcd36,ballast" if args.with_etcd else "ballast"
    latencies: dict[str, list[float]] = {name: [] for name, _, _ in args.variants}
    ratios: dict[str, list[float]] = {name: [] for name, _, _ in args.variants}
    with tempfile.TemporaryDirectory(prefix="ballast-ab.") as out_dir:
        for r in range(args.rounds):
            # Alternate the order so that neither variant always runs first.
            order = args.variants if r % 2 == 0 else args.variants[::-1]
            for name, binary, env in order:
                out = os.path.join(out_dir, f"{name}-{r}.json")
                cmd = [sys.executable, os.path.join(ROOT, "bench/compare.py"), "--no-build",
                       "--workloads", args.workload, "--servers", servers,
                       "--clients", args.client, "--ballast-bin", binary, "--json", out]
                done = subprocess.run(cmd, env=dict(os.environ, **env), capture_output=True, text=True)
                if done.returncode != 0:
                    print(done.stderr, file=sys.stderr)
                    return 1
                with open(out) as f:
                    runs = {run["server"]: run["bench"] for run in json.load(f)["runs"]}
                ms = runs["ballast"]["latency"]["average_ms"]
                latencies[name].append(ms)
                line = f"{name:>12} round {r}: average latency {ms:.3f} ms"
                if "etcd36" in runs:
                    ratio = ms / runs["etcd36"]["latency"]["average_ms"]
                    ratios[name].append(ratio)
                    line += f", / etcd 3.6 {ratio:.3f}"
                print(line, flush=True)
    for name, xs in latencies.items():
        line = f"{name:>12}: median {statistics.median(xs):.3f} ms over {len(xs)} runs"
        if ratios[name]:
            line += f", median ratio to etcd 3.6 {statistics.median(ratios[name]):.3f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
