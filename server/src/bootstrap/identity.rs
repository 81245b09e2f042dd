//! The step a joining member and a new cluster's member share: record who the
//! member is, then create its first WAL.

use raft::prelude::ConfState;

use super::{DataDir, Opened};
use crate::cluster::Member;
use crate::error::{Error, Result};
use crate::mvcc::backend::{self, meta, META};
use crate::raft::node;
use crate::raft::wal::Wal;

/// Who a member without a WAL is about to be.
pub(super) struct Identity {
    pub member_id: u64,
    pub cluster_id: u64,
    /// The members known before the log says more.
    pub members: Vec<Member>,
    /// The whole initial configuration, for a member of a new cluster; a joining
    /// member learns it from the leader's log.
    pub conf_state: Option<ConfState>,
}

/// Writes the identity into the database, then the first WAL, which `init_wal`
/// fills, and opens that WAL. Identity first, then the WAL (built aside and
/// renamed into place): a crash in between leaves no WAL, so the next start
/// bootstraps again.
pub(super) fn write_identity_and_wal(
    data: &DataDir<'_>,
    identity: Identity,
    init_wal: impl FnOnce(&mut Wal) -> Result<()>,
) -> Result<Opened> {
    let Identity {
        member_id,
        cluster_id,
        members,
        conf_state,
    } = identity;
    {
        let txn = data.backend.write(true)?;
        {
            let mut m = txn.open_table(META)?;
            backend::put_u64(&mut m, meta::MEMBER_ID, member_id)?;
            backend::put_u64(&mut m, meta::CLUSTER_ID, cluster_id)?;
            // A restored snapshot carries an old applied index; this log starts at 0.
            backend::put_u64(&mut m, meta::APPLIED_INDEX, 0)?;
            if let Some(conf) = &conf_state {
                // The whole initial configuration, from the first start on:
                // no member may ever elect itself with a partial one.
                backend::put_conf_state(&mut m, conf)?;
            }
        }
        txn.commit()?;
    }
    data.members.save(data.backend, members)?;
    let tmp_wal = data.wal_dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp_wal);
    {
        let mut wal = Wal::create(&tmp_wal)?;
        init_wal(&mut wal)?;
    }
    std::fs::rename(&tmp_wal, data.wal_dir)
        .map_err(|e| Error::io(format!("rename {} into place", tmp_wal.display()), e))?;
    backend::sync_dir(data.wal_dir)?;
    let (wal, rec) = Wal::open(data.wal_dir)?;
    let log = node::restore(rec.hard_state, rec.snapshot, rec.entries, conf_state)?;
    Ok(Opened {
        member_id,
        cluster_id,
        wal,
        log,
    })
}
