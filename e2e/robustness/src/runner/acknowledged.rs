//! The run's own end-of-run check, independent of the checker's model: every write the
//! cluster acknowledged is in the final state or was later replaced or removed, and every
//! value in the final state is one a client wrote to that key.

use std::collections::{HashMap, HashSet};

use crate::history::{History, KeyValue, Outcome, Request, Response};

/// What is wrong, one line per problem (empty: nothing).
pub fn check(history: &History, final_state: &[KeyValue]) -> Vec<String> {
    let finals: HashMap<&str, &KeyValue> =
        final_state.iter().map(|kv| (kv.key.as_str(), kv)).collect();
    let mut written: HashSet<(&str, &str)> = HashSet::new();
    // Keys something could have removed: a delete (any outcome) or a lease attached.
    let mut removable: HashMap<&str, Vec<Option<i64>>> = HashMap::new();
    let mut acked = Vec::new();
    for op in &history.operations {
        let revision = match &op.outcome {
            Outcome::Ok(
                Response::Put { revision }
                | Response::Delete { revision, .. }
                | Response::CompareAndSet { revision, .. },
            ) => Some(*revision),
            _ => None,
        };
        match &op.request {
            Request::Put { key, value, lease } => {
                written.insert((key, value));
                if *lease != 0 {
                    // Expiry or revocation can come any time after the put.
                    removable.entry(key).or_default().push(None);
                }
                if let Some(r) = revision {
                    acked.push((key.as_str(), value.as_str(), r));
                }
            }
            Request::CompareAndSet { key, value, .. } => {
                written.insert((key, value));
                if let Outcome::Ok(Response::CompareAndSet {
                    succeeded: true,
                    revision,
                    ..
                }) = &op.outcome
                {
                    acked.push((key.as_str(), value.as_str(), *revision));
                }
            }
            Request::Delete { key } => {
                removable.entry(key).or_default().push(revision);
            }
            _ => {}
        }
    }
    let mut problems = Vec::new();
    for (key, value, rev) in acked {
        match finals.get(key) {
            Some(kv) if kv.mod_revision == rev && kv.value != value => problems.push(format!(
                "{key}: the put of {value:?} was acknowledged at revision {rev}, but the final \
                 state has {:?} at that revision",
                kv.value
            )),
            Some(kv) if kv.mod_revision < rev => problems.push(format!(
                "{key}: the put of {value:?} was acknowledged at revision {rev}, but the final \
                 state has {:?} from the older revision {}: an acknowledged write is lost",
                kv.value, kv.mod_revision
            )),
            Some(_) => {}
            None => {
                let removed = removable
                    .get(key)
                    .is_some_and(|rs| rs.iter().any(|r| r.is_none_or(|r| r > rev)));
                if !removed {
                    problems.push(format!(
                        "{key}: the put of {value:?} was acknowledged at revision {rev}, but the \
                         key is gone and nothing deleted it afterwards: an acknowledged write is lost"
                    ));
                }
            }
        }
    }
    for kv in final_state {
        if !written.contains(&(kv.key.as_str(), kv.value.as_str())) {
            problems.push(format!(
                "{}: the final state has {:?}, which no client wrote to that key",
                kv.key, kv.value
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Operation;

    fn op(request: Request, outcome: Outcome) -> Operation {
        Operation {
            client: 0,
            call: 0,
            ret: 1,
            request,
            outcome,
        }
    }

    fn put(key: &str, value: &str, revision: i64) -> Operation {
        op(
            Request::Put {
                key: key.into(),
                value: value.into(),
                lease: 0,
            },
            Outcome::Ok(Response::Put { revision }),
        )
    }

    fn kv(key: &str, value: &str, rev: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            lease: 0,
        }
    }

    #[test]
    fn an_acknowledged_put_that_is_gone_is_reported() {
        let history = History {
            operations: vec![put("k/1", "a", 2), put("k/1", "b", 3)],
            ..Default::default()
        };
        assert!(check(&history, &[kv("k/1", "b", 3)]).is_empty());
        let lost = check(&history, &[kv("k/1", "a", 2)]);
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert!(lost[0].contains("\"b\""), "{lost:?}");
        let gone = check(&history, &[]);
        assert_eq!(gone.len(), 2, "{gone:?}");
    }

    #[test]
    fn a_delete_with_an_unknown_outcome_may_explain_a_missing_key() {
        let history = History {
            operations: vec![
                put("k/1", "a", 2),
                op(
                    Request::Delete { key: "k/1".into() },
                    Outcome::Error("timeout".into()),
                ),
            ],
            ..Default::default()
        };
        assert!(check(&history, &[]).is_empty());
    }

    #[test]
    fn a_value_nobody_wrote_is_reported() {
        let history = History {
            operations: vec![put("k/1", "a", 2)],
            ..Default::default()
        };
        let invented = check(&history, &[kv("k/1", "zzz", 5)]);
        assert_eq!(invented.len(), 1, "{invented:?}");
    }
}
