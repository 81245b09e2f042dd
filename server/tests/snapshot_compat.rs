//! Snapshots are real etcd snapshot files, both ways:
//!
//! * `etcdctl snapshot save` against Ballast gives a file that etcdctl 3.4
//!   reads (`snapshot status` agrees with `ballast snapshot status`) and
//!   restores, and real etcd started on the restored dir serves the same
//!   keys, revisions, lease and compaction;
//! * a snapshot saved from real etcd restores with `ballast snapshot
//!   restore`, and Ballast started on it serves the same data (migration).
//!
//! Needs the real `etcd` binary (Debian's etcd-server) besides etcdctl.
//! Skipped when the suite runs against etcd (`BALLAST_TEST_SERVER=etcd`).

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{etcdctl_binary, free_port, server_kind, ServerKind, TestServer};
use serde_json::Value;

const LEASE_TTL: &str = "600";

fn skip() -> bool {
    if server_kind() == ServerKind::Etcd {
        eprintln!("skipped: compares Ballast with etcd, not etcd with itself");
        return true;
    }
    false
}

/// Runs a command to completion; panics with its output unless it succeeds.
fn run(mut cmd: Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed with {}:\n--- stdout ---\n{text}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// `etcdctl ARGS` against `endpoint` (offline snapshot commands ignore it).
fn ctl(endpoint: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(etcdctl_binary());
    cmd.env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint])
        .args(args);
    run(cmd, &format!("etcdctl {args:?}"))
}

/// `etcdctl txn` with only success operations, one per line.
fn ctl_txn(endpoint: &str, ops: &[String]) {
    let mut child = Command::new(etcdctl_binary())
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "txn"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn etcdctl txn");
    let input = format!("\n{}\n\n\n", ops.join("\n"));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .expect("write txn");
    let out = child.wait_with_output().expect("wait for etcdctl txn");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("SUCCESS"),
        "etcdctl txn: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ballast(args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ballast"));
    cmd.args(args);
    run(cmd, &format!("ballast {args:?}"))
}

/// What a restored member must reproduce.
struct Written {
    lease: String,
    compacted: i64,
}

/// History with overwrites, a delete, a leased key, a compaction, enough
/// keys for several pages and a value bigger than a page.
fn populate(endpoint: &str) -> Written {
    // Users and roles travel with the snapshot (auth stays off so the rest
    // of the test needs no credentials; `assert_logins` turns it on last).
    ctl(endpoint, &["user", "add", "root:root"]);
    ctl(endpoint, &["user", "add", "app:pw"]);
    ctl(endpoint, &["role", "add", "app"]);
    ctl(
        endpoint,
        &[
            "role",
            "grant-permission",
            "--prefix=true",
            "app",
            "readwrite",
            "/app/",
        ],
    );
    ctl(endpoint, &["user", "grant-role", "app", "app"]);
    ctl(endpoint, &["put", "a", "1"]);
    ctl(endpoint, &["put", "b", "2"]);
    let granted = ctl(endpoint, &["lease", "grant", LEASE_TTL]);
    let lease = granted
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected lease grant output {granted:?}"))
        .to_string();
    ctl(endpoint, &["put", "c", "3", "--lease", &lease]);
    ctl(endpoint, &["put", "a", "11"]);
    ctl(endpoint, &["del", "b"]);
    for batch in 0..3 {
        let ops: Vec<String> = (0..100)
            .map(|i| {
                format!(
                    "put bulk/{batch}/{i:03} value-{batch}-{i}-{}",
                    "v".repeat(i)
                )
            })
            .collect();
        ctl_txn(endpoint, &ops);
    }
    ctl(endpoint, &["put", "big", &"B".repeat(20_000)]);
    let compacted = revision(endpoint) - 1;
    ctl(endpoint, &["compact", &compacted.to_string()]);
    ctl(endpoint, &["put", "d", "4"]);
    ctl(endpoint, &["put", "a", "111"]);
    Written { lease, compacted }
}

fn revision(endpoint: &str) -> i64 {
    let v = get_all(endpoint);
    v["header"]["revision"]
        .as_i64()
        .unwrap_or_else(|| panic!("no revision in {v}"))
}

fn get_all(endpoint: &str) -> Value {
    let out = ctl(endpoint, &["get", "", "--prefix", "-w", "json"]);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
}

/// The keys (with revisions, versions, values, leases) and the revision.
fn state(endpoint: &str) -> (Value, Value) {
    let v = get_all(endpoint);
    (v["kvs"].clone(), v["header"]["revision"].clone())
}

/// The users, roles and password hashes came along: with auth turned on, the
/// restored member logs `app` in with its password and applies its role.
fn assert_logins(restored: &str) {
    assert_eq!(ctl(restored, &["user", "list"]), "app\nroot\n");
    assert_eq!(
        ctl(restored, &["user", "get", "app"]),
        "User: app\nRoles: app\n"
    );
    ctl(restored, &["user", "grant-role", "root", "root"]);
    ctl(restored, &["auth", "enable"]);
    ctl(restored, &["--user=app:pw", "put", "/app/k", "v"]);
    let mut denied = Command::new(etcdctl_binary());
    denied.env("ETCDCTL_API", "3").args([
        "--endpoints",
        restored,
        "--user=app:pw",
        "put",
        "elsewhere",
        "v",
    ]);
    let out = denied.output().expect("run etcdctl put");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Error: etcdserver: permission denied"),
        "the restored role still limits app: {out:?}"
    );
}

/// Checks a restored member against the source's state and history.
fn assert_same_data(restored: &str, want: &(Value, Value), written: &Written) {
    assert_eq!(&state(restored), want, "restored keys and revision");
    assert_eq!(
        ctl(restored, &["role", "get", "app"]),
        "Role app\nKV Read:\n\t[/app/, /app0) (prefix /app/)\nKV Write:\n\t[/app/, /app0) (prefix /app/)\n"
    );
    let ttl = ctl(restored, &["lease", "timetolive", &written.lease]);
    assert!(
        ttl.contains(&format!("granted with TTL({LEASE_TTL}s)")),
        "lease restored: {ttl}"
    );
    let mut old = Command::new(etcdctl_binary());
    old.env("ETCDCTL_API", "3").args([
        "--endpoints",
        restored,
        "get",
        "a",
        "--rev",
        &(written.compacted - 1).to_string(),
    ]);
    let out = old.output().expect("run etcdctl get --rev");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("required revision has been compacted"),
        "revisions before the compaction stay compacted: {out:?}"
    );
    let at_compaction = ctl(
        restored,
        &[
            "get",
            "a",
            "--rev",
            &written.compacted.to_string(),
            "--print-value-only",
        ],
    );
    assert_eq!(
        at_compaction, "11\n",
        "history from the compaction on is kept"
    );
}

/// etcdctl's and Ballast's `snapshot status` agree in every output format.
fn assert_same_status(file: &Path) {
    let f = file.to_str().expect("utf-8 path");
    for format in ["json", "table", "simple"] {
        assert_eq!(
            ballast(&["snapshot", "status", f, "-w", format]),
            ctl(
                "http://127.0.0.1:1",
                &["snapshot", "status", f, "-w", format]
            ),
            "snapshot status -w {format}"
        );
    }
}

/// A real etcd member, killed on drop.
struct RealEtcd {
    child: Child,
    client: String,
    log: PathBuf,
}

impl RealEtcd {
    fn start(data_dir: &Path, name: &str, peer: &str) -> RealEtcd {
        let client_port = free_port();
        let client = format!("http://127.0.0.1:{client_port}");
        let log = data_dir.with_extension("log");
        let out = File::create(&log).expect("create etcd log");
        let err = out.try_clone().expect("clone log handle");
        let bin = std::env::var_os("BALLAST_TEST_ETCD_BIN").unwrap_or_else(|| "etcd".into());
        let child = Command::new(&bin)
            .args(["--name", name, "--data-dir"])
            .arg(data_dir)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                peer,
                "--initial-advertise-peer-urls",
                peer,
            ])
            .args(["--initial-cluster", &format!("{name}={peer}")])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin:?} (apt-get install etcd-server): {e}"));
        let mut etcd = RealEtcd { child, client, log };
        etcd.wait_healthy(client_port);
        etcd
    }

    fn wait_healthy(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        while !healthy(addr) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("etcd exited with {status}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "etcd not healthy:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RealEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("----- etcd log -----\n{}", self.log_text());
        }
    }
}

fn healthy(addr: SocketAddr) -> bool {
    let probe = || -> std::io::Result<bool> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(
            s,
            "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        s.read_to_string(&mut response)?;
        Ok(response.starts_with("HTTP/1.1 200") && response.contains("\"true\""))
    };
    probe().unwrap_or(false)
}

#[test]
fn ballast_snapshot_restores_into_real_etcd() {
    if skip() {
        return;
    }
    let src = TestServer::start();
    let url = src.client_url();
    let written = populate(&url);
    let want = state(&url);

    let file = src.scratch_dir().join("ballast.db");
    let f = file.to_str().expect("utf-8 path");
    let saved = ctl(&url, &["snapshot", "save", f]);
    assert!(saved.contains("Snapshot saved at"), "{saved}");
    assert_eq!(
        common::file_size(&file) % 512,
        32,
        "bbolt pages plus SHA-256"
    );
    assert_same_status(&file);

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("etcd");
    let peer = format!("http://127.0.0.1:{}", free_port());
    let cluster = format!("restored={peer}");
    ctl(
        &url,
        &[
            "snapshot",
            "restore",
            f,
            "--data-dir",
            data.to_str().expect("utf-8 path"),
            "--name",
            "restored",
            "--initial-cluster",
            &cluster,
            "--initial-advertise-peer-urls",
            &peer,
        ],
    );
    let etcd = RealEtcd::start(&data, "restored", &peer);
    assert_same_data(&etcd.client, &want, &written);
    // The restored member takes writes after the snapshot's revision.
    ctl(&etcd.client, &["put", "after", "restore"]);
    assert_eq!(revision(&etcd.client), revision(&url) + 1);
    assert_logins(&etcd.client);
}

#[test]
fn etcd_snapshot_restores_into_ballast() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let peer = format!("http://127.0.0.1:{}", free_port());
    let etcd = RealEtcd::start(&dir.path().join("etcd"), "source", &peer);
    let written = populate(&etcd.client);
    let want = state(&etcd.client);
    let file = dir.path().join("etcd.db");
    let f = file.to_str().expect("utf-8 path");
    ctl(&etcd.client, &["snapshot", "save", f]);
    drop(etcd);
    assert_same_status(&file);

    let mut dst = TestServer::start();
    dst.kill9();
    std::fs::remove_dir_all(dst.data_dir()).expect("clear the new member's data dir");
    let data = dst.data_dir();
    let out = ballast(&[
        "snapshot",
        "restore",
        f,
        "--data-dir",
        data.to_str().expect("utf-8 path"),
    ]);
    assert!(out.contains("restored snapshot"), "{out}");
    dst.restart();
    assert_same_data(&dst.client_url(), &want, &written);
    ctl(&dst.client_url(), &["put", "after", "restore"]);
    assert_eq!(
        revision(&dst.client_url()),
        want.1.as_i64().expect("revision") + 1
    );
    assert_logins(&dst.client_url());
}
