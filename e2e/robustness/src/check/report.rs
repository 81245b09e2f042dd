//! What the checker found: counts of what it checked, the linearizability verdict, and every
//! violation with a description naming the operations and watch events involved.

use std::fmt;

use super::linearizability::{Search, Verdict};
use crate::history::{History, Outcome};

/// Which guarantee a violation breaks (tests match on these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// No order of the operations is explained by the store (stale reads, lost or
    /// phantom writes, wrong revisions, a compare-and-set against the wrong revision...).
    NotLinearizable,
    /// A serializable or historical read that no revision of the store explains.
    InconsistentRead,
    /// An acknowledged write missing from the final state.
    LostWrite,
    /// An acknowledged delete whose key is back in the final state without a later write.
    UndoneDelete,
    /// A client saw a lower revision after a higher one.
    RevisionWentBackwards,
    /// Two acknowledged writes claim to have created the same revision.
    RevisionReused,
    /// Events of one watcher not in revision order.
    WatchOutOfOrder,
    /// An event delivered twice to one watcher.
    WatchDuplicate,
    /// One revision's events split over several responses.
    WatchNotAtomic,
    /// A change in a watcher's range and window it never delivered.
    WatchGap,
    /// An event for a change that did not happen, or with contents unlike the change.
    WatchWrongEvent,
    /// A progress notification out of line with the events around it.
    WatchProgress,
    /// prev_kv missing or unlike the key's previous state.
    WatchPrevKv,
    /// A watch from a compacted revision not reported as compacted, or reported without cause.
    WatchCompaction,
    /// A lease's keys deleted in more than one revision.
    LeaseKeysSplit,
    /// A key of a revoked lease still there after the revoke returned, or deleted after the
    /// revoke's revision.
    LeaseKeyOutlivedRevoke,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub kind: Kind,
    pub description: String,
}

/// What the checker looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub operations: usize,
    pub acknowledged: usize,
    /// Writes that failed with an error and may or may not have taken effect.
    pub unknown_writes: usize,
    /// Reads that failed (they say nothing).
    pub failed_reads: usize,
    pub serializable_reads: usize,
    pub leases: usize,
    /// Search entries (acknowledged operations, unknown writes, possible lease expiries).
    pub search_entries: usize,
    pub search_unknown_entries: usize,
    pub watch_sessions: usize,
    pub watchers: usize,
    pub watch_events: usize,
    pub progress_notifications: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub counts: Counts,
    pub linearizability: Verdict,
    pub search_steps: u64,
    pub violations: Vec<Violation>,
    /// What could not be checked, and why.
    pub notes: Vec<String>,
}

impl Report {
    pub(crate) fn new(counts: Counts, linearizability: Verdict, search_steps: u64) -> Report {
        Report {
            counts,
            linearizability,
            search_steps,
            violations: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub(crate) fn violate(&mut self, kind: Kind, description: String) {
        self.violations.push(Violation { kind, description });
    }

    pub(crate) fn note(&mut self, note: &str) {
        self.notes.push(note.to_string());
    }

    /// True when no violation was found (an inconclusive search is not a violation; see
    /// [`Report::inconclusive`]).
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn inconclusive(&self) -> bool {
        self.linearizability == Verdict::Inconclusive
    }

    /// The kinds of the violations found, sorted, without repeats.
    pub fn kinds(&self) -> Vec<Kind> {
        let mut kinds: Vec<Kind> = self.violations.iter().map(|v| v.kind).collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }
}

pub(crate) fn count(history: &History, search: &Search) -> Counts {
    let mut counts = Counts {
        operations: history.operations.len(),
        leases: history.leases.len(),
        search_entries: search.entries_checked,
        search_unknown_entries: search.unknown_entries,
        watch_sessions: history.watches.len(),
        ..Counts::default()
    };
    for op in &history.operations {
        let read = op.request.is_read();
        let serializable = op.request.is_serializable();
        match (&op.outcome, read) {
            (Outcome::Ok(_), _) => {
                counts.acknowledged += 1;
                if serializable {
                    counts.serializable_reads += 1;
                }
            }
            (Outcome::Error(_), true) => counts.failed_reads += 1,
            (Outcome::Error(_), false) => counts.unknown_writes += 1,
        }
    }
    let mut watchers: Vec<u32> = history.watches.iter().map(|w| w.watcher).collect();
    watchers.sort_unstable();
    watchers.dedup();
    counts.watchers = watchers.len();
    for session in &history.watches {
        for response in &session.responses {
            counts.watch_events += response.events.len();
            if response.progress_notify {
                counts.progress_notifications += 1;
            }
        }
    }
    counts
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        writeln!(
            f,
            "checked {} operations ({} acknowledged, {} failed writes with unknown outcome, {} failed reads, {} serializable reads), {} leases, {} watch sessions of {} watchers ({} events, {} progress notifications)",
            c.operations,
            c.acknowledged,
            c.unknown_writes,
            c.failed_reads,
            c.serializable_reads,
            c.leases,
            c.watch_sessions,
            c.watchers,
            c.watch_events,
            c.progress_notifications
        )?;
        let verdict = match &self.linearizability {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable(_) => "NOT linearizable",
            Verdict::Inconclusive => "INCONCLUSIVE (search budget spent)",
        };
        writeln!(
            f,
            "linearizability: {verdict} ({} search entries, {} of them with unknown outcome; {} model steps)",
            c.search_entries, c.search_unknown_entries, self.search_steps
        )?;
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        if self.violations.is_empty() {
            writeln!(f, "no violations")
        } else {
            writeln!(f, "{} violations:", self.violations.len())?;
            for v in &self.violations {
                writeln!(f, "- {:?}: {}", v.kind, v.description)?;
            }
            Ok(())
        }
    }
}
