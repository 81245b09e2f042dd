//! Backups: the CronJob of `spec.backup`, the Job of an `EtcdBackup`, the Job that checks a
//! backup before a cluster is restored from it, and what their outcomes say.
//!
//! Every one of them runs `ballast backup` from the cluster's own image with the operator's
//! client certificate, so a backup needs nothing the cluster does not already have. Their
//! results come back through the container's termination message (one JSON line written by
//! `ballast backup`), which Kubernetes keeps on the pod: no log scraping, no side channel.

pub mod assess;
pub mod job;
pub mod rollback;
pub mod schedule;

use crate::crd::{BackupStore, EtcdClusterSpec, RestoreSpec};
use crate::names::ClusterNames;

/// Where the volume of a `volume` store is mounted in backup pods.
pub const VOLUME_MOUNT: &str = "/var/lib/ballast-backups";

/// The key prefix (bucket) or directory (volume) of a cluster's backups when the store
/// names none: one cluster's backups never mix with another's, so retention only ever
/// deletes this cluster's.
pub fn default_prefix(names: &ClusterNames) -> String {
    format!("{}/{}", names.namespace, names.name)
}

/// `ballast backup --to/--from` for `store`, as seen from inside a backup pod.
pub fn location(names: &ClusterNames, store: &BackupStore) -> String {
    let trim = |p: &str| p.trim_matches('/').to_string();
    match (&store.s3, &store.volume) {
        (Some(s3), _) => {
            let prefix = s3
                .prefix
                .as_deref()
                .map(trim)
                .unwrap_or_else(|| default_prefix(names));
            if prefix.is_empty() {
                format!("s3://{}", s3.bucket)
            } else {
                format!("s3://{}/{prefix}", s3.bucket)
            }
        }
        (None, Some(volume)) => {
            let path = volume
                .path
                .as_deref()
                .map(trim)
                .unwrap_or_else(|| default_prefix(names));
            if path.is_empty() {
                VOLUME_MOUNT.to_string()
            } else {
                format!("{VOLUME_MOUNT}/{path}")
            }
        }
        // The schema requires exactly one; a store with neither has nowhere to go.
        (None, None) => String::new(),
    }
}

/// The Secret holding the operator's client certificate (`ca.crt`, `tls.crt`, `tls.key`).
pub fn client_secret(names: &ClusterNames, spec: &EtcdClusterSpec) -> String {
    match &spec.tls.existing {
        Some(existing) => existing.operator_client_secret_name.clone(),
        None => names.operator_client_secret(),
    }
}

/// The sidecar's flags for `spec.restore`: a founding member that bootstraps the new
/// cluster fetches the backup, checks it, and restores it into its data dir with the new
/// cluster's identity (each founding member the same backup, as the seeds' runbook does).
pub fn restore_flags(names: &ClusterNames, restore: &RestoreSpec) -> Vec<String> {
    let mut flags = vec![
        format!("--restore-from={}", location(names, &restore.store)),
        format!("--restore-backup={}", restore.backup),
    ];
    if let Some(n) = restore.bump_revision {
        flags.push(format!("--restore-bump-revision={n}"));
    }
    flags
}
