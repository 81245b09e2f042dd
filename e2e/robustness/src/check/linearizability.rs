//! Linearizability of the KV and lease history, by a Wing–Gong search with memoisation as
//! porcupine does it, hand-written because the model needs revisions in its state and
//! operations with unknown outcomes, and porcupine is Go.
//!
//! The search linearizes one operation at a time: any operation invoked before the earliest
//! return among those not yet linearized may come next. A state already seen (same set of
//! linearized operations, same store) is not explored twice. The model is the whole store
//! (revisions are global, so it is not partitioned per key); revisions pin most operations
//! to one place, which keeps the search close to linear on real histories.
//!
//! Unknown outcomes (a write that returned an error, a lease that may expire by TTL) may
//! take effect at any point after their call, or never: they have no return, and the
//! search ends as soon as every operation with a known outcome is linearized. Two sound
//! prunings keep them cheap: an unknown operation is only tried when it changes the
//! revision (one that changes nothing, or only ends a lease without keys, can only make
//! later acknowledged operations impossible, never possible), and never to create a revision
//! that an acknowledged write's response claims (exactly one operation creates each
//! revision).

use std::collections::{BTreeMap, HashSet};

use super::describe::describe_operation;
use super::model::{self, Names, Step, Store};
use crate::history::{EventKind, History, Outcome, Request, Response, Time};

/// Limits of the search.
#[derive(Debug, Clone)]
pub struct Options {
    /// Model steps tried before the search gives up as inconclusive.
    pub step_budget: u64,
    /// Time the search may take before it gives up as inconclusive (None: only the step
    /// budget limits it).
    pub time_budget: Option<std::time::Duration>,
    /// The store's revision before the run (a fresh cluster is at 1, with no keys).
    pub initial_revision: i64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            step_budget: 5_000_000,
            time_budget: Some(std::time::Duration::from_secs(120)),
            initial_revision: 1,
        }
    }
}

/// Where a search entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Index into `History::operations`.
    Operation(usize),
    /// A lease that may have expired by TTL.
    Expiry(i64),
}

pub(crate) struct Entry<'h> {
    pub source: Source,
    pub step: Step<'h>,
    call: Time,
    /// None: unknown outcome.
    ret: Option<Time>,
}

/// The search's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// Carries the explanation of the deepest point the search reached.
    NotLinearizable(String),
    Inconclusive,
}

/// One linearization found, replayed: the store at every revision, and which entry created
/// each revision.
pub(crate) struct Witness {
    pub stores: BTreeMap<i64, Store>,
    pub creators: BTreeMap<i64, Source>,
}

pub(crate) struct Search {
    pub verdict: Verdict,
    pub steps: u64,
    pub entries_checked: usize,
    pub unknown_entries: usize,
    pub witness: Option<Witness>,
}

/// Errors after which a write certainly did not happen (etcd refuses before or while
/// applying, with no effect).
///
/// `database space exceeded` is definite for Ballast, not for etcd: Ballast refuses a write
/// before proposing it when its volume or quota is short (server/src/server/quota.rs), and
/// while the NOSPACE alarm is raised its apply refuses puts, txns with puts and lease grants
/// before writing anything (server/src/apply); etcd's apply-time quota check
/// (`quotaApplierV3`) applies the put first and then reports the error, so against etcd this
/// entry would have to go.
fn definitely_failed(error: &str) -> bool {
    const DEFINITE: [&str; 4] = [
        "requested lease not found",
        "required revision has been compacted",
        "too many requests",
        "database space exceeded",
    ];
    DEFINITE.iter().any(|d| error.contains(d))
}

/// The history's operations as search entries (reads that failed and serializable reads
/// left out: the latter are checked against the witness).
pub(crate) fn entries<'h>(history: &'h History, names: &Names) -> Vec<Entry<'h>> {
    let mut entries = Vec::new();
    for (i, op) in history.operations.iter().enumerate() {
        let read = op.request.is_read();
        let serializable = op.request.is_serializable();
        match &op.outcome {
            Outcome::Ok(response) => {
                if serializable || matches!(op.request, Request::Compact { .. }) {
                    continue;
                }
                entries.push(Entry {
                    source: Source::Operation(i),
                    step: Step::Request(&op.request, Some(response)),
                    call: op.call,
                    ret: Some(op.ret),
                });
            }
            Outcome::Error(error) => {
                if read
                    || definitely_failed(error)
                    || matches!(
                        op.request,
                        Request::LeaseGrant { .. } | Request::Compact { .. }
                    )
                {
                    continue;
                }
                entries.push(Entry {
                    source: Source::Operation(i),
                    step: Step::Request(&op.request, None),
                    call: op.call,
                    ret: None,
                });
            }
        }
    }
    for (lease, from) in expiries(history) {
        if names.lease_index.contains_key(&lease) {
            entries.push(Entry {
                source: Source::Expiry(lease),
                step: Step::Expire(lease),
                call: from,
                ret: None,
            });
        }
    }
    entries
}

/// Every lease the run granted, with the earliest time it may expire: its TTL after the
/// grant was invoked (etcd only ever extends a lease, on leader changes, never shortens
/// it). From the run's lease records, and from acknowledged grants the records miss.
pub(crate) fn expiries(history: &History) -> BTreeMap<i64, Time> {
    let after = |granted: Time, ttl: i64| {
        granted.saturating_add((ttl.max(0) as u64).saturating_mul(1_000_000_000))
    };
    let mut expiries: BTreeMap<i64, Time> = history
        .leases
        .iter()
        .map(|l| (l.id, after(l.granted, l.ttl)))
        .collect();
    for op in &history.operations {
        if let (Request::LeaseGrant { ttl }, Outcome::Ok(Response::LeaseGrant { id, .. })) =
            (&op.request, &op.outcome)
        {
            expiries.entry(*id).or_insert_with(|| after(op.call, *ttl));
        }
    }
    expiries
}

/// The store revisions an acknowledged operation can be applied at, from its response's
/// revision (a change bumps the revision to the response's; anything else leaves it there).
fn possible_before(step: &Step) -> std::ops::RangeInclusive<i64> {
    let Step::Request(_, Some(response)) = step else {
        return i64::MIN..=i64::MAX;
    };
    match response {
        Response::Put { revision } => revision.saturating_sub(1)..=revision.saturating_sub(1),
        Response::Delete { revision, deleted } if *deleted > 0 => {
            revision.saturating_sub(1)..=revision.saturating_sub(1)
        }
        Response::CompareAndSet {
            revision,
            succeeded: true,
            ..
        } => revision.saturating_sub(1)..=revision.saturating_sub(1),
        // A revoke changes the revision when its lease has keys.
        Response::LeaseRevoke { revision } => revision.saturating_sub(1)..=*revision,
        Response::Get { revision, .. }
        | Response::List { revision, .. }
        | Response::Delete { revision, .. }
        | Response::CompareAndSet { revision, .. }
        | Response::LeaseGrant { revision, .. }
        | Response::Compact { revision } => *revision..=*revision,
    }
}

/// Revisions that acknowledged writes say they created.
fn claimed_revisions(entries: &[Entry]) -> HashSet<i64> {
    let mut claimed = HashSet::new();
    for entry in entries {
        if let Step::Request(_, Some(response)) = &entry.step {
            match response {
                Response::Put { revision } => {
                    claimed.insert(*revision);
                }
                Response::Delete { revision, deleted } if *deleted > 0 => {
                    claimed.insert(*revision);
                }
                Response::CompareAndSet {
                    revision,
                    succeeded: true,
                    ..
                } => {
                    claimed.insert(*revision);
                }
                _ => {}
            }
        }
    }
    claimed
}

/// The changes clients saw, per revision (watch events, and the key-values any response
/// carried, each naming the put that created its mod_revision): an operation with an
/// unknown outcome may only create a revision in a way that includes them, and the
/// linearization must reach the newest of them. Acknowledged operations must fit them
/// too: a lease revoke may or may not delete keys, and only what was observed tells.
struct Observed {
    /// Per revision: keys changed, with the key's new state (None: deleted).
    changes: BTreeMap<i64, Vec<(usize, Option<model::Entry>)>>,
}

impl Observed {
    fn of(history: &History, names: &Names) -> Observed {
        let mut observed = Observed {
            changes: BTreeMap::new(),
        };
        for op in &history.operations {
            match &op.outcome {
                Outcome::Ok(Response::Get { kv: Some(kv), .. })
                | Outcome::Ok(Response::CompareAndSet { kv: Some(kv), .. }) => {
                    observed.put(names, kv)
                }
                Outcome::Ok(Response::List { kvs, .. }) => {
                    kvs.iter().for_each(|kv| observed.put(names, kv))
                }
                _ => {}
            }
        }
        for event in history
            .watches
            .iter()
            .flat_map(|w| &w.responses)
            .flat_map(|r| &r.events)
        {
            if let Some(prev) = &event.prev_kv {
                observed.put(names, prev);
            }
            match event.kind {
                EventKind::Put => observed.put(names, &event.kv),
                EventKind::Delete => {
                    observed.add(names, event.kv.mod_revision, &event.kv.key, None)
                }
            }
        }
        observed
    }

    /// A key-value anything returned says which put created its mod_revision.
    fn put(&mut self, names: &Names, kv: &crate::history::KeyValue) {
        if let Some(value) = names.value(&kv.value) {
            let entry = model::Entry {
                value,
                create_revision: kv.create_revision,
                mod_revision: kv.mod_revision,
                version: kv.version,
                lease: kv.lease,
            };
            self.add(names, kv.mod_revision, &kv.key, Some(entry));
        }
    }

    fn add(&mut self, names: &Names, revision: i64, key: &str, entry: Option<model::Entry>) {
        let Some(key) = names.key(key) else {
            return;
        };
        let at = self.changes.entry(revision).or_default();
        if !at.contains(&(key, entry)) {
            at.push((key, entry));
        }
    }

    fn newest(&self) -> Option<i64> {
        self.changes.keys().next_back().copied()
    }

    /// Whether going from `before` to `after` (one revision) includes what watchers saw.
    fn fits(&self, before: &Store, after: &Store) -> bool {
        let Some(seen) = self.changes.get(&after.revision) else {
            return true;
        };
        seen.iter().all(|(key, expected)| match expected {
            Some(_) => after.entries[*key] == *expected,
            None => after.entries[*key].is_none() && before.entries[*key].is_some(),
        })
    }
}

struct Frame {
    candidates: Vec<usize>,
    next: usize,
    /// The entry this frame linearized, and the store before it.
    applied: Option<(usize, Store)>,
    call_lo: usize,
    ret_lo: usize,
}

struct Plan {
    /// Entries with a known outcome, by call time.
    by_call: Vec<usize>,
    /// The same, by return time.
    by_ret: Vec<usize>,
    /// Entries with an unknown outcome, by call time.
    unknown: Vec<usize>,
}

/// A well-mixed 64-bit value per entry, for hashing sets of entries by xor.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn set(bits: &mut [u64], i: usize, on: bool) {
    if on {
        bits[i / 64] |= 1 << (i % 64);
    } else {
        bits[i / 64] &= !(1 << (i % 64));
    }
}

fn get(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

/// The frame after the linearized set `bits`; None when every known entry is linearized
/// and the store has reached every revision watchers saw (`short` false).
fn frame(
    plan: &Plan,
    entries: &[Entry],
    bits: &[u64],
    (call_lo, ret_lo): (usize, usize),
    revision: i64,
    short: bool,
) -> Option<Frame> {
    let mut ret_lo = ret_lo;
    while ret_lo < plan.by_ret.len() && get(bits, plan.by_ret[ret_lo]) {
        ret_lo += 1;
    }
    let deadline = match plan.by_ret.get(ret_lo) {
        Some(e) => entries[*e].ret.unwrap_or(Time::MAX),
        None if short => Time::MAX,
        None => return None,
    };
    let mut call_lo = call_lo;
    while call_lo < plan.by_call.len() && get(bits, plan.by_call[call_lo]) {
        call_lo += 1;
    }
    let mut candidates: Vec<usize> = plan.by_call[call_lo..]
        .iter()
        .take_while(|e| entries[**e].call <= deadline)
        .filter(|e| !get(bits, **e))
        .copied()
        .collect();
    // Revisions never go down: an operation that must come at a revision already passed
    // makes this whole branch impossible.
    if candidates
        .iter()
        .any(|e| *possible_before(&entries[*e].step).end() < revision)
    {
        return Some(Frame {
            next: candidates.len(),
            candidates,
            applied: None,
            call_lo,
            ret_lo,
        });
    }
    candidates.extend(
        plan.unknown
            .iter()
            .take_while(|e| entries[**e].call <= deadline)
            .filter(|e| !get(bits, **e)),
    );
    Some(Frame {
        candidates,
        next: 0,
        applied: None,
        call_lo,
        ret_lo,
    })
}

pub(crate) fn search<'h>(
    history: &'h History,
    names: &Names,
    entries: &[Entry<'h>],
    options: &Options,
) -> Search {
    let claimed = claimed_revisions(entries);
    let observed = Observed::of(history, names);
    let target = observed.newest().unwrap_or(options.initial_revision);
    let mut by_call: Vec<usize> = (0..entries.len())
        .filter(|e| entries[*e].ret.is_some())
        .collect();
    by_call.sort_by_key(|e| entries[*e].call);
    let mut by_ret = by_call.clone();
    by_ret.sort_by_key(|e| entries[*e].ret);
    let mut unknown: Vec<usize> = (0..entries.len())
        .filter(|e| entries[*e].ret.is_none())
        .collect();
    unknown.sort_by_key(|e| entries[*e].call);
    let plan = Plan {
        by_call,
        by_ret,
        unknown,
    };
    let unknown_entries = plan.unknown.len();
    let known = plan.by_call.len();
    let initial = Store::initial(names, options.initial_revision);
    let mut store = initial.clone();
    let mut bits = vec![0u64; entries.len().div_ceil(64)];
    // States seen: (hash of the linearized set, hash of the store). Hashes rather than the
    // sets themselves keep memory at 16 bytes a state; a collision (odds about
    // states²/2¹²⁸) would prune one branch.
    let mut memo: HashSet<(u64, u64)> = HashSet::new();
    let zobrist: Vec<u64> = (0..entries.len() as u64).map(splitmix64).collect();
    let mut bits_hash = 0u64;
    let started = std::time::Instant::now();
    let mut steps = 0u64;
    let mut known_done = 0usize;
    let mut deepest: (usize, Store, Vec<usize>) = (0, store.clone(), Vec::new());
    let mut frames: Vec<Frame> = Vec::new();
    let result = |verdict, steps, witness| Search {
        verdict,
        steps,
        entries_checked: entries.len(),
        unknown_entries,
        witness,
    };
    match frame(
        &plan,
        entries,
        &bits,
        (0, 0),
        store.revision,
        store.revision < target,
    ) {
        None => {
            let witness = replay(names, entries, &initial, &[]);
            return result(Verdict::Linearizable, 0, Some(witness));
        }
        Some(root) => {
            deepest.2 = root.candidates.clone();
            frames.push(root);
        }
    }
    while let Some(top) = frames.last_mut() {
        if let Some((e, before)) = top.applied.take() {
            set(&mut bits, e, false);
            bits_hash ^= zobrist[e];
            if entries[e].ret.is_some() {
                known_done -= 1;
            }
            store = before;
        }
        let mut descended = false;
        while top.next < top.candidates.len() {
            let e = top.candidates[top.next];
            top.next += 1;
            // Cheap filters first: an unknown operation is only useful to create an
            // unclaimed revision, and an acknowledged one only fits at the revisions its
            // response allows.
            let fits_revision = match entries[e].ret {
                None => !claimed.contains(&(store.revision + 1)),
                Some(_) => possible_before(&entries[e].step).contains(&store.revision),
            };
            if !fits_revision {
                continue;
            }
            steps += 1;
            let out_of_time = steps.is_multiple_of(1024)
                && options
                    .time_budget
                    .is_some_and(|budget| started.elapsed() > budget);
            if steps > options.step_budget || out_of_time {
                return result(Verdict::Inconclusive, steps, None);
            }
            let mut next = store.clone();
            let Ok(effect) = model::apply(names, &mut next, &entries[e].step) else {
                continue;
            };
            if entries[e].ret.is_none()
                && (effect == model::Effect::Unchanged || claimed.contains(&next.revision))
            {
                continue;
            }
            if effect == model::Effect::Changed && !observed.fits(&store, &next) {
                continue;
            }
            if !memo.insert((bits_hash ^ zobrist[e], next.fingerprint())) {
                continue;
            }
            set(&mut bits, e, true);
            bits_hash ^= zobrist[e];
            if entries[e].ret.is_some() {
                known_done += 1;
            }
            top.applied = Some((e, std::mem::replace(&mut store, next)));
            descended = true;
            break;
        }
        if !descended {
            frames.pop();
            continue;
        }
        let (call_lo, ret_lo) = (top.call_lo, top.ret_lo);
        match frame(
            &plan,
            entries,
            &bits,
            (call_lo, ret_lo),
            store.revision,
            store.revision < target,
        ) {
            None => {
                let order: Vec<usize> = frames
                    .iter()
                    .filter_map(|f| f.applied.as_ref().map(|a| a.0))
                    .collect();
                let witness = replay(names, entries, &initial, &order);
                return result(Verdict::Linearizable, steps, Some(witness));
            }
            Some(child) => {
                if known_done > deepest.0 {
                    deepest = (known_done, store.clone(), child.candidates.clone());
                }
                frames.push(child);
            }
        }
    }
    let explanation = explain(
        history,
        names,
        entries,
        known,
        &deepest,
        (target, &observed),
    );
    result(Verdict::NotLinearizable(explanation), steps, None)
}

/// Why the search got stuck at its deepest point: what each operation that could come next
/// disagrees with.
fn explain(
    history: &History,
    names: &Names,
    entries: &[Entry],
    known: usize,
    deepest: &(usize, Store, Vec<usize>),
    (target, observed): (i64, &Observed),
) -> String {
    let (done, store, candidates) = deepest;
    let mut text = format!(
        "no linearization exists: at most {done} of {known} acknowledged operations can be put in an order the store explains (store at revision {}); then none of the operations that may come next fits:",
        store.revision
    );
    if *done == known && store.revision < target {
        text.push_str(&format!(
            "\n    watchers saw changes up to revision {target}, but no operation that may have taken effect explains those after revision {}",
            store.revision
        ));
    }
    for e in candidates {
        let entry = &entries[*e];
        if entry.ret.is_none() {
            continue;
        }
        let mut after = store.clone();
        let why = match model::apply(names, &mut after, &entry.step) {
            Err(why) => why,
            Ok(model::Effect::Changed) if !observed.fits(store, &after) => format!(
                "its change at revision {} is not what watch events or read key-values show for that revision",
                after.revision
            ),
            Ok(_) => "it fits here, but nothing fits after it".to_string(),
        };
        let what = match entry.source {
            Source::Operation(i) => describe_operation(i, &history.operations[i]),
            Source::Expiry(lease) => format!("expiry of lease {lease}"),
        };
        text.push_str(&format!("\n    {what}: {why}"));
    }
    text
}

fn replay(names: &Names, entries: &[Entry], initial: &Store, order: &[usize]) -> Witness {
    let mut store = initial.clone();
    let mut stores = BTreeMap::new();
    let mut creators = BTreeMap::new();
    stores.insert(store.revision, store.clone());
    for e in order {
        let before = store.revision;
        // The order was found by applying these same steps, so they apply again.
        let _ = model::apply(names, &mut store, &entries[*e].step);
        if store.revision != before {
            stores.insert(store.revision, store.clone());
            creators.insert(store.revision, entries[*e].source);
        }
    }
    Witness { stores, creators }
}
