//! Lease guarantees, from what watchers and readers saw rather than from the model (the
//! linearizability search enforces them too, but says less plainly which keys are wrong):
//! the keys attached to a lease are deleted together, in one revision, when it is revoked or
//! expires; a revoke returns a revision at least that deletion's; and no read invoked after
//! a revoke returned sees a key still attached to it.
//!
//! A watch's delete event is put down to a lease when the key's last put seen by that watch
//! (or the event's prev_kv) carries the lease, and no client's delete of that key can explain it.

use std::collections::{BTreeMap, HashMap};

use super::describe::{describe_operation, describe_session};
use super::model::describe_kv;
use super::report::{Kind, Report};
use crate::history::{EventKind, History, KeyValue, Outcome, Request, Response};

pub(crate) fn check(history: &History, report: &mut Report) {
    // lease -> deletion revision -> (key, session) seen deleted then.
    let mut deletions: BTreeMap<i64, BTreeMap<i64, Vec<(String, usize)>>> = BTreeMap::new();
    let explicit = |key: &str, revision: i64| {
        history
            .operations
            .iter()
            .any(|op| match (&op.request, &op.outcome) {
                (Request::Delete { key: k }, Outcome::Ok(Response::Delete { revision: r, .. })) => {
                    k == key && *r == revision
                }
                (Request::Delete { key: k }, Outcome::Error(_)) => k == key,
                _ => false,
            })
    };
    for (s, session) in history.watches.iter().enumerate() {
        let mut last_lease: HashMap<&str, i64> = HashMap::new();
        for event in session.responses.iter().flat_map(|r| &r.events) {
            let key = event.kv.key.as_str();
            match event.kind {
                EventKind::Put => {
                    last_lease.insert(key, event.kv.lease);
                }
                EventKind::Delete => {
                    let lease = event
                        .prev_kv
                        .as_ref()
                        .map(|p| p.lease)
                        .or_else(|| last_lease.get(key).copied())
                        .unwrap_or(0);
                    last_lease.remove(key);
                    if lease != 0 && !explicit(key, event.kv.mod_revision) {
                        deletions
                            .entry(lease)
                            .or_default()
                            .entry(event.kv.mod_revision)
                            .or_default()
                            .push((key.to_string(), s));
                    }
                }
            }
        }
    }
    for (lease, by_revision) in &deletions {
        if by_revision.len() > 1 {
            let parts: Vec<String> = by_revision
                .iter()
                .map(|(revision, keys)| {
                    let mut names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
                    names.sort_unstable();
                    names.dedup();
                    format!(
                        "{} at revision {revision} (seen by {})",
                        names.join(", "),
                        describe_session(keys[0].1, &history.watches[keys[0].1])
                    )
                })
                .collect();
            report.violate(
                Kind::LeaseKeysSplit,
                format!(
                    "the keys of lease {lease} were deleted in {} revisions: {}",
                    by_revision.len(),
                    parts.join("; ")
                ),
            );
        }
    }
    for (r, revoke) in history.operations.iter().enumerate() {
        let (Request::LeaseRevoke { id }, Outcome::Ok(Response::LeaseRevoke { revision })) =
            (&revoke.request, &revoke.outcome)
        else {
            continue;
        };
        if let Some((deleted_at, keys)) = deletions
            .get(id)
            .and_then(|d| d.range(revision + 1..).next())
        {
            report.violate(
                Kind::LeaseKeyOutlivedRevoke,
                format!(
                    "{} returned revision {revision}, but its keys {} were deleted later, at revision {deleted_at}",
                    describe_operation(r, revoke),
                    keys.iter().map(|(k, _)| format!("{k:?}")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
        for (i, read) in history.operations.iter().enumerate() {
            if read.call <= revoke.ret {
                continue;
            }
            let kvs: Vec<&KeyValue> = match (&read.request, &read.outcome) {
                (
                    Request::Get {
                        revision: 0,
                        serializable: false,
                        ..
                    },
                    Outcome::Ok(Response::Get { kv: Some(kv), .. }),
                ) => vec![kv],
                (
                    Request::List {
                        revision: 0,
                        serializable: false,
                        ..
                    },
                    Outcome::Ok(Response::List { kvs, .. }),
                ) => kvs.iter().collect(),
                _ => continue,
            };
            for kv in kvs.into_iter().filter(|kv| kv.lease == *id) {
                report.violate(
                    Kind::LeaseKeyOutlivedRevoke,
                    format!(
                        "{} read {} after {} returned",
                        describe_operation(i, read),
                        describe_kv(kv),
                        describe_operation(r, revoke)
                    ),
                );
            }
        }
    }
}
