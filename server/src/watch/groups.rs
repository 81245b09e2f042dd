//! Watchers grouped by what they watch. A commit is matched once against each distinct
//! key and range rather than once per watcher: with 10 000 watchers on 100 prefixes
//! (kube-apiserver's shape), comparing every event with every watcher's range was a
//! quarter of a member's CPU (`bench/compare.py profile --workload k8s-watch`).
//! Single keys are found by hashing the event's key; ranges are few in practice (one
//! per resource type for kube-apiserver) and are tested one by one. A group is an index
//! set: walked as fast as a vector for each commit, and a watcher leaves it in constant
//! time (a linear search made cancelling a stream of n watchers on one key O(n²) under
//! the hub's lock).

use std::collections::HashMap;

use indexmap::IndexSet;

use ballast_proto::mvccpb::Event;

use super::{StreamId, WatchSpec};
use crate::mvcc::index::in_range;

/// A watcher: its stream and its watch ID on that stream.
pub(super) type WatcherKey = (StreamId, i64);

#[derive(Default)]
pub(super) struct Groups {
    /// Watchers of one key, by that key.
    keys: HashMap<Vec<u8>, IndexSet<WatcherKey>>,
    /// Watchers of a range, by (key, range end) as etcd's request gives them.
    ranges: HashMap<(Vec<u8>, Vec<u8>), IndexSet<WatcherKey>>,
}

/// Watchers a commit concerns, with the events of the commit in what they watch.
pub(super) struct Touched<'g, 'e> {
    pub watchers: &'g IndexSet<WatcherKey>,
    pub events: Vec<&'e Event>,
}

impl Groups {
    pub fn add(&mut self, spec: &WatchSpec, watcher: WatcherKey) {
        let group = if spec.range_end.is_empty() {
            self.keys.entry(spec.key.clone()).or_default()
        } else {
            let range = (spec.key.clone(), spec.range_end.clone());
            self.ranges.entry(range).or_default()
        };
        group.insert(watcher);
    }

    pub fn remove(&mut self, spec: &WatchSpec, watcher: WatcherKey) {
        if spec.range_end.is_empty() {
            remove_from(&mut self.keys, &spec.key, watcher);
        } else {
            let range = (spec.key.clone(), spec.range_end.clone());
            remove_from(&mut self.ranges, &range, watcher);
        }
    }

    /// Every group some of `events` fall in, each with those events in commit order.
    pub fn touched<'g, 'e>(&'g self, events: &'e [Event]) -> Vec<Touched<'g, 'e>> {
        let mut out = Vec::new();
        for ((key, end), watchers) in &self.ranges {
            let events: Vec<&Event> = events
                .iter()
                .filter(|e| e.kv.as_ref().is_some_and(|kv| in_range(&kv.key, key, end)))
                .collect();
            if !events.is_empty() {
                out.push(Touched { watchers, events });
            }
        }
        if self.keys.is_empty() {
            return out;
        }
        let mut by_key: HashMap<&[u8], Vec<&Event>> = HashMap::new();
        for e in events {
            if let Some(kv) = &e.kv {
                by_key.entry(kv.key.as_slice()).or_default().push(e);
            }
        }
        for (key, events) in by_key {
            if let Some(watchers) = self.keys.get(key) {
                out.push(Touched { watchers, events });
            }
        }
        out
    }
}

fn remove_from<K: std::hash::Hash + Eq>(
    groups: &mut HashMap<K, IndexSet<WatcherKey>>,
    group: &K,
    watcher: WatcherKey,
) {
    let Some(members) = groups.get_mut(group) else {
        return;
    };
    members.swap_remove(&watcher);
    if members.is_empty() {
        groups.remove(group);
    }
}
