//! The checker: pure functions from a recorded [`History`] to a [`Report`] of every
//! guarantee it found broken. One module per guarantee:
//!
//! - [`linearizability`]: the KV and lease history has a linearization under a model of
//!   the whole store with revisions (acknowledged and unknown writes, linearizable reads,
//!   lease grants, revokes and expiries); its witness is the reference the other checks
//!   compare with.
//! - `reads`: serializable and historical reads equal the store at their revision.
//! - `durability`: no acknowledged write missing from the final state.
//! - `revisions`: a client never sees revisions go backwards; no revision created twice.
//! - `watch`: watch events ordered, unique, atomic, without gaps across resumes, compaction
//!   reported, progress notifications and prev_kv right.
//! - `lease`: a revoked or expired lease's keys go in one revision, before the revoke returns.
//!
//! What the checks assume where clients cannot know:
//!
//! - Unknown outcomes: a write that failed with an error may have taken effect once, at any
//!   point after its call (even long after its error), or never; errors etcd gives before
//!   or while refusing a request ("requested lease not found", "required revision has been
//!   compacted", "too many requests") count as never. A failed read says nothing.
//! - Serializable reads: not linearizable; each must equal the store at its own response
//!   revision in the linearization found, and that revision must have been created by an
//!   operation invoked before the read returned. Where the read's keys depend on a revision
//!   created by a write of unknown outcome, a mismatch is only noted (another choice of
//!   that write could explain it).
//! - Lease expiry: every lease granted (records and acknowledged grants) may expire, as a
//!   spontaneous operation of unknown outcome that deletes all its keys in one revision, at
//!   any time from its TTL after the grant was invoked (etcd extends leases on leader
//!   changes, never shortens them); kept-alive leases too (a keep-alive can fail).
//! - The run starts on a store with no keys under the traffic's prefix, at
//!   [`Options::initial_revision`].
//! - Everything clients observed constrains the linearization: the key-values any response
//!   or watch event carries say which change created their mod_revision.

mod describe;
mod durability;
mod lease;
pub mod linearizability;
mod model;
mod reads;
mod report;
mod revisions;
mod watch;

#[cfg(test)]
mod generated;
#[cfg(test)]
mod tests;

use std::path::Path;

pub use linearizability::{Options, Verdict};
pub use report::{Counts, Kind, Report, Violation};

use crate::history::History;
use crate::Error;

/// Runs every check with the default search budget.
pub fn all(history: &History) -> Report {
    all_with(history, &Options::default())
}

/// Runs every check.
pub fn all_with(history: &History, options: &Options) -> Report {
    let names = model::Names::of(history);
    let entries = linearizability::entries(history, &names);
    let search = linearizability::search(history, &names, &entries, options);
    let mut report = Report::new(
        report::count(history, &search),
        search.verdict.clone(),
        search.steps,
    );
    if let Verdict::NotLinearizable(why) = &search.verdict {
        report.violate(Kind::NotLinearizable, why.clone());
    }
    let witness = search.witness.as_ref();
    if witness.is_none() {
        report.note(
            "serializable and historical reads, watch event contents and prev_kv were compared only with what acknowledged writes and other watchers show (no linearization to replay)",
        );
    }
    reads::check(history, &names, witness, options, &mut report);
    durability::check(history, &mut report);
    revisions::check(history, &mut report);
    watch::check(history, &names, witness, &mut report);
    lease::check(history, &mut report);
    report
}

/// Saves a history as JSON, to replay a failing run through the checker later.
pub fn save_history(history: &History, path: &Path) -> Result<(), Error> {
    std::fs::write(path, history.to_json()?).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub fn load_history(path: &Path) -> Result<History, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    History::from_json(&text)
}

/// Loads a saved history and checks it.
pub fn check_file(path: &Path) -> Result<Report, Error> {
    Ok(all(&load_history(path)?))
}
