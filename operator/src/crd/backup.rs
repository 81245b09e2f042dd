//! Backups of an `EtcdCluster` (`spec.backup`), where they are kept, and restoring a new
//! cluster from one (`spec.restore`).
//!
//! A backup is what `etcdctl snapshot save` writes (the database and its SHA-256), stored
//! by `ballast backup save` with a JSON metadata object beside it. The store is an
//! S3-compatible bucket or a PersistentVolumeClaim; the object names carry the time and the
//! revision, so `ballast backup list` and the bucket's own listing sort the same way.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Scheduled backups, run by a CronJob the operator owns.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// When to take a backup, in cron syntax (five fields, UTC), e.g. `0 */6 * * *`.
    #[schemars(length(max = 128), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^ *[^ ]+( +[^ ]+){4} *$')",
        "message": "backup.schedule must be a cron schedule of five fields (minute hour day-of-month month day-of-week), e.g. '0 */6 * * *'"
    }]))]
    pub schedule: String,
    /// Where backups go.
    pub store: BackupStore,
    /// Keep only this many backups (the newest). Unset: no count limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self >= 1",
        "message": "backup.keepLast must be at least 1: the backup just taken is never deleted"
    }]))]
    pub keep_last: Option<i32>,
    /// Delete backups older than this (e.g. `168h`). Unset: no age limit. The newest
    /// backup is never deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
    /// Compression of the stored snapshot.
    #[serde(default)]
    pub compression: Compression,
    /// Stops scheduling new backups (the CronJob's `suspend`); the status keeps reporting.
    #[serde(default)]
    pub suspend: bool,
}

/// Compression of stored snapshots.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Compression {
    /// Stored as `etcdctl snapshot save` writes it (usable by etcdutl as it is).
    #[default]
    None,
    /// gzip; `ballast backup fetch` decompresses.
    Gzip,
}

impl Compression {
    /// The value of `ballast backup save --compress`.
    pub fn flag(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
        }
    }
}

/// A bucket or a volume; exactly one.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.s3) != has(self.volume)",
    "message": "a backup store is either s3 or volume, exactly one of them"
}]))]
pub struct BackupStore {
    /// An S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Store>,
    /// A PersistentVolumeClaim in the cluster's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeStore>,
}

/// An S3-compatible bucket.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Store {
    /// Bucket name; it must exist.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Key prefix of this cluster's backups. Default: `<namespace>/<cluster name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Endpoint URL for stores other than AWS (e.g. `http://minio.storage:9000`). Requests
    /// use path-style addressing (`endpoint/bucket/key`), which every S3-compatible store
    /// accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.startsWith('https://') || self.startsWith('http://')",
        "message": "s3.endpoint must be an http:// or https:// URL"
    }]))]
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Secret in the cluster's namespace whose keys become the backup job's environment:
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN` if used).
    /// Unset: the pod's own identity (e.g. IRSA) is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_name: Option<String>,
}

/// A PersistentVolumeClaim the backup job mounts.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeStore {
    /// The claim; it must exist in the cluster's namespace.
    pub claim_name: String,
    /// Directory inside the volume. Default: `<namespace>/<cluster name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Create the cluster from a backup instead of empty: a backup named in a store, or the
/// one an `EtcdBackup` took.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self == oldSelf",
        "message": "restore is immutable"
    },
    {
        "rule": "has(self.backup) != has(self.etcdBackup)",
        "message": "restore names a backup either by store and backup, or by etcdBackup"
    },
    {
        "rule": "!has(self.backup) || has(self.store)",
        "message": "restore.backup needs restore.store (where the backup is)"
    },
    {
        "rule": "!has(self.store) || !has(self.store.volume) || has(self.store.volume.path)",
        "message": "restore.store.volume.path is required: the default path is the new cluster's own (<namespace>/<name>), where no backups are yet; name the backed-up cluster's"
    },
    {
        "rule": "!has(self.store) || !has(self.store.s3) || has(self.store.s3.prefix)",
        "message": "restore.store.s3.prefix is required: the default prefix is the new cluster's own (<namespace>/<name>), where no backups are yet; name the backed-up cluster's"
    }
]))]
pub struct RestoreSpec {
    /// Where the backup is; its `prefix` (S3) or `path` (volume) is required: the
    /// backed-up cluster's, by default `<namespace>/<its name>`. From a volume, Jobs restore
    /// each member's claim before the members start, so the volume must be mountable where
    /// the members run (ReadWriteMany, or one node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<BackupStore>,
    /// The backup's name, as `ballast backup list` and `status.backup.lastSuccessful.name`
    /// give it (e.g. `20261203T140000Z-r1234.db`). An exact name, never "latest": every
    /// member must restore the same snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub backup: Option<String>,
    /// An `EtcdBackup` in this namespace that succeeded: its backup, from its store (or
    /// its cluster's `spec.backup.store`). Looked up once, when the cluster is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_backup: Option<String>,
    /// Move revisions this far past the backup's newest revision and mark the revisions
    /// before compacted (`etcdutl snapshot restore --bump-revision --mark-compacted`), so
    /// that watchers of the old cluster (kube-apiserver) re-list instead of missing changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self >= 1",
        "message": "restore.bumpRevision must be positive"
    }]))]
    pub bump_revision: Option<i64>,
}

/// The backup a cluster was created from, as first resolved (kept so that later changes to
/// an `EtcdBackup` or its cluster never change the members' pods).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSource {
    /// Where it is.
    pub store: BackupStore,
    /// Its name in the store.
    pub backup: String,
}

/// One backup, as `ballast backup save` described it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRecord {
    /// When the job ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// The Job that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The backup's name in the store (what `spec.restore.backup` takes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where it is, e.g. `s3://bucket/prefix/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Revision of the cluster in the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Stored bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Scheduled backups as observed.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// The newest backup that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful: Option<BackupRecord>,
    /// The newest backup that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed: Option<BackupRecord>,
}

/// Roll an existing cluster back to a backup: every member is stopped, restored from the
/// same backup with a new cluster ID, and started again. Writes made after the backup are
/// lost; clients see the cluster down meanwhile. Done once per backup name: to roll back
/// again, name another backup (or remove this and add it back after a new backup).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackSpec {
    /// The backup's name, as `ballast backup list` and `status.backup` give it.
    #[schemars(length(min = 1, max = 253))]
    pub backup: String,
    /// Where it is. Default: `spec.backup.store`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<BackupStore>,
    /// The cluster's name, typed again: a rollback throws away every write since the
    /// backup, so it must be meant for this cluster.
    pub confirm: String,
    /// As `restore.bumpRevision`: revisions move past everything clients saw before, so
    /// watchers re-list instead of missing the rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self >= 1",
        "message": "rollback.bumpRevision must be positive"
    }]))]
    pub bump_revision: Option<i64>,
}

/// Where a rollback is.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RollbackPhase {
    /// The backup is being fetched and checked; nothing is stopped yet.
    #[default]
    Checking,
    /// The members are being stopped.
    Stopping,
    /// Each member's data is being replaced by the backup.
    Restoring,
    /// The restored members are starting.
    Starting,
    /// The members serve the backup's data as a new cluster.
    Succeeded,
    /// Stopped short; `message` says where the members are and what to do.
    Failed,
}

/// The last rollback, as observed.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackStatus {
    /// The backup rolled back to.
    pub backup: String,
    /// Where it is.
    pub phase: RollbackPhase,
    /// What it waits for, or what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How many members the rollback restores and starts: `spec.replicas` when the members
    /// were stopped, kept until it ends, so that a change meanwhile cannot give members
    /// different memberships (the change is carried out after the rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<i32>,
    /// When the members were told to stop (clients cannot write from then on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Time>,
    /// When the restored cluster answered again (clients can write from then on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writable_since: Option<Time>,
}
