//! Watch guarantees, as etcd's robustness suite names them (`validate/watch.go`), checked per
//! logical watcher (its sessions in order, a resumed session continuing the previous one):
//!
//! - ordered: events in non-decreasing revision order;
//! - unique: no (key, revision) delivered twice;
//! - atomic: one revision's events in one response;
//! - reliable: no change in the watcher's range missing between where it started and the
//!   last revision it is known to have seen (its last event or progress notification);
//! - compaction: compact_revision names a compaction that was asked for, above the watch's
//!   start (a watch from a compacted revision that is not cancelled is only noted: its
//!   member may not have applied the compaction yet);
//! - progress: a progress notification's revision is at least every event before it and
//!   below every event after it;
//! - correct: events and prev_kv equal the changes of the reference.
//!
//! The reference of what changed at each revision is the witness linearization's replay when
//! there is one (complete and exact); otherwise the acknowledged writes and the union of
//! what watchers delivered.

use std::collections::{BTreeMap, HashMap};

use super::describe::{describe_event, describe_session};
use super::linearizability::Witness;
use super::model::{describe_kv, Names};
use super::report::{Kind, Report};
use crate::history::{
    EventKind, History, KeyValue, Outcome, Request, Response, WatchEvent, WatchSession,
};

/// One change of the reference.
struct Change {
    kind: EventKind,
    key: String,
    value: Option<String>,
    /// The exact key-value (witness only; for a delete, absent).
    kv: Option<KeyValue>,
    /// The key before the change: Some(None) when it did not exist (witness only).
    prev: Option<Option<KeyValue>>,
}

struct Reference {
    changes: BTreeMap<i64, Vec<Change>>,
    /// Every change is known (from a witness), so an event not in it never happened.
    complete: bool,
}

fn reference(history: &History, names: &Names, witness: Option<&Witness>) -> Reference {
    let mut changes: BTreeMap<i64, Vec<Change>> = BTreeMap::new();
    if let Some(witness) = witness {
        for (revision, after) in witness.stores.iter() {
            let Some(before) = witness.stores.get(&(revision - 1)) else {
                continue;
            };
            for k in 0..names.keys.len() {
                let (old, new) = (before.entries[k], after.entries[k]);
                if old == new {
                    continue;
                }
                let prev = old.map(|e| names.key_value(k, &e));
                let change = match new {
                    Some(e) => {
                        let kv = names.key_value(k, &e);
                        Change {
                            kind: EventKind::Put,
                            key: kv.key.clone(),
                            value: Some(kv.value.clone()),
                            kv: Some(kv),
                            prev: Some(prev),
                        }
                    }
                    None => Change {
                        kind: EventKind::Delete,
                        key: names.keys[k].clone(),
                        value: None,
                        kv: None,
                        prev: Some(prev),
                    },
                };
                changes.entry(*revision).or_default().push(change);
            }
        }
        return Reference {
            changes,
            complete: true,
        };
    }
    for op in &history.operations {
        let change = match (&op.request, &op.outcome) {
            (Request::Put { key, value, .. }, Outcome::Ok(Response::Put { revision }))
            | (
                Request::CompareAndSet { key, value, .. },
                Outcome::Ok(Response::CompareAndSet {
                    revision,
                    succeeded: true,
                    ..
                }),
            ) => Some((*revision, EventKind::Put, key, Some(value.clone()))),
            (Request::Delete { key }, Outcome::Ok(Response::Delete { revision, deleted }))
                if *deleted > 0 =>
            {
                Some((*revision, EventKind::Delete, key, None))
            }
            _ => None,
        };
        if let Some((revision, kind, key, value)) = change {
            changes.entry(revision).or_default().push(Change {
                kind,
                key: key.clone(),
                value,
                kv: None,
                prev: None,
            });
        }
    }
    for session in &history.watches {
        for event in session.responses.iter().flat_map(|r| &r.events) {
            let at = changes.entry(event.kv.mod_revision).or_default();
            if !at.iter().any(|c| c.key == event.kv.key) {
                at.push(Change {
                    kind: event.kind,
                    key: event.kv.key.clone(),
                    value: (event.kind == EventKind::Put).then(|| event.kv.value.clone()),
                    kv: None,
                    prev: None,
                });
            }
        }
    }
    Reference {
        changes,
        complete: false,
    }
}

fn in_range(session: &WatchSession, key: &str) -> bool {
    if session.range_end.is_empty() {
        key == session.key
    } else if session.range_end == "\0" {
        key >= session.key.as_str()
    } else {
        key >= session.key.as_str() && key < session.range_end.as_str()
    }
}

/// Where an event was delivered: session index, response index.
type Place = (usize, usize);

pub(crate) fn check(
    history: &History,
    names: &Names,
    witness: Option<&Witness>,
    report: &mut Report,
) {
    let reference = reference(history, names, witness);
    let mut watchers: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, session) in history.watches.iter().enumerate() {
        watchers.entry(session.watcher).or_default().push(i);
    }
    for sessions in watchers.values_mut() {
        sessions.sort_by_key(|i| (history.watches[*i].call, *i));
        check_watcher(history, &reference, sessions, report);
    }
    for (i, session) in history.watches.iter().enumerate() {
        check_progress(i, session, report);
        check_compaction(history, i, session, report);
        check_events(history, i, session, &reference, report);
    }
}

fn check_watcher(
    history: &History,
    reference: &Reference,
    sessions: &[usize],
    report: &mut Report,
) {
    let mut seen: HashMap<(i64, &str), Place> = HashMap::new();
    let mut revision_place: HashMap<i64, Place> = HashMap::new();
    let mut last: Option<(i64, &WatchEvent, usize)> = None;
    let mut known_up_to: Option<i64> = None;
    let mut excused: Vec<(i64, i64)> = Vec::new();
    let first = &history.watches[sessions[0]];
    let mut start = (first.start_revision > 0).then_some(first.start_revision);
    for &s in sessions {
        let session = &history.watches[s];
        for (r, response) in session.responses.iter().enumerate() {
            if response.compact_revision > 0 {
                excused.push((session.start_revision, response.compact_revision));
            }
            if response.progress_notify {
                known_up_to = known_up_to.max(Some(response.revision));
                // A watch from "now" whose first word is a progress notification owes
                // every event after it.
                start = start.or(Some(response.revision + 1));
            }
            for event in &response.events {
                let revision = event.kv.mod_revision;
                start = start.or(Some(revision));
                known_up_to = known_up_to.max(Some(revision));
                if let Some(&(ds, _)) = seen.get(&(revision, event.kv.key.as_str())) {
                    report.violate(
                        Kind::WatchDuplicate,
                        format!(
                            "{} delivered {} again (first in {})",
                            describe_session(s, session),
                            describe_event(event),
                            describe_session(ds, &history.watches[ds])
                        ),
                    );
                    continue;
                }
                seen.insert((revision, event.kv.key.as_str()), (s, r));
                if let Some((before, previous, ps)) = last {
                    if revision < before {
                        report.violate(
                            Kind::WatchOutOfOrder,
                            format!(
                                "{} delivered {} after {} (in {})",
                                describe_session(s, session),
                                describe_event(event),
                                describe_event(previous),
                                describe_session(ps, &history.watches[ps])
                            ),
                        );
                    }
                }
                match revision_place.get(&revision) {
                    Some(place) if *place != (s, r) => report.violate(
                        Kind::WatchNotAtomic,
                        format!(
                            "{} delivered revision {revision} in two responses: {} in response {} of {}, and earlier events of that revision in response {} of {}",
                            describe_session(s, session),
                            describe_event(event),
                            r,
                            describe_session(s, session),
                            place.1,
                            describe_session(place.0, &history.watches[place.0])
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        revision_place.insert(revision, (s, r));
                    }
                }
                if last.is_none_or(|(before, _, _)| revision >= before) {
                    last = Some((revision, event, s));
                }
            }
        }
    }
    let (Some(start), Some(end)) = (start, known_up_to) else {
        return;
    };
    if start > end {
        return;
    }
    let watched = |key: &str| sessions.iter().any(|s| in_range(&history.watches[*s], key));
    for (revision, changes) in reference.changes.range(start..=end) {
        if excused
            .iter()
            .any(|(from, to)| *from <= *revision && revision < to)
        {
            continue;
        }
        for change in changes {
            if watched(&change.key) && !seen.contains_key(&(*revision, change.key.as_str())) {
                let owner = sessions
                    .iter()
                    .rev()
                    .find(|s| history.watches[**s].start_revision <= *revision)
                    .unwrap_or(&sessions[0]);
                report.violate(
                    Kind::WatchGap,
                    format!(
                        "watcher {} never delivered the {} of {:?} at revision {revision}, though it saw revisions {start}..={end} (expected in {})",
                        history.watches[*owner].watcher,
                        match change.kind {
                            EventKind::Put => "put",
                            EventKind::Delete => "delete",
                        },
                        change.key,
                        describe_session(*owner, &history.watches[*owner])
                    ),
                );
            }
        }
    }
}

fn check_progress(i: usize, session: &WatchSession, report: &mut Report) {
    let mut highest_event: Option<(i64, &WatchEvent)> = None;
    let mut notified: Option<i64> = None;
    for response in &session.responses {
        if response.progress_notify {
            if let Some((revision, event)) = highest_event.filter(|(r, _)| *r > response.revision) {
                report.violate(
                    Kind::WatchProgress,
                    format!(
                        "{} sent a progress notification at revision {} after delivering {} (revision {revision})",
                        describe_session(i, session),
                        response.revision,
                        describe_event(event)
                    ),
                );
            }
            notified = notified.max(Some(response.revision));
        }
        for event in &response.events {
            if let Some(progress) = notified.filter(|p| event.kv.mod_revision <= *p) {
                report.violate(
                    Kind::WatchProgress,
                    format!(
                        "{} delivered {} after a progress notification at revision {progress}",
                        describe_session(i, session),
                        describe_event(event)
                    ),
                );
            }
            if highest_event.is_none_or(|(r, _)| event.kv.mod_revision > r) {
                highest_event = Some((event.kv.mod_revision, event));
            }
        }
    }
}

fn check_compaction(history: &History, i: usize, session: &WatchSession, report: &mut Report) {
    let compacted_before = history
        .operations
        .iter()
        .filter_map(|op| match (&op.request, &op.outcome) {
            (Request::Compact { revision }, Outcome::Ok(_)) if op.ret < session.call => {
                Some(*revision)
            }
            _ => None,
        })
        .max();
    let cancel = session.responses.iter().find(|r| r.compact_revision > 0);
    // Not a violation: the member serving the watch may not have applied the compaction
    // yet (a lagging or partitioned member), and then it rightly delivers older events.
    if let Some(compacted) = compacted_before {
        if session.start_revision > 0 && session.start_revision < compacted && cancel.is_none() {
            report.notes.push(format!(
                "{} starts before revision {compacted}, compacted before it was created, yet was not reported compacted (its member may not have applied the compaction)",
                describe_session(i, session)
            ));
        }
    }
    if let Some(cancel) = cancel {
        let asked = history.operations.iter().any(|op| {
            matches!(op.request, Request::Compact { revision } if revision == cancel.compact_revision)
                && op.call <= cancel.time
        });
        if !asked || session.start_revision >= cancel.compact_revision {
            report.violate(
                Kind::WatchCompaction,
                format!(
                    "{} was cancelled with compact_revision {}, but {}",
                    describe_session(i, session),
                    cancel.compact_revision,
                    if asked {
                        format!(
                            "it starts at revision {}, not compacted",
                            session.start_revision
                        )
                    } else {
                        "no compaction to that revision was asked for before".to_string()
                    }
                ),
            );
        }
    }
}

fn check_events(
    history: &History,
    i: usize,
    session: &WatchSession,
    reference: &Reference,
    report: &mut Report,
) {
    let compactions: Vec<(crate::history::Time, i64)> = history
        .operations
        .iter()
        .filter_map(|op| match op.request {
            Request::Compact { revision } => Some((op.call, revision)),
            _ => None,
        })
        .collect();
    let events = session
        .responses
        .iter()
        .flat_map(|r| r.events.iter().map(move |e| (r.time, e)));
    for (time, event) in events {
        let revision = event.kv.mod_revision;
        let change = reference
            .changes
            .get(&revision)
            .and_then(|cs| cs.iter().find(|c| c.key == event.kv.key));
        let at_revision = reference.changes.get(&revision);
        let wrong = match change {
            None => {
                if reference.complete || at_revision.is_some() {
                    Some("no such change happened at that revision".to_string())
                } else {
                    None
                }
            }
            Some(change) if change.kind != event.kind => Some(format!(
                "the change at that revision was a {}",
                match change.kind {
                    EventKind::Put => "put",
                    EventKind::Delete => "delete",
                }
            )),
            Some(change) => match (&change.kv, &change.value) {
                (Some(kv), _) if event.kind == EventKind::Put && kv != &event.kv => {
                    Some(format!("the change was {}", describe_kv(kv)))
                }
                (_, Some(value)) if event.kind == EventKind::Put && value != &event.kv.value => {
                    Some(format!("the value written was {value:?}"))
                }
                _ => None,
            },
        };
        if let Some(why) = wrong {
            report.violate(
                Kind::WatchWrongEvent,
                format!(
                    "{} delivered {}, but {why}",
                    describe_session(i, session),
                    describe_event(event)
                ),
            );
            continue;
        }
        if !session.prev_kv {
            continue;
        }
        // etcd reads prev_kv at the event's revision - 1, and leaves it out when that
        // revision is compacted.
        let prev_compacted = compactions
            .iter()
            .any(|(call, compacted)| *compacted > revision - 1 && *call <= time);
        if event.prev_kv.is_none() && prev_compacted {
            continue;
        }
        let prev_wrong = match change.and_then(|c| c.prev.as_ref()) {
            Some(expected) if expected != &event.prev_kv => Some(format!(
                "the key before it was {}",
                expected.as_ref().map_or("absent".to_string(), describe_kv)
            )),
            Some(_) => None,
            None => match &event.prev_kv {
                None if event.kind == EventKind::Delete => {
                    Some("a deleted key existed before".to_string())
                }
                Some(prev) if prev.mod_revision >= revision => {
                    Some("prev_kv is not older than the event".to_string())
                }
                Some(prev) => reference
                    .changes
                    .range(prev.mod_revision + 1..revision)
                    .find(|(_, cs)| cs.iter().any(|c| c.key == event.kv.key))
                    .map(|(r, _)| format!("the key changed again at revision {r}, after prev_kv"))
                    .or_else(|| {
                        let at = reference.changes.get(&prev.mod_revision)?;
                        let c = at.iter().find(|c| c.key == prev.key)?;
                        (c.value.as_ref() != Some(&prev.value)).then(|| {
                            format!(
                                "the key's write at revision {} was {:?}",
                                prev.mod_revision,
                                c.value.as_deref().unwrap_or("a delete")
                            )
                        })
                    }),
                None => None,
            },
        };
        if let Some(why) = prev_wrong {
            report.violate(
                Kind::WatchPrevKv,
                format!(
                    "{} delivered {} with prev_kv {}, but {why}",
                    describe_session(i, session),
                    describe_event(event),
                    event
                        .prev_kv
                        .as_ref()
                        .map_or("absent".to_string(), describe_kv)
                ),
            );
        }
    }
}
