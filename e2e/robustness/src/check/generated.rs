//! Histories generated from a sequential simulation of the store (written apart from the
//! checker's model, so one does not vouch for the other), with overlapping call/return
//! intervals around each operation's linearization point, timed-out writes that did or did
//! not take effect, and a watcher that resumes and gets progress notifications. Every such
//! history must pass; one mutated read must not.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::history::*;

/// Shape of a generated run.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    pub operations: usize,
    pub keys: usize,
    pub clients: u32,
    /// Chance that a write times out (and then takes effect or not, half each).
    pub unknown: f64,
}

struct Simulation {
    revision: i64,
    store: BTreeMap<String, KeyValue>,
    /// The store after each revision.
    past: BTreeMap<i64, BTreeMap<String, KeyValue>>,
    leases: Vec<(i64, bool)>,
    next_lease: i64,
    events: Vec<WatchEvent>,
}

impl Simulation {
    fn bump(&mut self) {
        self.revision += 1;
    }

    fn commit(&mut self) {
        self.past.insert(self.revision, self.store.clone());
    }

    fn put(&mut self, key: &str, value: &str, lease: i64) {
        self.bump();
        let prev = self.store.get(key).cloned();
        let kv = KeyValue {
            key: key.to_string(),
            value: value.to_string(),
            create_revision: prev.as_ref().map_or(self.revision, |p| p.create_revision),
            mod_revision: self.revision,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            lease,
        };
        self.store.insert(key.to_string(), kv.clone());
        self.events.push(WatchEvent {
            kind: EventKind::Put,
            kv,
            prev_kv: prev,
        });
        self.commit();
    }

    fn delete_keys(&mut self, keys: &[String]) {
        let keys: Vec<&String> = keys
            .iter()
            .filter(|k| self.store.contains_key(*k))
            .collect();
        if keys.is_empty() {
            return;
        }
        self.bump();
        for key in keys {
            let prev = self.store.remove(key.as_str());
            self.events.push(WatchEvent {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: key.to_string(),
                    value: String::new(),
                    create_revision: 0,
                    mod_revision: self.revision,
                    version: 0,
                    lease: 0,
                },
                prev_kv: prev,
            });
        }
        self.commit();
    }
}

/// Generates a history that a correct store could have produced.
pub(super) fn generate(seed: u64, shape: Shape) -> History {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sim = Simulation {
        revision: 1,
        store: BTreeMap::new(),
        past: BTreeMap::from([(1, BTreeMap::new())]),
        leases: Vec::new(),
        next_lease: 100,
        events: Vec::new(),
    };
    let mut history = History::default();
    let mut value = 0u64;
    let spacing: Time = 1_000;
    for i in 0..shape.operations {
        let point = (i as Time + shape.clients as Time + 1) * spacing * 10;
        let client = (i as u32) % shape.clients;
        // Intervals wide enough to overlap several neighbours, narrow enough that one
        // client's calls (every `clients`-th operation) never overlap.
        let reach = spacing * 10 * (shape.clients as Time) / 2 - 1;
        let call = point - rng.random_range(0..reach);
        let ret = point + rng.random_range(0..reach);
        let key = format!("k{:02}", rng.random_range(0..shape.keys));
        value += 1;
        let new_value = format!("v{value}");
        let times_out = rng.random_bool(shape.unknown);
        let takes_effect = rng.random_bool(0.5);
        let (request, outcome) = match rng.random_range(0..100) {
            0..25 => {
                let lease = match sim.leases.iter().filter(|(_, alive)| *alive).count() {
                    0 => 0,
                    _ if rng.random_bool(0.5) => 0,
                    alive => sim
                        .leases
                        .iter()
                        .filter(|(_, alive)| *alive)
                        .nth(rng.random_range(0..alive))
                        .map_or(0, |l| l.0),
                };
                let request = Request::Put {
                    key: key.clone(),
                    value: new_value.clone(),
                    lease,
                };
                if times_out {
                    if takes_effect {
                        sim.put(&key, &new_value, lease);
                    }
                    (request, Outcome::Error("context deadline exceeded".into()))
                } else {
                    sim.put(&key, &new_value, lease);
                    (
                        request,
                        Outcome::Ok(Response::Put {
                            revision: sim.revision,
                        }),
                    )
                }
            }
            25..50 => (
                Request::Get {
                    key: key.clone(),
                    revision: 0,
                    serializable: false,
                },
                Outcome::Ok(Response::Get {
                    revision: sim.revision,
                    kv: sim.store.get(&key).cloned(),
                }),
            ),
            50..58 => {
                let revision = rng.random_range((sim.revision - 3).max(1)..=sim.revision);
                (
                    Request::Get {
                        key: key.clone(),
                        revision: 0,
                        serializable: true,
                    },
                    Outcome::Ok(Response::Get {
                        revision,
                        kv: sim.past[&revision].get(&key).cloned(),
                    }),
                )
            }
            58..63 => (
                Request::List {
                    prefix: "k".into(),
                    revision: 0,
                    serializable: false,
                },
                Outcome::Ok(Response::List {
                    revision: sim.revision,
                    kvs: sim.store.values().cloned().collect(),
                }),
            ),
            63..73 => {
                let existed = sim.store.contains_key(&key);
                let request = Request::Delete { key: key.clone() };
                if times_out {
                    if takes_effect {
                        sim.delete_keys(std::slice::from_ref(&key));
                    }
                    (request, Outcome::Error("context deadline exceeded".into()))
                } else {
                    sim.delete_keys(std::slice::from_ref(&key));
                    let outcome = Outcome::Ok(Response::Delete {
                        revision: sim.revision,
                        deleted: i64::from(existed),
                    });
                    (request, outcome)
                }
            }
            73..90 => {
                let current = sim.store.get(&key).map_or(0, |kv| kv.mod_revision);
                let expected = if rng.random_bool(0.7) {
                    current
                } else {
                    current.max(2) - 1
                };
                let request = Request::CompareAndSet {
                    key: key.clone(),
                    expected_mod_revision: expected,
                    value: new_value.clone(),
                };
                let matches = expected == current;
                if matches && times_out {
                    if takes_effect {
                        sim.put(&key, &new_value, 0);
                    }
                    (request, Outcome::Error("context deadline exceeded".into()))
                } else if matches {
                    sim.put(&key, &new_value, 0);
                    let outcome = Outcome::Ok(Response::CompareAndSet {
                        revision: sim.revision,
                        succeeded: true,
                        kv: None,
                    });
                    (request, outcome)
                } else {
                    let outcome = Outcome::Ok(Response::CompareAndSet {
                        revision: sim.revision,
                        succeeded: false,
                        kv: sim.store.get(&key).cloned(),
                    });
                    (request, outcome)
                }
            }
            90..95 => {
                let id = sim.next_lease;
                sim.next_lease += 1;
                sim.leases.push((id, true));
                history.leases.push(LeaseRecord {
                    id,
                    ttl: 3600,
                    granted: call,
                    kept_alive: false,
                });
                (
                    Request::LeaseGrant { ttl: 3600 },
                    Outcome::Ok(Response::LeaseGrant {
                        revision: sim.revision,
                        id,
                    }),
                )
            }
            _ => {
                let Some(index) = sim.leases.iter().position(|(_, alive)| *alive) else {
                    continue;
                };
                let id = sim.leases[index].0;
                sim.leases[index].1 = false;
                let keys: Vec<String> = sim
                    .store
                    .values()
                    .filter(|kv| kv.lease == id)
                    .map(|kv| kv.key.clone())
                    .collect();
                sim.delete_keys(&keys);
                (
                    Request::LeaseRevoke { id },
                    Outcome::Ok(Response::LeaseRevoke {
                        revision: sim.revision,
                    }),
                )
            }
        };
        let ret = if matches!(outcome, Outcome::Error(_)) {
            call + 1
        } else {
            ret
        };
        history.operations.push(Operation {
            client,
            call,
            ret,
            request,
            outcome,
        });
    }
    let end = (shape.operations as Time + 2) * spacing * 10 * shape.clients as Time;
    history.operations.push(Operation {
        client: 0,
        call: end,
        ret: end + 1,
        request: Request::List {
            prefix: "k".into(),
            revision: 0,
            serializable: false,
        },
        outcome: Outcome::Ok(Response::List {
            revision: sim.revision,
            kvs: sim.store.values().cloned().collect(),
        }),
    });
    history.watches = watcher(&mut rng, &sim.events);
    history
}

/// One watcher of every key with prev_kv, delivering each revision in one response, its
/// stream broken and resumed now and then, with progress notifications.
fn watcher(rng: &mut StdRng, events: &[WatchEvent]) -> Vec<WatchSession> {
    let mut by_revision: BTreeMap<i64, Vec<WatchEvent>> = BTreeMap::new();
    for event in events {
        by_revision
            .entry(event.kv.mod_revision)
            .or_default()
            .push(event.clone());
    }
    let session = |start_revision, call| WatchSession {
        client: 1000,
        watcher: 1,
        key: "k".into(),
        range_end: "l".into(),
        start_revision,
        prev_kv: true,
        call,
        responses: Vec::new(),
        error: None,
    };
    let mut sessions = vec![session(2, 0)];
    let mut time = 1;
    for (revision, events) in by_revision {
        time += 1;
        if rng.random_bool(0.05) {
            if let Some(broken) = sessions.last_mut() {
                broken.error = Some("stream reset".into());
            }
            sessions.push(session(revision, time));
        }
        let current = sessions.last_mut().expect("one session at least");
        current.responses.push(WatchResponse {
            time,
            revision,
            events,
            compact_revision: 0,
            canceled: false,
            progress_notify: false,
        });
        if rng.random_bool(0.1) {
            current.responses.push(WatchResponse {
                time,
                revision,
                events: Vec::new(),
                compact_revision: 0,
                canceled: false,
                progress_notify: true,
            });
        }
    }
    sessions
}

const SMALL: Shape = Shape {
    operations: 120,
    keys: 4,
    clients: 5,
    unknown: 0.1,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn generated_histories_pass(seed in any::<u64>()) {
        let history = generate(seed, SMALL);
        let report = all(&history);
        prop_assert!(report.is_ok() && report.linearizability == Verdict::Linearizable, "seed {seed}:\n{report}");
        // Without watchers, unknown writes are placed from reads alone.
        let unwatched = History { watches: Vec::new(), ..history };
        let report = all(&unwatched);
        prop_assert!(report.is_ok() && report.linearizability == Verdict::Linearizable, "seed {seed} without watches:\n{report}");
    }

    /// A linearizable read changed to another value the key had is caught.
    #[test]
    fn a_changed_read_is_caught(seed in any::<u64>(), pick in any::<prop::sample::Index>()) {
        let mut history = generate(seed, SMALL);
        let reads: Vec<usize> = history
            .operations
            .iter()
            .enumerate()
            .filter(|(_, op)| matches!(
                (&op.request, &op.outcome),
                (Request::Get { serializable: false, .. }, Outcome::Ok(Response::Get { kv: Some(_), .. }))
            ))
            .map(|(i, _)| i)
            .collect();
        prop_assume!(!reads.is_empty());
        let i = reads[pick.index(reads.len())];
        if let Outcome::Ok(Response::Get { kv: Some(kv), .. }) = &mut history.operations[i].outcome {
            kv.value = "never written".into();
        }
        let report = all(&history);
        prop_assert_eq!(report.kinds(), vec![Kind::NotLinearizable], "seed {}:\n{}", seed, report);
    }
}

/// Histories broken at random (responses swapped, revisions shifted, operations dropped,
/// watch events moved) never make the checker panic, and the clean one is still accepted.
#[test]
fn scrambled_histories_do_not_panic() {
    let mut rng = StdRng::seed_from_u64(7);
    for seed in 0..40 {
        let clean = generate(seed, SMALL);
        for _ in 0..5 {
            let mut history = clean.clone();
            for _ in 0..rng.random_range(1..6) {
                let n = history.operations.len();
                let (a, b) = (rng.random_range(0..n), rng.random_range(0..n));
                match rng.random_range(0..4) {
                    0 => {
                        let outcome = history.operations[a].outcome.clone();
                        history.operations[a].outcome = history.operations[b].outcome.clone();
                        history.operations[b].outcome = outcome;
                    }
                    1 => {
                        if let Outcome::Ok(Response::Put { revision }) =
                            &mut history.operations[a].outcome
                        {
                            *revision += rng.random_range(-3..4);
                        }
                    }
                    2 => {
                        history.operations.remove(a);
                    }
                    _ => {
                        if let Some(session) = history.watches.first_mut() {
                            if session.responses.len() > 1 {
                                let r = rng.random_range(0..session.responses.len());
                                let moved = session.responses.remove(r);
                                session.responses.insert(0, moved);
                            }
                        }
                    }
                }
            }
            let report = all(&history);
            assert!(report.to_string().contains("checked"));
        }
        assert!(all(&clean).is_ok());
    }
}

/// The size the suite records: a few thousand operations on a few dozen keys.
#[test]
fn a_run_sized_history_is_linearizable_within_budget() {
    let shape = Shape {
        operations: 3000,
        keys: 30,
        clients: 10,
        unknown: 0.01,
    };
    for seed in 0..3 {
        let history = generate(seed, shape);
        let report = all(&history);
        assert!(
            report.is_ok() && report.linearizability == Verdict::Linearizable,
            "seed {seed}:\n{report}"
        );
    }
}

/// Prints how long the checker takes on run-sized histories, clean and with one read
/// changed early on (the search then backtracks through everything before it):
/// `cargo test --release -p ballast-robustness measure -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a test"]
fn measure() {
    for (operations, keys, clients, unknown) in [
        (1000, 10, 10, 0.01),
        (3000, 30, 10, 0.01),
        (5000, 50, 20, 0.02),
        (5000, 10, 20, 0.05),
    ] {
        let shape = Shape {
            operations,
            keys,
            clients,
            unknown,
        };
        let mut history = generate(1, shape);
        let started = std::time::Instant::now();
        let report = all(&history);
        let clean = started.elapsed();
        if let Some(read) = history
            .operations
            .iter_mut()
            .skip(operations / 10)
            .find(|op| {
                matches!(
                    (&op.request, &op.outcome),
                    (
                        Request::Get {
                            serializable: false,
                            ..
                        },
                        Outcome::Ok(Response::Get { kv: Some(_), .. })
                    )
                )
            })
        {
            if let Outcome::Ok(Response::Get { kv: Some(kv), .. }) = &mut read.outcome {
                kv.value = "never written".into();
            }
        }
        let started = std::time::Instant::now();
        let bad = all(&history);
        let broken = started.elapsed();
        let unwatched = History {
            watches: Vec::new(),
            ..generate(1, shape)
        };
        let started = std::time::Instant::now();
        let blind = all(&unwatched);
        let blind_time = started.elapsed();
        println!(
            "{operations} ops, {keys} keys, {clients} clients, {unknown} unknown: clean {:?}{} in {clean:?} ({} steps, {} unknown entries); one stale read: {:?} in {broken:?} ({} steps); without watches: {:?}{} in {blind_time:?} ({} steps)",
            report.kinds(),
            if report.inconclusive() { " inconclusive" } else { "" },
            report.search_steps,
            report.counts.search_unknown_entries,
            bad.kinds(),
            bad.search_steps,
            blind.kinds(),
            if blind.inconclusive() { " inconclusive" } else { "" },
            blind.search_steps
        );
    }
}
