//! Opening a member's data dir, one function per way a member starts (as etcd's
//! `bootstrap.go` separates them): `restart` from its own WAL and database (with
//! `--force-new-cluster` as a variant of it), `join` a running cluster, or bootstrap a
//! `new_cluster`. The last two create the member's first WAL through one shared step,
//! `identity`. What comes out is the member's identity, its WAL and the Raft log
//! rebuilt from it; `server::start` builds the running member on top.

mod force_new_cluster;
mod identity;
mod join;
mod new_cluster;
mod restart;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cluster::Members;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::mvcc::backend::Backend;
use crate::peer::JoinInfo;
use crate::raft::ids;
use crate::raft::storage::LogStore;
use crate::raft::wal::Wal;

pub use new_cluster::initial_members;

/// A member's data, opened and ready to run.
pub struct Bootstrapped {
    pub member_id: u64,
    pub cluster_id: u64,
    pub backend: Arc<Backend>,
    pub members: Arc<Members>,
    pub wal: Wal,
    /// The Raft log rebuilt from the WAL.
    pub log: LogStore,
    /// Where the database lives; Raft snapshots are written beside it.
    pub snap_dir: PathBuf,
    /// The data dir lock, to hold for the life of the member.
    pub lock: std::fs::File,
}

/// What each way of starting yields: who this member is, and its log.
struct Opened {
    member_id: u64,
    cluster_id: u64,
    wal: Wal,
    log: LogStore,
}

/// The member's storage, shared by the ways of starting.
struct DataDir<'a> {
    backend: &'a Backend,
    members: &'a Members,
    wal_dir: &'a Path,
}

/// Opens or creates the member's data: restarts from an existing WAL, else joins
/// the cluster `join` describes (`--initial-cluster-state existing`), else
/// bootstraps a new cluster from `--initial-cluster`.
pub fn bootstrap(cfg: &Config, join: Option<JoinInfo>) -> Result<Bootstrapped> {
    let member_dir = cfg.member_dir();
    let wal_dir = cfg.wal_path();
    let snap_dir = member_dir.join("snap");
    std::fs::create_dir_all(&snap_dir)
        .map_err(|e| Error::io(format!("create {}", snap_dir.display()), e))?;
    let lock = lock_data_dir(&member_dir)?;
    // Restored data, once served, is no longer an untouched restore (see restore_member).
    crate::backup::restore_member::mark_started(&cfg.data_dir)?;
    let backend = Arc::new(Backend::open(&snap_dir.join("db"))?);
    let members = Arc::new(Members::load(&backend)?);
    let data = DataDir {
        backend: &backend,
        members: &members,
        wal_dir: &wal_dir,
    };

    let opened = if Wal::exists(&wal_dir) {
        restart::restart(cfg, &data)?
    } else if let Some(join) = join {
        join::join(&data, join)?
    } else {
        new_cluster::new_cluster(cfg, &data)?
    };
    record_own_attributes(cfg, &data, opened.member_id)?;
    Ok(Bootstrapped {
        member_id: opened.member_id,
        cluster_id: opened.cluster_id,
        backend,
        members,
        wal: opened.wal,
        log: opened.log,
        snap_dir,
        lock,
    })
}

/// This member's name and client URLs (published through Raft in etcd; a single
/// member records them directly).
fn record_own_attributes(cfg: &Config, data: &DataDir<'_>, member_id: u64) -> Result<()> {
    if let Some(mut me) = data.members.get(member_id) {
        me.name = cfg.name.clone();
        me.client_urls = cfg
            .advertise_client_urls
            .iter()
            .map(ids::url_string)
            .collect();
        data.members.save(data.backend, vec![me])?;
    }
    Ok(())
}

/// Two processes on one data dir would corrupt it; the second one stops.
fn lock_data_dir(member_dir: &Path) -> Result<std::fs::File> {
    let path = member_dir.join(".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    f.try_lock().map_err(|_| {
        Error::Other(format!(
            "data dir {} is in use by another process (another etcd or ballast member?)",
            member_dir.display()
        ))
    })?;
    Ok(f)
}
