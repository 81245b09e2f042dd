//! The hub's promises on one stream's channel: events in revision order, and a
//! progress notification only behind every event up to the revision it names.

use super::*;
use crate::mvcc::backend::Backend;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<KvStore>,
    hub: Arc<WatchHub>,
    applied: u64,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = Arc::new(Backend::open(&dir.path().join("db")).expect("backend"));
        let (store, _) = KvStore::open(backend).expect("store");
        let store = Arc::new(store);
        let hub = WatchHub::new(store.clone());
        Fixture {
            _dir: dir,
            store,
            hub,
            applied: 0,
        }
    }

    /// Writes `key` in its own revision and hands the events to the hub, as the
    /// apply loop does; returns the new revision.
    fn put(&mut self, key: &str) -> i64 {
        self.applied += 1;
        let txn = self.store.begin_batch(false).expect("begin");
        let mut batch = txn.batch().expect("batch");
        let prev = batch.get(key.as_bytes()).expect("get");
        batch
            .put(key.as_bytes(), b"v".to_vec(), 0, prev)
            .expect("put");
        let finished = batch.finish(self.applied, 1).expect("finish");
        let (revision, events) = txn.commit(finished).expect("commit");
        self.hub.notify(revision, &events);
        revision
    }

    fn watch(&self, stream: StreamId, id: i64, from: i64) -> mpsc::Receiver<Delivery> {
        let (tx, rx) = mpsc::channel(16);
        self.watch_on(stream, id, from, &tx);
        rx
    }

    fn watch_on(&self, stream: StreamId, id: i64, from: i64, tx: &mpsc::Sender<Delivery>) {
        let spec = WatchSpec {
            key: b"k".to_vec(),
            range_end: b"l".to_vec(),
            start_revision: from,
            progress_notify: true,
            ..Default::default()
        };
        self.hub
            .watch(stream, id, spec, tx.clone())
            .expect("start is retained");
    }

    /// Runs catch-up rounds until no watcher is behind.
    fn catch_up(&self) {
        while self.hub.sync_step().expect("catch-up") {}
    }
}

/// What a channel holds, in order: ("events", revision of each event) or
/// ("progress", revision).
fn drain(rx: &mut mpsc::Receiver<Delivery>) -> Vec<(&'static str, Vec<i64>)> {
    let mut out = Vec::new();
    while let Ok(d) = rx.try_recv() {
        out.push(match d {
            Delivery::Events { events, .. } => (
                "events",
                events
                    .iter()
                    .filter_map(|e| e.kv.as_ref().map(|kv| kv.mod_revision))
                    .collect(),
            ),
            Delivery::Progress { revision, .. } => ("progress", vec![revision]),
            Delivery::Compacted {
                compact_revision, ..
            } => ("compacted", vec![compact_revision]),
        });
    }
    out
}

#[test]
fn progress_asked_while_catching_up_waits_behind_the_history() {
    let mut f = Fixture::new();
    for _ in 0..4 {
        f.put("k1");
    }
    let (tx, mut rx) = mpsc::channel(16);
    f.watch_on(7, 0, 2, &tx);
    f.hub.request_progress(7, tx.clone());
    // Nothing may be promised before the history from revision 2 is queued.
    assert_eq!(drain(&mut rx), vec![]);
    f.catch_up();
    assert_eq!(
        drain(&mut rx),
        vec![("events", vec![2, 3, 4, 5]), ("progress", vec![5])]
    );
}

#[test]
fn progress_follows_live_events_already_queued() {
    let mut f = Fixture::new();
    let (tx, mut rx) = mpsc::channel(16);
    f.watch_on(7, 0, 0, &tx);
    let rev = f.put("k1");
    f.hub.request_progress(7, tx.clone());
    assert_eq!(
        drain(&mut rx),
        vec![("events", vec![rev]), ("progress", vec![rev])]
    );
}

#[test]
fn progress_on_a_stream_without_watchers_is_the_current_revision() {
    let mut f = Fixture::new();
    let rev = f.put("k1");
    let (tx, mut rx) = mpsc::channel(16);
    f.hub.request_progress(7, tx);
    assert_eq!(drain(&mut rx), vec![("progress", vec![rev])]);
}

#[test]
fn canceling_the_watcher_that_was_behind_answers_the_request() {
    let mut f = Fixture::new();
    f.put("k1");
    let rev = f.put("k1");
    let (tx, mut rx) = mpsc::channel(16);
    f.watch_on(7, 0, 2, &tx);
    f.hub.request_progress(7, tx.clone());
    assert_eq!(drain(&mut rx), vec![]);
    assert!(f.hub.cancel(7, 0));
    assert_eq!(drain(&mut rx), vec![("progress", vec![rev])]);
}

#[test]
fn another_streams_watcher_behind_does_not_hold_progress_back() {
    let mut f = Fixture::new();
    f.put("k1");
    let rev = f.put("k1");
    let _behind = f.watch(8, 0, 2);
    let (tx, mut rx) = mpsc::channel(16);
    f.watch_on(7, 0, 0, &tx);
    f.hub.request_progress(7, tx.clone());
    assert_eq!(drain(&mut rx), vec![("progress", vec![rev])]);
}

#[test]
fn periodic_progress_only_for_watchers_that_caught_up() {
    let mut f = Fixture::new();
    f.put("k1");
    let rev = f.put("k1");
    let mut live = f.watch(7, 0, 0);
    let mut behind = f.watch(7, 1, 2);
    f.hub.notify_progress(7);
    assert_eq!(drain(&mut live), vec![("progress", vec![rev])]);
    assert_eq!(drain(&mut behind), vec![]);
}

#[test]
fn a_watch_from_a_future_revision_skips_what_comes_before_it() {
    let mut f = Fixture::new();
    let now = f.put("k1");
    let mut rx = f.watch(7, 0, now + 3);
    f.put("k1");
    f.put("k2");
    let third = f.put("k1");
    assert_eq!(third, now + 3);
    assert_eq!(drain(&mut rx), vec![("events", vec![third])]);
}

#[test]
fn a_resumed_watch_from_the_compacted_revision_gets_everything_after_it() {
    let mut f = Fixture::new();
    for _ in 0..3 {
        f.put("k1");
    }
    let compact_at = f.put("k2");
    {
        let txn = f.store.begin_batch(false).expect("begin");
        let mut batch = txn.batch().expect("batch");
        batch.compact(compact_at).expect("compact");
        let finished = batch.finish(f.applied + 1, 1).expect("finish");
        txn.commit(finished).expect("commit");
    }
    let last = f.put("k1");
    let (tx, mut rx) = mpsc::channel(16);
    f.watch_on(7, 0, compact_at, &tx);
    f.hub.request_progress(7, tx.clone());
    f.catch_up();
    assert_eq!(
        drain(&mut rx),
        vec![("events", vec![compact_at, last]), ("progress", vec![last])]
    );
}

fn spec(key: &str, range_end: &str) -> WatchSpec {
    WatchSpec {
        key: key.into(),
        range_end: range_end.into(),
        ..Default::default()
    }
}

#[test]
fn key_range_and_from_key_watchers_each_get_what_they_watch() {
    let mut f = Fixture::new();
    let mut rxs = Vec::new();
    for (id, (key, end)) in [("k1", ""), ("k", "l"), ("k2", "\0"), ("a", "b")]
        .into_iter()
        .enumerate()
    {
        let (tx, rx) = mpsc::channel(16);
        f.hub
            .watch(7, id as i64, spec(key, end), tx)
            .expect("watch");
        rxs.push(rx);
    }
    let k1 = f.put("k1");
    let k2 = f.put("k2");
    let z = f.put("z");
    let got: Vec<_> = rxs.iter_mut().map(drain).collect();
    assert_eq!(
        got,
        vec![
            vec![("events", vec![k1])],
            vec![("events", vec![k1]), ("events", vec![k2])],
            vec![("events", vec![k2]), ("events", vec![z])],
            vec![],
        ]
    );
}

#[test]
fn a_canceled_watcher_gets_nothing_and_its_id_can_be_reused() {
    let mut f = Fixture::new();
    let (tx, mut rx) = mpsc::channel(16);
    f.hub
        .watch(7, 0, spec("k1", ""), tx.clone())
        .expect("watch");
    assert!(f.hub.cancel(7, 0));
    f.hub.watch(7, 0, spec("k2", ""), tx).expect("watch again");
    f.put("k1");
    let k2 = f.put("k2");
    assert_eq!(drain(&mut rx), vec![("events", vec![k2])]);
}

#[test]
fn a_watcher_whose_stream_is_full_catches_up_without_gaps_or_repeats() {
    let mut f = Fixture::new();
    let (tx, mut rx) = mpsc::channel(1);
    f.hub.watch(7, 0, spec("k1", ""), tx).expect("watch");
    let first = f.put("k1");
    f.put("other"); // not watched: the watcher is not told of it
    let second = f.put("k1"); // the channel is full: the watcher falls behind
    let third = f.put("k1");
    assert_eq!(drain(&mut rx), vec![("events", vec![first])]);
    f.catch_up();
    assert_eq!(drain(&mut rx), vec![("events", vec![second, third])]);
    let fourth = f.put("k1"); // synced again: fed live
    assert_eq!(drain(&mut rx), vec![("events", vec![fourth])]);
}

#[test]
fn progress_counts_commits_a_watcher_was_not_told_of() {
    let mut f = Fixture::new();
    let (tx, mut rx) = mpsc::channel(16);
    f.hub
        .watch(7, 0, spec("k1", ""), tx.clone())
        .expect("watch");
    let rev = f.put("other");
    f.hub.request_progress(7, tx);
    assert_eq!(drain(&mut rx), vec![("progress", vec![rev])]);
}

#[test]
fn a_progress_answer_that_found_the_channel_full_goes_out_once_there_is_room() {
    let mut f = Fixture::new();
    let (tx, mut rx) = mpsc::channel(1);
    f.hub
        .watch(7, 0, spec("k1", ""), tx.clone())
        .expect("watch");
    let rev = f.put("k1"); // fills the channel; the watcher stays synced
    f.hub.request_progress(7, tx);
    assert_eq!(drain(&mut rx), vec![("events", vec![rev])]);
    // No watcher is behind and nothing else is written: the periodic round answers.
    f.catch_up();
    assert_eq!(drain(&mut rx), vec![("progress", vec![rev])]);
}

#[test]
fn a_watcher_replaced_under_its_own_id_gets_each_event_once() {
    let mut f = Fixture::new();
    let (tx, mut rx) = mpsc::channel(16);
    f.hub
        .watch(7, 0, spec("k1", ""), tx.clone())
        .expect("watch");
    f.hub.watch(7, 0, spec("k1", ""), tx).expect("watch again");
    let rev = f.put("k1");
    assert_eq!(drain(&mut rx), vec![("events", vec![rev])]);
}

#[test]
fn cancelling_one_of_many_watchers_on_a_key_leaves_the_others() {
    let mut f = Fixture::new();
    let (tx, mut rx) = mpsc::channel(16);
    for id in 0..3 {
        f.hub
            .watch(7, id, spec("k1", ""), tx.clone())
            .expect("watch");
    }
    f.hub.cancel(7, 1);
    f.put("k1");
    let mut got = Vec::new();
    while let Ok(d) = rx.try_recv() {
        if let Delivery::Events { watch_id, .. } = d {
            got.push(watch_id);
        }
    }
    got.sort_unstable();
    assert_eq!(got, vec![0, 2]);
}
