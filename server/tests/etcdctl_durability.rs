//! Durability smoke tests: state written through etcdctl survives a crash
//! (SIGKILL) or a graceful stop (SIGTERM) and restart on the same data dir.

mod common;

use common::TestServer;
use serde_json::Value;

/// Writes a small history: overwrites, a delete, several keys.
fn write_history(s: &TestServer) {
    for (k, v) in [
        ("/d/a", "1"),
        ("/d/b", "2"),
        ("/d/a", "3"),
        ("/d/c", "4"),
        ("/d/gone", "5"),
    ] {
        s.put(k, v);
    }
    assert_eq!(s.etcdctl_ok(&["del", "/d/gone"]), "1\n");
}

/// Everything under /d/ with create/mod revisions and versions, plus the store revision.
fn state(s: &TestServer) -> (Value, Value) {
    let resp = s.etcdctl_json(&["get", "/d/", "--prefix"]);
    (resp["kvs"].clone(), resp["header"]["revision"].clone())
}

fn assert_survives(restart: impl FnOnce(&mut TestServer)) {
    let mut s = TestServer::start();
    write_history(&s);
    let (kvs, rev) = state(&s);
    assert_eq!(rev, 7);
    let member = s.member_id_hex();

    restart(&mut s);

    assert_eq!(state(&s), (kvs, rev), "keys and revisions after restart");
    // History is still readable, and the revision counter continues.
    assert_eq!(s.etcdctl_ok(&["get", "/d/a", "--rev=2"]), "/d/a\n1\n");
    assert_eq!(s.etcdctl_ok(&["get", "/d/gone", "--rev=6"]), "/d/gone\n5\n");
    s.put("/d/after", "x");
    assert_eq!(s.revision(), 8);
    assert_eq!(
        s.member_id_hex(),
        member,
        "member ID is stable across restarts"
    );
}

#[test]
fn kill9_then_restart_keeps_keys_and_revisions() {
    assert_survives(|s| {
        s.kill9();
        s.restart();
    });
}

#[test]
fn sigterm_then_restart_keeps_keys_and_revisions() {
    assert_survives(|s| {
        s.stop();
        s.restart();
    });
}

#[test]
fn leases_survive_a_crash() {
    let mut s = TestServer::start();
    let id = s.grant_lease(100);
    s.etcdctl_ok(&["put", "leased", "v", "--lease", &id]);

    s.kill9();
    s.restart();

    assert_eq!(
        s.etcdctl_ok(&["lease", "list"]),
        format!("found 1 leases\n{id}\n")
    );
    let ttl = s.etcdctl_ok(&["lease", "timetolive", "--keys", &id]);
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(100s), remaining("))
            && ttl.ends_with("attached keys([leased])\n"),
        "timetolive after restart: {ttl:?}"
    );
    assert_eq!(
        s.etcdctl_ok(&["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(s.etcdctl_ok(&["get", "leased"]), "");
}

#[test]
fn compaction_survives_a_crash() {
    let mut s = TestServer::start();
    write_history(&s);
    s.etcdctl_ok(&["compact", "5"]);

    s.kill9();
    s.restart();

    assert_eq!(
        s.etcdctl_err(&["get", "/d/a", "--rev=4"]),
        "Error: etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!(s.etcdctl_ok(&["get", "/d/a", "--rev=5"]), "/d/a\n3\n");
}
