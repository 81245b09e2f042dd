//! History housekeeping: `--snapshot-count` keeps the Raft log short (old
//! WAL segments go away and a restart still has every key), and
//! `--auto-compaction-*` compacts old revisions on its own.

mod common;
mod support;

use std::time::Duration;

use common::{wait_until, TestServer};
use support::{against_etcd, wal_segments};

#[test]
fn snapshot_count_cuts_the_log_and_restart_keeps_data() {
    if against_etcd() {
        return; // WAL layout is Ballast's own.
    }
    // Without the 5000 entries kept for lagging followers, the log is cut right after
    // each `--snapshot-count` entries.
    let mut s = TestServer::start_with_env(
        &["--snapshot-count", "20"],
        &[("BALLAST_SNAPSHOT_CATCHUP_ENTRIES", "0")],
    );
    // One txn of many puts is one entry; write entries one by one instead.
    for i in 0..200 {
        s.put(&format!("k{i:03}"), &format!("v{i}"));
    }
    // The log is cut once the applied state is durable (at most ~0.5 s later),
    // and the cut starts a fresh segment that drops all older ones.
    let first = wal_segments(&s.data_dir()).first().cloned();
    wait_until("the WAL to be cut", Duration::from_secs(10), || {
        s.put("tick", "x");
        wal_segments(&s.data_dir()).first() != first.as_ref()
    });
    s.kill9();
    s.restart();
    let out = s.etcdctl_ok(&["get", "k", "--prefix", "--keys-only"]);
    assert_eq!(
        out.lines().filter(|l| !l.is_empty()).count(),
        200,
        "all keys after restart"
    );
    assert_eq!(
        s.etcdctl_ok(&["get", "k199", "--print-value-only"]),
        "v199\n"
    );
}

#[test]
fn periodic_auto_compaction_compacts_old_revisions() {
    let s = TestServer::start_with(&[
        "--auto-compaction-mode",
        "periodic",
        "--auto-compaction-retention",
        "2s",
    ]);
    s.put("a", "1");
    s.put("a", "2");
    // Keep writing so there is history newer than the retention window.
    wait_until("auto compaction", Duration::from_secs(20), || {
        s.put("a", "more");
        let out = s.etcdctl(&["get", "a", "--rev", "2"]);
        out.code() != 0
    });
    let err = s.etcdctl_err(&["get", "a", "--rev", "2"]);
    assert!(
        err.contains("required revision has been compacted"),
        "got {err:?}"
    );
    assert_eq!(s.etcdctl_ok(&["get", "a", "--print-value-only"]), "more\n");
}
