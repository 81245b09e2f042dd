//! The `EtcdCluster` custom resource (`ballast.dev/v1alpha1`).
//!
//! The Rust types are the source of truth: `crds/etcdcluster.yaml` is generated from them
//! (`cargo run -p ballast-operator -- crd`), and a test fails when the file is stale.
//! Validation that a user should hear about at `kubectl apply` time lives in the schema as
//! CEL rules (`x-kubernetes-validations`) with messages written for people, not in the
//! controller: a rejected apply is a better answer than a cluster stuck in a bad state.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::core::Duration;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod backup;
mod etcd_backup;
mod maintenance;

pub use backup::{
    BackupRecord, BackupSpec, BackupStatus, BackupStore, Compression, RestoreSource, RestoreSpec,
    RollbackPhase, RollbackSpec, RollbackStatus, S3Store, VolumeStore,
};
pub use etcd_backup::{BackupPhase, EtcdBackup, EtcdBackupSpec, EtcdBackupStatus};
pub use maintenance::{DefragSpec, DefragStatus, MaintenanceSpec};

/// API group of the operator's resources.
pub const GROUP: &str = "ballast.dev";

/// Most members a cluster may have. Raft needs a majority for every write, so each member
/// past seven adds latency and failure modes without adding useful fault tolerance.
pub const MAX_REPLICAS: i32 = 7;

/// Desired state of an etcd-compatible cluster run by Ballast.
///
/// `kubectl get etcdclusters` (short name `ec`) shows members, ready members, the leader and
/// the version; `kubectl scale etcdcluster/NAME --replicas=N` changes `spec.replicas`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ballast.dev",
    version = "v1alpha1",
    kind = "EtcdCluster",
    plural = "etcdclusters",
    shortname = "ec",
    category = "ballast",
    namespaced,
    status = "EtcdClusterStatus",
    derive = "PartialEq",
    doc = "An etcd-compatible cluster served by Ballast, with its own PKI, run as a StatefulSet.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas", description = "Desired members"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas", description = "Members that are ready"),
    printcolumn(name = "Leader", type_ = "string", json_path = ".status.leader", description = "Current Raft leader"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.version", description = "Version running on all members"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = kube::core::Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 52")
        .message("metadata.name must be a DNS label of at most 52 characters starting with a letter: pods, services and certificates derive their names from it"),
    validation = kube::core::Rule::new("!has(self.spec.rollback) || self.spec.rollback.confirm == self.metadata.name")
        .message("spec.rollback.confirm must repeat the cluster's name: a rollback throws away every write made since the backup"),
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.options) || !has(self.options.quotaBackendBytes) || quantity(self.options.quotaBackendBytes).isLessThan(quantity(self.storage.size))",
        "message": "options.quotaBackendBytes must be smaller than storage.size: the backend database has to fit on the volume"
    },
    {
        "rule": "has(self.restore) == has(oldSelf.restore)",
        "message": "restore can only be set when the EtcdCluster is created; to restore an existing cluster, create a new EtcdCluster"
    }
]))]
pub struct EtcdClusterSpec {
    /// Number of members. 1, 3 or 5 are the usual choices; even counts are accepted but
    /// tolerate no more failures than the odd count below them, and status says so.
    /// Changing it (`kubectl scale`) adds members one at a time as learners, promoted
    /// once caught up, or removes the highest ordinals first, never below a healthy quorum.
    #[serde(default = "default_replicas")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self >= 1 && self <= 7",
        "message": "replicas must be between 1 and 7: every write waits for a majority, so more members make the cluster slower, not safer"
    }]))]
    pub replicas: i32,

    /// Ballast release to run; the image is `<operator's image repository>:<version>`.
    /// Defaults to the operator's own version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,

    /// Full image reference, overriding `version` (for mirrors and air-gapped registries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Image pull policy of the server and sidecar containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Secrets used to pull the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,

    /// The volume each member keeps its data on.
    #[serde(default)]
    pub storage: StorageSpec,

    /// Compute resources of the server container. Defaults to kubeadm's requests for its
    /// etcd static pod (100m CPU, 100Mi memory) and no limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Certificates: the operator runs a CA per cluster by default.
    #[serde(default)]
    pub tls: TlsSpec,

    /// Server settings passed as etcd flags.
    #[serde(default)]
    pub options: ServerOptions,

    /// Scheduling and metadata of the member pods.
    #[serde(default)]
    pub pod: PodSpec,

    /// Replace a member whose data is lost (its volume was deleted or came back empty):
    /// remove it from the cluster and add it back as a learner on empty data, one at a
    /// time and only while the others keep a quorum. `false` reports it instead.
    #[serde(default = "default_true")]
    pub replace_lost_members: bool,

    /// What the operator may do when a quorum of members is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoverySpec>,

    /// Kubernetes cluster domain used in member DNS names and certificate SANs.
    #[serde(default = "default_cluster_domain")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == oldSelf",
        "message": "clusterDomain cannot change after creation: the members' peer URLs and certificates are built from it"
    }]))]
    pub cluster_domain: String,

    /// Scheduled backups (a CronJob running `ballast backup save`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,

    /// Create the cluster from a backup instead of empty. Can only be set at creation. The
    /// backup is fetched and verified once before any member starts; a missing or corrupt
    /// one stops the creation with a condition, never with an empty cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreSpec>,

    /// Roll this running cluster back to a backup (all members stopped, restored, started
    /// as a new cluster). `confirm` must repeat the cluster's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackSpec>,

    /// Scheduled upkeep (defragmentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceSpec>,
}

fn default_replicas() -> i32 {
    3
}

/// Recovery from a lost quorum: always a loss of the writes the lost members had and the
/// survivor had not applied, so it happens only when asked for, here or through the
/// `ballast.dev/recover-quorum=true` annotation (one recovery, now).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoverySpec {
    /// `Manual` (default): report the loss, how long it has lasted and what to do.
    /// `Automatic`: once it has lasted `after`, restart the member that applied the most
    /// with `--force-new-cluster` and add the others back as learners on empty data.
    #[serde(default)]
    pub quorum_loss: QuorumLossPolicy,
    /// How long a quorum must stay lost before automatic recovery (default `10m`, at
    /// least `1m`).
    #[serde(default = "default_recovery_after")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "duration(self) >= duration('1m')",
        "message": "recovery.after must be at least 1m: recovering loses what the missing members had, and a member that is merely restarting must have time to come back"
    }]))]
    pub after: Duration,
}

/// See [`RecoverySpec::quorum_loss`].
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum QuorumLossPolicy {
    /// Report, never act.
    #[default]
    Manual,
    /// Recover after `after`.
    Automatic,
}

fn default_recovery_after() -> Duration {
    Duration::from(std::time::Duration::from_secs(600))
}

fn default_true() -> bool {
    true
}

fn default_cluster_domain() -> String {
    "cluster.local".to_string()
}

/// Kubernetes' image pull policies.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ImagePullPolicy {
    /// Pull on every start.
    Always,
    /// Pull when the node lacks the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl ImagePullPolicy {
    /// The value of a container's `imagePullPolicy`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

/// Persistent volume of each member.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0",
        "messageExpression": "'storage.size cannot shrink from ' + oldSelf.size + ' to ' + self.size + ': persistent volumes can only grow'"
    },
    {
        "rule": "has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",
        "message": "storage.storageClassName cannot change after creation: existing volumes keep their class"
    }
]))]
pub struct StorageSpec {
    /// Size of each member's volume, e.g. `8Gi`. It can grow (when the storage class allows
    /// volume expansion) but never shrink.
    #[serde(default = "default_storage_size")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))",
        "message": "storage.size must be a positive quantity such as 8Gi"
    }]))]
    pub size: String,

    /// StorageClass of the volumes; the cluster's default class when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

fn default_storage_size() -> String {
    "8Gi".to_string()
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
        }
    }
}

/// Certificates of the cluster, as kubeadm lays them out under `pki/etcd`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(has(self.caSecretName) && has(self.existing))",
        "message": "set either tls.caSecretName (the operator issues certificates from your CA) or tls.existing (you provide every certificate), not both"
    },
    {
        "rule": "duration(self.renewBefore) < duration(self.validity)",
        "message": "tls.renewBefore must be shorter than tls.validity, or certificates would be renewed as soon as they are issued"
    },
    {
        "rule": "duration(self.validity) >= duration('1h')",
        "message": "tls.validity must be at least 1h"
    },
    {
        "rule": "has(self.existing) == has(oldSelf.existing) && has(self.caSecretName) == has(oldSelf.caSecretName) && (!has(self.caSecretName) || self.caSecretName == oldSelf.caSecretName)",
        "message": "the TLS mode (the operator's CA, tls.caSecretName, or tls.existing) cannot change after creation: members and clients would stop trusting each other; create a new EtcdCluster to change it"
    }
]))]
pub struct TlsSpec {
    /// An existing Secret with the CA (`ca.crt`/`ca.key`, or `tls.crt`/`tls.key`). The
    /// operator issues member and client certificates from it and never replaces it. When
    /// unset, the operator creates `<name>-ca` (10 years) and keeps it for the life of the
    /// cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_name: Option<String>,

    /// Certificates you issue yourself (e.g. with cert-manager); the operator then issues
    /// nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing: Option<ExistingCertificates>,

    /// Lifetime of the certificates the operator issues (Go duration, e.g. `8760h`).
    #[serde(default = "default_validity")]
    pub validity: Duration,

    /// How long before expiry a certificate is renewed. Members re-read their certificate
    /// files, so renewal needs no restart; the CA is never renewed silently.
    #[serde(default = "default_renew_before")]
    pub renew_before: Duration,
}

fn default_validity() -> Duration {
    Duration::from(std::time::Duration::from_secs(365 * 24 * 3600))
}

fn default_renew_before() -> Duration {
    Duration::from(std::time::Duration::from_secs(30 * 24 * 3600))
}

impl Default for TlsSpec {
    fn default() -> Self {
        Self {
            ca_secret_name: None,
            existing: None,
            validity: default_validity(),
            renew_before: default_renew_before(),
        }
    }
}

/// Secrets of type `kubernetes.io/tls` with `tls.crt`, `tls.key` and `ca.crt`, provided by
/// the user. One server and one peer certificate are shared by all members, so their SANs
/// must cover every member (a wildcard for the peer service works).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExistingCertificates {
    /// Server certificate (serverAuth and clientAuth).
    pub server_secret_name: String,
    /// Peer certificate (serverAuth and clientAuth).
    pub peer_secret_name: String,
    /// Client certificate the operator uses to ask members for their status.
    pub operator_client_secret_name: String,
}

/// Server flags. Unset fields keep etcd's defaults, except `snapshotCount`, which follows
/// kubeadm (10000).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.electionTimeout >= 5 * self.heartbeatInterval",
    "message": "options.electionTimeout must be at least 5 times options.heartbeatInterval (etcd refuses to start otherwise)"
}]))]
pub struct ServerOptions {
    /// Backend size at which the cluster raises a NOSPACE alarm and refuses writes
    /// (`--quota-backend-bytes`), e.g. `2Gi`. etcd's default (2GiB) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))",
        "message": "options.quotaBackendBytes must be a positive quantity such as 2Gi"
    }]))]
    pub quota_backend_bytes: Option<String>,

    /// Automatic compaction of old revisions (`--auto-compaction-mode`/`-retention`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_compaction: Option<AutoCompaction>,

    /// Applied entries between Raft snapshots (`--snapshot-count`).
    #[serde(default = "default_snapshot_count")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self >= 1",
        "message": "options.snapshotCount must be at least 1"
    }]))]
    pub snapshot_count: i64,

    /// Leader heartbeat period in milliseconds (`--heartbeat-interval`).
    #[serde(default = "default_heartbeat")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self >= 10 && self <= 5000",
        "message": "options.heartbeatInterval is in milliseconds and must be between 10 and 5000"
    }]))]
    pub heartbeat_interval: i32,

    /// Election timeout in milliseconds (`--election-timeout`).
    #[serde(default = "default_election")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self >= 50 && self <= 50000",
        "message": "options.electionTimeout is in milliseconds and must be between 50 and 50000"
    }]))]
    pub election_timeout: i32,
}

fn default_snapshot_count() -> i64 {
    10_000
}

fn default_heartbeat() -> i32 {
    100
}

fn default_election() -> i32 {
    1000
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            quota_backend_bytes: None,
            auto_compaction: None,
            snapshot_count: default_snapshot_count(),
            heartbeat_interval: default_heartbeat(),
            election_timeout: default_election(),
        }
    }
}

/// How old revisions are compacted.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.mode != 'revision' || self.retention.matches('^[0-9]+$')",
        "message": "with autoCompaction.mode revision, retention is a number of revisions such as 1000"
    },
    {
        "rule": "self.mode != 'periodic' || self.retention.matches('^[0-9]+$') || self.retention.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$')",
        "message": "with autoCompaction.mode periodic, retention is a duration such as 1h or a number of hours"
    }
]))]
pub struct AutoCompaction {
    /// `periodic` keeps a time window of history, `revision` a number of revisions.
    pub mode: CompactionMode,
    /// `1h` (periodic) or `1000` (revision).
    pub retention: String,
}

/// etcd's `--auto-compaction-mode` values.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CompactionMode {
    /// Keep a time window of history.
    Periodic,
    /// Keep a number of revisions.
    Revision,
}

impl CompactionMode {
    /// The flag value etcd expects.
    pub fn as_flag(self) -> &'static str {
        match self {
            CompactionMode::Periodic => "periodic",
            CompactionMode::Revision => "revision",
        }
    }
}

/// Scheduling and metadata of member pods.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// Replaces the default affinity (members spread over nodes, see `antiAffinity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// How strongly members avoid sharing a node when `affinity` is unset. `Preferred`
    /// (default) still schedules on a single-node cluster; `Required` never co-locates two
    /// members, so losing a node never costs more than one member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity: Option<AntiAffinity>,

    /// Tolerations of member pods (e.g. to run on control-plane nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Node labels member pods must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// PriorityClass of member pods; etcd backing a control plane deserves a high one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,

    /// Extra labels on member pods (the operator's own labels win on conflict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,

    /// Extra annotations on member pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Default pod anti-affinity between members.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AntiAffinity {
    /// Spread members over nodes when possible.
    Preferred,
    /// Never put two members on one node.
    Required,
}

/// Observed state, written only by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdClusterStatus {
    /// `metadata.generation` this status describes; older means the operator has not yet
    /// acted on the latest spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Available`, `Progressing`, `Degraded` and `ReplicaCountWarning`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Member pods that exist (the scale subresource's status replicas).
    #[serde(default)]
    pub replicas: i32,

    /// Member pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,

    /// Label selector of member pods, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// Members as the cluster itself reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberStatus>,

    /// Name of the current Raft leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,

    /// Cluster ID (hex) reported by the members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,

    /// Since when the members that answer have had no quorum. Unset while a quorum is
    /// healthy and while no member answers at all, so that automatic recovery only counts
    /// time during which it could have acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_lost_since: Option<Time>,

    /// Ballast version every member runs (set once a rollout has finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,

    /// Expiry of the certificates in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificateStatus>,

    /// Scheduled backups: the last that succeeded and the last that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStatus>,

    /// The last rollback (`spec.rollback`) and where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackStatus>,

    /// The last scheduled defragmentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defrag: Option<DefragStatus>,

    /// The backup `spec.restore` resolved to when the cluster was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<RestoreSource>,
}

/// One member, from `MemberList` and `Status`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Member name (the pod name).
    pub name: String,
    /// Member ID in hex, as `etcdctl member list -w table` prints it.
    pub id: String,
    /// `Leader`, `Follower` or `Learner`.
    pub role: MemberRole,
    /// Whether the member answered a status request without errors.
    pub healthy: bool,
    /// Whether the member is a non-voting learner.
    #[serde(default)]
    pub learner: bool,
}

/// Raft role of a member.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MemberRole {
    /// Accepts writes and replicates them.
    Leader,
    /// Voting member following the leader.
    #[default]
    Follower,
    /// Non-voting member catching up.
    Learner,
    /// Did not answer.
    Unknown,
}

/// Expiry of the PKI in use.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    /// When the CA expires. The operator never replaces a CA on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_not_after: Option<Time>,
    /// Earliest expiry among member and client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_not_after: Option<Time>,
    /// When the operator will renew the member and client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<Time>,
}

/// The CustomResourceDefinitions as YAML files, as committed under `crds/`.
pub fn crd_files() -> Result<Vec<(&'static str, String)>, serde_yaml_ng::Error> {
    use kube::CustomResourceExt;
    let header = "# Generated by `cargo run -p ballast-operator -- crd`; do not edit.\n";
    Ok(vec![
        (
            "etcdcluster.yaml",
            format!("{header}{}", serde_yaml_ng::to_string(&EtcdCluster::crd())?),
        ),
        (
            "etcdbackup.yaml",
            format!("{header}{}", serde_yaml_ng::to_string(&EtcdBackup::crd())?),
        ),
    ])
}
