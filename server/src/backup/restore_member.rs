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
//! - a marker beside the data dir names the backup and the new cluster's token; a second
//!   run for the same pair finds it and does nothing, so a repeated Job never rolls a member
//!   back over writes made after the first one.

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

/// The marker written once a restore is in place.
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
    let marker_path = beside(data_dir, "restored-from.json");
    let wanted = Marker {
        backup: backup.to_string(),
        token: cluster.token.clone(),
    };
    if let Ok(text) = std::fs::read_to_string(&marker_path) {
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

    // Swap: the old data (if any) aside, the restored data in.
    let kept = beside(data_dir, "data.before-restore");
    if data_dir.exists() {
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
    let text = serde_json::to_string(&wanted)
        .map_err(|e| Error::Backup(format!("cannot encode the restore marker: {e}")))?;
    std::fs::write(&marker_path, text).map_err(io(format!("write {}", marker_path.display())))?;
    crate::mvcc::backend::sync_dir(&marker_path)?;
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
