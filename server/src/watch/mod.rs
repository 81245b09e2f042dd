//! Watchers: every committed change is offered to the watchers whose range it
//! touches. A watcher that keeps up ("synced") is fed straight from the apply
//! thread; one that starts in the past or whose stream is full ("unsynced")
//! is fed from history by a background task until it catches up. Writers
//! never wait for a watcher, and no event is skipped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ballast_proto::mvccpb::{event::EventType, Event};
use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};

use crate::mvcc::index::in_range;
use crate::mvcc::KvStore;

/// Largest number of events one catch-up step reads from history.
const CATCH_UP_EVENTS: usize = 10_000;
/// How often unsynced watchers are retried when nothing wakes the sync task.
const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// What a client asked to watch.
#[derive(Debug, Clone, Default)]
pub struct WatchSpec {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// 0 = from the next revision on.
    pub start_revision: i64,
    pub no_put: bool,
    pub no_delete: bool,
    pub prev_kv: bool,
    pub progress_notify: bool,
}

/// Something to send on a watch stream.
#[derive(Debug)]
pub enum Delivery {
    Events {
        watch_id: i64,
        revision: i64,
        events: Vec<Event>,
    },
    /// The watcher's start lies before the compacted revision; it is canceled.
    Compacted {
        watch_id: i64,
        compact_revision: i64,
    },
}

/// Identifies one watch stream (one gRPC Watch call).
pub type StreamId = u64;

struct Watcher {
    spec: WatchSpec,
    /// First revision not yet delivered.
    next_rev: i64,
    synced: bool,
    tx: mpsc::Sender<Delivery>,
}

impl Watcher {
    fn wants(&self, e: &Event) -> bool {
        let Some(kv) = &e.kv else { return false };
        if kv.mod_revision < self.next_rev
            || !in_range(&kv.key, &self.spec.key, &self.spec.range_end)
        {
            return false;
        }
        let is_put = e.r#type == EventType::Put as i32;
        !(is_put && self.spec.no_put || !is_put && self.spec.no_delete)
    }

    fn select(&self, events: &[Event]) -> Vec<Event> {
        events
            .iter()
            .filter(|e| self.wants(e))
            .map(|e| {
                let mut e = e.clone();
                if !self.spec.prev_kv {
                    e.prev_kv = None;
                }
                e
            })
            .collect()
    }
}

pub struct WatchHub {
    store: Arc<KvStore>,
    watchers: Mutex<HashMap<(StreamId, i64), Watcher>>,
    wake: Notify,
}

impl WatchHub {
    pub fn new(store: Arc<KvStore>) -> Arc<WatchHub> {
        Arc::new(WatchHub {
            store,
            watchers: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        })
    }

    /// Registers a watcher. Returns the current revision for the created
    /// response, or the compacted revision if the start is no longer retained.
    pub fn watch(
        &self,
        stream: StreamId,
        watch_id: i64,
        spec: WatchSpec,
        tx: mpsc::Sender<Delivery>,
    ) -> Result<i64, i64> {
        let mut watchers = self.watchers.lock();
        // Read under the hub lock: the apply thread publishes a revision
        // before it notifies, so nothing after `current` can be missed.
        let current = self.store.current_revision();
        let compacted = self.store.compact_revision();
        if spec.start_revision > 0 && spec.start_revision < compacted {
            return Err(compacted);
        }
        let next_rev = if spec.start_revision > 0 {
            spec.start_revision
        } else {
            current + 1
        };
        let synced = next_rev > current;
        watchers.insert(
            (stream, watch_id),
            Watcher {
                spec,
                next_rev,
                synced,
                tx,
            },
        );
        drop(watchers);
        if !synced {
            self.wake.notify_one();
        }
        Ok(current)
    }

    pub fn exists(&self, stream: StreamId, watch_id: i64) -> bool {
        self.watchers.lock().contains_key(&(stream, watch_id))
    }

    pub fn cancel(&self, stream: StreamId, watch_id: i64) -> bool {
        self.watchers.lock().remove(&(stream, watch_id)).is_some()
    }

    pub fn cancel_stream(&self, stream: StreamId) {
        self.watchers.lock().retain(|(s, _), _| *s != stream);
    }

    /// True when every watcher of the stream has seen everything committed,
    /// so a progress notification would not lie.
    pub fn stream_synced(&self, stream: StreamId) -> bool {
        self.watchers
            .lock()
            .iter()
            .all(|((s, _), w)| *s != stream || w.synced)
    }

    /// Synced watchers of the stream that asked for progress notifications.
    pub fn progress_watchers(&self, stream: StreamId) -> Vec<i64> {
        self.watchers
            .lock()
            .iter()
            .filter(|((s, _), w)| *s == stream && w.synced && w.spec.progress_notify)
            .map(|((_, id), _)| *id)
            .collect()
    }

    /// After the store jumped (a Raft snapshot was installed), every watcher
    /// re-reads history from where it was.
    pub fn resync_all(&self) {
        for w in self.watchers.lock().values_mut() {
            w.synced = false;
        }
        self.wake.notify_one();
    }

    pub fn count(&self) -> usize {
        self.watchers.lock().len()
    }

    /// Called by the apply thread after a commit published revisions up to `revision`.
    pub fn notify(&self, revision: i64, events: &[Event]) {
        let mut watchers = self.watchers.lock();
        let mut fell_behind = false;
        for ((_, watch_id), w) in watchers.iter_mut().filter(|(_, w)| w.synced) {
            let selected = w.select(events);
            if selected.is_empty() {
                w.next_rev = revision + 1;
                continue;
            }
            let msg = Delivery::Events {
                watch_id: *watch_id,
                revision,
                events: selected,
            };
            match w.tx.try_send(msg) {
                Ok(()) => w.next_rev = revision + 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    w.synced = false;
                    fell_behind = true;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => w.synced = false,
            }
        }
        drop(watchers);
        if fell_behind {
            self.wake.notify_one();
        }
    }

    /// Feeds unsynced watchers from history until they catch up. Runs for
    /// the life of the server.
    pub async fn run_sync(self: Arc<Self>) {
        loop {
            let _ = tokio::time::timeout(SYNC_INTERVAL, self.wake.notified()).await;
            let hub = self.clone();
            let more = tokio::task::spawn_blocking(move || hub.sync_step()).await;
            match more {
                Ok(Ok(true)) => self.wake.notify_one(),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::warn!("watch catch-up failed: {e}"),
                Err(e) => tracing::warn!("watch catch-up task failed: {e}"),
            }
        }
    }

    /// One catch-up round; returns true if some watcher is still behind.
    fn sync_step(&self) -> crate::error::Result<bool> {
        let from = {
            let watchers = self.watchers.lock();
            match watchers
                .values()
                .filter(|w| !w.synced && !w.tx.is_closed())
                .map(|w| w.next_rev)
                .min()
            {
                Some(r) => r,
                None => return Ok(false),
            }
        };
        let compacted = self.store.compact_revision();
        let (events, upto) = self.store.history(from.max(compacted), CATCH_UP_EVENTS)?;
        let mut watchers = self.watchers.lock();
        let current = self.store.current_revision();
        let mut behind = false;
        let mut dead = Vec::new();
        for (key, w) in watchers.iter_mut().filter(|(_, w)| !w.synced) {
            if w.tx.is_closed() {
                dead.push(*key);
                continue;
            }
            if w.next_rev < compacted {
                let msg = Delivery::Compacted {
                    watch_id: key.1,
                    compact_revision: compacted,
                };
                if w.tx.try_send(msg).is_ok() {
                    dead.push(*key);
                } else {
                    behind = true;
                }
                continue;
            }
            if w.next_rev < from {
                // Fell behind after this round's read started: next round.
                behind = true;
                continue;
            }
            if w.next_rev > upto {
                // Nothing new for it in this round.
                w.synced = upto >= current;
                behind |= !w.synced;
                continue;
            }
            let mut selected = w.select(&events);
            if w.spec.prev_kv {
                for e in selected.iter_mut().filter(|e| e.prev_kv.is_none()) {
                    if let Some(kv) = &e.kv {
                        e.prev_kv = self.store.value_before(&kv.key, kv.mod_revision)?;
                    }
                }
            }
            let sent = selected.is_empty()
                || w.tx
                    .try_send(Delivery::Events {
                        watch_id: key.1,
                        revision: upto,
                        events: selected,
                    })
                    .is_ok();
            if sent {
                w.next_rev = upto + 1;
                w.synced = upto >= current;
            }
            behind |= !w.synced;
        }
        for k in dead {
            watchers.remove(&k);
        }
        Ok(behind)
    }
}
