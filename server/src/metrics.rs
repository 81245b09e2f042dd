//! Prometheus metrics under etcd's names, so existing alert rules and
//! dashboards work unchanged.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    pub grpc_type: &'static str,
    pub grpc_service: &'static str,
    pub grpc_method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcHandledLabels {
    pub grpc_type: &'static str,
    pub grpc_service: &'static str,
    pub grpc_method: &'static str,
    pub grpc_code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerIdLabels {
    pub server_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub server_version: String,
}

/// Every metric the server exports. Sampled values (sizes, leader state) are
/// refreshed when `/metrics` is scraped.
pub struct Metrics {
    registry: Registry,
    pub has_leader: Gauge,
    pub is_leader: Gauge,
    pub leader_changes: Counter,
    pub proposals_committed: Gauge,
    pub proposals_applied: Counter,
    pub proposals_pending: Gauge,
    pub proposals_failed: Counter,
    pub db_size: Gauge,
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
    pub grpc_started: Family<GrpcLabels, Counter>,
    pub grpc_handled: Family<GrpcHandledLabels, Counter>,
}

fn disk_buckets() -> impl Iterator<Item = f64> {
    // etcd: 1 ms doubling 14 times.
    exponential_buckets(0.001, 2.0, 14)
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::default();
        macro_rules! reg {
            ($name:expr, $help:expr, $m:expr) => {{
                let m = $m;
                r.register($name, $help, m.clone());
                m
            }};
        }
        // prometheus-client appends `_total` to counters itself.
        Metrics {
            has_leader: reg!("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.", Gauge::default()),
            is_leader: reg!("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.", Gauge::default()),
            leader_changes: reg!("etcd_server_leader_changes_seen", "The number of leader changes seen.", Counter::default()),
            proposals_committed: reg!("etcd_server_proposals_committed_total", "The total number of consensus proposals committed.", Gauge::default()),
            proposals_applied: reg!("etcd_server_proposals_applied", "The total number of consensus proposals applied.", Counter::default()),
            proposals_pending: reg!("etcd_server_proposals_pending", "The current number of pending proposals to commit.", Gauge::default()),
            proposals_failed: reg!("etcd_server_proposals_failed", "The total number of failed proposals seen.", Counter::default()),
            db_size: reg!("etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.", Gauge::default()),
            db_size_in_use: reg!("etcd_mvcc_db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes.", Gauge::default()),
            quota_bytes: reg!("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.", Gauge::default()),
            wal_fsync: reg!("etcd_disk_wal_fsync_duration_seconds", "The latency distributions of fsync called by WAL.", Histogram::new(disk_buckets())),
            backend_commit: reg!("etcd_disk_backend_commit_duration_seconds", "The latency distributions of commit called by backend.", Histogram::new(disk_buckets())),
            keys_total: reg!("etcd_debugging_mvcc_keys_total", "Total number of keys.", Gauge::default()),
            put_total: reg!("etcd_mvcc_put", "Total number of puts seen by this member.", Counter::default()),
            delete_total: reg!("etcd_mvcc_delete", "Total number of deletes seen by this member.", Counter::default()),
            range_total: reg!("etcd_mvcc_range", "Total number of ranges seen by this member.", Counter::default()),
            txn_total: reg!("etcd_mvcc_txn", "Total number of txns seen by this member.", Counter::default()),
            server_id: reg!("etcd_server_id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", Family::default()),
            server_version: reg!("etcd_server_version", "Which version is running. 1 for 'server_version' label with current version.", Family::default()),
            grpc_started: reg!("grpc_server_started", "Total number of RPCs started on the server.", Family::default()),
            grpc_handled: reg!("grpc_server_handled", "Total number of RPCs completed on the server, regardless of success or failure.", Family::default()),
            registry: r,
        }
    }
}

impl Metrics {
    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!("encoding metrics failed: {e}");
        }
        out
    }
}
