//! The MVCC store: reads at any retained revision, and the write batch the
//! apply thread uses to turn Raft entries into new revisions.

use std::sync::Arc;

use ballast_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use ballast_proto::etcdserverpb::{RangeRequest, RangeResponse, ResponseHeader};
use ballast_proto::mvccpb::{event::EventType, Event, KeyValue};
use parking_lot::RwLock;
use prost::Message;
use redb::{ReadableTable, WriteTransaction};

use super::backend::{self, meta, Backend, KV, META};
use super::compaction::{self, PendingCompaction};
use super::index::KeyIndex;
use super::revision_key::RevisionKey;
use super::Revision;
use crate::error::{Error, EtcdError, Result};

/// What readers may see: the index and the newest revision whose backend
/// commit has finished.
struct State {
    index: KeyIndex,
    /// Newest revision committed to the backend; reads default to it.
    current: i64,
    compacted: i64,
    /// The compaction whose revisions are still being deleted, if any.
    compaction: Option<PendingCompaction>,
}

pub struct KvStore {
    backend: Arc<Backend>,
    state: RwLock<State>,
    /// The newest compaction whose deletions are all done.
    compaction_finished: tokio::sync::watch::Sender<i64>,
    /// Revisions deleted per compaction step (`--experimental-compaction-batch-limit`).
    pub(super) compaction_step_deletes: std::sync::atomic::AtomicUsize,
}

/// A key that carries a lease when the store is loaded, so the lessor can
/// rebuild its key sets.
pub struct LeasedKey {
    pub key: Vec<u8>,
    pub lease: i64,
}

impl KvStore {
    /// Loads the index from the backend.
    pub fn open(backend: Arc<Backend>) -> Result<(KvStore, Vec<LeasedKey>)> {
        let txn = backend.read()?;
        let kv = txn.open_table(KV)?;
        let meta_t = txn.open_table(META)?;
        let mut index = KeyIndex::default();
        let mut leases = std::collections::BTreeMap::<Vec<u8>, i64>::new();
        let mut last = 0i64;
        for item in kv.iter()? {
            let (k, v) = item?;
            let (rev, tombstone) = Revision::from_key(k.value())
                .ok_or_else(|| Error::Corrupt("malformed revision key in the kv table".into()))?;
            let kv = KeyValue::decode(v.value()).map_err(|e| {
                Error::Corrupt(format!("undecodable value at revision {}: {e}", rev.main))
            })?;
            if tombstone {
                index.tombstone(&kv.key, rev);
                leases.remove(&kv.key);
            } else {
                index.put(&kv.key, rev);
                if kv.lease != 0 {
                    leases.insert(kv.key, kv.lease);
                } else {
                    leases.remove(&kv.key);
                }
            }
            last = rev.main;
        }
        let current = last
            .max(backend::get_u64(&meta_t, meta::CURRENT_REV)? as i64)
            .max(1);
        let compacted = backend::get_u64(&meta_t, meta::COMPACT_REV)? as i64;
        // A compaction whose deletions were cut short: its revisions are back in the index,
        // and the steps resume from the start.
        let (compaction, finished) = match compaction::finished_while_pending(&meta_t)? {
            Some(finished) => {
                let keep = index.compact(compacted).into_iter().collect();
                (Some(PendingCompaction::new(compacted, keep)), finished)
            }
            None => (None, compacted),
        };
        let leased = leases
            .into_iter()
            .map(|(key, lease)| LeasedKey { key, lease })
            .collect();
        drop((kv, meta_t, txn));
        let state = State {
            index,
            current,
            compacted,
            compaction,
        };
        Ok((
            KvStore {
                backend,
                state: RwLock::new(state),
                compaction_finished: tokio::sync::watch::Sender::new(finished),
                compaction_step_deletes: compaction::STEP_DELETES.into(),
            },
            leased,
        ))
    }

    /// Rebuilds the index from the backend after it was replaced (a Raft
    /// snapshot); returns the leased keys as `open` does.
    pub fn reload(&self) -> Result<Vec<LeasedKey>> {
        let (fresh, leased) = KvStore::open(self.backend.clone())?;
        let finished = *fresh.compaction_finished.borrow();
        let state = fresh.state.into_inner();
        *self.state.write() = state;
        self.compaction_finished.send_replace(finished);
        Ok(leased)
    }

    /// The compaction whose revisions are still being deleted, if any.
    pub fn pending_compaction(&self) -> Option<PendingCompaction> {
        self.state.read().compaction.clone()
    }

    /// Records a committed step of the compaction to `rev`: where the next starts, or
    /// (`None`) that it is done.
    pub(super) fn advance_compaction(&self, rev: i64, deleted: usize, resume: Option<Vec<u8>>) {
        let mut st = self.state.write();
        let Some(job) = st.compaction.as_mut().filter(|j| j.rev == rev) else {
            return;
        };
        match resume {
            Some(k) => job.advance(k, deleted),
            None => {
                st.compaction = None;
                drop(st);
                self.compaction_finished.send_replace(rev);
            }
        }
    }

    /// The newest compaction whose deletions are all done, and its changes.
    pub fn compaction_finished(&self) -> tokio::sync::watch::Receiver<i64> {
        self.compaction_finished.subscribe()
    }

    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    pub fn current_revision(&self) -> i64 {
        self.state.read().current
    }

    pub fn compact_revision(&self) -> i64 {
        self.state.read().compacted
    }

    pub fn live_keys(&self) -> usize {
        self.state.read().index.live_keys()
    }

    /// Checks that `rev` (0 = current) can be read; returns the revision to read at.
    fn resolve_rev(state: &State, rev: i64) -> Result<i64, EtcdError> {
        if rev <= 0 {
            return Ok(state.current);
        }
        if rev > state.current {
            return Err(EtcdError::FutureRev);
        }
        if rev < state.compacted {
            return Err(EtcdError::Compacted);
        }
        Ok(rev)
    }

    /// A consistent view for reading at one revision.
    pub fn view(&self, rev: i64) -> Result<ReadView<'_>> {
        let state = self.state.read();
        let rev = Self::resolve_rev(&state, rev)?;
        // Begin the backend read under the lock: everything the index shows at
        // `rev` is committed by then.
        let txn = self.backend.read()?;
        Ok(ReadView { state, txn, rev })
    }

    /// Runs a Range request against committed data.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        let view = self.view(req.revision)?;
        let table = view.txn.open_table(KV)?;
        let fetch = |rev: Revision| read_kv(&table, rev);
        let mut resp = range_with(&view.state.index, view.rev, req, fetch)?;
        // etcd reports the current revision, also for reads of older ones.
        resp.header = Some(ResponseHeader {
            revision: view.state.current,
            ..Default::default()
        });
        Ok(resp)
    }
}

/// Decodes the value written at `rev`.
fn read_kv(
    table: &impl ReadableTable<RevisionKey, &'static [u8]>,
    rev: Revision,
) -> Result<KeyValue> {
    let v = table
        .get(rev.to_key(false).as_slice())?
        .ok_or_else(|| Error::Corrupt(format!("index points at missing revision {}", rev.main)))?;
    KeyValue::decode(v.value()).map_err(|e| Error::Corrupt(format!("revision {}: {e}", rev.main)))
}

/// etcd's Range semantics over an index and a way to fetch values: `count` is
/// every key in range, filters and sorting come after the fetch, `more` says
/// the limit cut the result.
fn range_with(
    index: &KeyIndex,
    rev: i64,
    req: &RangeRequest,
    fetch: impl Fn(Revision) -> Result<KeyValue>,
) -> Result<RangeResponse> {
    let mut resp = RangeResponse::default();
    if req.count_only {
        resp.count = index.count(&req.key, &req.range_end, rev) as i64;
        return Ok(resp);
    }
    let requested = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
    let target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
    let filtered = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    // etcd fetches everything only for an explicit order or a filter; with
    // no order, the limit applies in key order first.
    let needs_all = filtered || requested != SortOrder::None;
    // ...and then sorts a non-key target ascending.
    let order = if requested == SortOrder::None && target != SortTarget::Key {
        SortOrder::Ascend
    } else {
        requested
    };

    let mut count = 0usize;
    let mut kvs = Vec::new();
    // Fetch one beyond the limit to know whether there is more.
    let fetch_limit = if req.limit > 0 && !needs_all {
        req.limit as usize + 1
    } else {
        usize::MAX
    };
    for (_, r) in index.range_iter(&req.key, &req.range_end, rev) {
        count += 1;
        if kvs.len() < fetch_limit {
            kvs.push(fetch(r)?);
        }
    }
    if filtered {
        kvs.retain(|kv: &KeyValue| {
            (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
                && (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
                && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
                && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
        });
    }
    if order != SortOrder::None {
        let key_of = |kv: &KeyValue| -> (i64, Vec<u8>) {
            match target {
                SortTarget::Key => (0, kv.key.clone()),
                SortTarget::Version => (kv.version, Vec::new()),
                SortTarget::Create => (kv.create_revision, Vec::new()),
                SortTarget::Mod => (kv.mod_revision, Vec::new()),
                SortTarget::Value => (0, kv.value.clone()),
            }
        };
        // Stable in both directions: ties keep key order, as etcd's sort does
        // for the result sizes clients see.
        if order == SortOrder::Descend {
            kvs.sort_by_cached_key(|kv| std::cmp::Reverse(key_of(kv)));
        } else if target != SortTarget::Key {
            kvs.sort_by_cached_key(key_of);
        }
    }
    if req.limit > 0 && kvs.len() > req.limit as usize {
        kvs.truncate(req.limit as usize);
        resp.more = true;
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    resp.count = count as i64;
    resp.kvs = kvs;
    Ok(resp)
}

/// Committed state at one revision.
pub struct ReadView<'a> {
    state: parking_lot::RwLockReadGuard<'a, State>,
    txn: redb::ReadTransaction,
    pub rev: i64,
}

impl ReadView<'_> {
    pub fn compacted(&self) -> i64 {
        self.state.compacted
    }

    /// Hands the backend transaction out for a longer scan and releases the index lock.
    pub fn into_txn(self) -> (redb::ReadTransaction, i64) {
        (self.txn, self.rev)
    }
}

/// The backend transaction of one apply batch. It outlives the [`WriteBatch`] made from
/// it, so that the batch can keep the `kv` table open for all its requests: redb charges
/// a lookup in its table tree for every open and a write back for every close.
pub struct BatchTxn<'s> {
    store: &'s KvStore,
    txn: WriteTransaction,
}

/// What [`WriteBatch::finish`] hands to [`BatchTxn::commit`].
pub struct FinishedBatch {
    written: i64,
    events: Vec<Event>,
}

/// One apply batch: every change of the batch goes into its [`BatchTxn`]; readers see
/// none of it until `BatchTxn::commit` publishes the new revision after the commit.
pub struct WriteBatch<'t> {
    store: &'t KvStore,
    txn: &'t WriteTransaction,
    kv: redb::Table<'t, RevisionKey, &'static [u8]>,
    /// Reused to encode each value written.
    scratch: Vec<u8>,
    /// Newest revision written so far, committed or not.
    written: i64,
    /// Revision of the request being applied, and the next sub-revision in it.
    pending: Option<(i64, i64)>,
    pub events: Vec<Event>,
    /// (key, lease it had, lease it has now) for the lessor.
    pub lease_moves: Vec<(Vec<u8>, i64, i64)>,
}

impl KvStore {
    pub fn begin_batch(&self, durable: bool) -> Result<BatchTxn<'_>> {
        Ok(BatchTxn {
            store: self,
            txn: self.backend.write(durable)?,
        })
    }
}

impl BatchTxn<'_> {
    pub fn batch(&self) -> Result<WriteBatch<'_>> {
        Ok(WriteBatch {
            store: self.store,
            txn: &self.txn,
            kv: self.txn.open_table(KV)?,
            scratch: Vec::new(),
            written: self.store.state.read().current,
            pending: None,
            events: Vec::new(),
            lease_moves: Vec::new(),
        })
    }

    /// Commits the batch and makes its revisions visible to readers. Returns
    /// the newest revision and the events to hand to watchers.
    pub fn commit(self, finished: FinishedBatch) -> Result<(i64, Vec<Event>)> {
        self.txn.commit()?;
        self.store.state.write().current = finished.written;
        Ok((finished.written, finished.events))
    }
}

impl<'t> WriteBatch<'t> {
    /// The revision a read inside the current request sees: its own writes included.
    pub fn read_rev(&self) -> i64 {
        self.pending.map_or(self.written, |(main, _)| main)
    }

    /// The newest revision, including this batch's requests.
    pub fn revision(&self) -> i64 {
        self.written
    }

    pub fn compacted(&self) -> i64 {
        self.store.state.read().compacted
    }

    pub fn txn(&self) -> &'t WriteTransaction {
        self.txn
    }

    /// The live value of `key` as this batch sees it.
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        let found = self.store.state.read().index.get(key, self.read_rev());
        match found {
            Some(f) => Ok(Some(read_kv(&self.kv, f.modified)?)),
            None => Ok(None),
        }
    }

    /// A Range inside the batch (txn reads), seeing the batch's own writes.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        let state = self.store.state.read();
        let rev = if req.revision > 0 {
            if req.revision > self.read_rev() {
                return Err(EtcdError::FutureRev.into());
            }
            if req.revision < state.compacted {
                return Err(EtcdError::Compacted.into());
            }
            req.revision
        } else {
            self.read_rev()
        };
        range_with(&state.index, rev, req, |r| read_kv(&self.kv, r))
    }

    /// Keys alive now in the range, with their values.
    pub fn live_in(&self, key: &[u8], end: &[u8]) -> Result<Vec<KeyValue>> {
        let revs = self
            .store
            .state
            .read()
            .index
            .range(key, end, self.read_rev());
        revs.into_iter()
            .map(|(_, r)| read_kv(&self.kv, r))
            .collect()
    }

    fn next_rev(&mut self) -> Revision {
        let (main, sub) = self.pending.get_or_insert((self.written + 1, 0));
        let rev = Revision::new(*main, *sub);
        *sub += 1;
        rev
    }

    /// Ends one client request: its changes, if any, share one revision.
    pub fn end_request(&mut self) {
        if let Some((main, _)) = self.pending.take() {
            self.written = main;
        }
    }

    /// Stores `kv` under its revision, encoding it into a buffer the batch reuses.
    fn write_kv(&mut self, rev: Revision, tombstone: bool, kv: &KeyValue) -> Result<()> {
        self.scratch.clear();
        kv.encode(&mut self.scratch)
            .map_err(|e| Error::Other(format!("encoding revision {}: {e}", rev.main)))?;
        self.kv
            .insert(rev.to_key(tombstone).as_slice(), self.scratch.as_slice())?;
        Ok(())
    }

    /// Writes a new value; `prev` is the key's live value (from `get`).
    pub fn put(
        &mut self,
        key: &[u8],
        value: Vec<u8>,
        lease: i64,
        prev: Option<KeyValue>,
    ) -> Result<()> {
        let rev = self.next_rev();
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision: prev.as_ref().map_or(rev.main, |p| p.create_revision),
            mod_revision: rev.main,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value,
            lease,
        };
        self.write_kv(rev, false, &kv)?;
        self.store.state.write().index.put(key, rev);
        let old_lease = prev.as_ref().map_or(0, |p| p.lease);
        if old_lease != lease {
            self.lease_moves.push((key.to_vec(), old_lease, lease));
        }
        self.events.push(Event {
            r#type: EventType::Put as i32,
            kv: Some(kv),
            prev_kv: prev,
        });
        Ok(())
    }

    /// Deletes live keys; returns how many and their previous values.
    pub fn delete_range(&mut self, key: &[u8], end: &[u8]) -> Result<Vec<KeyValue>> {
        let prevs = self.live_in(key, end)?;
        for prev in &prevs {
            let rev = self.next_rev();
            let tomb = KeyValue {
                key: prev.key.clone(),
                mod_revision: rev.main,
                ..Default::default()
            };
            self.write_kv(rev, true, &tomb)?;
            self.store.state.write().index.tombstone(&prev.key, rev);
            if prev.lease != 0 {
                self.lease_moves.push((prev.key.clone(), prev.lease, 0));
            }
            self.events.push(Event {
                r#type: EventType::Delete as i32,
                kv: Some(tomb),
                prev_kv: Some(prev.clone()),
            });
        }
        Ok(prevs)
    }

    /// Compaction: history at or below `rev` that no read at `rev` or later can reach leaves
    /// the index now, and the backend in the steps of [`super::compaction`] that follow.
    pub fn compact(&mut self, rev: i64) -> Result<(), Error> {
        let previous = self.compacted();
        if rev <= previous {
            return Err(EtcdError::Compacted.into());
        }
        if rev > self.written {
            return Err(EtcdError::FutureRev.into());
        }
        let mut m = self.txn.open_table(META)?;
        compaction::mark_begun(&mut m, previous)?;
        backend::put_u64(&mut m, meta::COMPACT_REV, rev as u64)?;
        let mut st = self.store.state.write();
        st.compacted = rev;
        let keep = st.index.compact(rev).into_iter().collect();
        // A compaction still pending is superseded: this one drops all it would have.
        st.compaction = Some(PendingCompaction::new(rev, keep));
        Ok(())
    }

    /// Records how far the batch goes and closes its tables; [`BatchTxn::commit`] follows.
    pub fn finish(mut self, applied_index: u64, applied_term: u64) -> Result<FinishedBatch> {
        self.end_request();
        let mut m = self.txn.open_table(META)?;
        backend::put_u64(&mut m, meta::APPLIED_INDEX, applied_index)?;
        backend::put_u64(&mut m, meta::APPLIED_TERM, applied_term)?;
        backend::put_u64(&mut m, meta::CURRENT_REV, self.written as u64)?;
        Ok(FinishedBatch {
            written: self.written,
            events: self.events,
        })
    }
}

impl KvStore {
    /// Committed events from revision `from` on, at most about `max_events`
    /// (a revision is never split). Returns them with the last revision they cover.
    pub fn history(&self, from: i64, max_events: usize) -> Result<(Vec<Event>, i64)> {
        let (txn, current) = self.view(0)?.into_txn();
        let table = txn.open_table(KV)?;
        let lower = Revision::new(from, 0).lower_bound_key();
        let upper = Revision::new(current + 1, 0).lower_bound_key();
        let mut events = Vec::new();
        let mut upto = current;
        for item in table.range::<&[u8]>(lower.as_slice()..upper.as_slice())? {
            let (k, v) = item?;
            let Some((rev, tombstone)) = Revision::from_key(k.value()) else {
                continue;
            };
            if events.len() >= max_events && rev.main > upto_of(&events) {
                upto = upto_of(&events);
                break;
            }
            let kv = KeyValue::decode(v.value())
                .map_err(|e| Error::Corrupt(format!("revision {}: {e}", rev.main)))?;
            let r#type = if tombstone {
                EventType::Delete
            } else {
                EventType::Put
            } as i32;
            events.push(Event {
                r#type,
                kv: Some(kv),
                prev_kv: None,
            });
        }
        Ok((events, upto))
    }

    /// The value `key` had just before revision `rev` (for prev_kv on replayed events).
    pub fn value_before(&self, key: &[u8], rev: i64) -> Result<Option<KeyValue>> {
        let state = self.state.read();
        if rev - 1 < state.compacted {
            return Ok(None);
        }
        let Some(found) = state.index.get(key, rev - 1) else {
            return Ok(None);
        };
        let txn = self.backend.read()?;
        drop(state);
        Ok(Some(read_kv(&txn.open_table(KV)?, found.modified)?))
    }
}

fn upto_of(events: &[Event]) -> i64 {
    events
        .last()
        .and_then(|e| e.kv.as_ref())
        .map_or(0, |kv| kv.mod_revision)
}

/// A checksum of the key space up to a revision, comparable across members.
pub struct KvHash {
    pub hash: u32,
    pub revision: i64,
    pub compacted: i64,
}

impl KvStore {
    /// CRC-32 over every revision key and value at or below `rev` (0 =
    /// current). Members that applied the same log give the same hash.
    pub fn hash_kv(&self, rev: i64) -> Result<KvHash> {
        let view = self.view(rev)?;
        let compacted = view.compacted();
        // Revisions a pending compaction has yet to delete are as good as gone.
        let pending = view.state.compaction.clone();
        let (txn, rev) = view.into_txn();
        let table = txn.open_table(KV)?;
        let upper = Revision::new(rev + 1, 0).lower_bound_key();
        let mut h = crc32fast::Hasher::new();
        for item in table.range::<&[u8]>(..upper.as_slice())? {
            let (k, v) = item?;
            let dropped = pending.as_ref().is_some_and(|job| {
                Revision::from_key(k.value()).is_some_and(|(r, _)| job.drops(r))
            });
            if !dropped {
                h.update(k.value());
                h.update(v.value());
            }
        }
        // etcd reports -1 for a store that was never compacted.
        let compacted = if compacted == 0 { -1 } else { compacted };
        Ok(KvHash {
            hash: h.finalize(),
            revision: rev,
            compacted,
        })
    }
}
