//! `ballast snapshot restore`: turns an etcd snapshot (taken from Ballast or
//! from etcd) into a new Ballast data dir.
//!
//! The new member keeps the snapshot's keys with their revisions, its
//! leases and its compaction revision. Membership, alarms and the Raft log
//! position are the old cluster's and are dropped: with no WAL in the data
//! dir, the member bootstraps a fresh log and membership from its flags at
//! start (as etcd does from `snapshot restore --initial-cluster`).

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ballast_proto::mvccpb::KeyValue;
use prost::Message;

pub use super::identity::NewCluster;

use super::bbolt::{Entries, Reader};
use super::layout::{self as etcd, LeaseRecord};
use super::{check_trailer, named, open_db, Trailer};
use crate::error::{Error, Result};
use crate::mvcc::backend::{self, meta, sync_dir, Backend, KV, LEASES, META};
use crate::mvcc::packed_copy::FlushPlan;
use crate::mvcc::revision::Revision;
use crate::mvcc::revision_key::RevisionKey;
use crate::mvcc::KvStore;

/// Entries per redb transaction while loading (at least; a transaction ends at the next
/// full page): bounds the memory a huge snapshot needs; only the last commit has to be
/// durable. Tests use a small batch so that a small snapshot spans several transactions.
#[cfg(not(test))]
const BATCH: usize = 50_000;
#[cfg(test)]
const BATCH: usize = 1_000;

/// `--bump-revision N --mark-compacted`: moves the restored store's revision
/// N past the snapshot's newest revision and marks that revision compacted,
/// so that the new cluster's revisions are above anything a client saw on the
/// old one and reads or watches at older revisions answer "compacted" (which
/// makes caching clients such as kube-apiserver list again).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RevisionBump {
    /// How much to add to the newest revision in the snapshot; 0 = no bump.
    pub amount: u64,
    /// Marks the bumped revision as compacted; etcdutl requires it exactly
    /// when `amount > 0`.
    pub mark_compacted: bool,
}

impl RevisionBump {
    /// Refuses the combinations etcdutl 3.6 refuses (a bump without
    /// `--mark-compacted`, or `--mark-compacted` without a bump), with its words.
    pub fn check(&self) -> std::result::Result<(), String> {
        if (self.amount > 0) != self.mark_compacted {
            // etcdutl names the flag `--revision-bump` in this message (the flag is `--bump-revision`).
            return Err("--mark-compacted required if --revision-bump > 0".to_string());
        }
        Ok(())
    }
}

/// Restores `file` into `data_dir` (which must not hold a member yet) and
/// returns the path of the new database. On failure nothing is left behind.
pub fn restore(
    file: &Path,
    data_dir: &Path,
    wal_dir: Option<&Path>,
    skip_hash_check: bool,
    bump: RevisionBump,
    cluster: Option<&NewCluster>,
) -> Result<PathBuf> {
    bump.check().map_err(Error::Other)?;
    if let Some(c) = cluster {
        c.members()?;
    }
    let member = data_dir.join("member");
    if member.exists() {
        return Err(Error::Other(format!(
            "data-dir {:?} exists; restore into a new, empty directory",
            data_dir.display().to_string()
        )));
    }
    if let Some(w) = wal_dir {
        if w.exists() {
            return Err(Error::Other(format!(
                "wal-dir {:?} exists; restore into a new, empty directory",
                w.display().to_string()
            )));
        }
    }
    if check_trailer(file, skip_hash_check)? == Trailer::Absent && !skip_hash_check {
        return Err(Error::Other(format!(
            "snapshot {} has no SHA-256 trailer (a database file copied from a data dir?); \
             use --skip-hash-check to restore it anyway",
            file.display()
        )));
    }
    let db = open_db(file)?;

    let created_data_dir = !data_dir.exists();
    // Built aside and renamed into place, so a failed restore leaves no member.
    let staging = data_dir.join("member.restoring");
    let _ = std::fs::remove_dir_all(&staging);
    let result = load(&db, file, &staging, bump)
        .and_then(|()| match cluster {
            // The WAL goes where the member will look for it: --wal-dir, or member/wal.
            Some(c) => {
                let backend = Backend::open(&staging.join("snap").join("db"))?;
                let wal = match wal_dir {
                    Some(w) => std::path::absolute(w)
                        .map_err(|e| Error::io(format!("resolve {}", w.display()), e))?,
                    None => staging.join("wal"),
                };
                c.write(&backend, &wal)
            }
            None => Ok(()),
        })
        .and_then(|()| {
            std::fs::rename(&staging, &member)
                .map_err(|e| Error::io(format!("rename into {}", member.display()), e))?;
            sync_dir(&member)
        });
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        if let (Some(w), Some(_)) = (wal_dir, cluster) {
            let _ = std::fs::remove_dir_all(w);
        }
        if created_data_dir {
            let _ = std::fs::remove_dir_all(data_dir);
        }
        return Err(e);
    }
    Ok(member.join("snap").join("db"))
}

/// Appends the key bucket's revisions, from `first` on, through a cursor in full pages (as a
/// defragmented database is laid out), checking each. `plan` has already seen `first`.
/// Stops when the bucket ends, or at the first full page after [`BATCH`] revisions; then
/// returns the revision that starts the next transaction (also already in `plan`).
fn append_revisions(
    table: &mut redb::Table<'_, RevisionKey, &'static [u8]>,
    plan: &mut FlushPlan,
    first: (Vec<u8>, Vec<u8>),
    entries: &mut Entries<'_>,
    last_rev: &mut i64,
    file: &Path,
) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    let bad = |what: String| not_a_snapshot(file, what);
    let mut cursor = table.upper_bound_mut(Bound::<&[u8]>::Unbounded)?;
    let mut appended = 0;
    let (mut k, mut v) = first;
    loop {
        let (rev, _) = Revision::from_key(&k)
            .ok_or_else(|| bad(format!("key bucket entry {k:?} is not a revision")))?;
        KeyValue::decode(v.as_slice()).map_err(|e| {
            bad(format!(
                "the value at revision {} is not a KeyValue: {e}",
                rev.main
            ))
        })?;
        // In order: the bbolt reader refuses a bucket whose keys are not ascending.
        cursor.insert_before(k.as_slice(), v.as_slice())?;
        *last_rev = rev.main;
        appended += 1;
        let Some(next) = entries.next().transpose().map_err(|e| named(file, e))? else {
            cursor.close()?;
            return Ok(None);
        };
        if plan.flush_before(next.0.len() + next.1.len()) {
            cursor.close()?;
            if appended >= BATCH {
                return Ok(Some(next));
            }
            cursor = table.upper_bound_mut(Bound::<&[u8]>::Unbounded)?;
        }
        (k, v) = next;
    }
}

fn not_a_snapshot(file: &Path, what: String) -> Error {
    named(file, format!("not an etcd snapshot: {what}"))
}

/// Writes the snapshot's data into a new database under `member_dir`.
fn load(db: &Reader, file: &Path, member_dir: &Path, bump: RevisionBump) -> Result<()> {
    let snap = member_dir.join("snap");
    std::fs::create_dir_all(&snap)
        .map_err(|e| Error::io(format!("create {}", snap.display()), e))?;
    let db_path = snap.join("db");
    let backend = Arc::new(Backend::open(&db_path)?);
    let bad = |what: String| not_a_snapshot(file, what);

    let mut last_rev = 0i64;
    if let Some(mut entries) = db.bucket(etcd::KEY).map_err(|e| named(file, e))? {
        let mut plan = FlushPlan::new::<RevisionKey, &[u8]>();
        let mut next = entries.next().transpose().map_err(|e| named(file, e))?;
        if let Some((k, v)) = &next {
            // The first revision opens the first leaf; no flush can precede it.
            plan.flush_before(k.len() + v.len());
        }
        while let Some(first) = next {
            let txn = backend.write(false)?;
            next = append_revisions(
                &mut txn.open_table(KV)?,
                &mut plan,
                first,
                &mut entries,
                &mut last_rev,
                file,
            )?;
            txn.commit()?;
        }
    }

    let mut meta_bucket = std::collections::BTreeMap::new();
    if let Some(entries) = db.bucket(etcd::META).map_err(|e| named(file, e))? {
        for entry in entries {
            let (k, v) = entry.map_err(|e| named(file, e))?;
            meta_bucket.insert(k, v);
        }
    }
    let compact_rev = |key: &[u8]| -> Result<i64> {
        match meta_bucket.get(key) {
            None => Ok(0),
            Some(v) => etcd::revision_main(v).ok_or_else(|| {
                bad(format!(
                    "meta {} is not a revision",
                    String::from_utf8_lossy(key)
                ))
            }),
        }
    };
    let finished = compact_rev(etcd::FINISHED_COMPACT_REV)?;
    let mut scheduled = compact_rev(etcd::SCHEDULED_COMPACT_REV)?;
    let mut current = last_rev.max(finished);
    if bump.amount > 0 {
        // As etcdutl: the newest revision in the key bucket (not the compaction revision)
        // plus the bump becomes the store's revision, and the compaction scheduled there
        // is run below as etcd runs it at start.
        let amount = i64::try_from(bump.amount)
            .ok()
            .and_then(|a| last_rev.checked_add(a))
            .ok_or_else(|| {
                Error::Other(format!(
                    "--bump-revision {} overflows the revision {last_rev}",
                    bump.amount
                ))
            })?;
        current = current.max(amount);
        if bump.mark_compacted {
            scheduled = amount;
        }
    }

    let txn = backend.write(true)?;
    {
        let mut leases = txn.open_table(LEASES)?;
        if let Some(entries) = db.bucket(etcd::LEASE).map_err(|e| named(file, e))? {
            for entry in entries {
                let (_, v) = entry.map_err(|e| named(file, e))?;
                let lease = LeaseRecord::decode(v.as_slice())
                    .map_err(|e| bad(format!("undecodable lease: {e}")))?;
                leases.insert(lease.id, lease.ttl)?;
            }
        }
        super::auth::import(db, &txn, &bad)?;
        let mut m = txn.open_table(META)?;
        if finished > 0 {
            backend::put_u64(&mut m, meta::COMPACT_REV, finished as u64)?;
        }
        // etcd: if compaction removed the newest revisions, the store is at the compaction
        // revision; a bump moves it further.
        backend::put_u64(&mut m, meta::CURRENT_REV, current as u64)?;
        backend::put_u64(&mut m, meta::APPLIED_INDEX, 0)?;
    }
    txn.commit()?;

    if scheduled > finished {
        // The snapshot caught etcd between scheduling a compaction and
        // finishing it (or --mark-compacted scheduled one at the bumped
        // revision); etcd finishes it at start, so do we.
        let (store, _) = KvStore::open(backend.clone())?;
        let txn = store.begin_batch(true)?;
        let mut batch = txn.batch()?;
        batch.compact(scheduled)?;
        let finished = batch.finish(0, 0)?;
        txn.commit(finished)?;
        store.finish_compaction()?;
    }
    drop(backend);
    backend::trim_file(&db_path)
}
