//! Restarting from the member's own WAL and database (etcd's `bootstrapWithWAL`).

use super::{force_new_cluster, DataDir, Opened};
use crate::config::{ClusterState, Config};
use crate::error::{Error, Result};
use crate::mvcc::backend::{self, meta, META};
use crate::raft::node;
use crate::raft::wal::Wal;

/// Reopens the WAL and takes the member's identity from the database; with
/// `--force-new-cluster`, first turns the log into a one-member cluster's.
pub(super) fn restart(cfg: &Config, data: &DataDir<'_>) -> Result<Opened> {
    if cfg.initial_cluster_state == ClusterState::New {
        tracing::info!(data_dir = %cfg.data_dir.display(), "found existing data; ignoring --initial-cluster");
    }
    let (mut wal, mut rec) = Wal::open(data.wal_dir)?;
    let (member_id, cluster_id) = {
        let txn = data.backend.read()?;
        let m = txn.open_table(META)?;
        (
            backend::get_u64(&m, meta::MEMBER_ID)?,
            backend::get_u64(&m, meta::CLUSTER_ID)?,
        )
    };
    if member_id == 0 {
        return Err(Error::Corrupt(format!(
            "the WAL in {} has no matching database (member ID missing from {}); restore this member from a snapshot or remove and re-add it",
            data.wal_dir.display(),
            data.backend.path().display()
        )));
    }
    let applied_conf = {
        let txn = data.backend.read()?;
        backend::get_conf_state(&txn.open_table(META)?)?
    };
    if cfg.force_new_cluster {
        force_new_cluster::force_new_cluster(
            &mut wal,
            &mut rec,
            member_id,
            data.members,
            applied_conf.as_ref(),
        )?;
    }
    let log = node::restore(rec.hard_state, rec.snapshot, rec.entries, applied_conf)?;
    Ok(Opened {
        member_id,
        cluster_id,
        wal,
        log,
    })
}
