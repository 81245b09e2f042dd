//! Restoring a founding member from a backup (`--restore-from`, `--restore-backup`): the
//! operator's version of seed 002's runbook. Every founding member of a cluster being
//! created fetches the same backup, checks it (SHA-256 against its metadata, then the
//! snapshot's own trailer), and restores it with the new cluster's identity (its
//! `--initial-cluster` and token, hence a new cluster ID); the server then starts from that
//! data dir as from any other. Members that join later get the data from the leader, as
//! any new member does.
//!
//! The snapshot is fetched onto the member's volume beside the data dir (a snapshot can be
//! far larger than the pod's scratch space) and deleted once restored.

use std::path::PathBuf;

use super::Args;
use crate::error::Error;
use crate::snapshot::restore::{self, NewCluster, RevisionBump};

/// What the flags ask for, if anything.
pub fn requested(args: &Args) -> Option<(String, String)> {
    Some((args.restore_from.clone()?, args.restore_backup.clone()?))
}

fn download_path(args: &Args) -> PathBuf {
    let parent = args
        .data_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| args.data_dir.clone());
    parent.join("restore.db")
}

/// Fetches, checks and restores the backup into the (empty) data dir. On failure nothing
/// is left in the data dir, and the error says which backup and what is wrong.
pub async fn run(args: &Args, from: &str, backup: &str) -> Result<(), Error> {
    let location = crate::backup::Location::parse(from)?;
    let file = download_path(args);
    tracing::info!(%from, %backup, to = %file.display(), "fetching the backup to restore");
    let meta = crate::backup::fetch(&location, backup, &file).await?;
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
    let (data_dir, path) = (args.data_dir.clone(), file.clone());
    let restored = tokio::task::spawn_blocking(move || {
        restore::restore(&path, &data_dir, None, false, bump, Some(&cluster))
    })
    .await
    .map_err(|e| Error::Other(format!("restore task: {e}")))?;
    let _ = std::fs::remove_file(&file);
    restored?;
    tracing::info!(
        %backup,
        revision = meta.revision,
        bump = bump.amount,
        "restored the backup; the member starts from it in a new cluster"
    );
    Ok(())
}
