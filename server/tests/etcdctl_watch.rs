//! `etcdctl watch`: each event prints `PUT`/`DELETE`, then the key, then the
//! value (an empty line for a delete); with `--prev-kv` the previous key and
//! value are printed between the event type and the new pair.
//!
//! etcdctl prints nothing when a watch is created, so live-watch tests first
//! call `common::sync_watch`, which writes probe values until the watch
//! reports one; afterwards the output is deterministic.

mod common;

use std::time::Duration;

use common::{sync_watch, TestServer};

/// One watch event, as etcdctl prints it.
enum Ev<'a> {
    Put(&'a str, &'a str),
    Del(&'a str),
    /// With --prev-kv: put over an existing key (key, previous value, new value).
    PutOver(&'a str, &'a str, &'a str),
    /// With --prev-kv: delete (key, deleted value).
    DelPrev(&'a str, &'a str),
}

/// The stdout lines etcdctl prints for `events`.
fn lines(events: &[Ev]) -> Vec<String> {
    let parts: Vec<&str> = events
        .iter()
        .flat_map(|ev| match *ev {
            Ev::Put(k, v) => vec!["PUT", k, v],
            Ev::Del(k) => vec!["DELETE", k, ""],
            Ev::PutOver(k, old, new) => vec!["PUT", k, old, k, new],
            Ev::DelPrev(k, old) => vec!["DELETE", k, old, k, ""],
        })
        .collect();
    parts.into_iter().map(String::from).collect()
}

#[test]
fn watch_key_prints_put_and_delete_events() {
    let s = TestServer::start();
    let mut w = s.spawn_etcdctl(&["watch", "/w/key"]);
    sync_watch(&s, &mut w, "/w/key");

    s.put("/w/key", "a");
    s.put("/w/other", "not watched");
    s.put("/w/key", "b");
    assert_eq!(s.etcdctl_ok(&["del", "/w/key"]), "1\n");
    w.expect_lines(&lines(&[
        Ev::Put("/w/key", "a"),
        Ev::Put("/w/key", "b"),
        Ev::Del("/w/key"),
    ]));
}

#[test]
fn watch_prefix_sees_only_keys_under_the_prefix() {
    let s = TestServer::start();
    let mut w = s.spawn_etcdctl(&["watch", "--prefix", "/app/"]);
    sync_watch(&s, &mut w, "/app/__sync");

    s.put("/app/x", "1");
    s.put("/application", "outside");
    s.put("/app/y/z", "2");
    s.etcdctl_ok(&["del", "/app/", "--prefix"]);
    // The prefix delete removes three keys: one event each, in key order.
    w.expect_lines(&lines(&[
        Ev::Put("/app/x", "1"),
        Ev::Put("/app/y/z", "2"),
        Ev::Del("/app/__sync"),
        Ev::Del("/app/x"),
        Ev::Del("/app/y/z"),
    ]));
}

#[test]
fn watch_range_is_end_exclusive() {
    let s = TestServer::start();
    let mut w = s.spawn_etcdctl(&["watch", "b", "d"]);
    sync_watch(&s, &mut w, "b");

    for (k, v) in [("a", "1"), ("c", "2"), ("d", "3"), ("bz", "4")] {
        s.put(k, v);
    }
    w.expect_lines(&lines(&[Ev::Put("c", "2"), Ev::Put("bz", "4")]));
}

#[test]
fn watch_rev_replays_history() {
    let s = TestServer::start();
    s.put("/h/k", "v1");
    let first = s.revision();
    s.put("/h/k", "v2");
    s.etcdctl_ok(&["del", "/h/k"]);
    s.put("/h/k", "v3");

    // Replay from the first write; a put after the watch starts follows live.
    let rev = format!("--rev={first}");
    let mut w = s.spawn_etcdctl(&["watch", &rev, "/h/k"]);
    w.expect_lines(&lines(&[
        Ev::Put("/h/k", "v1"),
        Ev::Put("/h/k", "v2"),
        Ev::Del("/h/k"),
        Ev::Put("/h/k", "v3"),
    ]));
    s.put("/h/k", "live");
    w.expect_lines(&lines(&[Ev::Put("/h/k", "live")]));

    // Replay starting in the middle of history.
    let mid = format!("--rev={}", first + 2);
    let mut w = s.spawn_etcdctl(&["watch", &mid, "/h/k"]);
    w.expect_lines(&lines(&[
        Ev::Del("/h/k"),
        Ev::Put("/h/k", "v3"),
        Ev::Put("/h/k", "live"),
    ]));
}

#[test]
fn watch_prev_kv_prints_previous_pair() {
    let s = TestServer::start();
    s.put("/pk/k", "before");
    let mut w = s.spawn_etcdctl(&["watch", "--prev-kv", "--prefix", "/pk/"]);
    sync_watch(&s, &mut w, "/pk/__sync");

    s.put("/pk/k", "after");
    s.put("/pk/new", "fresh");
    s.etcdctl_ok(&["del", "/pk/k"]);
    w.expect_lines(&lines(&[
        Ev::PutOver("/pk/k", "before", "after"),
        // A new key has no previous pair.
        Ev::Put("/pk/new", "fresh"),
        Ev::DelPrev("/pk/k", "after"),
    ]));
}

/// Found by the robustness suite (partition-minority, seed 777): compaction at the
/// revision of a delete dropped the tombstone, so a watch resumed from the compacted
/// revision never saw the delete. etcd 3.5.17 (which Ballast emulates) and 3.6 keep that
/// tombstone until a later compaction; Debian's etcd 3.4.23 predates that fix and drops
/// it, as Ballast did.
#[test]
fn watch_from_the_compacted_revision_sees_a_delete_made_at_it() {
    let s = TestServer::start();
    s.put("/cd/k", "v1");
    s.put("/cd/other", "x");
    s.etcdctl_ok(&["del", "/cd/k"]);
    let rev = s.revision();
    assert_eq!(
        s.etcdctl_ok(&["compact", &rev.to_string()]),
        format!("compacted revision {rev}\n")
    );
    let from = format!("--rev={rev}");
    let mut w = s.spawn_etcdctl(&["watch", &from, "--prefix", "/cd/"]);
    if common::server() != common::Server::Etcd34 {
        w.expect_lines(&lines(&[Ev::Del("/cd/k")]));
    }
    s.put("/cd/k", "v2");
    w.expect_lines(&lines(&[Ev::Put("/cd/k", "v2")]));
}

#[test]
fn watch_from_compacted_revision_is_canceled() {
    let s = TestServer::start();
    for v in ["1", "2", "3"] {
        s.put("k", v);
    }
    let rev = s.revision();
    assert_eq!(
        s.etcdctl_ok(&["compact", &rev.to_string()]),
        format!("compacted revision {rev}\n")
    );

    let mut w = s.spawn_etcdctl(&["watch", "--rev=2", "k"]);
    let (status, stderr) = w.wait_exit(Duration::from_secs(5));
    assert!(
        !status.success(),
        "a canceled watch exits non-zero; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains(
            "watch was canceled (etcdserver: mvcc: required revision has been compacted)\n"
        ),
        "stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("Error: watch is canceled by the server\n"),
        "stderr:\n{stderr}"
    );
    assert_eq!(
        w.drain_stdout(),
        Vec::<String>::new(),
        "no events before the cancel"
    );
}
