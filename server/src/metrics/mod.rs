//! Prometheus metrics under etcd's names, types and labels, so existing
//! alert rules and dashboards work unchanged.
//!
//! Names, types and labels were checked against a running etcd 3.4.23
//! (`curl /metrics`); those listed in the reference and used by the seeds are
//! covered by `tests/metrics.rs`.

pub mod grpc;
mod grpc_methods;
pub mod leader;
pub mod mvcc;
pub mod peer;
pub mod process;
mod text;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of `grpc_server_started_total` (go-grpc-prometheus's names; fields
/// in alphabetical order, as Go's client prints them).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    pub grpc_method: &'static str,
    pub grpc_service: &'static str,
    pub grpc_type: &'static str,
}

/// Labels of `grpc_server_handled_total`: the method plus the final status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcHandledLabels {
    pub grpc_code: &'static str,
    pub grpc_method: &'static str,
    pub grpc_service: &'static str,
    pub grpc_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerIdLabels {
    pub server_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub server_version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterVersionLabels {
    pub cluster_version: String,
}

/// etcd labels peer metrics `To` / `From` (capitalised), which a derived
/// label set cannot spell; a one-pair array can.
pub type PeerLabel = [(&'static str, String); 1];

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the server exports. Values that are cheap to read where they
/// live (sizes, indexes) are sampled when `/metrics` is scraped; events are
/// counted where they happen.
pub struct Metrics {
    registry: Registry,
    pub has_leader: Gauge,
    pub is_leader: Gauge,
    pub is_learner: Gauge,
    pub leader_changes: Counter,
    /// etcd exposes these two `_total` names as gauges holding the committed
    /// and applied Raft index.
    pub proposals_committed: Gauge,
    pub proposals_applied: Gauge,
    pub proposals_pending: Gauge,
    pub proposals_failed: Counter,
    pub health_success: Counter,
    pub health_failures: Counter,
    pub db_size: Gauge,
    pub db_size_debugging: Gauge,
    pub db_size_in_use: Gauge,
    pub quota_bytes: Gauge,
    pub wal_fsync: Histogram,
    pub backend_commit: Histogram,
    pub keys_total: Gauge,
    pub put_total: Counter,
    pub delete_total: Counter,
    pub range_total: Counter,
    pub txn_total: Counter,
    pub server_id: Family<ServerIdLabels, Gauge>,
    pub server_version: Family<VersionLabels, Gauge>,
    pub cluster_version: Family<ClusterVersionLabels, Gauge>,
    pub current_revision: Gauge,
    pub compact_revision: Gauge,
    /// Ballast's own version, beside the emulated etcd version above.
    pub ballast_version: Family<VersionLabels, Gauge>,
    pub grpc_started: Family<GrpcLabels, Counter>,
    pub grpc_handled: Family<GrpcHandledLabels, Counter>,
    pub client_received_bytes: Counter,
    pub client_sent_bytes: Counter,
    pub peer_sent_bytes: Family<PeerLabel, Counter>,
    pub peer_received_bytes: Family<PeerLabel, Counter>,
    pub peer_rtt: HistogramFamily<PeerLabel>,
    pub process: process::ProcessMetrics,
}

/// etcd's disk latency buckets: 1 ms doubling up to 8 s.
fn disk_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

/// etcd's peer round-trip buckets: 100 µs doubling up to 3.3 s.
fn rtt_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// etcd exposes these counters without the `_total` suffix that
/// prometheus-client always appends; [`text`] strips it again.
const UNSUFFIXED_COUNTERS: &[&str] = &["etcd_server_health_success", "etcd_server_health_failures"];

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::default();
        // prometheus-client appends `.` to every help text and `_total` to
        // every counter name, so both are left out here.
        macro_rules! reg {
            ($name:expr, $help:expr, $m:expr) => {{
                let m = $m;
                r.register($name, $help, m.clone());
                m
            }};
        }
        let metrics = Metrics {
            has_leader: reg!("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not", Gauge::default()),
            is_leader: reg!("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise", Gauge::default()),
            is_learner: reg!("etcd_server_is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise", Gauge::default()),
            leader_changes: reg!("etcd_server_leader_changes_seen", "The number of leader changes seen", Counter::default()),
            proposals_committed: reg!("etcd_server_proposals_committed_total", "The total number of consensus proposals committed", Gauge::default()),
            proposals_applied: reg!("etcd_server_proposals_applied_total", "The total number of consensus proposals applied", Gauge::default()),
            proposals_pending: reg!("etcd_server_proposals_pending", "The current number of pending proposals to commit", Gauge::default()),
            proposals_failed: reg!("etcd_server_proposals_failed", "The total number of failed proposals seen", Counter::default()),
            health_success: reg!("etcd_server_health_success", "The total number of successful health checks", Counter::default()),
            health_failures: reg!("etcd_server_health_failures", "The total number of failed health checks", Counter::default()),
            db_size: reg!("etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes", Gauge::default()),
            db_size_debugging: reg!("etcd_debugging_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes", Gauge::default()),
            db_size_in_use: reg!("etcd_mvcc_db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes", Gauge::default()),
            quota_bytes: reg!("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes", Gauge::default()),
            wal_fsync: reg!("etcd_disk_wal_fsync_duration_seconds", "The latency distributions of fsync called by WAL", disk_buckets()),
            backend_commit: reg!("etcd_disk_backend_commit_duration_seconds", "The latency distributions of commit called by backend", disk_buckets()),
            keys_total: reg!("etcd_debugging_mvcc_keys_total", "Total number of keys", Gauge::default()),
            put_total: reg!("etcd_mvcc_put", "Total number of puts seen by this member", Counter::default()),
            delete_total: reg!("etcd_mvcc_delete", "Total number of deletes seen by this member", Counter::default()),
            range_total: reg!("etcd_mvcc_range", "Total number of ranges seen by this member", Counter::default()),
            txn_total: reg!("etcd_mvcc_txn", "Total number of txns seen by this member", Counter::default()),
            server_id: reg!("etcd_server_id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID", Family::default()),
            server_version: reg!("etcd_server_version", "Which version is running. 1 for 'server_version' label with current version", Family::default()),
            cluster_version: reg!("etcd_cluster_version", "Which version is running. 1 for 'cluster_version' label with current cluster version", Family::default()),
            current_revision: reg!("etcd_debugging_mvcc_current_revision", "The current revision of store", Gauge::default()),
            compact_revision: reg!("etcd_debugging_mvcc_compact_revision", "The revision of the last compaction in store", Gauge::default()),
            ballast_version: reg!("ballast_server_version", "Which Ballast version is running. 1 for 'server_version' label with current version", Family::default()),
            grpc_started: reg!("grpc_server_started", "Total number of RPCs started on the server", Family::default()),
            grpc_handled: reg!("grpc_server_handled", "Total number of RPCs completed on the server, regardless of success or failure", Family::default()),
            client_received_bytes: reg!("etcd_network_client_grpc_received_bytes", "The total number of bytes received from grpc clients", Counter::default()),
            client_sent_bytes: reg!("etcd_network_client_grpc_sent_bytes", "The total number of bytes sent to grpc clients", Counter::default()),
            peer_sent_bytes: reg!("etcd_network_peer_sent_bytes", "The total number of bytes sent to peers", Family::default()),
            peer_received_bytes: reg!("etcd_network_peer_received_bytes", "The total number of bytes received from peers", Family::default()),
            peer_rtt: reg!("etcd_network_peer_round_trip_time_seconds", "Round-Trip-Time histogram between peers", HistogramFamily::new_with_constructor(rtt_buckets as fn() -> Histogram)),
            process: process::ProcessMetrics::register(&mut r),
            registry: r,
        };
        grpc::initialize(&metrics);
        metrics
            .ballast_version
            .get_or_create(&VersionLabels {
                server_version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        metrics
    }
}

impl Metrics {
    /// The exposition in Prometheus's classic text format (0.0.4), which
    /// is what etcd serves and every scraper reads; see [`text`] for why
    /// prometheus-client's OpenMetrics output is converted.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry)
        {
            tracing::warn!("encoding metrics failed: {e}");
        }
        text::to_prometheus_text(&out, UNSUFFIXED_COUNTERS)
    }

    /// Counts a batch of Raft traffic sent to a peer.
    pub fn peer_sent(&self, to: u64, bytes: usize) {
        self.peer_sent_bytes
            .get_or_create(&peer_label("To", to))
            .inc_by(bytes as u64);
    }

    /// Counts a batch of Raft traffic received from a peer.
    pub fn peer_received(&self, from: u64, bytes: usize) {
        self.peer_received_bytes
            .get_or_create(&peer_label("From", from))
            .inc_by(bytes as u64);
    }
}

/// A peer's label as etcd prints member IDs: lower-case hex, no padding.
pub fn peer_label(name: &'static str, id: u64) -> PeerLabel {
    [(name, format!("{id:x}"))]
}
