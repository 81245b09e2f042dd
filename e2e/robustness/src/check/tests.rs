//! The checker fed hand-made histories, bad and good, with the exact verdict each must get.
//! Times are in nanoseconds; the histories start on a fresh store at revision 1.

use super::*;
use crate::history::*;

mod build {
    use crate::history::*;

    pub fn kv(key: &str, value: &str, create: i64, modr: i64, version: i64) -> KeyValue {
        kvl(key, value, create, modr, version, 0)
    }

    pub fn kvl(
        key: &str,
        value: &str,
        create: i64,
        modr: i64,
        version: i64,
        lease: i64,
    ) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
            create_revision: create,
            mod_revision: modr,
            version,
            lease,
        }
    }

    pub fn op(
        client: ClientId,
        call: Time,
        ret: Time,
        request: Request,
        outcome: Outcome,
    ) -> Operation {
        Operation {
            client,
            call,
            ret,
            request,
            outcome,
        }
    }

    pub fn put(key: &str, value: &str) -> Request {
        put_lease(key, value, 0)
    }
    pub fn put_lease(key: &str, value: &str, lease: i64) -> Request {
        Request::Put {
            key: key.into(),
            value: value.into(),
            lease,
        }
    }
    pub fn get(key: &str) -> Request {
        Request::Get {
            key: key.into(),
            revision: 0,
            serializable: false,
        }
    }
    pub fn get_serializable(key: &str) -> Request {
        Request::Get {
            key: key.into(),
            revision: 0,
            serializable: true,
        }
    }
    pub fn list(prefix: &str) -> Request {
        Request::List {
            prefix: prefix.into(),
            revision: 0,
            serializable: false,
        }
    }
    pub fn del(key: &str) -> Request {
        Request::Delete { key: key.into() }
    }
    pub fn cas(key: &str, expected: i64, value: &str) -> Request {
        Request::CompareAndSet {
            key: key.into(),
            expected_mod_revision: expected,
            value: value.into(),
        }
    }
    pub fn grant(ttl: i64) -> Request {
        Request::LeaseGrant { ttl }
    }
    pub fn revoke(id: i64) -> Request {
        Request::LeaseRevoke { id }
    }

    pub fn ok_put(revision: i64) -> Outcome {
        Outcome::Ok(Response::Put { revision })
    }
    pub fn ok_get(revision: i64, kv: Option<KeyValue>) -> Outcome {
        Outcome::Ok(Response::Get { revision, kv })
    }
    pub fn ok_list(revision: i64, kvs: Vec<KeyValue>) -> Outcome {
        Outcome::Ok(Response::List { revision, kvs })
    }
    pub fn ok_del(revision: i64, deleted: i64) -> Outcome {
        Outcome::Ok(Response::Delete { revision, deleted })
    }
    pub fn ok_cas(revision: i64, succeeded: bool, kv: Option<KeyValue>) -> Outcome {
        Outcome::Ok(Response::CompareAndSet {
            revision,
            succeeded,
            kv,
        })
    }
    pub fn ok_grant(revision: i64, id: i64) -> Outcome {
        Outcome::Ok(Response::LeaseGrant { revision, id })
    }
    pub fn ok_revoke(revision: i64) -> Outcome {
        Outcome::Ok(Response::LeaseRevoke { revision })
    }
    pub fn timeout() -> Outcome {
        Outcome::Error("context deadline exceeded".into())
    }
    /// What etcd-client says for Ballast's refusal of a write on a full volume.
    pub fn no_space() -> Outcome {
        Outcome::Error(
            "grpc request error: status: ResourceExhausted, message: \"etcdserver: mvcc: database space exceeded\"".into(),
        )
    }

    pub fn put_event(kv: KeyValue) -> WatchEvent {
        WatchEvent {
            kind: EventKind::Put,
            kv,
            prev_kv: None,
        }
    }
    pub fn delete_event(key: &str, revision: i64) -> WatchEvent {
        WatchEvent {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.into(),
                value: String::new(),
                create_revision: 0,
                mod_revision: revision,
                version: 0,
                lease: 0,
            },
            prev_kv: None,
        }
    }
    pub fn with_prev(mut event: WatchEvent, prev: KeyValue) -> WatchEvent {
        event.prev_kv = Some(prev);
        event
    }
    pub fn events(time: Time, revision: i64, events: Vec<WatchEvent>) -> WatchResponse {
        WatchResponse {
            time,
            revision,
            events,
            compact_revision: 0,
            canceled: false,
            progress_notify: false,
        }
    }
    pub fn progress(time: Time, revision: i64) -> WatchResponse {
        WatchResponse {
            progress_notify: true,
            ..events(time, revision, vec![])
        }
    }
    /// A watch of every key under "k" (`["k", "l")`).
    pub fn watch(
        watcher: u32,
        start_revision: i64,
        call: Time,
        responses: Vec<WatchResponse>,
    ) -> WatchSession {
        WatchSession {
            client: 100 + watcher,
            watcher,
            key: "k".into(),
            range_end: "l".into(),
            start_revision,
            prev_kv: false,
            call,
            responses,
            error: None,
        }
    }
    pub fn history(operations: Vec<Operation>) -> History {
        History {
            operations,
            ..History::default()
        }
    }
}

use build::*;

/// Two puts of "ka" (revisions 2 and 3) by client 1, one after the other.
fn two_puts() -> Vec<Operation> {
    vec![
        op(1, 0, 10, put("ka", "1"), ok_put(2)),
        op(1, 20, 30, put("ka", "2"), ok_put(3)),
    ]
}

fn with_watch(operations: Vec<Operation>, sessions: Vec<WatchSession>) -> History {
    History {
        operations,
        watches: sessions,
        ..History::default()
    }
}

/// A lease 7 with keys "ka" and "kb" revoked at revision 4.
fn lease_revoked() -> Vec<Operation> {
    vec![
        op(1, 0, 5, grant(60), ok_grant(1, 7)),
        op(1, 10, 20, put_lease("ka", "1", 7), ok_put(2)),
        op(1, 30, 40, put_lease("kb", "1", 7), ok_put(3)),
        op(1, 50, 60, revoke(7), ok_revoke(4)),
    ]
}

fn bad_histories() -> Vec<(&'static str, History, Vec<Kind>)> {
    let a1 = kv("ka", "1", 2, 2, 1);
    let a2 = kv("ka", "2", 2, 3, 2);
    vec![
        (
            "stale read: a linearizable get returns the old value after a newer put completed",
            history(
                [
                    two_puts(),
                    vec![op(2, 40, 50, get("ka"), ok_get(3, Some(a1.clone())))],
                ]
                .concat(),
            ),
            vec![Kind::NotLinearizable],
        ),
        (
            "stale read with its old revision",
            history(
                [
                    two_puts(),
                    vec![op(2, 40, 50, get("ka"), ok_get(2, Some(a1.clone())))],
                ]
                .concat(),
            ),
            vec![Kind::NotLinearizable],
        ),
        (
            "lost write: an acknowledged put missing from the final list",
            history(vec![
                op(1, 0, 10, put("ka", "1"), ok_put(2)),
                op(1, 20, 30, list("k"), ok_list(2, vec![])),
            ]),
            vec![Kind::LostWrite, Kind::NotLinearizable],
        ),
        (
            "lost write: the final list has the value before an acknowledged put",
            history(
                [
                    two_puts(),
                    vec![op(2, 40, 50, list("k"), ok_list(3, vec![a1.clone()]))],
                ]
                .concat(),
            ),
            vec![Kind::LostWrite, Kind::NotLinearizable],
        ),
        (
            "undone delete: an acknowledged delete's key back in the final list",
            history(vec![
                op(1, 0, 10, put("ka", "1"), ok_put(2)),
                op(1, 20, 30, del("ka"), ok_del(3, 1)),
                op(1, 40, 50, list("k"), ok_list(3, vec![a1.clone()])),
            ]),
            vec![Kind::NotLinearizable, Kind::UndoneDelete],
        ),
        (
            "revision going backwards for one client",
            history(
                [
                    two_puts(),
                    vec![op(1, 40, 50, get("ka"), ok_get(2, Some(a1.clone())))],
                ]
                .concat(),
            ),
            vec![Kind::NotLinearizable, Kind::RevisionWentBackwards],
        ),
        (
            "two acknowledged puts claim one revision",
            history(vec![
                op(1, 0, 10, put("ka", "1"), ok_put(2)),
                op(2, 0, 10, put("kb", "1"), ok_put(2)),
            ]),
            vec![Kind::NotLinearizable, Kind::RevisionReused],
        ),
        (
            "a compare-and-set that succeeded against a wrong mod_revision",
            history(vec![
                op(1, 0, 10, put("ka", "1"), ok_put(2)),
                op(1, 20, 30, cas("ka", 5, "2"), ok_cas(3, true, None)),
            ]),
            vec![Kind::NotLinearizable],
        ),
        (
            "a compare-and-set that failed though the revision matched",
            history(vec![
                op(1, 0, 10, put("ka", "1"), ok_put(2)),
                op(
                    1,
                    20,
                    30,
                    cas("ka", 2, "2"),
                    ok_cas(2, false, Some(a1.clone())),
                ),
            ]),
            vec![Kind::NotLinearizable],
        ),
        (
            "a put with a revoked lease acknowledged",
            history(
                [
                    lease_revoked(),
                    vec![op(1, 70, 80, put_lease("kc", "1", 7), ok_put(5))],
                ]
                .concat(),
            ),
            vec![Kind::NotLinearizable],
        ),
        (
            "a serializable read returns a revision not yet created",
            history(vec![
                op(1, 10, 20, put("ka", "1"), ok_put(2)),
                op(2, 0, 5, get_serializable("ka"), ok_get(2, Some(a1.clone()))),
            ]),
            vec![Kind::InconsistentRead],
        ),
        (
            "a serializable read unlike the store at its revision",
            history(
                [
                    two_puts(),
                    vec![op(
                        2,
                        40,
                        50,
                        get_serializable("ka"),
                        ok_get(3, Some(a1.clone())),
                    )],
                ]
                .concat(),
            ),
            vec![Kind::InconsistentRead],
        ),
        (
            "duplicated watch event",
            with_watch(
                two_puts(),
                vec![watch(
                    1,
                    2,
                    0,
                    vec![
                        events(12, 2, vec![put_event(a1.clone())]),
                        events(13, 2, vec![put_event(a1.clone())]),
                        events(32, 3, vec![put_event(a2.clone())]),
                    ],
                )],
            ),
            vec![Kind::WatchDuplicate],
        ),
        (
            "missing watch event (gap)",
            with_watch(
                [two_puts(), vec![op(1, 40, 50, put("ka", "3"), ok_put(4))]].concat(),
                vec![watch(
                    1,
                    2,
                    0,
                    vec![
                        events(12, 2, vec![put_event(a1.clone())]),
                        events(52, 4, vec![put_event(kv("ka", "3", 2, 4, 3))]),
                    ],
                )],
            ),
            vec![Kind::WatchGap],
        ),
        (
            "missing watch event before a progress notification",
            with_watch(
                two_puts(),
                vec![watch(
                    1,
                    2,
                    0,
                    vec![events(12, 2, vec![put_event(a1.clone())]), progress(40, 3)],
                )],
            ),
            vec![Kind::WatchGap],
        ),
        (
            "a watch from revision 0 misses an event after its first progress notification",
            with_watch(
                [two_puts(), vec![op(1, 40, 50, put("ka", "3"), ok_put(4))]].concat(),
                vec![watch(
                    1,
                    0,
                    15,
                    vec![
                        progress(16, 2),
                        events(52, 4, vec![put_event(kv("ka", "3", 2, 4, 3))]),
                    ],
                )],
            ),
            vec![Kind::WatchGap],
        ),
        (
            "resumed watch skips a revision",
            with_watch(
                [two_puts(), vec![op(1, 40, 50, put("ka", "3"), ok_put(4))]].concat(),
                vec![
                    watch(1, 2, 0, vec![events(12, 2, vec![put_event(a1.clone())])]),
                    watch(
                        1,
                        4,
                        35,
                        vec![events(52, 4, vec![put_event(kv("ka", "3", 2, 4, 3))])],
                    ),
                ],
            ),
            vec![Kind::WatchGap],
        ),
        (
            "resumed watch repeats an event",
            with_watch(
                two_puts(),
                vec![
                    watch(1, 2, 0, vec![events(12, 2, vec![put_event(a1.clone())])]),
                    watch(
                        1,
                        2,
                        15,
                        vec![
                            events(16, 2, vec![put_event(a1.clone())]),
                            events(32, 3, vec![put_event(a2.clone())]),
                        ],
                    ),
                ],
            ),
            vec![Kind::WatchDuplicate],
        ),
        (
            "out-of-order watch events",
            with_watch(
                two_puts(),
                vec![watch(
                    1,
                    2,
                    0,
                    vec![
                        events(32, 3, vec![put_event(a2.clone())]),
                        events(33, 3, vec![put_event(a1.clone())]),
                    ],
                )],
            ),
            vec![Kind::WatchOutOfOrder],
        ),
        (
            "non-atomic watch response: a revoke's revision split over two responses",
            with_watch(
                lease_revoked(),
                vec![watch(
                    1,
                    2,
                    0,
                    vec![
                        events(22, 2, vec![put_event(kvl("ka", "1", 2, 2, 1, 7))]),
                        events(42, 3, vec![put_event(kvl("kb", "1", 3, 3, 1, 7))]),
                        events(62, 4, vec![delete_event("ka", 4)]),
                        events(63, 4, vec![delete_event("kb", 4)]),
                    ],
                )],
            ),
            vec![Kind::WatchNotAtomic],
        ),
        (
            "a watch event for a change that did not happen",
            with_watch(
                two_puts(),
                vec![watch(
                    1,
                    2,
                    0,
                    vec![
                        events(12, 2, vec![put_event(a1.clone())]),
                        events(32, 3, vec![put_event(kv("ka", "9", 2, 3, 2))]),
                    ],
                )],
            ),
            vec![Kind::WatchWrongEvent, Kind::NotLinearizable],
        ),
        (
            "a progress notification behind an event already delivered",
            with_watch(
                two_puts(),
                vec![watch(
                    1,
                    2,
                    0,
                    vec![
                        events(12, 2, vec![put_event(a1.clone())]),
                        events(32, 3, vec![put_event(a2.clone())]),
                        progress(40, 2),
                    ],
                )],
            ),
            vec![Kind::WatchProgress],
        ),
        (
            "prev_kv unlike the key's previous state",
            with_watch(
                two_puts(),
                vec![WatchSession {
                    prev_kv: true,
                    ..watch(
                        1,
                        3,
                        0,
                        vec![events(
                            32,
                            3,
                            vec![with_prev(put_event(a2.clone()), kv("ka", "0", 2, 2, 1))],
                        )],
                    )
                }],
            ),
            vec![Kind::WatchPrevKv, Kind::NotLinearizable],
        ),
        (
            "a watch reported compacted though no compaction was asked for",
            with_watch(
                two_puts(),
                vec![watch(
                    1,
                    2,
                    60,
                    vec![WatchResponse {
                        canceled: true,
                        compact_revision: 3,
                        ..events(61, 3, vec![])
                    }],
                )],
            ),
            vec![Kind::WatchCompaction],
        ),
        (
            "a watch reported compacted at or below its start revision",
            with_watch(
                [
                    two_puts(),
                    vec![op(
                        1,
                        40,
                        50,
                        Request::Compact { revision: 3 },
                        Outcome::Ok(Response::Compact { revision: 3 }),
                    )],
                ]
                .concat(),
                vec![watch(
                    1,
                    3,
                    60,
                    vec![WatchResponse {
                        canceled: true,
                        compact_revision: 3,
                        ..events(61, 3, vec![])
                    }],
                )],
            ),
            vec![Kind::WatchCompaction],
        ),
        (
            "lease keys deleted in two revisions (expiry seen by a watch)",
            with_watch(
                vec![
                    op(1, 0, 5, grant(1), ok_grant(1, 7)),
                    op(1, 10, 20, put_lease("ka", "1", 7), ok_put(2)),
                    op(1, 30, 40, put_lease("kb", "1", 7), ok_put(3)),
                ],
                vec![watch(
                    1,
                    2,
                    0,
                    vec![
                        events(22, 2, vec![put_event(kvl("ka", "1", 2, 2, 1, 7))]),
                        events(42, 3, vec![put_event(kvl("kb", "1", 3, 3, 1, 7))]),
                        events(2_000_000_000, 4, vec![delete_event("ka", 4)]),
                        events(2_000_000_001, 5, vec![delete_event("kb", 5)]),
                    ],
                )],
            )
            .with_lease(7, 1, 0),
            vec![Kind::LeaseKeysSplit, Kind::NotLinearizable],
        ),
        (
            "a lease's keys gone before its TTL could have passed",
            history(vec![
                op(1, 0, 5, grant(60), ok_grant(1, 7)),
                op(1, 10, 20, put_lease("ka", "1", 7), ok_put(2)),
                op(
                    2,
                    1_000_000_000,
                    1_000_000_010,
                    list("k"),
                    ok_list(3, vec![]),
                ),
            ]),
            vec![Kind::LostWrite, Kind::NotLinearizable],
        ),
        (
            "a key of a revoked lease read after the revoke returned",
            history(
                [
                    lease_revoked(),
                    vec![op(
                        2,
                        70,
                        80,
                        get("ka"),
                        ok_get(4, Some(kvl("ka", "1", 2, 2, 1, 7))),
                    )],
                ]
                .concat(),
            ),
            vec![Kind::LeaseKeyOutlivedRevoke, Kind::NotLinearizable],
        ),
        (
            "a put refused for want of space (never applied) seen by a later read",
            history(vec![
                op(1, 0, 10, put("ka", "1"), ok_put(2)),
                op(1, 20, 30, put("ka", "2"), no_space()),
                op(2, 40, 50, get("ka"), ok_get(3, Some(a2.clone()))),
            ]),
            vec![Kind::NotLinearizable],
        ),
    ]
}

impl History {
    fn with_lease(mut self, id: i64, ttl: i64, granted: Time) -> History {
        self.leases.push(LeaseRecord {
            id,
            ttl,
            granted,
            kept_alive: false,
        });
        self
    }
}

#[test]
fn bad_histories_get_the_right_verdict() {
    let mut wrong = Vec::new();
    for (name, history, mut expected) in bad_histories() {
        expected.sort();
        let report = all(&history);
        if report.kinds() != expected {
            wrong.push(format!("{name}: expected {expected:?}, got\n{report}"));
        }
        for v in &report.violations {
            assert!(
                v.description.contains("op#") || v.description.contains("watch"),
                "{name}: {}",
                v.description
            );
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn good_histories() -> Vec<(&'static str, History)> {
    let a1 = kv("ka", "1", 2, 2, 1);
    let a2 = kv("ka", "2", 2, 3, 2);
    vec![
        (
            "overlapping ops linearizable only in an order unlike their call order",
            // Client 2's get is invoked first but sees client 1's second put, and client 3's
            // get, invoked last, sees the first: the gets must be ordered 3, then 2.
            history(vec![
                op(1, 0, 100, put("ka", "1"), ok_put(2)),
                op(2, 1, 300, get("ka"), ok_get(3, Some(a2.clone()))),
                op(3, 50, 120, get("ka"), ok_get(2, Some(a1.clone()))),
                op(1, 110, 200, put("ka", "2"), ok_put(3)),
                op(1, 400, 500, list("k"), ok_list(3, vec![a2.clone()])),
            ]),
        ),
        (
            "a timed-out put that took effect (seen by a later read)",
            history(vec![
                op(1, 0, 100, put("ka", "1"), timeout()),
                op(2, 200, 300, get("ka"), ok_get(2, Some(a1.clone()))),
                op(2, 400, 500, list("k"), ok_list(2, vec![a1.clone()])),
            ]),
        ),
        (
            "a timed-out put that never took effect",
            history(vec![
                op(1, 0, 100, put("ka", "1"), timeout()),
                op(2, 200, 300, get("ka"), ok_get(1, None)),
                op(2, 400, 500, list("k"), ok_list(1, vec![])),
            ]),
        ),
        (
            "a timed-out put that took effect long after it returned",
            history(vec![
                op(1, 0, 100, put("ka", "1"), timeout()),
                op(2, 200, 300, get("ka"), ok_get(1, None)),
                op(2, 400, 500, put("kb", "1"), ok_put(2)),
                op(
                    2,
                    600,
                    700,
                    get("ka"),
                    ok_get(3, Some(kv("ka", "1", 3, 3, 1))),
                ),
            ]),
        ),
        (
            "a timed-out put seen only by a watcher",
            with_watch(
                vec![op(1, 0, 100, put("ka", "1"), timeout())],
                vec![watch(
                    1,
                    2,
                    0,
                    vec![events(50, 2, vec![put_event(a1.clone())])],
                )],
            ),
        ),
        (
            "a lease expiring by TTL deletes its keys in one revision",
            with_watch(
                vec![
                    op(1, 0, 5, grant(1), ok_grant(1, 7)),
                    op(1, 10, 20, put_lease("ka", "1", 7), ok_put(2)),
                    op(1, 30, 40, put_lease("kb", "1", 7), ok_put(3)),
                    op(
                        2,
                        3_000_000_000,
                        3_000_000_010,
                        list("k"),
                        ok_list(4, vec![]),
                    ),
                ],
                vec![watch(
                    1,
                    2,
                    0,
                    vec![
                        events(22, 2, vec![put_event(kvl("ka", "1", 2, 2, 1, 7))]),
                        events(42, 3, vec![put_event(kvl("kb", "1", 3, 3, 1, 7))]),
                        events(
                            2_000_000_000,
                            4,
                            vec![delete_event("ka", 4), delete_event("kb", 4)],
                        ),
                    ],
                )],
            )
            .with_lease(7, 1, 0),
        ),
        (
            "a lease expiring by TTL, known only from its grant",
            history(vec![
                op(1, 0, 5, grant(1), ok_grant(1, 7)),
                op(1, 10, 20, put_lease("ka", "1", 7), ok_put(2)),
                op(
                    2,
                    3_000_000_000,
                    3_000_000_010,
                    list("k"),
                    ok_list(3, vec![]),
                ),
            ]),
        ),
        (
            "a watch from the current revision (start 0)",
            with_watch(
                two_puts(),
                vec![watch(
                    1,
                    0,
                    15,
                    vec![events(32, 3, vec![put_event(a2.clone())])],
                )],
            ),
        ),
        (
            "prev_kv left out because the revision before the event is compacted",
            with_watch(
                [
                    two_puts(),
                    vec![op(
                        1,
                        40,
                        50,
                        Request::Compact { revision: 3 },
                        Outcome::Ok(Response::Compact { revision: 3 }),
                    )],
                ]
                .concat(),
                vec![WatchSession {
                    prev_kv: true,
                    ..watch(1, 3, 60, vec![events(61, 3, vec![put_event(a2.clone())])])
                }],
            ),
        ),
        (
            "a revoke deletes its lease's keys in one revision; watch with prev_kv and progress",
            with_watch(
                [
                    lease_revoked(),
                    vec![op(1, 70, 80, list("k"), ok_list(4, vec![]))],
                ]
                .concat(),
                vec![WatchSession {
                    prev_kv: true,
                    ..watch(
                        1,
                        2,
                        0,
                        vec![
                            events(22, 2, vec![put_event(kvl("ka", "1", 2, 2, 1, 7))]),
                            progress(25, 2),
                            events(42, 3, vec![put_event(kvl("kb", "1", 3, 3, 1, 7))]),
                            events(
                                62,
                                4,
                                vec![
                                    with_prev(delete_event("ka", 4), kvl("ka", "1", 2, 2, 1, 7)),
                                    with_prev(delete_event("kb", 4), kvl("kb", "1", 3, 3, 1, 7)),
                                ],
                            ),
                            progress(90, 4),
                        ],
                    )
                }],
            ),
        ),
        (
            "compare-and-set success and failure, delete, serializable read of an older revision",
            history(vec![
                op(1, 0, 10, put("ka", "1"), ok_put(2)),
                op(1, 20, 30, cas("ka", 2, "2"), ok_cas(3, true, None)),
                op(
                    2,
                    25,
                    40,
                    cas("ka", 2, "3"),
                    ok_cas(3, false, Some(a2.clone())),
                ),
                op(
                    3,
                    45,
                    50,
                    get_serializable("ka"),
                    ok_get(2, Some(a1.clone())),
                ),
                op(1, 50, 60, del("ka"), ok_del(4, 1)),
                op(1, 70, 80, del("ka"), ok_del(4, 0)),
                op(1, 90, 100, list("k"), ok_list(4, vec![])),
            ]),
        ),
        (
            "a watch resumed after compaction reports it and continues",
            with_watch(
                [
                    two_puts(),
                    vec![op(
                        1,
                        40,
                        50,
                        Request::Compact { revision: 3 },
                        Outcome::Ok(Response::Compact { revision: 3 }),
                    )],
                ]
                .concat(),
                vec![
                    watch(
                        1,
                        2,
                        60,
                        vec![WatchResponse {
                            canceled: true,
                            compact_revision: 3,
                            ..events(61, 3, vec![])
                        }],
                    ),
                    watch(1, 3, 70, vec![events(71, 3, vec![put_event(a2.clone())])]),
                ],
            ),
        ),
        (
            "a put refused for want of space, never seen",
            history(vec![
                op(1, 0, 10, put("ka", "1"), ok_put(2)),
                op(1, 20, 30, put("ka", "2"), no_space()),
                op(2, 40, 50, get("ka"), ok_get(2, Some(a1.clone()))),
                op(2, 60, 70, list("k"), ok_list(2, vec![a1.clone()])),
            ]),
        ),
    ]
}

#[test]
fn good_histories_pass() {
    let mut wrong = Vec::new();
    for (name, history) in good_histories() {
        let report = all(&history);
        if !report.is_ok() || report.linearizability != Verdict::Linearizable {
            wrong.push(format!("{name}:\n{report}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn report_names_the_stale_read() {
    let a1 = kv("ka", "1", 2, 2, 1);
    let history = history(
        [
            two_puts(),
            vec![op(2, 40, 50, get("ka"), ok_get(3, Some(a1)))],
        ]
        .concat(),
    );
    let text = all(&history).to_string();
    assert!(text.contains("NOT linearizable"), "{text}");
    assert!(
        text.contains("op#2 (client 2, 0.000ms..0.000ms) Get \"ka\""),
        "{text}"
    );
    assert!(text.contains("the store has \"ka\"=\"2\""), "{text}");
}

#[test]
fn a_tiny_budget_is_inconclusive_not_a_violation() {
    let history = history(two_puts());
    let report = all_with(
        &history,
        &Options {
            step_budget: 1,
            ..Options::default()
        },
    );
    assert!(report.inconclusive(), "{report}");
    assert!(report.is_ok(), "{report}");
}

#[test]
fn history_json_round_trips_through_a_file() {
    let history =
        with_watch(two_puts(), vec![watch(1, 2, 0, vec![progress(5, 1)])]).with_lease(7, 5, 1);
    let dir = std::env::temp_dir().join(format!("ballast-robustness-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("history.json");
    save_history(&history, &path).expect("save");
    assert_eq!(load_history(&path).expect("load"), history);
    let report = check_file(&path).expect("check");
    assert!(report.is_ok(), "{report}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
    assert!(matches!(check_file(&path), Err(crate::Error::Io { .. })));
}

/// Replays a saved history through the checker:
/// `BALLAST_HISTORY=path cargo test --release -p ballast-robustness replay -- --ignored --nocapture`.
#[test]
#[ignore = "needs a saved history in BALLAST_HISTORY"]
fn replay_saved_history() {
    let Some(path) = std::env::var_os("BALLAST_HISTORY") else {
        panic!("set BALLAST_HISTORY to a history saved as JSON");
    };
    let started = std::time::Instant::now();
    let report = check_file(std::path::Path::new(&path)).expect("a readable history");
    println!("{report}checked in {:?}", started.elapsed());
    assert!(report.is_ok());
}
