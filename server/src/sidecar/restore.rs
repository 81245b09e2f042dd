//! Restoring a founding member from a backup (`--restore-from`, `--restore-backup`): the
//! operator's version of seed 002's runbook. Every founding member of a cluster being
//! created fetches the same backup, checks it (SHA-256 against its metadata, then the
//! snapshot's own trailer), and restores it with the new cluster's identity (its
//! `--initial-cluster` and token, hence a new cluster ID); the server then starts from that
//! data dir as from any other. Members that join later get the data from the leader, as
//! any new member does.
//!
//! The work is [`crate::backup::restore_member`]'s: the snapshot is fetched onto the
//! member's volume beside the data dir (a snapshot can be far larger than the pod's scratch
//! space) and restored there.

use super::Args;
use crate::error::Error;
use crate::snapshot::restore::{NewCluster, RevisionBump};

/// What the flags ask for, if anything.
pub fn requested(args: &Args) -> Option<(String, String)> {
    Some((args.restore_from.clone()?, args.restore_backup.clone()?))
}

/// Fetches, checks and restores the backup into the (empty) data dir. On failure nothing
/// is left in the data dir, and the error says which backup and what is wrong.
pub async fn run(args: &Args, from: &str, backup: &str) -> Result<(), Error> {
    let location = crate::backup::Location::parse(from)?;
    tracing::info!(%from, %backup, "fetching the backup to restore");
    let cluster = NewCluster {
        name: args.member.clone(),
        initial_cluster: args.initial_cluster.clone(),
        token: args.initial_cluster_token.clone(),
        advertise_peer_urls: Some(args.advertise_peer_url()),
    };
    let bump = RevisionBump {
        amount: args.restore_bump_revision.unwrap_or(0),
        mark_compacted: args.restore_bump_revision.is_some_and(|n| n > 0),
    };
    let done =
        crate::backup::restore_member(&location, backup, &args.data_dir, cluster, bump).await?;
    tracing::info!(
        %backup,
        ?done,
        bump = bump.amount,
        "restored the backup; the member starts from it in a new cluster"
    );
    Ok(())
}
