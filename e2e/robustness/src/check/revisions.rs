//! Revisions as clients see them: one client's calls are sequential, so the header revisions
//! of its linearizable responses never go down; and one revision is created by exactly one
//! write, so two acknowledged writes never report the same revision.

use std::collections::HashMap;

use super::describe::describe_operation;
use super::report::{Kind, Report};
use crate::history::{ClientId, History, Outcome, Response};

pub(crate) fn check(history: &History, report: &mut Report) {
    let mut by_client: HashMap<ClientId, Vec<usize>> = HashMap::new();
    for (i, op) in history.operations.iter().enumerate() {
        if matches!(op.outcome, Outcome::Ok(_)) && !op.request.is_serializable() {
            by_client.entry(op.client).or_default().push(i);
        }
    }
    let mut clients: Vec<_> = by_client.into_iter().collect();
    clients.sort();
    for (_, mut ops) in clients {
        ops.sort_by_key(|i| (history.operations[*i].call, *i));
        let mut highest: Option<(usize, i64)> = None;
        for i in ops {
            let op = &history.operations[i];
            let Outcome::Ok(response) = &op.outcome else {
                continue;
            };
            let revision = response.revision();
            match highest {
                Some((j, seen)) if revision < seen => report.violate(
                    Kind::RevisionWentBackwards,
                    format!(
                        "client {} saw revision {revision} in {} after revision {seen} in {}",
                        op.client,
                        describe_operation(i, op),
                        describe_operation(j, &history.operations[j])
                    ),
                ),
                Some((_, seen)) if revision == seen => {}
                _ => highest = Some((i, revision)),
            }
        }
    }
    let mut creators: HashMap<i64, usize> = HashMap::new();
    for (i, op) in history.operations.iter().enumerate() {
        let created = match &op.outcome {
            Outcome::Ok(Response::Put { revision }) => Some(*revision),
            Outcome::Ok(Response::Delete { revision, deleted }) if *deleted > 0 => Some(*revision),
            Outcome::Ok(Response::CompareAndSet {
                revision,
                succeeded: true,
                ..
            }) => Some(*revision),
            _ => None,
        };
        let Some(revision) = created else {
            continue;
        };
        if let Some(j) = creators.insert(revision, i) {
            report.violate(
                Kind::RevisionReused,
                format!(
                    "{} and {} both report creating revision {revision}",
                    describe_operation(j, &history.operations[j]),
                    describe_operation(i, op)
                ),
            );
        }
    }
}
