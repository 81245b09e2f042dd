//! The one table of flags. Each row gives a flag's name (also its `ETCD_*`
//! variable and, unless told otherwise, its config-file key), its kind, its
//! default, its help group and text, and what Ballast does with it.
//!
//! Defaults are etcd 3.5's. Where etcd 3.4 differs the row says so.

use super::values::UrlRole;

/// How a flag's text is parsed (see `values.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    /// Go `bool`: `--flag` alone means true; a value needs `=`.
    Bool,
    /// Go `uint`/`uint64`.
    Uint,
    /// Go `int`/`int64`.
    Int,
    /// Go `time.Duration` text (`100ms`, `2h`); nanoseconds in the config file.
    Duration,
    Urls(UrlRole),
    /// Comma-separated strings; a YAML list in the config file.
    List,
    /// One of a fixed set (etcd's `SelectiveStringValue`).
    Choice(&'static [&'static str]),
    /// `name=url,...` (`--initial-cluster`).
    Cluster,
    /// Ballast: `MAJOR.MINOR.PATCH`.
    Version,
    /// etcd's `IgnoredFlag`: bool-like, any value, always ignored.
    Legacy,
}

impl Kind {
    /// Go's `flag` package lets bool flags stand alone (`--force-new-cluster`).
    pub(crate) fn is_bool(self) -> bool {
        matches!(self, Kind::Bool | Kind::Legacy)
    }
}

/// What Ballast does with a flag. This column is the one place that says which
/// etcd flags Ballast implements, ignores or refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Support {
    /// Read into `Config` and honoured.
    Used,
    /// Accepted; a non-default value is ignored with a warning, because
    /// ignoring it changes nothing a client can observe.
    Ignored,
    /// Accepted only at its default: any other value is an error, because
    /// ignoring it would surprise (the text says why).
    Refused(&'static str),
    /// Removed in etcd 3.5: accepted with this deprecation note.
    Deprecated(&'static str),
    /// On etcd's own "no longer supported - ignoring" list.
    Obsolete,
    /// `--config-file`, `--version`: handled before any other flag.
    Special,
}

/// Where a flag lives in the YAML config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKey {
    /// Top-level key equal to the flag name.
    Same,
    /// Inside a section: `(section, key)`, e.g. `client-transport-security`.
    In(&'static str, &'static str),
    /// Not settable from the file.
    None,
}

/// Help groups, in the order `--help` prints them (etcd's order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    Member,
    Clustering,
    Security,
    Auth,
    Monitoring,
    Logging,
    Tracing,
    Proxy,
    Experimental,
    Unsafe,
    Ballast,
    Removed,
    /// Not listed in `--help` (etcd does not list them either).
    Hidden,
}

impl Group {
    pub(crate) const ORDER: [Group; 12] = [
        Group::Member,
        Group::Clustering,
        Group::Security,
        Group::Auth,
        Group::Monitoring,
        Group::Logging,
        Group::Tracing,
        Group::Proxy,
        Group::Experimental,
        Group::Unsafe,
        Group::Ballast,
        Group::Removed,
    ];

    pub(crate) fn title(self) -> &'static str {
        match self {
            Group::Member => "Member",
            Group::Clustering => "Clustering",
            Group::Security => "Security",
            Group::Auth => "Auth",
            Group::Monitoring => "Profiling and Monitoring",
            Group::Logging => "Logging",
            Group::Tracing => "Experimental distributed tracing",
            Group::Proxy => "v2 Proxy (not supported by Ballast)",
            Group::Experimental => "Experimental feature",
            Group::Unsafe => "Unsafe feature",
            Group::Ballast => "Ballast",
            Group::Removed => "Removed in etcd v3.5 (accepted for v3.4 command lines)",
            Group::Hidden => "",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct FlagDef {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub group: Group,
    pub support: Support,
    pub file: FileKey,
    pub help: &'static str,
    /// What `--help` shows as the default when it is not `default` itself.
    pub shown: Option<&'static str>,
}

impl FlagDef {
    /// `ETCD_` + upper-cased name with `-` → `_` (etcd's `flags.FlagToEnv`).
    pub(crate) fn env_name(&self) -> String {
        format!("ETCD_{}", self.name.to_ascii_uppercase().replace('-', "_"))
    }

    const fn file(self, file: FileKey) -> Self {
        FlagDef { file, ..self }
    }

    const fn shown(self, shown: &'static str) -> Self {
        FlagDef {
            shown: Some(shown),
            ..self
        }
    }
}

const fn f(
    group: Group,
    name: &'static str,
    kind: Kind,
    default: &'static str,
    support: Support,
    help: &'static str,
) -> FlagDef {
    FlagDef {
        name,
        kind,
        default,
        group,
        support,
        file: FileKey::Same,
        help,
        shown: None,
    }
}

/// Looks a flag up by its command-line name.
pub(crate) fn lookup(name: &str) -> Option<&'static FlagDef> {
    FLAGS.iter().find(|d| d.name == name)
}

/// Looks a flag up by its environment variable name.
pub(crate) fn lookup_env(var: &str) -> Option<&'static FlagDef> {
    let name = var
        .strip_prefix("ETCD_")?
        .to_ascii_lowercase()
        .replace('_', "-");
    lookup(&name).filter(|d| d.env_name() == var)
}

use FileKey::In;
use Group::*;
use Kind::*;
use Support::*;

const CLIENT_TLS: &str = "client-transport-security";
const PEER_TLS: &str = "peer-transport-security";
const NO_DISCOVERY: &str =
    "discovery bootstrap is not implemented by Ballast; list the members with --initial-cluster";
const NO_V2: &str = "the etcd v2 API is not implemented by Ballast (etcd 3.5 deprecated it)";
const LISTEN: Kind = Urls(UrlRole::Listen);
const ADVERTISE: Kind = Urls(UrlRole::Advertise);

#[rustfmt::skip]
pub(crate) static FLAGS: &[FlagDef] = &[
    f(Hidden, "config-file", Str, "", Special, "Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.").file(FileKey::None),
    f(Hidden, "version", Bool, "false", Special, "Print the version and exit.").file(FileKey::None),

    f(Member, "name", Str, "default", Used, "Human-readable name for this member."),
    f(Member, "data-dir", Str, "", Used, "Path to the data directory.").shown("${name}.etcd"),
    f(Member, "wal-dir", Str, "", Used, "Path to the dedicated wal directory."),
    f(Member, "snapshot-count", Uint, "100000", Used, "Number of committed transactions to trigger a snapshot to disk."),
    f(Member, "heartbeat-interval", Uint, "100", Used, "Time (in milliseconds) of a heartbeat interval."),
    f(Member, "election-timeout", Uint, "1000", Used, "Time (in milliseconds) for an election to timeout. See tuning documentation for details."),
    f(Member, "initial-election-tick-advance", Bool, "true", Used, "Whether to fast-forward initial election ticks on boot for faster election."),
    f(Member, "listen-peer-urls", LISTEN, "http://localhost:2380", Used, "List of URLs to listen on for peer traffic."),
    f(Member, "listen-client-urls", LISTEN, "http://localhost:2379", Used, "List of URLs to listen on for client traffic."),
    f(Member, "listen-client-http-urls", LISTEN, "", Refused("Ballast serves HTTP and gRPC together on --listen-client-urls"), "List of URLs to listen on for http only client traffic."),
    f(Member, "max-snapshots", Uint, "5", Used, "Maximum number of snapshot files to retain (0 is unlimited)."),
    f(Member, "max-wals", Uint, "5", Used, "Maximum number of wal files to retain (0 is unlimited)."),
    f(Member, "quota-backend-bytes", Int, "0", Used, "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota)."),
    f(Member, "backend-bbolt-freelist-type", Str, "map", Ignored, "BackendFreelistType specifies the type of freelist that boltdb backend uses (array and map are supported types)."),
    f(Member, "backend-batch-interval", Duration, "0s", Ignored, "BackendBatchInterval is the maximum time before commit the backend transaction.").shown(""),
    f(Member, "backend-batch-limit", Int, "0", Ignored, "BackendBatchLimit is the maximum operations before commit the backend transaction."),
    f(Member, "max-txn-ops", Uint, "128", Used, "Maximum number of operations permitted in a transaction."),
    f(Member, "max-request-bytes", Uint, "1572864", Used, "Maximum client request size in bytes the server will accept."),
    f(Member, "max-concurrent-streams", Uint, "4294967295", Used, "Maximum concurrent streams that each client can open at a time.").shown("math.MaxUint32"),
    f(Member, "grpc-keepalive-min-time", Duration, "5s", Used, "Minimum duration interval that a client should wait before pinging server."),
    f(Member, "grpc-keepalive-interval", Duration, "2h", Used, "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable)."),
    f(Member, "grpc-keepalive-timeout", Duration, "20s", Used, "Additional duration of wait before closing a non-responsive connection (0 to disable)."),
    f(Member, "socket-reuse-port", Bool, "false", Ignored, "Enable to set socket option SO_REUSEPORT on listeners allowing rebinding of a port already in use."),
    f(Member, "socket-reuse-address", Bool, "false", Ignored, "Enable to set socket option SO_REUSEADDR on listeners allowing binding to an address in TIME_WAIT state."),
    f(Member, "raft-read-timeout", Duration, "5s", Ignored, "Read timeout set on each rafthttp connection."),
    f(Member, "raft-write-timeout", Duration, "5s", Ignored, "Write timeout set on each rafthttp connection."),

    f(Clustering, "initial-advertise-peer-urls", ADVERTISE, "http://localhost:2380", Used, "List of this member's peer URLs to advertise to the rest of the cluster."),
    f(Clustering, "initial-cluster", Cluster, "default=http://localhost:2380", Used, "Initial cluster configuration for bootstrapping."),
    f(Clustering, "initial-cluster-state", Choice(&["new", "existing"]), "new", Used, "Initial cluster state ('new' or 'existing')."),
    f(Clustering, "initial-cluster-token", Str, "etcd-cluster", Used, "Initial cluster token for the etcd cluster during bootstrap."),
    f(Clustering, "advertise-client-urls", ADVERTISE, "http://localhost:2379", Used, "List of this member's client URLs to advertise to the public."),
    f(Clustering, "discovery", Str, "", Refused(NO_DISCOVERY), "Discovery URL used to bootstrap the cluster."),
    f(Clustering, "discovery-fallback", Choice(&["proxy", "exit"]), "proxy", Ignored, "Expected behavior ('exit' or 'proxy') when discovery services fails."),
    f(Clustering, "discovery-proxy", Str, "", Ignored, "HTTP proxy to use for traffic to discovery service."),
    f(Clustering, "discovery-srv", Str, "", Refused(NO_DISCOVERY), "DNS srv domain used to bootstrap the cluster."),
    f(Clustering, "discovery-srv-name", Str, "", Refused(NO_DISCOVERY), "Suffix to the dns srv name queried when bootstrapping."),
    f(Clustering, "strict-reconfig-check", Bool, "true", Used, "Reject reconfiguration requests that would cause quorum loss."),
    // etcd 3.4's default was false.
    f(Clustering, "pre-vote", Bool, "true", Used, "Enable to run an additional Raft election phase."),
    f(Clustering, "auto-compaction-retention", Str, "0", Used, "Auto compaction retention length. 0 means disable auto compaction."),
    f(Clustering, "auto-compaction-mode", Str, "periodic", Used, "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision number based retention."),
    f(Clustering, "enable-v2", Bool, "false", Refused(NO_V2), "Accept etcd V2 client requests."),
    f(Clustering, "experimental-enable-v2v3", Str, "", Refused(NO_V2), "Serve v2 requests through the v3 backend under a given prefix."),
    f(Clustering, "v2-deprecation", Choice(&["not-yet", "write-only", "write-only-drop-data", "gone"]), "not-yet", Ignored, "Phase of v2store deprecation (Ballast has no v2store)."),

    f(Security, "cert-file", Str, "", Used, "Path to the client server TLS cert file.").file(In(CLIENT_TLS, "cert-file")),
    f(Security, "key-file", Str, "", Used, "Path to the client server TLS key file.").file(In(CLIENT_TLS, "key-file")),
    f(Security, "client-cert-file", Str, "", Used, "Path to an explicit peer client TLS cert file otherwise cert file will be used when client auth is required.").file(In(CLIENT_TLS, "client-cert-file")),
    f(Security, "client-key-file", Str, "", Used, "Path to an explicit peer client TLS key file otherwise key file will be used when client auth is required.").file(In(CLIENT_TLS, "client-key-file")),
    f(Security, "client-cert-auth", Bool, "false", Used, "Enable client cert authentication.").file(In(CLIENT_TLS, "client-cert-auth")),
    f(Security, "client-crl-file", Str, "", Used, "Path to the client certificate revocation list file.").file(In(CLIENT_TLS, "crl-file")),
    f(Security, "client-cert-allowed-hostname", Str, "", Used, "Allowed TLS hostname for client cert authentication.").file(In(CLIENT_TLS, "allowed-hostname")),
    f(Security, "trusted-ca-file", Str, "", Used, "Path to the client server TLS trusted CA cert file.").file(In(CLIENT_TLS, "trusted-ca-file")),
    f(Security, "auto-tls", Bool, "false", Used, "Client TLS using generated certificates.").file(In(CLIENT_TLS, "auto-tls")),
    f(Security, "peer-cert-file", Str, "", Used, "Path to the peer server TLS cert file.").file(In(PEER_TLS, "cert-file")),
    f(Security, "peer-key-file", Str, "", Used, "Path to the peer server TLS key file.").file(In(PEER_TLS, "key-file")),
    f(Security, "peer-client-cert-file", Str, "", Used, "Path to an explicit peer client TLS cert file otherwise peer cert file will be used when client auth is required.").file(In(PEER_TLS, "client-cert-file")),
    f(Security, "peer-client-key-file", Str, "", Used, "Path to an explicit peer client TLS key file otherwise peer key file will be used when client auth is required.").file(In(PEER_TLS, "client-key-file")),
    f(Security, "peer-client-cert-auth", Bool, "false", Used, "Enable peer client cert authentication.").file(In(PEER_TLS, "client-cert-auth")),
    f(Security, "peer-trusted-ca-file", Str, "", Used, "Path to the peer server TLS trusted CA file.").file(In(PEER_TLS, "trusted-ca-file")),
    f(Security, "peer-cert-allowed-cn", Str, "", Used, "Required CN for client certs connecting to the peer endpoint.").file(In(PEER_TLS, "allowed-cn")),
    f(Security, "peer-cert-allowed-hostname", Str, "", Used, "Allowed TLS hostname for inter peer authentication.").file(In(PEER_TLS, "allowed-hostname")),
    f(Security, "peer-auto-tls", Bool, "false", Used, "Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.").file(In(PEER_TLS, "auto-tls")),
    f(Security, "peer-crl-file", Str, "", Used, "Path to the peer certificate revocation list file.").file(In(PEER_TLS, "crl-file")),
    f(Security, "experimental-peer-skip-client-san-verification", Bool, "false", Used, "Skip verification of SAN field in client certificate for peer connections.").file(In(PEER_TLS, "skip-client-san-verification")),
    f(Security, "self-signed-cert-validity", Uint, "1", Used, "The validity period of the client and peer certificates that are automatically generated by etcd when you specify ClientAutoTLS and PeerAutoTLS, the unit is year, and the default is 1."),
    f(Security, "cipher-suites", List, "", Used, "Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go)."),
    f(Security, "cors", List, "*", Ignored, "Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, (empty or * means allow all)."),
    f(Security, "host-whitelist", List, "*", Refused("Ballast does not check the Host header; restrict access with TLS or a firewall"), "Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means allow all)."),
    f(Security, "tls-min-version", Str, "TLS1.2", Used, "Minimum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3."),
    f(Security, "tls-max-version", Str, "", Used, "Maximum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3 (empty will be auto-populated by Go)."),

    f(Auth, "auth-token", Str, "simple", Used, "Specify a v3 authentication token type and its options ('simple' or 'jwt')."),
    f(Auth, "bcrypt-cost", Uint, "10", Used, "Specify the cost / strength of the bcrypt algorithm for hashing auth passwords. Valid values are between 4 and 31."),
    f(Auth, "auth-token-ttl", Uint, "300", Used, "Time (in seconds) of the auth-token-ttl."),

    f(Monitoring, "enable-pprof", Bool, "false", Ignored, "Enable runtime profiling data via HTTP server. Address is at client URL + \"/debug/pprof/\""),
    f(Monitoring, "metrics", Str, "basic", Ignored, "Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics."),
    f(Monitoring, "listen-metrics-urls", LISTEN, "", Used, "List of URLs to listen on for the metrics and health endpoints."),
    f(Monitoring, "enable-grpc-gateway", Bool, "true", Used, "Enable GRPC gateway (the JSON/HTTP API on the client URLs)."),

    // etcd 3.4's default logger was capnslog.
    f(Logging, "logger", Str, "zap", Used, "Currently only supports 'zap' for structured logging."),
    f(Logging, "log-outputs", List, "default", Used, "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets."),
    f(Logging, "log-level", Str, "info", Used, "Configures log level. Only supports debug, info, warn, error, panic, or fatal."),
    f(Logging, "enable-log-rotation", Bool, "false", Ignored, "Enable log rotation of a single log-outputs file target."),
    f(Logging, "log-rotation-config-json", Str, r#"{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}"#, Ignored, "Configures log rotation if enabled with a JSON logger config."),

    f(Tracing, "experimental-enable-distributed-tracing", Bool, "false", Ignored, "Enable experimental distributed tracing."),
    f(Tracing, "experimental-distributed-tracing-address", Str, "localhost:4317", Ignored, "Distributed tracing collector address."),
    f(Tracing, "experimental-distributed-tracing-service-name", Str, "etcd", Ignored, "Distributed tracing service name, must be same across all etcd instances."),
    f(Tracing, "experimental-distributed-tracing-instance-id", Str, "", Ignored, "Distributed tracing instance ID, must be unique per each etcd instance."),
    f(Tracing, "experimental-distributed-tracing-sampling-rate", Int, "0", Ignored, "Number of samples to collect per million spans for distributed tracing."),

    f(Proxy, "proxy", Choice(&["off", "readonly", "on"]), "off", Refused("the etcd v2 proxy is not implemented by Ballast"), "Proxy mode setting ('off', 'readonly' or 'on')."),
    f(Proxy, "proxy-failure-wait", Uint, "5000", Ignored, "Time (in milliseconds) an endpoint will be held in a failed state."),
    f(Proxy, "proxy-refresh-interval", Uint, "30000", Ignored, "Time (in milliseconds) of the endpoints refresh interval."),
    f(Proxy, "proxy-dial-timeout", Uint, "1000", Ignored, "Time (in milliseconds) for a dial to timeout."),
    f(Proxy, "proxy-write-timeout", Uint, "5000", Ignored, "Time (in milliseconds) for a write to timeout."),
    f(Proxy, "proxy-read-timeout", Uint, "0", Ignored, "Time (in milliseconds) for a read to timeout."),

    f(Experimental, "experimental-initial-corrupt-check", Bool, "false", Used, "Enable to check data corruption before serving any client/peer traffic."),
    f(Experimental, "experimental-corrupt-check-time", Duration, "0s", Used, "Duration of time between cluster corruption check passes."),
    f(Experimental, "experimental-compact-hash-check-enabled", Bool, "false", Ignored, "Enable leader to periodically check followers compaction hashes."),
    f(Experimental, "experimental-compact-hash-check-time", Duration, "1m", Ignored, "Duration of time between leader checks followers compaction hashes."),
    f(Experimental, "experimental-enable-lease-checkpoint", Bool, "false", Ignored, "Enable leader to send regular checkpoints to other members to prevent reset of remaining TTL on leader change."),
    f(Experimental, "experimental-enable-lease-checkpoint-persist", Bool, "false", Ignored, "Enable persisting remainingTTL to prevent indefinite auto-renewal of long lived leases."),
    f(Experimental, "experimental-compaction-batch-limit", Int, "1000", Used, "Sets the maximum revisions deleted in each compaction batch."),
    f(Experimental, "experimental-compaction-sleep-interval", Duration, "10ms", Ignored, "Sets the sleep interval between each compaction batch."),
    f(Experimental, "experimental-watch-progress-notify-interval", Duration, "10m", Used, "Duration of periodical watch progress notification."),
    f(Experimental, "experimental-warning-apply-duration", Duration, "100ms", Ignored, "Warning is generated if requests take more than this duration."),
    f(Experimental, "experimental-downgrade-check-time", Duration, "5s", Ignored, "Duration of time between two downgrade status checks."),
    f(Experimental, "experimental-memory-mlock", Bool, "false", Ignored, "Enable to enforce etcd pages (in particular bbolt) to stay in RAM."),
    f(Experimental, "experimental-txn-mode-write-with-shared-buffer", Bool, "true", Ignored, "Enable the write transaction to use a shared buffer in its readonly check operations."),
    f(Experimental, "experimental-bootstrap-defrag-threshold-megabytes", Uint, "0", Ignored, "Enable the defrag during etcd server bootstrap on condition that it will free at least the provided threshold of disk space. Needs to be set to non-zero value to take effect."),
    f(Experimental, "experimental-stop-grpc-service-on-defrag", Bool, "false", Ignored, "Enable etcd gRPC service to stop serving client requests on defragmentation."),
    // etcd 3.4 only; 3.5 renamed it backend-bbolt-freelist-type.
    f(Experimental, "experimental-backend-bbolt-freelist-type", Str, "array", Ignored, "ExperimentalBackendFreelistType specifies the type of freelist that boltdb backend uses (array and map are supported types)."),

    f(Unsafe, "force-new-cluster", Bool, "false", Used, "Force to create a new one-member cluster."),
    f(Unsafe, "unsafe-no-fsync", Bool, "false", Ignored, "Disables fsync, unsafe, will cause data loss."),

    f(Ballast, "emulated-etcd-version", Version, "3.5.17", Used, "etcd version Ballast reports in Status and /version (kube-apiserver gates features on it)."),

    f(Removed, "debug", Bool, "false", Deprecated("removed in etcd v3.5; use --log-level=debug"), "Enable debug-level logging for etcd."),
    f(Removed, "log-package-levels", Str, "", Deprecated("removed in etcd v3.5; use --log-level"), "Specify a particular log level for each etcd package (eg: 'etcdmain=CRITICAL,etcdserver=DEBUG')."),

    // etcd's `ignored` list: flags of etcd 0.x that it still swallows.
    f(Hidden, "cluster-active-size", Legacy, "", Obsolete, "").file(FileKey::None),
    f(Hidden, "cluster-remove-delay", Legacy, "", Obsolete, "").file(FileKey::None),
    f(Hidden, "cluster-sync-interval", Legacy, "", Obsolete, "").file(FileKey::None),
    f(Hidden, "config", Legacy, "", Obsolete, "").file(FileKey::None),
    f(Hidden, "force", Legacy, "", Obsolete, "").file(FileKey::None),
    f(Hidden, "max-result-buffer", Legacy, "", Obsolete, "").file(FileKey::None),
    f(Hidden, "max-retry-attempts", Legacy, "", Obsolete, "").file(FileKey::None),
    f(Hidden, "peer-heartbeat-interval", Legacy, "", Obsolete, "").file(FileKey::None),
    f(Hidden, "peer-election-timeout", Legacy, "", Obsolete, "").file(FileKey::None),
    f(Hidden, "retry-interval", Legacy, "", Obsolete, "").file(FileKey::None),
    f(Hidden, "snapshot", Legacy, "", Obsolete, "").file(FileKey::None),
    f(Hidden, "v", Legacy, "", Obsolete, "").file(FileKey::None),
    f(Hidden, "vv", Legacy, "", Obsolete, "").file(FileKey::None),
];
