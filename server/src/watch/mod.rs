//! Watchers: every committed change is offered to the watchers whose range it
//! touches. A watcher that keeps up ("synced") is fed straight from the apply
//! thread; one that starts in the past or whose stream is full ("unsynced")
//! is fed from history by a background task until it catches up. Writers
//! never wait for a watcher, and no event is skipped.

mod groups;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ballast_proto::mvccpb::{event::EventType, Event};
use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};

use crate::mvcc::index::in_range;
use crate::mvcc::KvStore;
use groups::{Groups, WatcherKey};

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
    /// Everything up to `revision` has been delivered before this, on the same
    /// channel: a progress notification for one watcher, or for the stream
    /// (`watch_id` -1) when its client asked. It travels behind the events so
    /// that a client never learns of a revision before the events leading to it.
    Progress { watch_id: i64, revision: i64 },
}

/// The watch ID etcd puts on a progress response that answers a client's request.
const STREAM_PROGRESS_ID: i64 = -1;

/// Identifies one watch stream (one gRPC Watch call).
pub type StreamId = u64;

struct Watcher {
    spec: WatchSpec,
    /// First revision not yet delivered. A synced watcher is not told of commits
    /// outside what it watches, so for it the hub's `notified` counts too
    /// (see [`Registry::delivered_through`]).
    next_rev: i64,
    synced: bool,
    tx: mpsc::Sender<Delivery>,
}

impl Watcher {
    /// Whether an event of what the watcher watches is one to send it.
    fn keeps(&self, e: &Event) -> bool {
        let Some(kv) = &e.kv else { return false };
        if kv.mod_revision < self.next_rev {
            return false;
        }
        let is_put = e.r#type == EventType::Put as i32;
        !(is_put && self.spec.no_put || !is_put && self.spec.no_delete)
    }

    /// The events of history to send it.
    fn select(&self, events: &[Event]) -> Vec<Event> {
        let watched = events.iter().filter(|e| {
            e.kv.as_ref()
                .is_some_and(|kv| in_range(&kv.key, &self.spec.key, &self.spec.range_end))
        });
        self.select_watched(watched)
    }

    /// Of events already known to be in what it watches, those to send it.
    fn select_watched<'e>(&self, watched: impl Iterator<Item = &'e Event>) -> Vec<Event> {
        watched
            .filter(|e| self.keeps(e))
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

/// What the hub guards with one lock: deliveries and progress answers are queued under
/// it, so their order on a stream's channel is the order of revisions.
#[derive(Default)]
struct Registry {
    watchers: HashMap<WatcherKey, Watcher>,
    /// The same watchers by what they watch.
    groups: Groups,
    /// The newest revision handed to [`WatchHub::notify`]: every synced watcher has
    /// had everything up to it that it watches queued.
    notified: i64,
    /// Streams whose client asked for progress while a watcher was still catching
    /// up: answered once all of them have, as etcd defers such a request.
    progress_requested: HashMap<StreamId, mpsc::Sender<Delivery>>,
}

impl Registry {
    fn insert(&mut self, key: WatcherKey, watcher: Watcher) {
        // A watcher replaced under the same key leaves its group first: a group holds
        // each watcher once, so adding before removing would lose it.
        self.remove(&key);
        self.groups.add(&watcher.spec, key);
        self.watchers.insert(key, watcher);
    }

    fn remove(&mut self, key: &WatcherKey) -> Option<Watcher> {
        let removed = self.watchers.remove(key)?;
        self.groups.remove(&removed.spec, *key);
        Some(removed)
    }

    /// Up to which revision a synced watcher has been given everything it watches.
    fn delivered_through(&self, w: &Watcher) -> i64 {
        (w.next_rev - 1).max(self.notified)
    }

    /// The revision a stream's progress notification may promise: every watcher of
    /// the stream has had everything up to it queued, or None while one is behind.
    fn stream_progress(&self, stream: StreamId, current: i64) -> Option<i64> {
        let mut revision = current;
        for ((s, _), w) in &self.watchers {
            if *s != stream {
                continue;
            }
            if !w.synced {
                return None;
            }
            revision = revision.min(self.delivered_through(w));
        }
        Some(revision)
    }

    /// Answers the deferred progress requests of streams that have caught up.
    fn answer_deferred_progress(&mut self, current: i64) {
        if self.progress_requested.is_empty() {
            return;
        }
        let requested = std::mem::take(&mut self.progress_requested);
        for (stream, tx) in requested {
            let answered = self
                .stream_progress(stream, current)
                .is_some_and(|revision| {
                    let msg = Delivery::Progress {
                        watch_id: STREAM_PROGRESS_ID,
                        revision,
                    };
                    !matches!(tx.try_send(msg), Err(mpsc::error::TrySendError::Full(_)))
                });
            if !answered {
                self.progress_requested.insert(stream, tx);
            }
        }
    }
}

pub struct WatchHub {
    store: Arc<KvStore>,
    registry: Mutex<Registry>,
    wake: Notify,
}

impl WatchHub {
    pub fn new(store: Arc<KvStore>) -> Arc<WatchHub> {
        Arc::new(WatchHub {
            store,
            registry: Mutex::new(Registry::default()),
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
        let mut registry = self.registry.lock();
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
        registry.insert(
            (stream, watch_id),
            Watcher {
                spec,
                next_rev,
                synced,
                tx,
            },
        );
        drop(registry);
        if !synced {
            self.wake.notify_one();
        }
        Ok(current)
    }

    pub fn exists(&self, stream: StreamId, watch_id: i64) -> bool {
        self.registry
            .lock()
            .watchers
            .contains_key(&(stream, watch_id))
    }

    pub fn cancel(&self, stream: StreamId, watch_id: i64) -> bool {
        let mut registry = self.registry.lock();
        let removed = registry.remove(&(stream, watch_id)).is_some();
        // The watcher that held a progress answer back may be this one.
        registry.answer_deferred_progress(self.store.current_revision());
        removed
    }

    pub fn cancel_stream(&self, stream: StreamId) {
        let mut registry = self.registry.lock();
        let keys: Vec<WatcherKey> = registry
            .watchers
            .keys()
            .filter(|(s, _)| *s == stream)
            .copied()
            .collect();
        for key in keys {
            registry.remove(&key);
        }
        registry.progress_requested.remove(&stream);
    }

    /// A client asked for progress on its stream: the answer is queued behind
    /// every event it promises, now if all the stream's watchers have caught up,
    /// otherwise as soon as they have.
    pub fn request_progress(&self, stream: StreamId, tx: mpsc::Sender<Delivery>) {
        let mut registry = self.registry.lock();
        registry.progress_requested.insert(stream, tx);
        registry.answer_deferred_progress(self.store.current_revision());
    }

    /// The periodic notification for watchers created with `progress_notify`:
    /// queued for those that have caught up, each at what it has been given.
    pub fn notify_progress(&self, stream: StreamId) {
        let registry = self.registry.lock();
        let current = self.store.current_revision();
        let due = registry
            .watchers
            .iter()
            .filter(|((s, _), w)| *s == stream && w.synced && w.spec.progress_notify);
        for ((_, watch_id), w) in due {
            // A full channel means the watcher is about to fall behind anyway.
            let _ = w.tx.try_send(Delivery::Progress {
                watch_id: *watch_id,
                revision: current.min(registry.delivered_through(w)),
            });
        }
    }

    /// After the store jumped (a Raft snapshot was installed), every watcher
    /// re-reads history from where it was.
    pub fn resync_all(&self) {
        let mut registry = self.registry.lock();
        let notified = registry.notified;
        for w in registry.watchers.values_mut().filter(|w| w.synced) {
            w.next_rev = w.next_rev.max(notified + 1);
            w.synced = false;
        }
        drop(registry);
        self.wake.notify_one();
    }

    pub fn count(&self) -> usize {
        self.registry.lock().watchers.len()
    }

    /// Called by the apply thread after a commit published revisions up to `revision`.
    pub fn notify(&self, revision: i64, events: &[Event]) {
        let mut registry = self.registry.lock();
        let registry = &mut *registry;
        let before = registry.notified;
        registry.notified = revision;
        let mut fell_behind = false;
        for touched in registry.groups.touched(events) {
            for key in touched.watchers {
                let Some(w) = registry.watchers.get_mut(key).filter(|w| w.synced) else {
                    continue;
                };
                let selected = w.select_watched(touched.events.iter().copied());
                if selected.is_empty() {
                    // A watcher that starts in the future keeps its start.
                    w.next_rev = w.next_rev.max(revision + 1);
                    continue;
                }
                let msg = Delivery::Events {
                    watch_id: key.1,
                    revision,
                    events: selected,
                };
                match w.tx.try_send(msg) {
                    Ok(()) => w.next_rev = revision + 1,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // It had everything it watches up to `before`.
                        w.next_rev = w.next_rev.max(before + 1);
                        w.synced = false;
                        fell_behind = true;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => w.synced = false,
                }
            }
        }
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
            let mut registry = self.registry.lock();
            match registry
                .watchers
                .values()
                .filter(|w| !w.synced && !w.tx.is_closed())
                .map(|w| w.next_rev)
                .min()
            {
                Some(r) => r,
                None => {
                    // A progress answer that found its stream's channel full is retried
                    // here, every round: nothing else may be about to wake it.
                    let current = self.store.current_revision();
                    registry.answer_deferred_progress(current);
                    return Ok(false);
                }
            }
        };
        let compacted = self.store.compact_revision();
        let (events, upto) = self.store.history(from.max(compacted), CATCH_UP_EVENTS)?;
        let mut registry = self.registry.lock();
        let current = self.store.current_revision();
        let mut behind = false;
        let mut dead = Vec::new();
        for (key, w) in registry.watchers.iter_mut().filter(|(_, w)| !w.synced) {
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
            registry.remove(&k);
        }
        registry.answer_deferred_progress(current);
        Ok(behind)
    }
}

#[cfg(test)]
mod tests;
