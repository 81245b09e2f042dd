//! In-memory index: key → the revisions that created, changed and deleted it.
//!
//! A key's history is a list of generations. A generation starts with the put
//! that (re)created the key and ends with the deletion (tombstone) that removed
//! it; only the last generation may still be open.
//!
//! Most keys have one generation of one revision (Kubernetes objects are written
//! a few times and compaction trims them back to one), so both lists keep their
//! first element inline: a range or a count then walks the B-tree's nodes alone
//! instead of following two heap pointers per key. Counting the rest of a
//! 100 000-key list for every page of 500 (etcd's `count`) spent 65% of a
//! member's CPU in those pointer chases before (`bench/compare.py profile
//! --workload k8s-list`), and each key saved two allocations.

use std::collections::BTreeMap;
use std::ops::Bound;

use smallvec::{smallvec, SmallVec};

use super::Revision;

#[derive(Debug, Clone, Default)]
struct Generation {
    revs: SmallVec<[Revision; 1]>,
    /// The last revision is a deletion.
    closed: bool,
}

#[derive(Debug, Clone, Default)]
struct KeyHistory {
    generations: SmallVec<[Generation; 1]>,
}

/// Where a key stood at some revision: the revision that last wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub modified: Revision,
}

impl KeyHistory {
    fn put(&mut self, rev: Revision) {
        match self.generations.last_mut() {
            Some(g) if !g.closed => g.revs.push(rev),
            _ => self.generations.push(Generation {
                revs: smallvec![rev],
                closed: false,
            }),
        }
    }

    /// Returns false if the key is not alive (nothing to delete).
    fn tombstone(&mut self, rev: Revision) -> bool {
        match self.generations.last_mut() {
            Some(g) if !g.closed && !g.revs.is_empty() => {
                g.revs.push(rev);
                g.closed = true;
                true
            }
            _ => false,
        }
    }

    /// The live revision of the key at `at` (a main revision), if the key existed then.
    fn at(&self, at: i64) -> Option<Revision> {
        for g in self.generations.iter().rev() {
            let first = g.revs.first()?;
            if first.main > at {
                continue;
            }
            // Latest revision of this generation at or before `at`.
            let pos = g.revs.partition_point(|r| r.main <= at);
            let is_tombstone = g.closed && pos == g.revs.len();
            return if is_tombstone {
                None
            } else {
                Some(g.revs[pos - 1])
            };
        }
        None
    }

    /// Drops what compaction at `at` makes unreachable. Pushes the revisions at
    /// or below `at` that stay readable into `keep`. Returns true if the key
    /// has no history left.
    fn compact(&mut self, at: i64, keep: &mut Vec<Revision>) -> bool {
        // Whole generations deleted before `at` are gone. One deleted exactly at `at`
        // keeps its tombstone (as etcd does): a watch from the compacted revision still
        // owes the delete made at that revision.
        self.generations
            .retain(|g| !(g.closed && g.revs.last().is_some_and(|r| r.main < at)));
        if let Some(g) = self.generations.first_mut() {
            let pos = g.revs.partition_point(|r| r.main <= at);
            if pos > 0 {
                g.revs.drain(..pos - 1);
                keep.push(g.revs[0]);
            }
            move_back_inline(&mut g.revs);
        }
        move_back_inline(&mut self.generations);
        self.generations.is_empty()
    }
}

/// A list that compaction trimmed to what fits inline leaves its heap buffer (draining
/// does not give it back), which would keep the pointer chase the inline element avoids.
fn move_back_inline<A: smallvec::Array>(list: &mut SmallVec<A>) {
    if list.spilled() && list.len() <= list.inline_size() {
        list.shrink_to_fit();
    }
}

/// The index of all keys. Not thread-safe by itself: the store guards it.
#[derive(Debug, Default)]
pub struct KeyIndex {
    keys: BTreeMap<Vec<u8>, KeyHistory>,
}

/// The bounds etcd gives a `key`/`range_end` pair: an empty end means the key
/// alone, `"\0"` means every key from `key` on, anything else is `[key, end)`.
pub fn range_bounds<'a>(key: &'a [u8], end: &'a [u8]) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    if end.is_empty() {
        (Bound::Included(key), Bound::Included(key))
    } else if end == [0] {
        (Bound::Included(key), Bound::Unbounded)
    } else {
        (Bound::Included(key), Bound::Excluded(end))
    }
}

/// Whether `k` lies in the range etcd means by `key`/`range_end`.
pub fn in_range(k: &[u8], key: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        k == key
    } else if end == [0] {
        k >= key
    } else {
        k >= key && k < end
    }
}

impl KeyIndex {
    pub fn put(&mut self, key: &[u8], rev: Revision) {
        if let Some(h) = self.keys.get_mut(key) {
            h.put(rev);
        } else {
            let mut h = KeyHistory::default();
            h.put(rev);
            self.keys.insert(key.to_vec(), h);
        }
    }

    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        self.keys.get_mut(key).is_some_and(|h| h.tombstone(rev))
    }

    pub fn get(&self, key: &[u8], at: i64) -> Option<Found> {
        self.keys
            .get(key)?
            .at(at)
            .map(|modified| Found { modified })
    }

    /// Keys alive at `at` within the range, in key order, with the revision
    /// that last wrote each.
    pub fn range(&self, key: &[u8], end: &[u8], at: i64) -> Vec<(Vec<u8>, Revision)> {
        self.range_iter(key, end, at)
            .map(|(k, r)| (k.to_vec(), r))
            .collect()
    }

    pub fn range_iter<'a>(
        &'a self,
        key: &'a [u8],
        end: &'a [u8],
        at: i64,
    ) -> impl Iterator<Item = (&'a [u8], Revision)> + 'a {
        let bounds = range_bounds(key, end);
        let empty_range = matches!(bounds, (Bound::Included(a), Bound::Excluded(b)) if a >= b);
        let iter = if empty_range {
            None
        } else {
            Some(self.keys.range::<[u8], _>(bounds))
        };
        iter.into_iter()
            .flatten()
            .filter_map(move |(k, h)| h.at(at).map(|r| (k.as_slice(), r)))
    }

    /// Counts keys alive at `at` in the range without collecting them.
    pub fn count(&self, key: &[u8], end: &[u8], at: i64) -> usize {
        self.range_iter(key, end, at).count()
    }

    /// Forgets history made unreachable by compaction at `at`; returns the
    /// revisions at or below `at` that must stay in the backend.
    pub fn compact(&mut self, at: i64) -> Vec<Revision> {
        let mut keep = Vec::new();
        self.keys.retain(|_, h| !h.compact(at, &mut keep));
        keep
    }

    /// Number of keys alive now (for `etcd_debugging_mvcc_keys_total`).
    pub fn live_keys(&self) -> usize {
        self.keys
            .values()
            .filter(|h| h.generations.last().is_some_and(|g| !g.closed))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    #[test]
    fn reads_follow_history() {
        let mut ix = KeyIndex::default();
        ix.put(b"a", r(2));
        ix.put(b"a", r(3));
        assert!(ix.tombstone(b"a", r(4)));
        ix.put(b"a", r(6));
        assert_eq!(ix.get(b"a", 1), None);
        assert_eq!(ix.get(b"a", 2).map(|f| f.modified), Some(r(2)));
        assert_eq!(ix.get(b"a", 3).map(|f| f.modified), Some(r(3)));
        assert_eq!(ix.get(b"a", 4), None);
        assert_eq!(ix.get(b"a", 5), None);
        assert_eq!(ix.get(b"a", 7).map(|f| f.modified), Some(r(6)));
        assert!(!ix.tombstone(b"missing", r(8)));
    }

    #[test]
    fn ranges_and_from_key() {
        let mut ix = KeyIndex::default();
        for (i, k) in [b"a", b"b", b"c"].iter().enumerate() {
            ix.put(*k, r(i as i64 + 2));
        }
        let keys = |v: Vec<(Vec<u8>, Revision)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(ix.range(b"a", b"c", 10)),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(
            keys(ix.range(b"b", b"\0", 10)),
            vec![b"b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(keys(ix.range(b"b", b"", 10)), vec![b"b".to_vec()]);
        assert_eq!(ix.count(b"a", b"\0", 3), 2);
        assert!(ix.range(b"c", b"a", 10).is_empty());
    }

    #[test]
    fn compaction_keeps_latest_at_or_below() {
        let mut ix = KeyIndex::default();
        ix.put(b"a", r(2));
        ix.put(b"a", r(3));
        ix.put(b"a", r(5));
        ix.put(b"gone", r(2));
        ix.tombstone(b"gone", r(4));
        ix.put(b"old", r(1));
        ix.tombstone(b"old", r(3));
        let keep = ix.compact(4);
        // "gone"'s tombstone at the compacted revision stays; "old"'s, below it, goes.
        assert_eq!(keep, vec![r(3), r(4)]);
        assert_eq!(ix.get(b"a", 4).map(|f| f.modified), Some(r(3)));
        assert_eq!(ix.get(b"gone", 4), None);
        assert_eq!(ix.get(b"old", 4), None);
        assert_eq!(ix.live_keys(), 1);
    }

    /// A key written several times, then compacted to its latest revision, goes back to
    /// the inline layout that keeps ranges and counts off the heap.
    #[test]
    fn compaction_moves_a_trimmed_history_back_inline() {
        let mut ix = KeyIndex::default();
        ix.put(b"a", r(2));
        ix.tombstone(b"a", r(3));
        ix.put(b"a", r(4));
        ix.put(b"a", r(5));
        let h = &ix.keys[b"a".as_slice()];
        assert!(h.generations.spilled() && h.generations[1].revs.spilled());
        assert_eq!(ix.compact(5), vec![r(5)]);
        let h = &ix.keys[b"a".as_slice()];
        assert!(!h.generations.spilled(), "generations inline again");
        assert!(!h.generations[0].revs.spilled(), "revisions inline again");
        assert_eq!(ix.get(b"a", 5).map(|f| f.modified), Some(r(5)));
    }

    /// Found by the robustness suite (partition-minority, seed 777): after compacting at
    /// the revision of a delete, a watch from that revision never got the delete, because
    /// compaction dropped the tombstone. etcd keeps it until a later compaction.
    #[test]
    fn compaction_at_a_delete_keeps_its_tombstone_until_the_next_one() {
        let mut ix = KeyIndex::default();
        ix.put(b"k", r(2));
        ix.tombstone(b"k", r(5));
        assert_eq!(ix.compact(5), vec![r(5)]);
        assert_eq!(ix.get(b"k", 5), None);
        assert_eq!(ix.live_keys(), 0);
        assert_eq!(ix.compact(6), Vec::<Revision>::new());
        assert_eq!(ix.get(b"k", 6), None);
    }
}
