//! No acknowledged write lost: each write acknowledged during the run is in the final state,
//! or something later replaced it. The linearizability search implies this when the run
//! ends with a List; this check says it directly, naming the write.

use super::describe::describe_operation;
use super::model::describe_kv;
use super::report::{Kind, Report};
use crate::history::{EventKind, History, KeyValue, Outcome, Request, Response};

/// The run's final List: the last acknowledged linearizable List of the newest state
/// invoked after every other operation returned.
fn final_list(history: &History) -> Option<(usize, &str, &Vec<KeyValue>)> {
    let (i, op) = history
        .operations
        .iter()
        .enumerate()
        .rev()
        .find(|(_, op)| {
            matches!(
                (&op.request, &op.outcome),
                (
                    Request::List {
                        revision: 0,
                        serializable: false,
                        ..
                    },
                    Outcome::Ok(Response::List { .. })
                )
            )
        })?;
    let last_other_return = history
        .operations
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, o)| o.ret)
        .max()
        .unwrap_or(0);
    match (&op.request, &op.outcome) {
        (Request::List { prefix, .. }, Outcome::Ok(Response::List { kvs, .. }))
            if op.call >= last_other_return =>
        {
            Some((i, prefix, kvs))
        }
        _ => None,
    }
}

pub(crate) fn check(history: &History, report: &mut Report) {
    let Some((final_index, prefix, kvs)) = final_list(history) else {
        report.note("durability not checked: the history does not end with a List invoked after every other operation returned");
        return;
    };
    let final_op = describe_operation(final_index, &history.operations[final_index]);
    let in_final = |key: &str| kvs.iter().find(|kv| kv.key == key);
    let final_return = history.operations[final_index].ret;
    let expiries = super::linearizability::expiries(history);
    let lease_may_end = |lease: i64| {
        expiries
            .get(&lease)
            .is_some_and(|from| *from < final_return)
            || history
                .operations
                .iter()
                .any(|op| matches!(op.request, Request::LeaseRevoke { id } if id == lease))
    };
    // Deletes of `key` after `revision` that explain a key's absence.
    let deleted_after = |key: &str, revision: i64, lease: i64| {
        history
            .operations
            .iter()
            .any(|op| match (&op.request, &op.outcome) {
                (
                    Request::Delete { key: k },
                    Outcome::Ok(Response::Delete {
                        revision: r,
                        deleted,
                    }),
                ) => k == key && *deleted > 0 && *r > revision,
                (Request::Delete { key: k }, Outcome::Error(_)) => k == key,
                // A later put may have attached the key to a lease that then ended.
                (
                    Request::Put {
                        key: k, lease: l, ..
                    },
                    outcome,
                ) if k == key && *l != 0 => {
                    let later = match outcome {
                        Outcome::Ok(Response::Put { revision: r }) => *r > revision,
                        _ => true,
                    };
                    later && lease_may_end(*l)
                }
                _ => false,
            })
            || (lease != 0 && lease_may_end(lease))
            || history.watches.iter().any(|w| {
                w.responses.iter().flat_map(|r| &r.events).any(|e| {
                    e.kind == EventKind::Delete && e.kv.key == key && e.kv.mod_revision > revision
                })
            })
    };
    for (i, op) in history.operations.iter().enumerate() {
        let (key, value, lease, revision) = match (&op.request, &op.outcome) {
            (Request::Put { key, value, lease }, Outcome::Ok(Response::Put { revision })) => {
                (key, value, *lease, *revision)
            }
            (
                Request::CompareAndSet { key, value, .. },
                Outcome::Ok(Response::CompareAndSet {
                    revision,
                    succeeded: true,
                    ..
                }),
            ) => (key, value, 0, *revision),
            (Request::Delete { key }, Outcome::Ok(Response::Delete { revision, deleted }))
                if *deleted > 0 && key.starts_with(prefix) =>
            {
                if let Some(kv) = in_final(key).filter(|kv| kv.mod_revision < *revision) {
                    report.violate(
                        Kind::UndoneDelete,
                        format!(
                            "{} was acknowledged, but the final state ({final_op}) still has {} from before it",
                            describe_operation(i, op),
                            describe_kv(kv)
                        ),
                    );
                }
                continue;
            }
            _ => continue,
        };
        if !key.starts_with(prefix) {
            continue;
        }
        match in_final(key) {
            Some(kv) if kv.mod_revision == revision && &kv.value != value => report.violate(
                Kind::LostWrite,
                format!(
                    "{} was acknowledged, but the final state ({final_op}) has {} at its revision",
                    describe_operation(i, op),
                    describe_kv(kv)
                ),
            ),
            Some(kv) if kv.mod_revision < revision => report.violate(
                Kind::LostWrite,
                format!(
                    "{} was acknowledged, but the final state ({final_op}) has the older {}",
                    describe_operation(i, op),
                    describe_kv(kv)
                ),
            ),
            Some(_) => {}
            None if deleted_after(key, revision, lease) => {}
            None => report.violate(
                Kind::LostWrite,
                format!(
                    "{} was acknowledged, but {key:?} is missing from the final state ({final_op}) and no delete{} after it explains that",
                    describe_operation(i, op),
                    if lease != 0 { ", revoke or expiry of its lease" } else { "" }
                ),
            ),
        }
    }
}
