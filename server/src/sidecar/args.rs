//! The sidecar's command line, as the operator renders it (`$(POD_NAME)` and
//! `$(POD_NAMESPACE)` already expanded by the kubelet).

use std::path::PathBuf;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ballast sidecar",
    about = "Prepares and watches the Ballast member of an operator-managed pod"
)]
pub struct Args {
    /// This member's name (the pod name).
    #[arg(long)]
    pub member: String,
    /// The EtcdCluster's name.
    #[arg(long)]
    pub cluster: String,
    #[arg(long)]
    pub namespace: String,
    /// The headless Service giving members their DNS names.
    #[arg(long = "peer-service")]
    pub peer_service: String,
    #[arg(long = "cluster-domain", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Ignored: accepted so that pods rendered by an operator of the previous version
    /// still start while the operator rolls them.
    #[arg(long, hide = true)]
    pub replicas: Option<u32>,
    /// The members the cluster was created with, as the server's `--initial-cluster`. A
    /// member outside it can only join a running cluster.
    #[arg(long = "initial-cluster")]
    pub initial_cluster: String,
    #[arg(long = "initial-cluster-token")]
    pub initial_cluster_token: String,
    /// The server's data dir.
    #[arg(long = "data-dir")]
    pub data_dir: PathBuf,
    /// Where the member's configuration is written (etcd config-file format).
    #[arg(long = "config-out")]
    pub config_out: PathBuf,
    /// The local member's client URL.
    #[arg(long)]
    pub endpoint: String,
    /// CA that signed the server's certificate.
    #[arg(long)]
    pub cacert: PathBuf,
    /// Client certificate and key for talking to the member.
    #[arg(long)]
    pub cert: PathBuf,
    #[arg(long)]
    pub key: PathBuf,
    /// What the operator tells the members (its `<cluster>-state` ConfigMap): the
    /// cluster's ID once it has formed (`cluster-id`), and a request to recover from a
    /// lost quorum (`recovery-*`).
    #[arg(long = "state-dir")]
    pub state_dir: Option<PathBuf>,
    /// The pod's address: before the member joins, cluster DNS must give its name this
    /// address (a recreated pod's name still points at its predecessor's for a while).
    #[arg(long = "pod-ip")]
    pub pod_ip: Option<std::net::IpAddr>,
    /// Where the member keeps its own key and the certificates the operator signs for it
    /// (see `identity`). Without it the server's certificates come from mounted files.
    #[arg(long = "identity-dir")]
    pub identity_dir: Option<PathBuf>,
    /// Address of /readyz, /healthz and /status.
    #[arg(long = "listen-health", default_value = "0.0.0.0:2382")]
    pub listen_health: String,
    /// A founding member bootstrapping the cluster restores this backup location's
    /// `--restore-backup` first (see `restore`).
    #[arg(long = "restore-from", requires = "restore_backup")]
    pub restore_from: Option<String>,
    /// The backup's name in `--restore-from`.
    #[arg(long = "restore-backup", requires = "restore_from")]
    pub restore_backup: Option<String>,
    /// `--bump-revision` (with `--mark-compacted`) of the restore.
    #[arg(long = "restore-bump-revision", requires = "restore_from")]
    pub restore_bump_revision: Option<u64>,
}

impl Args {
    /// The member's client URL under the headless Service (what clients and the
    /// certificates use).
    pub fn advertise_client_url(&self) -> String {
        format!(
            "https://{}.{}.{}.svc.{}:2379",
            self.member, self.peer_service, self.namespace, self.cluster_domain
        )
    }

    /// The member's peer URL under the headless Service.
    pub fn advertise_peer_url(&self) -> String {
        format!(
            "https://{}.{}.{}.svc.{}:2380",
            self.member, self.peer_service, self.namespace, self.cluster_domain
        )
    }
}
