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

use crate::crd::{
    BackupPhase, BackupStore, EtcdBackup, EtcdClusterSpec, RestoreSource, RestoreSpec,
};
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

/// `store` with its prefix (or path) spelled out, `prefix` where it names none: what an
/// `EtcdBackup` records of where its backup went, so that a later change of its cluster's
/// store or name cannot send a restore somewhere else.
pub fn with_prefix(prefix: &str, mut store: BackupStore) -> BackupStore {
    if let Some(s3) = store.s3.as_mut() {
        s3.prefix.get_or_insert_with(|| prefix.to_string());
    }
    if let Some(volume) = store.volume.as_mut() {
        volume.path.get_or_insert_with(|| prefix.to_string());
    }
    store
}

/// Who holds a backup while this cluster restores from it (`ballast backup fetch --hold`):
/// namespace, name and UID, so that a cluster re-created under the same name is another
/// holder.
pub fn holder(names: &ClusterNames, uid: &str) -> String {
    let uid: String = uid.chars().filter(|c| *c != '-').take(8).collect();
    format!("{}-{}-{uid}", names.namespace, names.name)
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
pub fn restore_flags(
    names: &ClusterNames,
    source: &RestoreSource,
    bump_revision: Option<i64>,
) -> Vec<String> {
    let mut flags = vec![
        format!("--restore-from={}", location(names, &source.store)),
        format!("--restore-backup={}", source.backup),
    ];
    if let Some(n) = bump_revision {
        flags.push(format!("--restore-bump-revision={n}"));
    }
    flags
}

/// What `spec.restore` names, when it names the backup itself (store and name).
pub fn named_source(restore: &RestoreSpec) -> Option<RestoreSource> {
    Some(RestoreSource {
        store: restore.store.clone()?,
        backup: restore.backup.clone()?,
    })
}

/// The backup an `EtcdBackup` took: its name from its status, its store from its spec or
/// else from its cluster's `spec.backup` (`cluster_store`). `Err` says what is missing.
pub fn etcd_backup_source(
    name: &str,
    found: Option<&EtcdBackup>,
    cluster_store: Option<&BackupStore>,
) -> Result<RestoreSource, String> {
    let eb = found.ok_or_else(|| format!("EtcdBackup {name} does not exist"))?;
    let status = eb.status.clone().unwrap_or_default();
    match status.phase {
        BackupPhase::Succeeded => {}
        BackupPhase::Failed => {
            return Err(format!(
                "EtcdBackup {name} failed: {}",
                status.message.unwrap_or_default()
            ))
        }
        _ => return Err(format!("EtcdBackup {name} has not succeeded yet")),
    }
    let backup = status
        .name
        .ok_or_else(|| format!("EtcdBackup {name} succeeded but names no backup"))?;
    // Recorded when it was taken; else (an object from before that was recorded) from its
    // spec, or its cluster's, with the backed-up cluster's default prefix, not the one being
    // created.
    let store = match status.store {
        Some(store) => store,
        None => {
            let store = eb.spec.store.clone().or(cluster_store.cloned()).ok_or_else(|| {
                format!(
                    "EtcdBackup {name} has no store, and EtcdCluster {} has no spec.backup.store to say where it went",
                    eb.spec.cluster_name
                )
            })?;
            let namespace = eb.metadata.namespace.as_deref().unwrap_or("default");
            with_prefix(&format!("{namespace}/{}", eb.spec.cluster_name), store)
        }
    };
    Ok(RestoreSource { store, backup })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{EtcdBackupSpec, EtcdBackupStatus, S3Store};

    fn s3(bucket: &str) -> BackupStore {
        BackupStore {
            s3: Some(S3Store {
                bucket: bucket.into(),
                prefix: None,
                endpoint: None,
                region: None,
                credentials_secret_name: None,
            }),
            volume: None,
        }
    }

    fn eb(phase: BackupPhase, store: Option<BackupStore>) -> EtcdBackup {
        let mut b = EtcdBackup::new(
            "now",
            EtcdBackupSpec {
                cluster_name: "src".into(),
                store,
                compression: None,
            },
        );
        b.metadata.namespace = Some("db".into());
        b.status = Some(EtcdBackupStatus {
            phase,
            name: Some("20261203T140000Z-r12.db".into()),
            message: Some("boom".into()),
            ..EtcdBackupStatus::default()
        });
        b
    }

    #[test]
    fn an_etcd_backup_names_its_backup_and_store() {
        let own = eb(BackupPhase::Succeeded, Some(s3("own")));
        let got = etcd_backup_source("now", Some(&own), Some(&s3("cluster"))).expect("source");
        assert_eq!(got.backup, "20261203T140000Z-r12.db");
        assert_eq!(got.store.s3.map(|s| s.bucket), Some("own".to_string()));
        let inherits = eb(BackupPhase::Succeeded, None);
        let got = etcd_backup_source("now", Some(&inherits), Some(&s3("cluster"))).expect("source");
        assert_eq!(
            got.store.s3.as_ref().map(|s| s.bucket.as_str()),
            Some("cluster")
        );
        // Where the backed-up cluster's backups went, not the new cluster's default.
        assert_eq!(
            got.store.s3.and_then(|s| s.prefix).as_deref(),
            Some("db/src")
        );

        let refusals = [
            (etcd_backup_source("now", None, None), "does not exist"),
            (
                etcd_backup_source("now", Some(&eb(BackupPhase::Running, None)), Some(&s3("c"))),
                "has not succeeded yet",
            ),
            (
                etcd_backup_source("now", Some(&eb(BackupPhase::Failed, None)), Some(&s3("c"))),
                "failed: boom",
            ),
            (
                etcd_backup_source("now", Some(&inherits), None),
                "has no store",
            ),
        ];
        for (got, want) in refusals {
            let e = got.expect_err(want);
            assert!(e.contains(want), "{e}");
        }
    }
}
