//! What the operator asks Kubernetes to run for an `EtcdCluster`, as pure functions of the
//! spec (and of the few facts of the live cluster that Kubernetes will not let change).
//!
//! The StatefulSet is shaped like the static pod `kubeadm init phase etcd local` writes:
//! the server command line carries etcd's flags (sorted, as kubeadm writes them), probes
//! hit `/health` on the plain-HTTP metrics listener, and certificates sit where kubeadm's
//! `pki/etcd` files would. What a static pod gets from the host, a pod gets from Kubernetes:
//! data on a PersistentVolumeClaim, a stable DNS name from the headless Service, the member
//! name from the downward API (`$(POD_NAME)`, which Kubernetes expands in `command`).
//!
//! Rendering is deterministic (no clocks, no randomness), so snapshots pin it down and the
//! e2e pod runner can boot exactly what the controller would apply.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
    VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::{AntiAffinity, EtcdCluster, EtcdClusterSpec};
use crate::error::Error;
use crate::member_identity::IDENTITY_FLAG;
use crate::names::{ClusterNames, CLIENT_PORT, METRICS_PORT, PEER_PORT};
use crate::quantity;

/// Where the data volume is mounted, as kubeadm's `/var/lib/etcd`.
pub const DATA_MOUNT: &str = "/var/lib/etcd";
/// The data directory: a subdirectory, so a filesystem's `lost+found` never sits in it.
pub const DATA_DIR: &str = "/var/lib/etcd/data";
/// Shared between the sidecar and the server: the member configuration the sidecar writes.
pub const RUN_DIR: &str = "/run/ballast";
/// Certificates, as kubeadm's `/etc/kubernetes/pki/etcd`.
pub const PKI_DIR: &str = "/etc/ballast/pki";
/// The server container's name, as kubeadm's static pod names it.
pub const SERVER_CONTAINER: &str = "etcd";
/// Where the sidecar reads what the operator tells the members (the `<name>-state`
/// ConfigMap: the cluster's ID once formed, a recovery request).
pub const STATE_DIR: &str = "/etc/ballast/state";
/// Port of the sidecar's own health endpoint.
pub const SIDECAR_PORT: i32 = 2382;
/// The unprivileged user and group the containers run as (distroless `nonroot`).
pub const RUN_AS: i64 = 65532;

/// Settings of the operator that shape what it renders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderContext {
    /// Image repository used with `spec.version`, e.g. `ballast`.
    pub image_repository: String,
    /// Version used when `spec.version` is unset: the operator's own.
    pub default_version: String,
}

impl Default for RenderContext {
    fn default() -> Self {
        Self {
            image_repository: "ballast".to_string(),
            default_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// Everything rendered for one cluster, in the order it is applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// Headless Service giving members stable DNS names.
    pub peer_service: Service,
    /// Service clients use.
    pub client_service: Service,
    /// Keeps quorum through voluntary disruptions.
    pub pdb: PodDisruptionBudget,
    /// The members.
    pub statefulset: StatefulSet,
}

/// Where the server and sidecar find their certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsLayout {
    /// The operator's PKI: each member makes its own key on its volume and the operator
    /// signs its certificates (see [`crate::member_identity`]), so no pod holds another
    /// member's key. `ca.crt` comes from the sidecar's client Secret.
    OwnKeys {
        /// Secret mounted in the sidecar at `pki/client`.
        client_secret: String,
    },
    /// The user's Secrets (`tls.existing`): one server and one peer certificate shared
    /// by every member, mounted as they are.
    Mounted {
        /// Secret mounted at `pki/server`.
        server_secret: String,
        /// Secret mounted at `pki/peer`.
        peer_secret: String,
        /// Secret mounted in the sidecar at `pki/client`.
        client_secret: String,
    },
}

/// Where a member that makes its own key keeps it and its certificates: on its volume,
/// beside (not inside) the data dir, so a restart needs nobody and a lost volume takes the
/// key with it.
pub const IDENTITY_DIR: &str = "/var/lib/etcd/pki";

impl TlsLayout {
    /// The layout the spec asks for.
    pub fn for_spec(names: &ClusterNames, spec: &EtcdClusterSpec) -> Self {
        match &spec.tls.existing {
            Some(existing) => Self::Mounted {
                server_secret: existing.server_secret_name.clone(),
                peer_secret: existing.peer_secret_name.clone(),
                client_secret: existing.operator_client_secret_name.clone(),
            },
            None => Self::OwnKeys {
                client_secret: names.healthcheck_client_secret(),
            },
        }
    }

    /// The Secret the sidecar's client identity comes from.
    pub fn client_secret(&self) -> &str {
        match self {
            Self::OwnKeys { client_secret } | Self::Mounted { client_secret, .. } => client_secret,
        }
    }

    /// `(certificate, key, CA)` files of the server (`kind` = `server`) or peer side.
    fn files(&self, kind: &str) -> (String, String, String) {
        match self {
            Self::OwnKeys { .. } => (
                format!("{IDENTITY_DIR}/{kind}.crt"),
                format!("{IDENTITY_DIR}/member.key"),
                format!("{PKI_DIR}/ca/ca.crt"),
            ),
            Self::Mounted { .. } => (
                format!("{PKI_DIR}/{kind}/tls.crt"),
                format!("{PKI_DIR}/{kind}/tls.key"),
                format!("{PKI_DIR}/{kind}/ca.crt"),
            ),
        }
    }

    /// The CA the sidecar checks the member's certificates against.
    fn sidecar_ca(&self) -> String {
        match self {
            Self::OwnKeys { .. } => format!("{PKI_DIR}/client/ca.crt"),
            Self::Mounted { .. } => format!("{PKI_DIR}/server/ca.crt"),
        }
    }

    /// Certificate volumes the server container mounts.
    fn server_mounts(&self) -> Vec<VolumeMount> {
        match self {
            Self::OwnKeys { .. } => vec![mount("ca", &format!("{PKI_DIR}/ca"), true)],
            Self::Mounted { .. } => vec![
                mount("server-tls", &format!("{PKI_DIR}/server"), true),
                mount("peer-tls", &format!("{PKI_DIR}/peer"), true),
            ],
        }
    }

    /// Certificate volumes the sidecar mounts.
    fn sidecar_mounts(&self) -> Vec<VolumeMount> {
        let client = mount("client-tls", &format!("{PKI_DIR}/client"), true);
        match self {
            Self::OwnKeys { .. } => vec![client],
            Self::Mounted { .. } => {
                vec![
                    mount("server-tls", &format!("{PKI_DIR}/server"), true),
                    client,
                ]
            }
        }
    }

    /// The certificate volumes of the pod.
    fn volumes(&self) -> Vec<Volume> {
        match self {
            Self::OwnKeys { client_secret } => vec![
                secret_volume("client-tls", client_secret),
                Volume {
                    name: "ca".to_string(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(client_secret.clone()),
                        items: Some(vec![KeyToPath {
                            key: "ca.crt".to_string(),
                            path: "ca.crt".to_string(),
                            mode: None,
                        }]),
                        default_mode: Some(0o440),
                        ..SecretVolumeSource::default()
                    }),
                    ..Volume::default()
                },
            ],
            Self::Mounted {
                server_secret,
                peer_secret,
                client_secret,
            } => vec![
                secret_volume("server-tls", server_secret),
                secret_volume("peer-tls", peer_secret),
                secret_volume("client-tls", client_secret),
            ],
        }
    }
}

/// Facts of the live cluster that rendering must respect.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Live {
    /// Storage request of the existing StatefulSet's claim template. Kubernetes forbids
    /// changing claim templates, so growth is applied to the claims instead and the
    /// template keeps its size.
    pub claim_template_size: Option<String>,
    /// `--initial-cluster` of the existing pod template: the members the cluster was
    /// created with. It never changes afterwards, so scaling does not touch the template
    /// (which would restart every member); later members learn the membership at run time.
    pub founding_members: Option<String>,
    /// How many pods the StatefulSet runs, as the member lifecycle decided; `spec.replicas`
    /// for a cluster being created.
    pub pods: Option<i32>,
    /// Voting members as the cluster lists them, which size the PodDisruptionBudget;
    /// `spec.replicas` until the cluster answers.
    pub voters: Option<i32>,
    /// The backup `spec.restore` resolved to (`status.restoredFrom`).
    pub restore_source: Option<crate::crd::RestoreSource>,
}

impl Live {
    /// What the existing StatefulSet says about the cluster.
    pub fn from_statefulset(sts: Option<&StatefulSet>) -> Self {
        let spec = sts.and_then(|s| s.spec.as_ref());
        let template = spec.and_then(|s| s.template.spec.as_ref());
        let founding_members = template
            .and_then(|t| t.init_containers.as_ref())
            .into_iter()
            .flatten()
            .chain(template.map(|t| t.containers.iter()).into_iter().flatten())
            .flat_map(|c| c.command.iter().flatten())
            .find_map(|arg| arg.strip_prefix("--initial-cluster=").map(str::to_string));
        Self {
            claim_template_size: spec
                .and_then(|s| s.volume_claim_templates.as_ref())
                .and_then(|t| t.first())
                .and_then(|c| c.spec.as_ref())
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .map(|q| q.0.clone()),
            founding_members,
            pods: spec.and_then(|s| s.replicas),
            voters: None,
            restore_source: None,
        }
    }
}

/// Renders every object of `cluster`.
pub fn render(cluster: &EtcdCluster, ctx: &RenderContext, live: &Live) -> Result<Rendered, Error> {
    let names = cluster_names(cluster)?;
    let owner = owner_reference(cluster)?;
    Ok(Rendered {
        peer_service: peer_service(&names, &owner),
        client_service: client_service(&names, &owner),
        pdb: pdb(&names, &owner, live.voters.unwrap_or(cluster.spec.replicas)),
        statefulset: statefulset(&names, &owner, &cluster.spec, ctx, live)?,
    })
}

/// Names of `cluster`'s objects.
pub fn cluster_names(cluster: &EtcdCluster) -> Result<ClusterNames, Error> {
    let name = cluster
        .metadata
        .name
        .as_deref()
        .ok_or(Error::MissingMetadata("name"))?;
    let namespace = cluster
        .metadata
        .namespace
        .as_deref()
        .ok_or(Error::MissingMetadata("namespace"))?;
    Ok(ClusterNames::new(
        name,
        namespace,
        &cluster.spec.cluster_domain,
    ))
}

/// The controller owner reference every object of `cluster` carries, so Kubernetes
/// garbage-collects them with it and the controller hears about their changes.
pub fn owner_reference(cluster: &EtcdCluster) -> Result<OwnerReference, Error> {
    use kube::Resource;
    cluster
        .controller_owner_ref(&())
        .ok_or(Error::MissingMetadata("uid"))
}

/// Metadata of an owned object.
pub fn object_meta(names: &ClusterNames, name: String, owner: &OwnerReference) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(names.labels()),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}

fn service_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        target_port: Some(IntOrString::String(name.to_string())),
        protocol: Some("TCP".to_string()),
        ..ServicePort::default()
    }
}

/// Headless Service behind the members' DNS names. `publishNotReadyAddresses`, because
/// members must find each other before any of them is ready: readiness needs a quorum.
pub fn peer_service(names: &ClusterNames, owner: &OwnerReference) -> Service {
    Service {
        metadata: object_meta(names, names.peer_service(), owner),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(names.selector_labels()),
            ports: Some(vec![
                service_port("client", CLIENT_PORT),
                service_port("peer", PEER_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The Service clients dial (`https://<name>.<namespace>.svc:2379`); only ready members
/// are behind it.
pub fn client_service(names: &ClusterNames, owner: &OwnerReference) -> Service {
    Service {
        metadata: object_meta(names, names.client_service(), owner),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(names.selector_labels()),
            ports: Some(vec![
                service_port("client", CLIENT_PORT),
                service_port("metrics", METRICS_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Members that must stay up for the cluster to keep quorum.
pub fn quorum(replicas: i32) -> i32 {
    replicas / 2 + 1
}

/// PodDisruptionBudget keeping a quorum through drains and other voluntary evictions.
/// A single member cannot keep quorum through any eviction, and a budget that blocks every
/// drain forever helps nobody, so one member gets `minAvailable: 0`.
pub fn pdb(names: &ClusterNames, owner: &OwnerReference, replicas: i32) -> PodDisruptionBudget {
    let min_available = if replicas > 1 { quorum(replicas) } else { 0 };
    PodDisruptionBudget {
        metadata: object_meta(names, names.pdb(), owner),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(min_available)),
            selector: Some(LabelSelector {
                match_labels: Some(names.selector_labels()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

/// The image both containers run.
pub fn image(spec: &EtcdClusterSpec, ctx: &RenderContext) -> String {
    match &spec.image {
        Some(image) => image.clone(),
        None => format!(
            "{}:{}",
            ctx.image_repository,
            spec.version.as_deref().unwrap_or(&ctx.default_version)
        ),
    }
}

/// The version the rendered pods run (the tag of `image`), for status.
pub fn version(spec: &EtcdClusterSpec, ctx: &RenderContext) -> String {
    match (&spec.version, &spec.image) {
        (Some(v), _) => v.clone(),
        (None, Some(image)) => image
            .rsplit_once(':')
            .filter(|(_, tag)| !tag.contains('/'))
            .map(|(_, tag)| tag.to_string())
            .unwrap_or_else(|| image.clone()),
        (None, None) => ctx.default_version.clone(),
    }
}

/// The server's command line: etcd's flags, sorted as kubeadm writes them.
pub fn server_command(names: &ClusterNames, spec: &EtcdClusterSpec) -> Result<Vec<String>, Error> {
    let tls = TlsLayout::for_spec(names, spec);
    let (server_files, peer_files) = (tls.files("server"), tls.files("peer"));
    let member_fqdn = format!(
        "$(POD_NAME).{}.{}.svc.{}",
        names.peer_service(),
        names.namespace,
        names.cluster_domain
    );
    let mut flags: BTreeMap<&str, String> = BTreeMap::from([
        ("name", "$(POD_NAME)".to_string()),
        ("data-dir", DATA_DIR.to_string()),
        (
            "listen-client-urls",
            format!("https://0.0.0.0:{CLIENT_PORT}"),
        ),
        (
            "advertise-client-urls",
            format!("https://{member_fqdn}:{CLIENT_PORT}"),
        ),
        ("listen-peer-urls", format!("https://0.0.0.0:{PEER_PORT}")),
        (
            "initial-advertise-peer-urls",
            format!("https://{member_fqdn}:{PEER_PORT}"),
        ),
        ("initial-cluster-token", names.initial_cluster_token()),
        ("cert-file", server_files.0),
        ("key-file", server_files.1),
        ("trusted-ca-file", server_files.2),
        ("client-cert-auth", "true".to_string()),
        ("peer-cert-file", peer_files.0),
        ("peer-key-file", peer_files.1),
        ("peer-trusted-ca-file", peer_files.2),
        ("peer-client-cert-auth", "true".to_string()),
        (
            "listen-metrics-urls",
            format!("http://0.0.0.0:{METRICS_PORT}"),
        ),
        ("snapshot-count", spec.options.snapshot_count.to_string()),
        (
            "heartbeat-interval",
            spec.options.heartbeat_interval.to_string(),
        ),
        (
            "election-timeout",
            spec.options.election_timeout.to_string(),
        ),
    ]);
    if let TlsLayout::OwnKeys { .. } = tls {
        // Only the operator's peer certificates are valid for this name.
        flags.insert("peer-cert-allowed-hostname", names.peer_service_fqdn());
    }
    if let Some(q) = &spec.options.quota_backend_bytes {
        flags.insert("quota-backend-bytes", quantity::to_bytes(q)?.to_string());
    }
    if let Some(ac) = &spec.options.auto_compaction {
        flags.insert("auto-compaction-mode", ac.mode.as_flag().to_string());
        flags.insert("auto-compaction-retention", ac.retention.clone());
    }
    // `--initial-cluster` and `--initial-cluster-state` come from the sidecar, which decides
    // them from the running cluster when the member first starts.
    let mut cmd = vec![
        "ballast".to_string(),
        "member".to_string(),
        format!("--membership-file={RUN_DIR}/member.yaml"),
    ];
    cmd.extend(flags.into_iter().map(|(k, v)| format!("--{k}={v}")));
    Ok(cmd)
}

/// The sidecar's command line. It runs before the server starts (a native sidecar: an
/// init container with `restartPolicy: Always`, whose startup probe gates the server) and
/// keeps running beside it. It decides how the member starts (bootstrap with
/// `founding_members`, join what runs, restart, or not at all), writes that to
/// `/run/ballast/member.yaml` for `ballast member`, and answers `/readyz` once done.
pub fn sidecar_command(
    names: &ClusterNames,
    tls: &TlsLayout,
    founding_members: &str,
) -> Vec<String> {
    let client_dir = format!("{PKI_DIR}/client");
    let mut cmd = vec![
        "ballast".to_string(),
        "sidecar".to_string(),
        "--member=$(POD_NAME)".to_string(),
        format!("--cluster={}", names.name),
        "--namespace=$(POD_NAMESPACE)".to_string(),
        format!("--peer-service={}", names.peer_service()),
        format!("--cluster-domain={}", names.cluster_domain),
        format!("--initial-cluster={founding_members}"),
        format!("--initial-cluster-token={}", names.initial_cluster_token()),
        format!("--data-dir={DATA_DIR}"),
        format!("--config-out={RUN_DIR}/member.yaml"),
        format!("--endpoint=https://127.0.0.1:{CLIENT_PORT}"),
        format!("--cacert={}", tls.sidecar_ca()),
        format!("--cert={client_dir}/tls.crt"),
        format!("--key={client_dir}/tls.key"),
        format!("--listen-health=0.0.0.0:{SIDECAR_PORT}"),
        format!("--state-dir={STATE_DIR}"),
        "--pod-ip=$(POD_IP)".to_string(),
    ];
    if let TlsLayout::OwnKeys { .. } = tls {
        cmd.push(format!("{IDENTITY_FLAG}{IDENTITY_DIR}"));
    }
    cmd
}

pub(crate) fn env_from_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_string(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn http_probe(
    path: &str,
    port: i32,
    initial: i32,
    period: i32,
    timeout: i32,
    failures: i32,
) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::Int(port),
            scheme: Some("HTTP".to_string()),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(period),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// The restricted Pod Security Standard, as [`RUN_AS`]; volumes are made the group's once
/// (`OnRootMismatch`), not at every start.
pub(crate) fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        fs_group_change_policy: Some("OnRootMismatch".to_string()),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

pub(crate) fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

pub(crate) fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

pub(crate) fn secret_volume(name: &str, secret: &str) -> Volume {
    Volume {
        name: name.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_string()),
            // Readable by the pod's group (fsGroup) only: the containers run as non-root.
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

pub(crate) fn empty_dir(name: &str, memory: bool, limit: &str) -> Volume {
    Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: memory.then(|| "Memory".to_string()),
            size_limit: Some(Quantity(limit.to_string())),
        }),
        ..Volume::default()
    }
}

pub(crate) fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

fn default_affinity(names: &ClusterNames, mode: AntiAffinity) -> Affinity {
    let term = PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_labels: Some(names.selector_labels()),
            ..LabelSelector::default()
        }),
        topology_key: "kubernetes.io/hostname".to_string(),
        ..PodAffinityTerm::default()
    };
    let anti = match mode {
        AntiAffinity::Preferred => PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: term,
                },
            ]),
            ..PodAntiAffinity::default()
        },
        AntiAffinity::Required => PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![term]),
            ..PodAntiAffinity::default()
        },
    };
    Affinity {
        pod_anti_affinity: Some(anti),
        ..Affinity::default()
    }
}

/// The members' StatefulSet.
pub fn statefulset(
    names: &ClusterNames,
    owner: &OwnerReference,
    spec: &EtcdClusterSpec,
    ctx: &RenderContext,
    live: &Live,
) -> Result<StatefulSet, Error> {
    let tls = TlsLayout::for_spec(names, spec);
    let image = image(spec, ctx);
    let pull_policy = spec.image_pull_policy.map(|p| p.as_str().to_string());
    // The backup a restored cluster starts from: as resolved at creation, or as the spec
    // names it. From S3 only: a volume's backup is restored onto the claims by Jobs before
    // the members start (see `controller::backups`).
    let restore_source = live
        .restore_source
        .clone()
        .or_else(|| spec.restore.as_ref().and_then(crate::backup::named_source))
        .filter(|s| s.store.s3.is_some());
    let env = vec![
        env_from_field("POD_NAME", "metadata.name"),
        env_from_field("POD_NAMESPACE", "metadata.namespace"),
    ];
    let server = Container {
        name: SERVER_CONTAINER.to_string(),
        image: Some(image.clone()),
        image_pull_policy: pull_policy.clone(),
        command: Some(server_command(names, spec)?),
        env: Some(env.clone()),
        ports: Some(vec![
            ContainerPort {
                name: Some("client".to_string()),
                container_port: CLIENT_PORT,
                protocol: Some("TCP".to_string()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("peer".to_string()),
                container_port: PEER_PORT,
                protocol: Some("TCP".to_string()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("metrics".to_string()),
                container_port: METRICS_PORT,
                protocol: Some("TCP".to_string()),
                ..ContainerPort::default()
            },
        ]),
        // kubeadm's probes: liveness must not fail on a full backend (NOSPACE) or a lost
        // quorum, or the kubelet would restart healthy members; startup waits for a quorum.
        startup_probe: Some(http_probe(
            "/health?serializable=false",
            METRICS_PORT,
            10,
            10,
            15,
            24,
        )),
        liveness_probe: Some(http_probe(
            "/health?exclude=NOSPACE&serializable=true",
            METRICS_PORT,
            10,
            10,
            15,
            8,
        )),
        // Ready means "can serve linearizable requests": only such members are behind the
        // client Service. A full backend must not take every member out of it, or nobody
        // could reach the cluster to compact and defragment.
        readiness_probe: Some(http_probe(
            "/health?exclude=NOSPACE",
            METRICS_PORT,
            0,
            5,
            5,
            3,
        )),
        resources: Some(
            spec.resources
                .clone()
                .unwrap_or_else(|| ResourceRequirements {
                    requests: Some(quantities(&[("cpu", "100m"), ("memory", "100Mi")])),
                    ..ResourceRequirements::default()
                }),
        ),
        security_context: Some(container_security()),
        volume_mounts: Some(
            [mount("data", DATA_MOUNT, false)]
                .into_iter()
                .chain(tls.server_mounts())
                .chain([mount("run", RUN_DIR, false), mount("tmp", "/tmp", false)])
                .collect(),
        ),
        // The server's last line is its fatal error: the operator reads it from the
        // container status to tell corrupt data from other failures.
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Container::default()
    };
    let sidecar = Container {
        name: "sidecar".to_string(),
        image: Some(image),
        image_pull_policy: pull_policy,
        command: Some({
            let mut cmd = sidecar_command(
                names,
                &tls,
                &live
                    .founding_members
                    .clone()
                    .unwrap_or_else(|| names.initial_cluster(spec.replicas)),
            );
            if let (Some(restore), Some(source)) = (&spec.restore, &restore_source) {
                cmd.extend(crate::backup::restore_flags(
                    names,
                    source,
                    restore.bump_revision,
                ));
            }
            cmd
        }),
        env: Some({
            let mut env = env;
            // The sidecar waits until cluster DNS gives its member's name this address.
            env.push(env_from_field("POD_IP", "status.podIP"));
            if let Some(source) = &restore_source {
                env.extend(crate::backup::job::s3_env(&source.store).0);
            }
            env
        }),
        // Optional here: only a founding member's first start needs the credentials, and a
        // Secret deleted or renamed later must not keep restarted members from starting.
        env_from: restore_source
            .as_ref()
            .map(|r| {
                let mut from = crate::backup::job::s3_env(&r.store).1;
                for f in &mut from {
                    if let Some(secret) = f.secret_ref.as_mut() {
                        secret.optional = Some(true);
                    }
                }
                from
            })
            .filter(|e| !e.is_empty()),
        restart_policy: Some("Always".to_string()),
        ports: Some(vec![ContainerPort {
            name: Some("sidecar".to_string()),
            container_port: SIDECAR_PORT,
            protocol: Some("TCP".to_string()),
            ..ContainerPort::default()
        }]),
        startup_probe: Some(http_probe("/readyz", SIDECAR_PORT, 0, 1, 1, 120)),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "10m"), ("memory", "32Mi")])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(container_security()),
        volume_mounts: Some(
            [mount("data", DATA_MOUNT, false)]
                .into_iter()
                .chain(tls.sidecar_mounts())
                .chain([
                    mount("state", STATE_DIR, true),
                    mount("run", RUN_DIR, false),
                    mount("tmp", "/tmp", false),
                ])
                .collect(),
        ),
        // The server's last line is its fatal error: the operator reads it from the
        // container status to tell corrupt data from other failures.
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Container::default()
    };

    let mut pod_labels = spec.pod.labels.clone().unwrap_or_default();
    pod_labels.extend(names.labels());
    let affinity = spec.pod.affinity.clone().unwrap_or_else(|| {
        default_affinity(
            names,
            spec.pod.anti_affinity.unwrap_or(AntiAffinity::Preferred),
        )
    });
    let pod = PodSpec {
        init_containers: Some(vec![sidecar]),
        containers: vec![server],
        volumes: Some(
            tls.volumes()
                .into_iter()
                .chain([
                    Volume {
                        name: "state".to_string(),
                        config_map: Some(ConfigMapVolumeSource {
                            name: names.state_config_map(),
                            // Absent until the cluster has formed.
                            optional: Some(true),
                            ..ConfigMapVolumeSource::default()
                        }),
                        ..Volume::default()
                    },
                    empty_dir("run", true, "16Mi"),
                    empty_dir("tmp", false, "64Mi"),
                ])
                .collect(),
        ),
        affinity: Some(affinity),
        tolerations: spec.pod.tolerations.clone(),
        node_selector: spec.pod.node_selector.clone(),
        priority_class_name: spec.pod.priority_class_name.clone(),
        image_pull_secrets: spec.image_pull_secrets.clone(),
        security_context: Some(pod_security()),
        // The server reads ETCD_* variables as flags; Service links would inject
        // ETCD_PORT and friends for any Service whose name starts with "etcd".
        enable_service_links: Some(false),
        // Neither container talks to the Kubernetes API.
        automount_service_account_token: Some(false),
        ..PodSpec::default()
    };

    let claim_size = live
        .claim_template_size
        .clone()
        .unwrap_or_else(|| spec.storage.size.clone());
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".to_string()),
            labels: Some(names.selector_labels()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(quantities(&[("storage", &claim_size)])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    };

    Ok(StatefulSet {
        metadata: object_meta(names, names.statefulset(), owner),
        spec: Some(StatefulSetSpec {
            replicas: Some(live.pods.unwrap_or(spec.replicas)),
            service_name: Some(names.peer_service()),
            // A new cluster's members must start together: each waits for a quorum.
            pod_management_policy: Some("Parallel".to_string()),
            selector: LabelSelector {
                match_labels: Some(names.selector_labels()),
                ..LabelSelector::default()
            },
            // The operator restarts members onto a new template itself, in the order
            // that keeps quorum and leadership (see `lifecycle`).
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_string()),
                ..StatefulSetUpdateStrategy::default()
            }),
            // Data outlives the EtcdCluster and scale-downs; the member lifecycle issue
            // decides when a claim is stale.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".to_string()),
                    when_scaled: Some("Retain".to_string()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: spec.pod.annotations.clone(),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            volume_claim_templates: Some(vec![claim]),
            ..StatefulSetSpec::default()
        }),
        status: None,
    })
}

/// Names of the claims of members `0..replicas`, as the StatefulSet controller names them.
pub fn claim_names(names: &ClusterNames, replicas: i32) -> Vec<String> {
    names
        .members(replicas)
        .into_iter()
        .map(|m| format!("data-{m}"))
        .collect()
}
