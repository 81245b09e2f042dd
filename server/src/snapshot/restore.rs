//! `ballast snapshot status|restore`: the etcdutl equivalents for Ballast
//! snapshot files.

use std::path::{Path, PathBuf};

use redb::ReadableTableMetadata;

use crate::error::{Error, Result};
use crate::mvcc::backend::{self, meta, Backend, ALARMS, KV, MEMBERS, META};

/// What `snapshot status` prints.
#[derive(Debug, serde::Serialize)]
pub struct SnapshotStatus {
    pub hash: u32,
    pub revision: i64,
    #[serde(rename = "totalKey")]
    pub total_keys: u64,
    #[serde(rename = "totalSize")]
    pub total_size: u64,
}

/// Reads a snapshot file's database without touching any data dir.
pub fn status(file: &Path) -> Result<SnapshotStatus> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("create temp dir", e))?;
    let db = dir.path().join("db");
    super::extract(file, &db, false)?;
    let bytes = std::fs::read(&db).map_err(|e| Error::io("read database", e))?;
    let backend = Backend::open(&db)?;
    let (store, _) = crate::mvcc::KvStore::open(std::sync::Arc::new(backend))?;
    let backend = store.backend().clone();
    let txn = backend.read()?;
    let total_keys = txn.open_table(KV)?.len()?;
    Ok(SnapshotStatus {
        hash: crc32fast::hash(&bytes),
        revision: store.current_revision(),
        total_keys,
        total_size: bytes.len() as u64,
    })
}

/// Restores a snapshot into a new data dir. The member starts with the
/// snapshot's keys, leases and revisions and a new membership from
/// `--initial-cluster`, as with `etcdutl snapshot restore`.
pub fn restore(
    file: &Path,
    data_dir: &Path,
    wal_dir: Option<&Path>,
    skip_hash_check: bool,
) -> Result<PathBuf> {
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
    let snap = member.join("snap");
    std::fs::create_dir_all(&snap)
        .map_err(|e| Error::io(format!("create {}", snap.display()), e))?;
    let db = snap.join("db");
    super::extract(file, &db, skip_hash_check)?;
    // Forget the old cluster: identity, membership, alarms and log position
    // are set afresh when the member bootstraps.
    let backend = Backend::open(&db)?;
    let txn = backend.write(true)?;
    {
        let mut m = txn.open_table(META)?;
        for k in [meta::MEMBER_ID, meta::CLUSTER_ID, meta::APPLIED_TERM] {
            m.remove(k)?;
        }
        backend::put_u64(&mut m, meta::APPLIED_INDEX, 0)?;
        txn.open_table(MEMBERS)?.retain(|_, _| false)?;
        txn.open_table(ALARMS)?.retain(|_, _| false)?;
    }
    txn.commit()?;
    Ok(db)
}
