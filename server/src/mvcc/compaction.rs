//! Physical compaction: deleting the history a compaction made unreachable, a step at a time.
//!
//! A Compact request takes effect at once in the index (reads below the revision answer
//! "compacted"), but the revisions it frees are deleted from the backend in steps of
//! [`STEP_DELETES`] between apply batches, as etcd deletes them in batches between its
//! commits. Deleting them in the request's own batch stalled every write behind it: 0.70 s for
//! 200 k revisions on a 3-member cluster, where etcd 3.6's slowest put stayed at 16 ms.
//!
//! The META table holds [`meta::COMPACT_FINISHED`] while steps remain: the revision of the
//! last compaction whose deletions were all done. A member that stops (or crashes) with steps
//! left resumes them when it opens the store again, and a snapshot exported meanwhile tells
//! etcd to finish the compaction itself (its finished and scheduled revisions differ).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use redb::{ReadableTable, Table};

use super::backend::{self, meta, KV, META};
use super::revision_key::RevisionKey;
use super::store::KvStore;
use super::Revision;
use crate::error::Result;

/// Revisions deleted per step unless `--experimental-compaction-batch-limit` says otherwise
/// (etcd's default too): about a millisecond of the apply thread.
pub const STEP_DELETES: usize = 1000;
/// Revisions looked at per step, deleted or not, per revision it may delete: a step over
/// history that is mostly kept stays short too.
const SCANNED_PER_DELETE: usize = 8;

/// A compaction whose unreachable revisions are not all deleted yet.
#[derive(Clone, Debug)]
pub struct PendingCompaction {
    /// The compaction revision.
    pub rev: i64,
    /// Revisions below `rev` that stay readable; every other one below it goes (see
    /// [`PendingCompaction::drops`] for `rev` itself).
    pub keep: Arc<HashSet<Revision>>,
    /// The revision key to resume from: everything before it is done.
    pub resume: Vec<u8>,
    /// For the log line at the end, as etcd's.
    started: Instant,
    deleted: usize,
}

impl PendingCompaction {
    pub fn new(rev: i64, keep: HashSet<Revision>) -> Self {
        PendingCompaction {
            rev,
            keep: Arc::new(keep),
            resume: Vec::new(),
            started: Instant::now(),
            deleted: 0,
        }
    }

    pub(super) fn advance(&mut self, resume: Vec<u8>, deleted: usize) {
        self.resume = resume;
        self.deleted += deleted;
    }

    /// Whether the revision is one this compaction deletes (deleted already or not).
    ///
    /// Everything written at the compaction revision itself stays: it is the newest of its
    /// key there, or a delete made there, whose tombstone etcd keeps until the next
    /// compaction. `keep` alone cannot say so for such a tombstone once the key's older
    /// revisions are deleted and the index is built again (a restart or a snapshot in the
    /// middle of the steps): the index then has no history for the key at all.
    pub fn drops(&self, rev: Revision) -> bool {
        rev.main < self.rev && !self.keep.contains(&rev)
    }
}

/// Deletes the next step's unreachable revisions from `kv`. Returns how many, their bytes, and
/// where the next step starts or `None` when the compaction is done.
fn delete_step(
    kv: &mut Table<'_, RevisionKey, &'static [u8]>,
    job: &PendingCompaction,
    limit: usize,
) -> Result<(usize, u64, Option<Vec<u8>>)> {
    let upper = Revision::new(job.rev + 1, 0).lower_bound_key();
    let mut doomed = Vec::new();
    let mut freed = 0;
    let mut resume = None;
    for (scanned, item) in kv
        .range::<&[u8]>(job.resume.as_slice()..upper.as_slice())?
        .enumerate()
    {
        let (k, v) = item?;
        if doomed.len() >= limit || scanned >= limit.saturating_mul(SCANNED_PER_DELETE) {
            resume = Some(k.value().to_vec());
            break;
        }
        if Revision::from_key(k.value()).is_some_and(|(r, _)| job.drops(r)) {
            freed += (k.value().len() + v.value().len()) as u64;
            doomed.push(k.value().to_vec());
        }
    }
    for k in &doomed {
        kv.remove(k.as_slice())?;
    }
    Ok((doomed.len(), freed, resume))
}

impl KvStore {
    /// Sets `--experimental-compaction-batch-limit`; 0 or less deletes everything in one step,
    /// as etcd reads it.
    pub fn set_compaction_batch_limit(&self, limit: i64) {
        let limit = usize::try_from(limit)
            .ok()
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        self.compaction_step_deletes.store(limit, Ordering::Relaxed);
    }

    /// Runs one step of the pending compaction, if there is one, in a transaction of its own
    /// (the last step's is durable, the others with the next durable commit). Returns whether
    /// steps remain. Only the apply thread may call it: it writes.
    pub fn compaction_step(&self) -> Result<bool> {
        let Some(job) = self.pending_compaction() else {
            return Ok(false);
        };
        let mut txn = self.backend().write(false)?;
        let limit = self.compaction_step_deletes.load(Ordering::Relaxed);
        let (deleted, freed, resume) = delete_step(&mut txn.open_table(KV)?, &job, limit)?;
        if resume.is_none() {
            txn.open_table(META)?.remove(meta::COMPACT_FINISHED)?;
            // The last step is durable: redb frees the pages of non-durable commits only at
            // a durable one, which an idle member would not make, and a Compact with
            // `physical` answers after this (etcd commits its last batch before answering).
            txn.set_durability(redb::Durability::Immediate)
                .map_err(|e| crate::error::Error::Other(format!("compaction step: {e}")))?;
        }
        txn.commit()?;
        self.backend().note_freed(freed);
        if resume.is_none() {
            // etcd's line and field names: dashboards and runbooks grep for them.
            tracing::info!(
                "compact-revision" = job.rev,
                took = ?job.started.elapsed(),
                "number-of-keys-compacted" = job.deleted + deleted,
                "current-db-size-bytes" = self.backend().size(),
                "current-db-size-in-use-bytes" = self.backend().size_in_use(),
                "finished scheduled compaction"
            );
        }
        // Forgotten only now that the deletions are committed: until then a reader of the
        // backend (a hash) still meets the revisions and must skip them.
        let left = resume.is_some();
        self.advance_compaction(job.rev, deleted, resume);
        Ok(left)
    }

    /// Runs the pending compaction's steps to the end: before a defragmentation, which should
    /// reclaim what the compaction freed, and where no apply thread runs (a restore).
    pub fn finish_compaction(&self) -> Result<()> {
        while self.compaction_step()? {}
        Ok(())
    }

    /// Waits until every compaction up to `rev` is done, deletions included (a Compact request
    /// with `physical` set answers only then, as etcd's does).
    pub async fn compacted_physically(&self, rev: i64) {
        let mut finished = self.compaction_finished();
        // The sender lives as long as the store, which outlives this borrow.
        let _ = finished.wait_for(|done| *done >= rev).await;
    }
}

/// The revision of the last compaction whose deletions were all done, if a later one is still
/// deleting (`None`: none is).
pub fn finished_while_pending(
    m: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<i64>> {
    Ok(backend::get_u64_if_set(m, meta::COMPACT_FINISHED)?.map(|v| v as i64))
}

/// Records in `m` that a compaction to a newer revision than `finished` has begun (unless one
/// was begun before and is still pending: its finished revision stays the last one done).
pub fn mark_begun(m: &mut Table<'_, &'static str, &'static [u8]>, finished: i64) -> Result<()> {
    if finished_while_pending(m)?.is_none() {
        backend::put_u64(m, meta::COMPACT_FINISHED, finished as u64)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Stores in the middle of a compaction, for this module's tests and the snapshot's.
    use std::sync::Arc;

    use super::super::backend::Backend;
    use super::super::store::KvStore;

    /// A store with `puts` revisions over 10 keys (revisions 2 to `puts` + 1), compacted at
    /// `at` (steps not run).
    pub fn compacted_store(dir: &std::path::Path, puts: usize, at: i64) -> (Arc<Backend>, KvStore) {
        let backend = Arc::new(Backend::open(&dir.join("db")).expect("open"));
        let (store, _) = KvStore::open(backend.clone()).expect("store");
        let txn = store.begin_batch(true).expect("batch");
        let mut b = txn.batch().expect("tables");
        for i in 0..puts {
            b.put(format!("k{}", i % 10).as_bytes(), b"v".to_vec(), 0, None)
                .expect("put");
            b.end_request();
        }
        b.compact(at).expect("compact");
        let finished = b.finish(1, 1).expect("finish");
        txn.commit(finished).expect("commit");
        (backend, store)
    }

    /// A Compact at `at` in a batch of its own (steps not run).
    pub fn compact(store: &KvStore, at: i64) {
        let txn = store.begin_batch(true).expect("batch");
        let mut b = txn.batch().expect("tables");
        b.compact(at).expect("compact");
        let finished = b.finish(2, 1).expect("finish");
        txn.commit(finished).expect("commit");
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Arc;

    use redb::ReadableTableMetadata;

    use super::super::backend::{self, meta, Backend, KV, META};
    use super::super::store::KvStore;
    use super::test_support::{compact, compacted_store};
    use super::STEP_DELETES;

    fn kv_len(backend: &Backend) -> u64 {
        backend
            .read()
            .expect("read")
            .open_table(KV)
            .expect("kv")
            .len()
            .expect("len")
    }

    #[test]
    fn a_compaction_deletes_in_steps_and_the_hash_never_sees_the_difference() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Revisions 2..=3001; compacting at 3000 drops 2989 of them (2..=2990): three steps.
        let (backend, store) = compacted_store(dir.path(), 3000, 3000);
        let hash = store.hash_kv(0).expect("hash").hash;
        let mut lengths = vec![kv_len(&backend)];
        let mut finished = store.compaction_finished();
        while store.compaction_step().expect("step") {
            lengths.push(kv_len(&backend));
            assert_eq!(store.hash_kv(0).expect("hash").hash, hash);
            assert_eq!(*finished.borrow_and_update(), 0);
        }
        lengths.push(kv_len(&backend));
        assert_eq!(store.hash_kv(0).expect("hash").hash, hash);
        assert_eq!(*finished.borrow_and_update(), 3000);
        let steps = STEP_DELETES as u64;
        assert_eq!(lengths, vec![3000, 3000 - steps, 3000 - 2 * steps, 11]);
        assert!(store.pending_compaction().is_none());
        let txn = backend.read().expect("read");
        let m = txn.open_table(META).expect("meta");
        assert!(m.get(meta::COMPACT_FINISHED).expect("get").is_none());
        assert_eq!(backend::get_u64(&m, meta::COMPACT_REV).expect("rev"), 3000);
    }

    #[test]
    fn a_compaction_cut_short_resumes_when_the_store_opens_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (backend, store) = compacted_store(dir.path(), 3000, 3000);
        assert!(store.compaction_step().expect("step"));
        let hash = store.hash_kv(0).expect("hash").hash;
        drop(store);
        // The index is built again from every revision left, and compacted again.
        let (store, _) = KvStore::open(backend.clone()).expect("reopen");
        let job = store.pending_compaction().expect("still pending");
        assert_eq!(job.rev, 3000);
        assert_eq!(*store.compaction_finished().borrow(), 0);
        assert_eq!(store.hash_kv(0).expect("hash").hash, hash);
        store.finish_compaction().expect("finish");
        assert_eq!(kv_len(&backend), 11);
        assert_eq!(store.hash_kv(0).expect("hash").hash, hash);
        assert_eq!(*store.compaction_finished().borrow(), 3000);
    }

    #[test]
    fn a_delete_at_the_compaction_revision_outlives_a_restart_between_steps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = Arc::new(Backend::open(&dir.path().join("db")).expect("open"));
        let (store, _) = KvStore::open(backend.clone()).expect("store");
        store.set_compaction_batch_limit(1);
        let txn = store.begin_batch(true).expect("batch");
        let mut b = txn.batch().expect("tables");
        // a at 2 and 3, deleted at 4; b at 5. Compacting at 4 drops 2 and 3 and keeps the
        // tombstone at 4 (a watch from 4 still owes that delete).
        for (key, value) in [("a", "1"), ("a", "2")] {
            b.put(key.as_bytes(), value.as_bytes().to_vec(), 0, None)
                .expect("put");
            b.end_request();
        }
        b.delete_range(b"a", b"").expect("delete");
        b.end_request();
        b.put(b"b", b"1".to_vec(), 0, None).expect("put");
        b.end_request();
        b.compact(4).expect("compact");
        let finished = b.finish(1, 1).expect("finish");
        txn.commit(finished).expect("commit");
        assert!(store.compaction_step().expect("step: 2"));
        assert!(store.compaction_step().expect("step: 3"));
        let hash = store.hash_kv(0).expect("hash").hash;
        drop(store);
        // Built again from what is left, the index has no history for a at all; the
        // tombstone must stay anyway, as on the members that did not restart.
        let (store, _) = KvStore::open(backend.clone()).expect("reopen");
        assert_eq!(store.hash_kv(0).expect("hash").hash, hash);
        store.finish_compaction().expect("finish");
        assert_eq!(store.hash_kv(0).expect("hash").hash, hash);
        assert_eq!(kv_len(&backend), 2, "the tombstone at 4 and b at 5");
    }

    #[test]
    fn a_physical_compact_waits_for_the_last_step() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_backend, store) = compacted_store(dir.path(), 3000, 3000);
        // Polled by hand: the answer must stay pending through every step but the last.
        let mut wait = Box::pin(store.compacted_physically(3000));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        while store.compaction_step().expect("step") {
            assert!(
                wait.as_mut().poll(&mut cx).is_pending(),
                "answered before the end"
            );
        }
        assert!(wait.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn a_newer_compaction_takes_over_what_a_pending_one_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (backend, store) = compacted_store(dir.path(), 3000, 1500);
        assert!(store.compaction_step().expect("step"));
        compact(&store, 3000);
        {
            // The last compaction done is still the one before both.
            let read = backend.read().expect("read");
            let m = read.open_table(META).expect("meta");
            assert_eq!(
                backend::get_u64(&m, meta::COMPACT_FINISHED).expect("finished"),
                0
            );
        }
        store.finish_compaction().expect("finish");
        assert_eq!(kv_len(&backend), 11);
        assert_eq!(*store.compaction_finished().borrow(), 3000);
    }
}
