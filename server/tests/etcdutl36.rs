//! etcd 3.6's offline tools read the server's snapshots: `etcdctl snapshot save` from a
//! running server (Ballast by default), then etcdutl 3.6's `snapshot status` and
//! `snapshot restore` on the file, and real etcd 3.6 started on the restored data dir
//! serves the same keys, revisions, lease and compaction.
//!
//! etcdctl 3.6 has no `snapshot status/restore` any more (they moved to etcdutl), so this
//! is how etcd 3.6 users inspect and restore a backup. The etcdctl that saves the snapshot
//! is the suite's (`BALLAST_TEST_ETCDCTL`); etcdutl and etcd are 3.6.16, from
//! `BALLAST_TEST_ETCD36_DIR` or `scripts/etcd36-tools.sh`. With
//! `BALLAST_TEST_SERVER=etcd36` the same checks run on etcd 3.6's own snapshot, which
//! is how the expectations were checked.
//!
//! Ballast emulates etcd 3.5: its snapshots record no storage version (etcdutl's
//! VERSION column is empty, as for a 3.5 snapshot; an etcd 3.6 snapshot says 3.6.0).

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{
    etcd36_tool, etcdctl_cmd, file_size, free_port, server, single_row, snapshot_saved_output,
    wait_until, CtlOutput, TestServer,
};
use serde_json::Value;

const LEASE_TTL: &str = "600";
const COMPACTED: &str = "Error: etcdserver: mvcc: required revision has been compacted";

/// etcdctl (the suite's) against `endpoint`, to completion.
fn ctl(endpoint: &str, args: &[&str]) -> CtlOutput {
    let out = etcdctl_cmd()
        .args(["--endpoints", endpoint])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run etcdctl {args:?}: {e}"));
    CtlOutput {
        args: args.iter().map(|s| s.to_string()).collect(),
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// etcdutl 3.6, to completion; panics with its output unless it succeeds.
fn etcdutl(args: &[&str]) -> String {
    let bin = etcd36_tool("etcdutl");
    let out = Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {} {args:?}: {e}", bin.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "etcdutl {args:?} exited with {}\n--- stdout ---\n{stdout}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `ballast snapshot status <file> -w json`, parsed.
fn ballast_status(file: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["snapshot", "status", file, "-w", "json"])
        .output()
        .expect("run ballast snapshot status");
    assert!(out.status.success(), "ballast snapshot status: {out:?}");
    serde_json::from_slice(&out.stdout).expect("ballast snapshot status prints JSON")
}

/// What the restored member must serve: the history written by [`populate`].
struct Written {
    lease: String,
    compacted: i64,
    /// Keys that exist at the snapshot's revision.
    live_keys: u64,
}

/// Overwrites, a delete before the compaction (so the deleted key must be gone entirely),
/// a leased key, a compaction, and writes after it.
fn populate(s: &TestServer) -> Written {
    s.put("a", "1");
    s.put("b", "2");
    let lease = s.grant_lease(LEASE_TTL.parse().expect("TTL"));
    assert_eq!(s.etcdctl_ok(&["put", "c", "3", "--lease", &lease]), "OK\n");
    s.put("a", "11");
    assert_eq!(s.etcdctl_ok(&["del", "b"]), "1\n");
    let compacted = s.revision();
    assert_eq!(
        s.etcdctl_ok(&["compact", &compacted.to_string(), "--physical"]),
        format!("compacted revision {compacted}\n")
    );
    s.put("d", "4");
    s.put("a", "111");
    Written {
        lease,
        compacted,
        live_keys: 3,
    }
}

/// Every key (with revisions, versions, values, leases) and the store revision.
fn state(endpoint: &str) -> (Value, Value) {
    let out = ctl(endpoint, &["get", "", "--prefix", "-w", "json"]).ok();
    let v: Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("get -w json printed invalid JSON ({e}): {out}"));
    (v["kvs"].clone(), v["header"]["revision"].clone())
}

/// Real etcd 3.6 on a restored data dir, as the member the restore named; killed on drop.
struct RestoredEtcd36 {
    child: Child,
    client: String,
    log: PathBuf,
}

impl RestoredEtcd36 {
    fn start(data_dir: &Path, name: &str, peer: &str) -> RestoredEtcd36 {
        let client = format!("http://127.0.0.1:{}", free_port());
        let log = data_dir.with_extension("log");
        let out = File::create(&log).expect("create etcd 3.6 log");
        let err = out.try_clone().expect("clone log handle");
        let child = Command::new(etcd36_tool("etcd"))
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
                "--initial-cluster",
                &format!("{name}={peer}"),
            ])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn etcd 3.6");
        let mut etcd = RestoredEtcd36 { child, client, log };
        wait_until("etcd 3.6 healthy", Duration::from_secs(30), || {
            if let Ok(Some(status)) = etcd.child.try_wait() {
                panic!("etcd 3.6 exited with {status}");
            }
            ctl(&etcd.client, &["endpoint", "health"]).status.success()
        });
        etcd
    }
}

impl Drop for RestoredEtcd36 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let start = log.len().saturating_sub(16 * 1024);
            let start = (start..log.len())
                .find(|&i| log.is_char_boundary(i))
                .unwrap_or(0);
            eprintln!("----- etcd 3.6 log (tail) -----\n{}", &log[start..]);
        }
    }
}

#[test]
fn etcdutl_3_6_status_and_restore_read_a_saved_snapshot() {
    let s = TestServer::start();
    let written = populate(&s);
    let want = state(&s.client_url());
    let revision = s.revision();

    let file = s.scratch_dir().join("backup.db");
    let f = file.to_str().expect("utf-8 temp path");
    assert_eq!(
        s.etcdctl_ok(&["snapshot", "save", f]),
        snapshot_saved_output(f)
    );

    // `etcdutl snapshot status`: the file's revision, live keys, size, and the storage
    // version etcd 3.6 records (none in etcd 3.5's layout, so none in Ballast's).
    let status: Value =
        serde_json::from_str(etcdutl(&["snapshot", "status", f, "-w", "json"]).trim())
            .expect("etcdutl snapshot status -w json prints JSON");
    assert_eq!(status["revision"], revision, "{status}");
    assert_eq!(status["totalKey"], written.live_keys, "{status}");
    assert_eq!(status["totalSize"], file_size(&file) - 32, "{status}");
    assert_eq!(status["version"], server().storage_version(), "{status}");
    // Hash (CRC-32C of every bucket), revision and size agree with `ballast snapshot
    // status`, which counts keys as etcd 3.4/3.5 do (every bucket entry), so not totalKey.
    let ours = ballast_status(f);
    for field in ["hash", "revision", "totalSize"] {
        assert_eq!(
            status[field], ours[field],
            "{field}: etcdutl {status}, ballast {ours}"
        );
    }
    let table = etcdutl(&["snapshot", "status", f, "-w", "table"]);
    let row = single_row(
        &table,
        &["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE", "VERSION"],
    );
    let hash = status["hash"].as_u64().expect("hash");
    assert_eq!(row["HASH"], format!("{hash:x}"));
    assert_eq!(row["REVISION"], revision.to_string());
    assert_eq!(row["TOTAL KEYS"], written.live_keys.to_string());
    assert_eq!(row["VERSION"], server().storage_version());

    // `etcdutl snapshot restore` into a new single-member cluster, and etcd 3.6 on it.
    let data = s.scratch_dir().join("restored");
    let peer = format!("http://127.0.0.1:{}", free_port());
    let restored_out = etcdutl(&[
        "snapshot",
        "restore",
        f,
        "--data-dir",
        data.to_str().expect("utf-8 temp path"),
        "--name",
        "restored",
        "--initial-cluster",
        &format!("restored={peer}"),
        "--initial-advertise-peer-urls",
        &peer,
    ]);
    assert_eq!(restored_out, "", "etcdutl logs on stderr only");
    let etcd = RestoredEtcd36::start(&data, "restored", &peer);
    let url = etcd.client.as_str();

    assert_eq!(state(url), want, "restored keys, revisions and leases");
    let member = ctl(url, &["member", "list"]).ok();
    assert!(
        member.ends_with(&format!(", started, restored, {peer}, {url}, false\n"))
            && member.lines().count() == 1,
        "the restore's single member: {member:?}"
    );
    let ttl = ctl(url, &["lease", "timetolive", &written.lease]).ok();
    assert!(
        ttl.starts_with(&format!(
            "lease {} granted with TTL({LEASE_TTL}s), remaining(",
            written.lease
        )),
        "the lease is restored: {ttl:?}"
    );
    // The compaction is kept: below it is compacted, from it on is history.
    let below = (written.compacted - 1).to_string();
    assert_eq!(
        ctl(url, &["get", "a", "--rev", &below]).err_line(),
        COMPACTED
    );
    let at = written.compacted.to_string();
    assert_eq!(
        ctl(url, &["get", "a", "--rev", &at, "--print-value-only"]).ok(),
        "11\n"
    );
    assert_eq!(
        ctl(url, &["get", "b", "--rev", &at]).ok(),
        "",
        "the key deleted before the compaction is gone"
    );
    // And the restored member goes on from the snapshot's revision.
    assert_eq!(ctl(url, &["put", "after", "restore"]).ok(), "OK\n");
    assert_eq!(state(url).1, revision + 1);
}
