//! A sequential model of the whole store, restricted to the keys the history uses, with the
//! store revision as part of the state (as etcd's robustness model has it): every change
//! bumps the revision by one, and every response's header revision must equal the model's
//! revision after the operation. Keys and values are interned so a state is small to copy
//! and hash during the search.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use crate::history::{History, KeyValue, Outcome, Request, Response};

/// A key's state in the model; the value is an index into [`Names::values`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Entry {
    pub value: u32,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

/// Every key and value of the history, so the model can work on small integers. Keys are
/// sorted, so iterating key indices lists keys in the order a range response has them.
#[derive(Debug, Default)]
pub(crate) struct Names {
    pub keys: Vec<String>,
    key_index: HashMap<String, usize>,
    pub values: Vec<String>,
    value_index: HashMap<String, u32>,
    /// Leases the model tracks: id -> index into `Store::lease_state`.
    pub lease_index: HashMap<i64, usize>,
    /// For each tracked lease, whether the history has an `Ok` grant for it (otherwise it
    /// was granted outside the history and is alive from the start).
    pub lease_granted_in_history: Vec<bool>,
}

impl Names {
    pub fn of(history: &History) -> Names {
        let mut keys = BTreeSet::new();
        let mut values = BTreeSet::new();
        let mut leases = BTreeSet::new();
        let mut granted = BTreeSet::new();
        let add_kv = |kv: &KeyValue, keys: &mut BTreeSet<String>, values: &mut BTreeSet<String>| {
            keys.insert(kv.key.clone());
            values.insert(kv.value.clone());
        };
        for op in &history.operations {
            match &op.request {
                Request::Get { key, .. } | Request::Delete { key } => {
                    keys.insert(key.clone());
                }
                Request::Put { key, value, lease } => {
                    keys.insert(key.clone());
                    values.insert(value.clone());
                    if *lease != 0 {
                        leases.insert(*lease);
                    }
                }
                Request::CompareAndSet { key, value, .. } => {
                    keys.insert(key.clone());
                    values.insert(value.clone());
                }
                Request::LeaseRevoke { id } => {
                    leases.insert(*id);
                }
                Request::List { .. } | Request::LeaseGrant { .. } | Request::Compact { .. } => {}
            }
            match &op.outcome {
                Outcome::Ok(Response::Get { kv: Some(kv), .. })
                | Outcome::Ok(Response::CompareAndSet { kv: Some(kv), .. }) => {
                    add_kv(kv, &mut keys, &mut values)
                }
                Outcome::Ok(Response::List { kvs, .. }) => {
                    for kv in kvs {
                        add_kv(kv, &mut keys, &mut values)
                    }
                }
                Outcome::Ok(Response::LeaseGrant { id, .. }) => {
                    leases.insert(*id);
                    granted.insert(*id);
                }
                _ => {}
            }
        }
        for lease in &history.leases {
            leases.insert(lease.id);
        }
        for session in &history.watches {
            for response in &session.responses {
                for event in &response.events {
                    add_kv(&event.kv, &mut keys, &mut values);
                    if let Some(prev) = &event.prev_kv {
                        add_kv(prev, &mut keys, &mut values);
                    }
                }
            }
        }
        let keys: Vec<String> = keys.into_iter().collect();
        let values: Vec<String> = values.into_iter().collect();
        let leases: Vec<i64> = leases.into_iter().collect();
        Names {
            key_index: keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), i))
                .collect(),
            value_index: values
                .iter()
                .enumerate()
                .map(|(i, v)| (v.clone(), i as u32))
                .collect(),
            lease_index: leases.iter().enumerate().map(|(i, l)| (*l, i)).collect(),
            lease_granted_in_history: leases.iter().map(|l| granted.contains(l)).collect(),
            keys,
            values,
        }
    }

    pub fn key(&self, key: &str) -> Option<usize> {
        self.key_index.get(key).copied()
    }

    pub fn value(&self, value: &str) -> Option<u32> {
        self.value_index.get(value).copied()
    }

    /// The key-value pair as the server would return it.
    pub fn key_value(&self, key: usize, entry: &Entry) -> KeyValue {
        KeyValue {
            key: self.keys[key].clone(),
            value: self.values[entry.value as usize].clone(),
            create_revision: entry.create_revision,
            mod_revision: entry.mod_revision,
            version: entry.version,
            lease: entry.lease,
        }
    }
}

/// A lease as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum LeaseState {
    NotYetGranted,
    Alive,
    Gone,
}

/// The whole store at one point of a linearization.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Store {
    pub revision: i64,
    pub entries: Vec<Option<Entry>>,
    pub lease_state: Vec<LeaseState>,
}

/// What a step does to the model, for operations whose outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Bumped the revision (the only effects an unknown operation is ever tried for).
    Changed,
    /// Left keys and revision as they were.
    Unchanged,
}

impl Store {
    pub fn initial(names: &Names, revision: i64) -> Store {
        Store {
            revision,
            entries: vec![None; names.keys.len()],
            lease_state: names
                .lease_granted_in_history
                .iter()
                .map(|granted| {
                    if *granted {
                        LeaseState::NotYetGranted
                    } else {
                        LeaseState::Alive
                    }
                })
                .collect(),
        }
    }

    pub fn fingerprint(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut hasher);
        hasher.finish()
    }

    fn lease_alive(&self, names: &Names, lease: i64) -> bool {
        lease == 0
            || names
                .lease_index
                .get(&lease)
                .is_none_or(|i| self.lease_state[*i] == LeaseState::Alive)
    }

    fn put(&mut self, key: usize, value: u32, lease: i64) {
        self.revision += 1;
        let previous = self.entries[key];
        self.entries[key] = Some(Entry {
            value,
            create_revision: previous.map_or(self.revision, |e| e.create_revision),
            mod_revision: self.revision,
            version: previous.map_or(1, |e| e.version + 1),
            lease,
        });
    }

    /// Deletes every key attached to `lease` in one revision and ends the lease; false when
    /// the lease was not alive (nothing changes then).
    fn end_lease(&mut self, names: &Names, lease: i64) -> bool {
        if !self.lease_alive(names, lease) {
            return false;
        }
        let mut deleted = false;
        for entry in self.entries.iter_mut() {
            if entry.is_some_and(|e| e.lease == lease) {
                *entry = None;
                deleted = true;
            }
        }
        if deleted {
            self.revision += 1;
        }
        if let Some(i) = names.lease_index.get(&lease) {
            self.lease_state[*i] = LeaseState::Gone;
        }
        true
    }

    /// The entries of keys starting with `prefix`, in key order.
    pub fn range<'a>(
        &'a self,
        names: &'a Names,
        prefix: &'a str,
    ) -> impl Iterator<Item = (usize, &'a Entry)> + 'a {
        self.entries.iter().enumerate().filter_map(move |(i, e)| {
            e.as_ref()
                .filter(|_| names.keys[i].starts_with(prefix))
                .map(|e| (i, e))
        })
    }
}

pub(crate) fn describe_kv(kv: &KeyValue) -> String {
    format!(
        "{:?}={:?} (create_revision {}, mod_revision {}, version {}, lease {})",
        kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease
    )
}

fn describe_opt(kv: &Option<KeyValue>) -> String {
    match kv {
        None => "nothing".to_string(),
        Some(kv) => describe_kv(kv),
    }
}

/// A model operation: the request, and the response when the outcome is known.
#[derive(Debug, Clone)]
pub(crate) enum Step<'h> {
    Request(&'h Request, Option<&'h Response>),
    /// A lease ending by TTL: an effect nobody asked for, with an unknown outcome.
    Expire(i64),
}

fn expect_revision(store: &Store, got: i64) -> Result<(), String> {
    if store.revision == got {
        Ok(())
    } else {
        Err(format!(
            "its response revision is {got} but the store's revision is {}",
            store.revision
        ))
    }
}

/// Applies `step` to `store`. For a known response, `Err` says why the response cannot be
/// the result of applying the request to this state; for an unknown outcome the step
/// always succeeds (a request that would fail leaves the store as it was).
pub(crate) fn apply(names: &Names, store: &mut Store, step: &Step) -> Result<Effect, String> {
    let before = store.revision;
    match step {
        Step::Expire(lease) => {
            store.end_lease(names, *lease);
        }
        Step::Request(request, response) => apply_request(names, store, request, *response)?,
    }
    Ok(if store.revision == before {
        Effect::Unchanged
    } else {
        Effect::Changed
    })
}

fn apply_request(
    names: &Names,
    store: &mut Store,
    request: &Request,
    response: Option<&Response>,
) -> Result<(), String> {
    match (request, response) {
        (Request::Get { key, revision, .. }, Some(Response::Get { revision: got, kv })) => {
            expect_revision(store, *got)?;
            if *revision > *got {
                return Err(format!(
                    "it read revision {revision}, after the store's {got}"
                ));
            }
            if *revision == 0 {
                let actual = names
                    .key(key)
                    .and_then(|k| store.entries[k].map(|e| names.key_value(k, &e)));
                if &actual != kv {
                    return Err(format!(
                        "it returned {} but the store has {}",
                        describe_opt(kv),
                        describe_opt(&actual)
                    ));
                }
            }
            Ok(())
        }
        (
            Request::List {
                prefix, revision, ..
            },
            Some(Response::List { revision: got, kvs }),
        ) => {
            expect_revision(store, *got)?;
            if *revision > *got {
                return Err(format!(
                    "it read revision {revision}, after the store's {got}"
                ));
            }
            if *revision == 0 {
                let actual: Vec<KeyValue> = store
                    .range(names, prefix)
                    .map(|(k, e)| names.key_value(k, e))
                    .collect();
                if &actual != kvs {
                    return Err(format!(
                        "it returned [{}] but the store has [{}]",
                        kvs.iter().map(describe_kv).collect::<Vec<_>>().join(", "),
                        actual
                            .iter()
                            .map(describe_kv)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            Ok(())
        }
        (Request::Put { key, value, lease }, response) => {
            let (Some(k), Some(v)) = (names.key(key), names.value(value)) else {
                return Err("the key or value is unknown to the model".to_string());
            };
            if !store.lease_alive(names, *lease) {
                return match response {
                    None => Ok(()),
                    Some(_) => Err(format!("it succeeded but lease {lease} is not alive")),
                };
            }
            store.put(k, v, *lease);
            match response {
                None => Ok(()),
                Some(Response::Put { revision }) => expect_revision(store, *revision),
                Some(other) => Err(format!("mismatched response {other:?}")),
            }
        }
        (Request::Delete { key }, response) => {
            let k = names
                .key(key)
                .ok_or_else(|| "the key is unknown to the model".to_string())?;
            let existed = store.entries[k].is_some();
            if existed {
                store.entries[k] = None;
                store.revision += 1;
            }
            match response {
                None => Ok(()),
                Some(Response::Delete { revision, deleted }) => {
                    if *deleted != i64::from(existed) {
                        return Err(format!(
                            "it deleted {deleted} keys but the key {}",
                            if existed { "existed" } else { "did not exist" }
                        ));
                    }
                    expect_revision(store, *revision)
                }
                Some(other) => Err(format!("mismatched response {other:?}")),
            }
        }
        (
            Request::CompareAndSet {
                key,
                expected_mod_revision,
                value,
            },
            response,
        ) => {
            let (Some(k), Some(v)) = (names.key(key), names.value(value)) else {
                return Err("the key or value is unknown to the model".to_string());
            };
            let current = store.entries[k];
            let matches = current.map_or(0, |e| e.mod_revision) == *expected_mod_revision;
            if matches {
                store.put(k, v, 0);
            }
            match response {
                None => Ok(()),
                Some(Response::CompareAndSet {
                    revision,
                    succeeded,
                    kv,
                }) => {
                    if *succeeded != matches {
                        return Err(format!(
                            "it {} but the store has {} (expected mod_revision {expected_mod_revision})",
                            if *succeeded { "succeeded" } else { "failed" },
                            describe_opt(&current.map(|e| names.key_value(k, &e)))
                        ));
                    }
                    if !matches {
                        let actual = current.map(|e| names.key_value(k, &e));
                        if &actual != kv {
                            return Err(format!(
                                "its failure branch read {} but the store has {}",
                                describe_opt(kv),
                                describe_opt(&actual)
                            ));
                        }
                    }
                    expect_revision(store, *revision)
                }
                Some(other) => Err(format!("mismatched response {other:?}")),
            }
        }
        (Request::LeaseGrant { .. }, Some(Response::LeaseGrant { revision, id })) => {
            if let Some(i) = names.lease_index.get(id) {
                if store.lease_state[*i] != LeaseState::NotYetGranted {
                    return Err(format!("lease {id} was granted before"));
                }
                store.lease_state[*i] = LeaseState::Alive;
            }
            expect_revision(store, *revision)
        }
        (Request::LeaseRevoke { id }, response) => {
            let was_alive = store.end_lease(names, *id);
            match response {
                None => Ok(()),
                Some(Response::LeaseRevoke { revision }) => {
                    if !was_alive {
                        return Err(format!("it succeeded but lease {id} is not alive"));
                    }
                    expect_revision(store, *revision)
                }
                Some(other) => Err(format!("mismatched response {other:?}")),
            }
        }
        // Failed grants, compactions and reads without a response leave the store alone.
        (Request::LeaseGrant { .. }, None)
        | (Request::Compact { .. }, _)
        | (Request::Get { .. }, None)
        | (Request::List { .. }, None) => Ok(()),
        (_, Some(other)) => Err(format!("mismatched response {other:?}")),
    }
}
