//! Where each live log entry sits on disk.
//!
//! The WAL keeps no entry payloads in memory (raft's `MemStorage` already
//! does), only this small per-entry locator, so that [`super::Wal::mark_snapshot`]
//! can copy the entries it must keep out of the segments it is about to delete,
//! and so appends can be checked for gaps.

/// Location of one entry's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Loc {
    pub(super) term: u64,
    /// Sequence number of the segment holding the record.
    pub(super) seq: u64,
    /// Byte offset of the record's header in that segment.
    pub(super) offset: u64,
}

/// The live log: entries `base + 1 ..= last_index()`, contiguous.
#[derive(Debug, Default)]
pub(super) struct LogIndex {
    /// Index covered by the latest snapshot mark (0 when there is none).
    base: u64,
    base_term: u64,
    /// `locs[k]` describes entry `base + 1 + k`.
    locs: Vec<Loc>,
}

impl LogIndex {
    /// An empty log whose next entry is `base + 1`.
    pub(super) fn new(base: u64, base_term: u64) -> Self {
        LogIndex {
            base,
            base_term,
            locs: Vec::new(),
        }
    }

    /// Number of entries after the snapshot mark.
    pub(super) fn len(&self) -> usize {
        self.locs.len()
    }

    pub(super) fn last_index(&self) -> u64 {
        self.base + self.locs.len() as u64
    }

    /// Term of the entry at `index`, or of the snapshot if `index` is the
    /// snapshot's; `None` when the log does not know it.
    pub(super) fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.base {
            return Some(self.base_term);
        }
        let k = index.checked_sub(self.base + 1)?;
        self.locs.get(usize::try_from(k).ok()?).map(|l| l.term)
    }

    /// Why an entry at `index` may not be appended now, if it may not.
    ///
    /// Raft may rewrite its uncommitted tail (an index at or below the last
    /// one), but it never rewrites what a snapshot covers and never skips
    /// indexes.
    pub(super) fn check_next(&self, index: u64) -> Result<(), String> {
        if index <= self.base {
            return Err(format!(
                "entry {index} is at or below the snapshot mark at index {}",
                self.base
            ));
        }
        let last = self.last_index();
        if index > last + 1 {
            return Err(format!(
                "entry {index} would leave a gap after the last entry {last}: \
                 entries {} to {} are missing",
                last + 1,
                index - 1
            ));
        }
        Ok(())
    }

    /// Records entry `index` at `loc`, discarding any entries at `index` or
    /// later (Raft's conflict truncation). Returns how many entries remain
    /// before it, so callers keeping a parallel list can truncate the same
    /// way. The caller must have passed `index` through [`Self::check_next`].
    pub(super) fn push(&mut self, index: u64, loc: Loc) -> usize {
        let keep = usize::try_from(index - self.base - 1).unwrap_or(usize::MAX);
        self.locs.truncate(keep);
        self.locs.push(loc);
        keep
    }

    /// Entries after `index`, as `(entry index, location)`.
    pub(super) fn after(&self, index: u64) -> impl Iterator<Item = (u64, Loc)> + '_ {
        let skip = usize::try_from(index.saturating_sub(self.base)).unwrap_or(usize::MAX);
        (self.base + 1..).zip(self.locs.iter().copied()).skip(skip)
    }
}
