//! The redb database under the store: one file holding every table.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};

use crate::error::{Error, Result};
use crate::mvcc::packed_copy::copy_packed;
use crate::mvcc::revision_key::RevisionKey;

/// Revision key → encoded `mvccpb.KeyValue`. Keys must be revision keys
/// ([`crate::mvcc::Revision::to_key`]): [`RevisionKey`] reads 1 to 8 bytes as a separator.
pub const KV: TableDefinition<RevisionKey, &[u8]> = TableDefinition::new("kv");
/// The `kv` table as databases written before [`RevisionKey`] hold it; migrated on open.
const KV_AS_BYTES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
const KV_MIGRATING: TableDefinition<RevisionKey, &[u8]> = TableDefinition::new("kv.migrating");
/// Small named values: applied index, compaction progress, identities.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Lease ID → granted TTL in seconds.
pub const LEASES: TableDefinition<i64, i64> = TableDefinition::new("lease");
/// (member ID, alarm type) → nothing: the active alarms.
pub const ALARMS: TableDefinition<(u64, i32), ()> = TableDefinition::new("alarm");
/// Member ID → JSON-encoded member record.
pub const MEMBERS: TableDefinition<u64, &[u8]> = TableDefinition::new("members");
/// Auth settings (enabled, revision), and users and roles by name (authpb records).
pub const AUTH: TableDefinition<&str, &[u8]> = TableDefinition::new("auth");
pub const AUTH_USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("auth_users");
pub const AUTH_ROLES: TableDefinition<&str, &[u8]> = TableDefinition::new("auth_roles");

pub mod meta {
    //! Keys of the META table.
    /// Raft index of the last entry applied to the tables (etcd's consistent index).
    pub const APPLIED_INDEX: &str = "applied_index";
    /// Raft term of that entry.
    pub const APPLIED_TERM: &str = "applied_term";
    /// Revision of the last finished compaction.
    pub const COMPACT_REV: &str = "compact_rev";
    /// Present while a compaction's deletions are under way: the revision of the last
    /// compaction whose deletions were all done (see `crate::mvcc::compaction`).
    pub const COMPACT_FINISHED: &str = "compact_finished";
    /// The newest revision written; kept because compaction can delete every
    /// revision key and revisions must never go backwards.
    pub const CURRENT_REV: &str = "current_rev";
    pub const CLUSTER_ID: &str = "cluster_id";
    /// JSON `{"voters":[..],"learners":[..]}`: the Raft configuration as of
    /// the applied index.
    pub const CONF_STATE: &str = "conf_state";
    pub const MEMBER_ID: &str = "member_id";
}

/// Tables that hold the member's data; a snapshot or defragmentation copies exactly these.
pub fn copy_tables(from: &ReadTransaction, to: &WriteTransaction) -> Result<()> {
    copy(from, to, KV)?;
    copy(from, to, META)?;
    copy(from, to, LEASES)?;
    copy(from, to, ALARMS)?;
    copy(from, to, MEMBERS)?;
    copy(from, to, AUTH)?;
    copy(from, to, AUTH_USERS)?;
    copy(from, to, AUTH_ROLES)?;
    Ok(())
}

fn copy<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<()> {
    let src = match from.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut dst = to.open_table(def)?;
    copy_packed(&src, &mut dst)
}

/// The redb database. Reads may run on any thread; the apply thread is the
/// only writer. The handle can be swapped (defragmentation, restore) while
/// readers keep the old one alive.
pub struct Backend {
    path: PathBuf,
    db: RwLock<Arc<Database>>,
    in_use: AtomicU64,
    /// Request bytes applied since `in_use` was measured: see [`Backend::quota_size`].
    written_since_refresh: AtomicU64,
    /// Bytes of revisions compaction deleted since then.
    freed_since_refresh: AtomicU64,
    /// When the in-use size was last measured and how long that took (see
    /// `maybe_refresh_in_use`); `None` only until `open` measures it.
    last_in_use_refresh: parking_lot::Mutex<Option<(Instant, Duration)>>,
}

/// What a freshly started Ballast member has in use beyond what an empty etcd member counts
/// against its quota: 53248 bytes (13 pages: redb's header and allocator state, its system
/// tables, and the member's own records) against bbolt's 20480, as measured with etcd 3.4.
const EMPTY_MEMBER_EXTRA_BYTES: u64 = 53248 - 20480;

/// Measuring the in-use size walks every page of the database, so it is done at most
/// once per this many times what the last measurement took (1% of the apply thread).
const IN_USE_REFRESH_COST_FACTOR: u32 = 100;

/// Far from the quota, the in-use size is measured again at most this often. The walk runs
/// on the apply thread and stalls every write behind it for its whole length (172 ms on a
/// member holding 150 k revisions of 256 B under load). Between measurements the reported
/// figure adds the bytes applied and takes off the bytes compaction deleted
/// ([`Backend::note_written`], [`Backend::note_freed`]); the quota's figure only adds (see
/// [`Backend::quota_size`]).
const IN_USE_REFRESH_PERIOD: Duration = Duration::from_secs(300);

/// Whether the in-use size should be measured now, given when it last was and how long
/// that took (`None`: stale), and whether the estimate is near the quota.
fn in_use_refresh_due(last: Option<(Instant, Duration)>, now: Instant, near_quota: bool) -> bool {
    let Some((at, took)) = last else {
        return true;
    };
    let cost_bound = took * IN_USE_REFRESH_COST_FACTOR;
    let wait = if near_quota {
        cost_bound
    } else {
        cost_bound.max(IN_USE_REFRESH_PERIOD)
    };
    now.saturating_duration_since(at) >= wait
}

impl Backend {
    /// Opens (or creates) the database file and makes sure every table exists.
    pub fn open(path: &Path) -> Result<Backend> {
        let corrupt = |e: String| {
            Error::Corrupt(format!(
                "cannot open the database {}: {e}; if the file is damaged, restore this member \
                 from a snapshot (ballast snapshot restore) or remove and re-add it",
                path.display()
            ))
        };
        // redb panics on some damaged pages instead of returning an error; a damaged file
        // must end in a clear error like any other, not in a panic.
        let db = match std::panic::catch_unwind(|| open_database(path)) {
            Ok(Ok(db)) => db,
            // Only damage is called corruption: an operator replaces a member for it, and a
            // permission, lock or I/O problem must not cost a member its volume.
            Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(e)))) => {
                return Err(corrupt(format!("DB corrupted: {e}")))
            }
            // What redb says of a file that is not a database at all (no magic number).
            Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))))
                if e.kind() == std::io::ErrorKind::InvalidData =>
            {
                return Err(corrupt(e.to_string()))
            }
            Ok(Err(e)) => {
                return Err(Error::StorageAt {
                    context: format!("cannot open the database {}", path.display()),
                    source: e.into(),
                })
            }
            Err(panic) => return Err(corrupt(panic_text(panic.as_ref()))),
        };
        prepare_tables(&db)?;
        let backend = Backend {
            path: path.to_path_buf(),
            db: RwLock::new(Arc::new(db)),
            in_use: AtomicU64::new(0),
            written_since_refresh: AtomicU64::new(0),
            freed_since_refresh: AtomicU64::new(0),
            last_in_use_refresh: parking_lot::Mutex::new(None),
        };
        backend.refresh_in_use()?;
        Ok(backend)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn read(&self) -> Result<ReadTransaction> {
        let db = self.db.read().clone();
        Ok(db.begin_read()?)
    }

    /// A write transaction that is durable only if `durable`; others become
    /// durable with the next durable commit (the Raft log covers the gap).
    pub fn write(&self, durable: bool) -> Result<WriteTransaction> {
        let db = self.db.read().clone();
        let mut txn = db.begin_write()?;
        if !durable {
            txn.set_durability(Durability::None)?;
        }
        Ok(txn)
    }

    /// Size of the database file on disk.
    pub fn size(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Bytes of the file holding live pages: as last measured, plus the requests applied and
    /// less the revisions compaction deleted since (measurements are minutes apart under
    /// load, see [`IN_USE_REFRESH_PERIOD`]).
    pub fn size_in_use(&self) -> u64 {
        self.in_use_estimate().min(self.size())
    }

    /// The in-use size as last measured, plus what was written and less what compaction
    /// deleted since.
    fn in_use_estimate(&self) -> u64 {
        self.in_use
            .load(Ordering::Relaxed)
            .saturating_add(self.written_since_refresh.load(Ordering::Relaxed))
            .saturating_sub(self.freed_since_refresh.load(Ordering::Relaxed))
    }

    /// What --quota-backend-bytes is checked against: the bytes of the pages in use, as last
    /// measured, less what an empty member has in use beyond an empty etcd, plus the
    /// requests applied since (which may have grown it).
    ///
    /// etcd checks its quota against bbolt's size, the pages it has handed out: an empty
    /// member counts 20 KiB, so a quota of a few pages still takes a few puts. redb instead
    /// preallocates its file (and doubles it as it grows), and an empty member already uses
    /// 52 KiB of it; held against the file's length, a small quota would be exceeded at
    /// once, and a large one reached while half the file is unused. Counted this way an
    /// empty member counts what etcd's does and the same data about as many pages, and the
    /// file stays bounded by redb's growth of the pages in use. `size` (etcd's dbSize) is
    /// still the file's length, and `size_in_use` the pages in use.
    pub fn quota_size(&self) -> u64 {
        // The file holds every page in use: it bounds the estimate.
        self.quota_estimate().min(self.size())
    }

    /// Whether [`Backend::quota_size`] exceeds `quota`, checked after every applied batch.
    /// The estimate comes first because it is a load from memory, while the file's length
    /// is a `statx` call, which etcd (tracking bbolt's size in memory) does not make per write.
    pub fn over_quota(&self, quota: u64) -> bool {
        // min(estimate, size) > quota exactly when both are.
        self.quota_estimate() > quota && self.size() > quota
    }

    /// etcd's `Available`: whether `cost` more bytes keep [`Backend::quota_size`] below
    /// `quota`. Checked on every write, so the file's length (a system call) is looked at
    /// only when the estimate alone does not fit.
    pub fn quota_fits(&self, cost: u64, quota: u64) -> bool {
        let fits = |size: u64| size.saturating_add(cost) < quota;
        fits(self.quota_estimate()) || fits(self.quota_size())
    }

    /// [`Backend::quota_size`] without the file's length as a bound. What compaction deleted
    /// is not taken off: its pages are free only after a durable commit, and a page half
    /// emptied stays in use, so only a measurement may lower the figure the quota guards
    /// (etcd's quota, on bbolt's file size, does not fall with compaction at all).
    fn quota_estimate(&self) -> u64 {
        self.in_use
            .load(Ordering::Relaxed)
            .saturating_sub(EMPTY_MEMBER_EXTRA_BYTES)
            .saturating_add(self.written_since_refresh.load(Ordering::Relaxed))
    }

    /// Counts `bytes` of applied requests towards [`Backend::quota_size`] until the next
    /// measurement of the pages in use, which may come seconds later on a large database.
    pub fn note_written(&self, bytes: u64) {
        self.written_since_refresh
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// Recomputes `size_in_use`. Takes a write transaction, so only the apply
    /// thread (or a caller that owns the backend exclusively) may call it.
    pub fn refresh_in_use(&self) -> Result<()> {
        let started = Instant::now();
        let db = self.db.read().clone();
        let txn = db.begin_write()?;
        let stats = txn.stats()?;
        txn.abort()?;
        let used = stats.allocated_pages() * stats.page_size() as u64;
        self.in_use.store(used, Ordering::Relaxed);
        self.written_since_refresh.store(0, Ordering::Relaxed);
        self.freed_since_refresh.store(0, Ordering::Relaxed);
        *self.last_in_use_refresh.lock() = Some((Instant::now(), started.elapsed()));
        Ok(())
    }

    /// [`Backend::refresh_in_use`] if the last measurement is stale or old enough: on a
    /// database of a million keys it takes a good part of a second. Within a tenth of
    /// `quota` (0: none), where a NOSPACE alarm hangs on the figure, it is measured as often
    /// as its cost allows; elsewhere every [`IN_USE_REFRESH_PERIOD`].
    pub fn maybe_refresh_in_use(&self, quota: u64) -> Result<()> {
        let near_quota = quota > 0 && self.quota_estimate() >= quota - quota / 10;
        let last = *self.last_in_use_refresh.lock();
        if in_use_refresh_due(last, Instant::now(), near_quota) {
            self.refresh_in_use()?;
        }
        Ok(())
    }

    /// Takes `bytes` of revisions deleted by compaction off the reported in-use size until
    /// the next measurement (not off the quota's figure).
    pub fn note_freed(&self, bytes: u64) {
        self.freed_since_refresh.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Rewrites the database into a fresh file holding only live data, then
    /// swaps it in. The caller must hold off other writers (the apply thread
    /// runs it between batches).
    pub fn defragment(&self) -> Result<()> {
        let tmp = self.path.with_extension("defrag");
        let _ = std::fs::remove_file(&tmp);
        {
            let fresh = open_database(&tmp)?;
            let src = self.read()?;
            let dst = fresh.begin_write()?;
            copy_tables(&src, &dst)?;
            dst.commit()?;
        }
        trim_file(&tmp)?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io("replace database file", e))?;
        sync_dir(&self.path)?;
        let db = open_database(&self.path)?;
        *self.db.write() = Arc::new(db);
        self.refresh_in_use()
    }

    /// Replaces the database with `file` (a Raft snapshot from the leader):
    /// renames it over the current file and swaps the handle.
    pub fn install(&self, file: &Path) -> Result<()> {
        // A leader running an older Ballast sends the older table layout; migrate it before
        // it replaces our file, so that a failure leaves the current database in place.
        let db = open_database(file)?;
        prepare_tables(&db)?;
        // The open handle follows the file through the rename.
        std::fs::rename(file, &self.path).map_err(|e| Error::io("install snapshot database", e))?;
        sync_dir(&self.path)?;
        *self.db.write() = Arc::new(db);
        self.refresh_in_use()
    }

    /// A consistent copy for a Raft snapshot: the tables, and the applied
    /// index and configuration they reflect, all from one read.
    pub fn snapshot_copy(&self, dest: &Path) -> Result<(u64, Option<raft::prelude::ConfState>)> {
        let src = self.read()?;
        let (applied, conf) = {
            let m = src.open_table(META)?;
            (get_u64(&m, meta::APPLIED_INDEX)?, get_conf_state(&m)?)
        };
        {
            let fresh = Database::create(dest)?;
            let dst = fresh.begin_write()?;
            copy_tables(&src, &dst)?;
            dst.commit()?;
        }
        // The follower receives (and installs) the whole file: no longer than its data.
        trim_file(dest)?;
        Ok((applied, conf))
    }
}

/// Makes sure every table exists with its current type.
fn prepare_tables(db: &Database) -> Result<()> {
    let txn = db.begin_write()?;
    match txn.open_table(KV) {
        Err(redb::TableError::TableTypeMismatch { .. }) => migrate_kv_key_type(&txn)?,
        other => drop(other?),
    }
    txn.open_table(META)?;
    txn.open_table(LEASES)?;
    txn.open_table(ALARMS)?;
    txn.open_table(MEMBERS)?;
    txn.open_table(AUTH)?;
    txn.open_table(AUTH_USERS)?;
    txn.open_table(AUTH_ROLES)?;
    txn.commit()?;
    Ok(())
}

/// Rewrites a `kv` table of plain byte keys as one of [`RevisionKey`]s: the same keys in
/// the same order, with a different type name. Pages are packed by the next defragmentation.
fn migrate_kv_key_type(txn: &WriteTransaction) -> Result<()> {
    {
        let old = txn.open_table(KV_AS_BYTES)?;
        let mut new = txn.open_table(KV_MIGRATING)?;
        for item in old.iter()? {
            let (k, v) = item?;
            // Keys of 1 to 8 bytes would be taken for separators by the new key type.
            if crate::mvcc::Revision::from_key(k.value()).is_none() {
                return Err(Error::Corrupt(format!(
                    "the kv table holds {:?}, which is not a revision key; restore this member \
                     from a snapshot (ballast snapshot restore) or remove and re-add it",
                    k.value()
                )));
            }
            new.insert(k.value(), v.value())?;
        }
    }
    txn.delete_table(KV_AS_BYTES)?;
    txn.rename_table(KV_MIGRATING, KV)?;
    tracing::info!("migrated the kv table to revision keys with short separators");
    Ok(())
}

/// redb's page cache. Its default (1 GiB) made a loaded member hold most of its data in
/// memory on top of the OS page cache; hot pages fit in much less. 128 MiB was still 118
/// MiB of a loaded member's RSS (one member, 100 k keys of 1 KiB: 293 MiB anonymous
/// memory, 175 MiB with 16 MiB of cache); with 32 MiB the list, linearizable and
/// serializable range workloads of `bench/compare.py` ran as fast as with 128 MiB
/// within their run-to-run noise (two alternating runs each, session 12).
const CACHE_BYTES: usize = 32 << 20;

/// Moves a closed database's pages to the front of its file and truncates it. A redb file
/// written in bulk (a defragmented copy, a restore) grows in regions and is left longer
/// than its data, and that length is what etcd reports as the db size and what the quota
/// is checked against.
pub fn trim_file(path: &Path) -> Result<()> {
    let mut db = open_database(path)?;
    db.compact().map_err(|e| Error::StorageAt {
        context: format!("compacting {}", path.display()),
        source: e.into(),
    })?;
    Ok(())
}

/// The message of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "the storage engine panicked".to_string())
}

fn open_database(path: &Path) -> std::result::Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(CACHE_BYTES).create(path)
}

/// Makes a rename or file creation in the directory durable.
pub fn sync_dir(file: &Path) -> Result<()> {
    if let Some(dir) = file.parent() {
        let d = std::fs::File::open(dir)
            .map_err(|e| Error::io(format!("open {}", dir.display()), e))?;
        d.sync_all()
            .map_err(|e| Error::io(format!("sync {}", dir.display()), e))?;
    }
    Ok(())
}

/// Reads a u64 from META (0 when absent).
pub fn get_u64(t: &impl ReadableTable<&'static str, &'static [u8]>, key: &str) -> Result<u64> {
    Ok(get_u64_if_set(t, key)?.unwrap_or(0))
}

/// The value under `key`, or `None` where [`get_u64`] reads an absent key as 0.
pub fn get_u64_if_set(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<u64>> {
    let Some(v) = t.get(key)? else {
        return Ok(None);
    };
    let b: [u8; 8] = v
        .value()
        .try_into()
        .map_err(|_| Error::Corrupt(format!("meta {key} is not 8 bytes")))?;
    Ok(Some(u64::from_be_bytes(b)))
}

pub fn put_u64(t: &mut redb::Table<&'static str, &'static [u8]>, key: &str, v: u64) -> Result<()> {
    t.insert(key, v.to_be_bytes().as_slice())?;
    Ok(())
}

/// The Raft configuration stored with the applied index, if any.
pub fn get_conf_state(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<raft::prelude::ConfState>> {
    let Some(v) = t.get(meta::CONF_STATE)? else {
        return Ok(None);
    };
    let j: serde_json::Value = serde_json::from_slice(v.value())
        .map_err(|e| Error::Corrupt(format!("meta conf_state: {e}")))?;
    let ids = |k: &str| -> Vec<u64> {
        j.get(k)
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
            .unwrap_or_default()
    };
    Ok(Some(raft::prelude::ConfState {
        voters: ids("voters"),
        learners: ids("learners"),
        ..Default::default()
    }))
}

pub fn put_conf_state(
    t: &mut redb::Table<&'static str, &'static [u8]>,
    cs: &raft::prelude::ConfState,
) -> Result<()> {
    let j = serde_json::json!({"voters": cs.voters, "learners": cs.learners});
    t.insert(meta::CONF_STATE, j.to_string().as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTableMetadata;

    /// Revision keys with deletions among them, each stored with itself as its value.
    fn revision_keys() -> Vec<Vec<u8>> {
        (1..2000)
            .flat_map(|main| [(main, 0, false), (main, 1, true)])
            .map(|(main, sub, t)| crate::mvcc::Revision::new(main, sub).to_key(t).to_vec())
            .collect()
    }

    /// A durable commit of 100 revisions of 1 KiB.
    fn write_100_kib(backend: &Backend) {
        let txn = backend.write(true).expect("write");
        {
            let mut t = txn.open_table(KV).expect("kv");
            for k in revision_keys().iter().take(100) {
                t.insert(k.as_slice(), vec![b'v'; 1024].as_slice())
                    .expect("insert");
            }
        }
        txn.commit().expect("commit");
    }

    /// A database as builds before `RevisionKey` wrote it: `kv` keyed by plain bytes.
    fn write_old_layout(path: &Path, keys: &[Vec<u8>]) {
        let db = Database::create(path).expect("create");
        let txn = db.begin_write().expect("write");
        {
            let mut t = txn.open_table(KV_AS_BYTES).expect("old kv");
            for k in keys {
                t.insert(k.as_slice(), k.as_slice()).expect("insert");
            }
        }
        txn.commit().expect("commit");
    }

    #[test]
    fn the_quota_counts_pages_in_use_less_redbs_overhead_over_bbolt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = Backend::open(&dir.path().join("db")).expect("open");
        let in_use = || backend.in_use.load(Ordering::Relaxed);
        // The file is preallocated far beyond what is in use, and that is not counted.
        assert!(
            backend.size() > 4 * in_use(),
            "{} {}",
            backend.size(),
            in_use()
        );
        let (empty, empty_in_use) = (backend.quota_size(), in_use());
        assert_eq!(empty, empty_in_use.saturating_sub(EMPTY_MEMBER_EXTRA_BYTES));
        backend.note_written(1000);
        assert_eq!(backend.quota_size(), empty + 1000);
        write_100_kib(&backend);
        backend.refresh_in_use().expect("refresh");
        // 100 KiB of values, measured; what was noted before the measurement is dropped.
        let grown = in_use() - empty_in_use;
        assert!((100 * 1024..200 * 1024).contains(&grown), "{grown}");
        assert_eq!(backend.quota_size(), in_use() - EMPTY_MEMBER_EXTRA_BYTES);
        assert!(backend.quota_size() <= backend.size());
        let size = backend.quota_size();
        assert!(backend.quota_fits(10, size + 11));
        assert!(!backend.quota_fits(10, size + 10));
        // over_quota agrees with quota_size on both sides of the boundary.
        assert!(backend.over_quota(size - 1));
        assert!(!backend.over_quota(size));
        // A stale estimate far beyond the file is bounded by the file's length.
        backend.note_written(u64::MAX / 2);
        assert!(backend.quota_fits(10, backend.size() + 11));
        assert!(!backend.over_quota(backend.size()));
        assert!(backend.over_quota(backend.size() - 1));
    }

    #[test]
    fn the_in_use_size_is_measured_rarely_unless_stale_or_near_the_quota() {
        let at = Instant::now();
        let ms = Duration::from_millis;
        // (last measurement: ago, took; near the quota; due)
        let table = [
            (None, false, true),
            (None, true, true),
            // Far from the quota: the period, or 100× the cost if that is longer.
            (Some((ms(1000), ms(5))), false, false),
            (Some((IN_USE_REFRESH_PERIOD, ms(5))), false, true),
            (Some((IN_USE_REFRESH_PERIOD, ms(4000))), false, false),
            (Some((ms(400_000), ms(4000))), false, true),
            // Near it: only the cost bounds it.
            (Some((ms(499), ms(5))), true, false),
            (Some((ms(500), ms(5))), true, true),
        ];
        for (last, near_quota, due) in table {
            let now = at + ms(1_000_000);
            let last = last.map(|(ago, took)| (now - ago, took));
            assert_eq!(
                in_use_refresh_due(last, now, near_quota),
                due,
                "{last:?} near quota {near_quota}"
            );
        }
    }

    #[test]
    fn between_measurements_the_in_use_size_follows_writes_and_compaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = Backend::open(&dir.path().join("db")).expect("open");
        let in_use = || backend.in_use.load(Ordering::Relaxed);
        let before = in_use();
        write_100_kib(&backend);
        backend.note_written(100 * 1024);
        // Measured at open, moments ago, and far from any quota: not measured again, but
        // what was applied since counts, and what compaction deleted does not.
        backend.maybe_refresh_in_use(0).expect("maybe refresh");
        assert_eq!(in_use(), before);
        assert_eq!(backend.size_in_use(), before + 100 * 1024);
        let quota = backend.quota_size();
        backend.note_freed(60 * 1024);
        assert_eq!(backend.size_in_use(), before + 40 * 1024);
        assert_eq!(
            backend.quota_size(),
            quota,
            "only a measurement lowers the quota's figure"
        );
        // Near the quota (here: at it), it is measured as soon as its cost allows.
        let measured = || backend.written_since_refresh.load(Ordering::Relaxed) == 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !measured() && Instant::now() < deadline {
            backend.maybe_refresh_in_use(quota).expect("maybe refresh");
        }
        assert!(measured(), "not measured near the quota");
        assert!(
            in_use() >= before + 100 * 1024,
            "{} -> {}",
            before,
            in_use()
        );
    }

    #[test]
    fn a_snapshot_copy_is_as_long_as_a_defragmented_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = Backend::open(&dir.path().join("db")).expect("open");
        let txn = backend.write(true).expect("write");
        {
            let mut t = txn.open_table(KV).expect("kv");
            for k in revision_keys() {
                t.insert(k.as_slice(), vec![b'v'; 1024].as_slice())
                    .expect("insert");
            }
        }
        txn.commit().expect("commit");
        let copy = dir.path().join("copy");
        backend.snapshot_copy(&copy).expect("snapshot copy");
        backend.defragment().expect("defragment");
        let len = std::fs::metadata(&copy).expect("copy").len();
        assert_eq!(len, backend.size(), "snapshot copy, defragmented database");
    }

    fn assert_kv_holds(backend: &Backend, keys: &[Vec<u8>]) {
        let read = backend.read().expect("read");
        let table = read.open_table(KV).expect("kv as revision keys");
        let stored: Vec<(Vec<u8>, Vec<u8>)> = table
            .iter()
            .expect("iter")
            .map(|e| e.map(|(k, v)| (k.value().to_vec(), v.value().to_vec())))
            .collect::<std::result::Result<_, _>>()
            .expect("entries");
        let expected: Vec<(Vec<u8>, Vec<u8>)> =
            keys.iter().map(|k| (k.clone(), k.clone())).collect();
        assert_eq!(stored, expected);
        let middle = crate::mvcc::Revision::new(1000, 1).to_key(true).to_vec();
        let found = table.get(middle.as_slice()).expect("get");
        assert_eq!(found.map(|v| v.value().to_vec()), Some(middle.clone()));
        let staging = read.open_table(KV_MIGRATING);
        assert!(staging.is_err(), "the staging table is gone");
    }

    #[test]
    fn a_kv_table_of_plain_byte_keys_is_migrated_on_open_with_every_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let keys = revision_keys();
        write_old_layout(&path, &keys);
        let backend = Backend::open(&path).expect("open migrates");
        assert_kv_holds(&backend, &keys);
    }

    #[test]
    fn a_snapshot_from_an_older_leader_is_migrated_when_installed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = Backend::open(&dir.path().join("db")).expect("open");
        let incoming = dir.path().join("incoming");
        let keys = revision_keys();
        write_old_layout(&incoming, &keys);
        backend.install(&incoming).expect("install migrates");
        assert_kv_holds(&backend, &keys);
    }

    #[test]
    fn a_kv_table_with_a_key_that_is_no_revision_is_refused_not_migrated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        write_old_layout(&path, &[b"short".to_vec()]);
        let err = Backend::open(&path).err().expect("refused");
        assert!(
            err.to_string().contains("which is not a revision key"),
            "{err}"
        );
        let db = Database::create(&path).expect("reopen");
        let read = db.begin_read().expect("read");
        let old = read.open_table(KV_AS_BYTES).expect("old kv kept");
        assert_eq!(old.len().expect("len"), 1);
    }
}
