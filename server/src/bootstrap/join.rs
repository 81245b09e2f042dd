//! Joining a running cluster (`--initial-cluster-state existing`, etcd's
//! `bootstrapExistingClusterNoWAL`) as the member `etcdctl member add` created.

use super::identity::{self, Identity};
use super::{DataDir, Opened};
use crate::error::Result;
use crate::peer::JoinInfo;
use crate::raft::wal::SnapshotMark;

/// Takes the identity the cluster gave this member (`peer::discover`) and starts an
/// empty log: the log, bootstrap entries included, comes from the leader.
pub(super) fn join(data: &DataDir<'_>, join: JoinInfo) -> Result<Opened> {
    let identity = Identity {
        member_id: join.member_id,
        cluster_id: join.cluster_id,
        members: join.members,
        conf_state: None,
    };
    identity::write_identity_and_wal(data, identity, |wal| {
        wal.mark_snapshot(SnapshotMark::default())?;
        Ok(())
    })
}
