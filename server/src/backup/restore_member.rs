//! One member's data dir replaced by a backup, with a new cluster's identity: what a
//! founding member of a restored cluster does on its first start (the sidecar), and what
//! the operator's rollback Job does to every member of a stopped cluster (`ballast backup
//! restore-member`).
//!
//! It must be safe to run again after a crash at any point, and lose nothing:
//! - the backup is restored into a staging dir beside the data dir, and only a complete
//!   restore is swapped in (two renames on the same volume);
//! - the data it replaces is kept beside it (`data.before-restore`), so a mistaken rollback
//!   can be undone by hand; only the previous such copy is dropped, so repeated rollbacks
//!   do not fill the volume;
//! - a marker inside the restored data dir names the backup and the new cluster's token; it
//!   is written before the swap, so a second run for the same pair finds it on the data the
//!   first run put in place and does nothing (a repeated Job is harmless), and a run
//!   interrupted between the two renames finds no data dir and leaves the kept data alone;
//! - the marker means "restored and never started": the member renames it when it first
//!   starts on that data ([`mark_started`]). So a later run for the same pair (a rollback
//!   to a backup the cluster was rolled back to before, and has written to since) restores
//!   again instead of keeping data that has moved on, and a restore that never started
//!   (a rollback changed to another backup mid-way) holds nothing the backup does not: it
//!   is dropped rather than kept aside, so the data kept aside stays the data from before
//!   the rollback.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{fetch, Location};
use crate::error::{Error, Result};
use crate::snapshot::restore::{self, NewCluster, RevisionBump};

/// What [`restore_member`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// The backup (at this revision) is now the member's data.
    Now { revision: i64 },
    /// The marker says this backup was already restored for this cluster.
    Already,
}

/// The marker's file name, inside the restored data dir.
const MARKER: &str = "restored-from.json";

/// What the marker becomes once a member has started on the data (kept to say where the
/// data came from).
const STARTED: &str = "restored-from.started.json";

/// Called when a member starts on `data_dir`: a restore marker there now describes data
/// that a member has served (and may have written to), so it no longer means "untouched
/// restore". Failing to rename it stops the start: the next restore would otherwise keep
/// this data as if it had never been used.
pub fn mark_started(data_dir: &Path) -> Result<()> {
    let marker = data_dir.join(MARKER);
    if !marker.exists() {
        return Ok(());
    }
    let started = data_dir.join(STARTED);
    std::fs::rename(&marker, &started).map_err(io(format!(
        "rename the restore marker {} to {}",
        marker.display(),
        started.display()
    )))?;
    crate::mvcc::backend::sync_dir(&started)
}

/// Whether `data_dir` is a restore no member has started on.
fn untouched_restore(data_dir: &Path) -> bool {
    data_dir.join(MARKER).exists()
}

/// The marker a restore leaves in the data dir it made.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Marker {
    backup: String,
    token: String,
}

fn beside(data_dir: &Path, name: &str) -> PathBuf {
    data_dir
        .parent()
        .map(|p| p.join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::io(what, e)
}

/// Replaces `data_dir` with `backup` from `location`, restored as member `cluster.name` of
/// the new cluster `cluster` (its `--initial-cluster` and token).
pub async fn restore_member(
    location: &Location,
    backup: &str,
    data_dir: &Path,
    cluster: NewCluster,
    bump: RevisionBump,
) -> Result<Restored> {
    let wanted = Marker {
        backup: backup.to_string(),
        token: cluster.token.clone(),
    };
    // The marker travels inside the data dir: present means this very data is the restore.
    if let Ok(text) = std::fs::read_to_string(data_dir.join(MARKER)) {
        if serde_json::from_str::<Marker>(&text).ok().as_ref() == Some(&wanted) {
            return Ok(Restored::Already);
        }
    }
    let download = beside(data_dir, "restore.db");
    let meta = fetch(location, backup, &download).await?;

    let staging = beside(data_dir, "data.restoring");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(format!("remove {}", staging.display())))?;
    }
    let (file, target) = (download.clone(), staging.clone());
    let restored = tokio::task::spawn_blocking(move || {
        restore::restore(&file, &target, None, false, bump, Some(&cluster))
    })
    .await
    .map_err(|e| Error::Backup(format!("restore task: {e}")))?;
    let _ = std::fs::remove_file(&download);
    restored?;
    let text = serde_json::to_string(&wanted)
        .map_err(|e| Error::Backup(format!("cannot encode the restore marker: {e}")))?;
    let marker = staging.join(MARKER);
    std::fs::write(&marker, text).map_err(io(format!("write {}", marker.display())))?;
    crate::mvcc::backend::sync_dir(&marker)?;

    // Swap: the old data aside, the restored data in. Without a data dir (a first start, or
    // a crash between the two renames) nothing is moved, so the data kept aside by an
    // interrupted run stays.
    let kept = beside(data_dir, "data.before-restore");
    if data_dir.exists() && untouched_restore(data_dir) && kept.exists() {
        // Another backup's restore that never ran: the backup still has all of it, and the
        // copy kept aside is the data from before the rollback, which stays.
        std::fs::remove_dir_all(data_dir).map_err(io(format!("remove {}", data_dir.display())))?;
    } else if data_dir.exists() {
        if kept.exists() {
            std::fs::remove_dir_all(&kept).map_err(io(format!("remove {}", kept.display())))?;
        }
        std::fs::rename(data_dir, &kept).map_err(io(format!(
            "move {} aside to {}",
            data_dir.display(),
            kept.display()
        )))?;
    }
    std::fs::rename(&staging, data_dir).map_err(io(format!(
        "move {} to {}",
        staging.display(),
        data_dir.display()
    )))?;
    crate::mvcc::backend::sync_dir(data_dir)?;
    Ok(Restored::Now {
        revision: meta.revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_sit_beside_the_data_dir_on_the_same_volume() {
        let d = Path::new("/var/lib/etcd/data");
        assert_eq!(
            beside(d, "restore.db"),
            Path::new("/var/lib/etcd/restore.db")
        );
        assert_eq!(
            beside(d, "data.before-restore"),
            Path::new("/var/lib/etcd/data.before-restore")
        );
    }
}
