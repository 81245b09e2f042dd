//! `EtcdBackup`: one backup, now. Creating the object is the request (GitOps-friendly: a
//! commit adds one); its status says where the backup went and whether it worked. The
//! object is done once its phase is `Succeeded` or `Failed`; it is never retried, so that
//! what it reports is one attempt.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BackupStore, Compression};

/// One backup of an `EtcdCluster` in the same namespace, taken once.
// Each print column repeats `type_`; clippy reads the columns as one attribute list.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ballast.dev",
    version = "v1alpha1",
    kind = "EtcdBackup",
    plural = "etcdbackups",
    shortname = "eb",
    category = "ballast",
    namespaced,
    status = "EtcdBackupStatus",
    derive = "PartialEq",
    doc = "One backup of an EtcdCluster, taken when the object is created.",
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".spec.clusterName",
        description = "Cluster backed up"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Pending, Running, Succeeded or Failed"
    ),
    printcolumn(
        name = "Backup",
        type_ = "string",
        json_path = ".status.name",
        description = "Name in the store"
    ),
    printcolumn(
        name = "Revision",
        type_ = "integer",
        json_path = ".status.revision",
        description = "Revision in the snapshot"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self == oldSelf",
    "message": "an EtcdBackup cannot change: create another one"
}]))]
pub struct EtcdBackupSpec {
    /// The `EtcdCluster` to back up, in this namespace.
    #[schemars(length(min = 1))]
    pub cluster_name: String,
    /// Where the backup goes. Default: the cluster's `spec.backup.store`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<BackupStore>,
    /// Compression. Default: the cluster's `spec.backup.compression`, else none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
}

/// Where an `EtcdBackup` is.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum BackupPhase {
    /// Not started (e.g. the cluster does not exist yet).
    #[default]
    Pending,
    /// The backup job runs.
    Running,
    /// Stored; `name` and `location` say where.
    Succeeded,
    /// Not stored; `message` says why.
    Failed,
}

/// What became of the backup.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdBackupStatus {
    /// Pending, Running, Succeeded or Failed.
    #[serde(default)]
    pub phase: BackupPhase,
    /// The Job that runs `ballast backup save`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The backup's name in the store (what `spec.restore.backup` of a new cluster takes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where it is, e.g. `s3://bucket/prefix/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The store it went to, with its prefix (or path) spelled out: a restore from this
    /// object reads it from here, whatever later becomes of the cluster's `spec.backup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<BackupStore>,
    /// Revision of the cluster in the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Stored bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// What went wrong, or what it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the job ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
}
