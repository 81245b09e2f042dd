//! Serializable and historical reads. A serializable read is answered from one member's
//! local state, which may lag: it is not linearizable, but it must equal the store at its
//! response revision, and that revision must have been created by an operation invoked
//! before the read returned (etcd's robustness checks the same: serializable reads see a
//! prefix). A read at a given revision must equal the store at that revision. Both compare
//! with the witness linearization.

use super::describe::describe_operation;
use super::linearizability::{Options, Source, Witness};
use super::model::{describe_kv, Names};
use super::report::{Kind, Report};
use crate::history::{History, KeyValue, Outcome, Request, Response, Time};

pub(crate) fn check(
    history: &History,
    names: &Names,
    witness: Option<&Witness>,
    options: &Options,
    report: &mut Report,
) {
    let Some(witness) = witness else {
        return;
    };
    // Revisions by the call time of the operation that created them, to know the newest
    // revision that can exist when a read returns.
    let mut created: Vec<(Time, i64)> = witness
        .creators
        .iter()
        .map(|(revision, source)| (source_call(history, *source), *revision))
        .collect();
    created.sort();
    let mut newest = options.initial_revision;
    let newest_by_time: Vec<(Time, i64)> = created
        .iter()
        .map(|(time, revision)| {
            newest = newest.max(*revision);
            (*time, newest)
        })
        .collect();
    let newest_before = |time: Time| {
        let n = newest_by_time.partition_point(|(t, _)| *t < time);
        if n == 0 {
            options.initial_revision
        } else {
            newest_by_time[n - 1].1
        }
    };
    for (i, op) in history.operations.iter().enumerate() {
        let Outcome::Ok(response) = &op.outcome else {
            continue;
        };
        let (prefix_or_key, single, at, serializable) = match &op.request {
            Request::Get {
                key,
                revision,
                serializable,
            } => (key, true, *revision, *serializable),
            Request::List {
                prefix,
                revision,
                serializable,
            } => (prefix, false, *revision, *serializable),
            _ => continue,
        };
        if !serializable && at == 0 {
            continue;
        }
        let (header, got): (i64, Vec<KeyValue>) = match response {
            Response::Get { revision, kv } => (*revision, kv.iter().cloned().collect()),
            Response::List { revision, kvs } => (*revision, kvs.clone()),
            _ => continue,
        };
        if serializable {
            let bound = newest_before(op.ret);
            if header > bound {
                report.violate(
                    Kind::InconsistentRead,
                    format!(
                        "{} answered at revision {header}, but the newest revision that can exist when it returned is {bound}",
                        describe_operation(i, op)
                    ),
                );
                continue;
            }
        }
        let revision = if at > 0 { at } else { header };
        let Some(store) = witness.stores.get(&revision) else {
            if revision > options.initial_revision {
                report.violate(
                    Kind::InconsistentRead,
                    format!(
                        "{} read revision {revision}, which the linearization never reaches",
                        describe_operation(i, op)
                    ),
                );
            }
            continue;
        };
        let expected: Vec<KeyValue> = if single {
            names
                .key(prefix_or_key)
                .and_then(|k| store.entries[k].map(|e| names.key_value(k, &e)))
                .into_iter()
                .collect()
        } else {
            store
                .range(names, prefix_or_key)
                .map(|(k, e)| names.key_value(k, e))
                .collect()
        };
        if expected != got {
            // When a revision that decides these keys' state was created by a write of
            // unknown outcome, another choice of that write could explain the read.
            let lowest = got
                .iter()
                .chain(&expected)
                .map(|kv| kv.create_revision)
                .min()
                .unwrap_or(options.initial_revision);
            let floor = if got.len() == expected.len() {
                lowest
            } else {
                options.initial_revision
            };
            if let Some((uncertain, _)) = witness
                .creators
                .range(floor + 1..=revision)
                .find(|(_, source)| !acknowledged(history, **source))
            {
                report.notes.push(format!(
                    "not decided: {} differs from the linearization found, whose revision {uncertain} was created by an operation of unknown outcome",
                    describe_operation(i, op)
                ));
                continue;
            }
            report.violate(
                Kind::InconsistentRead,
                format!(
                    "{} does not equal the store at revision {revision}: [{}]",
                    describe_operation(i, op),
                    expected
                        .iter()
                        .map(describe_kv)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
}

pub(crate) fn source_call(history: &History, source: Source) -> Time {
    match source {
        Source::Operation(i) => history.operations[i].call,
        Source::Expiry(lease) => super::linearizability::expiries(history)
            .get(&lease)
            .copied()
            .unwrap_or(0),
    }
}

fn acknowledged(history: &History, source: Source) -> bool {
    match source {
        Source::Operation(i) => matches!(history.operations[i].outcome, Outcome::Ok(_)),
        Source::Expiry(_) => false,
    }
}
