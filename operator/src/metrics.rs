//! The operator's Prometheus metrics and its HTTP endpoints (`/metrics`, `/healthz`,
//! `/readyz`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a reconcile outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `ok` or an error kind from [`crate::error::Error::metric_label`].
    pub outcome: String,
}

/// Labels of a cluster's series: the names the member metrics get from the chart's
/// PodMonitor, so that alerts can join the two.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    /// The EtcdCluster's namespace.
    pub namespace: String,
    /// The EtcdCluster's name.
    pub etcd_cluster: String,
}

/// Metrics of the controller.
pub struct Metrics {
    registry: Registry,
    /// Reconciles by outcome.
    pub reconciles: Family<OutcomeLabels, Counter>,
    /// Reconcile duration in seconds.
    pub reconcile_duration: Histogram,
    /// Certificates issued (new and renewed).
    pub certificates_issued: Counter,
    /// 1 while this replica holds the leader Lease.
    pub leader: Gauge,
    /// Unix time of the last successful scheduled backup, per cluster (the stale-backup
    /// alert compares it with the schedule's period).
    pub backup_last_success: Family<ClusterLabels, Gauge<f64, AtomicU64>>,
    /// The longest gap between two runs of a cluster's backup schedule, in seconds.
    pub backup_period: Family<ClusterLabels, Gauge<f64, AtomicU64>>,
    /// Set once the operator has reached the API server; `/readyz` reports it.
    pub ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ballast_operator");
        let reconciles = Family::<OutcomeLabels, Counter>::default();
        registry.register("reconciles", "Reconciles by outcome", reconciles.clone());
        let reconcile_duration = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            reconcile_duration.clone(),
        );
        let certificates_issued = Counter::default();
        registry.register(
            "certificates_issued",
            "Certificates issued or renewed",
            certificates_issued.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        let backup_last_success = Family::<ClusterLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "backup_last_success_timestamp_seconds",
            "Unix time of the last successful scheduled backup of a cluster",
            backup_last_success.clone(),
        );
        let backup_period = Family::<ClusterLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "backup_period_seconds",
            "Longest gap between two runs of a cluster's backup schedule",
            backup_period.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_duration,
            certificates_issued,
            leader,
            backup_last_success,
            backup_period,
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// Records a cluster's scheduled backups; `None` forgets them (no schedule any more,
    /// or the cluster is gone), so no alert fires for backups nobody asked for.
    pub fn record_backups(&self, cluster: ClusterLabels, backups: Option<(Option<i64>, u64)>) {
        match backups {
            Some((last_success, period)) => {
                if let Some(t) = last_success {
                    self.backup_last_success
                        .get_or_create(&cluster)
                        .set(t as f64);
                }
                self.backup_period
                    .get_or_create(&cluster)
                    .set(period as f64);
            }
            None => {
                self.backup_last_success.remove(&cluster);
                self.backup_period.remove(&cluster);
            }
        }
    }

    /// Counts one reconcile.
    pub fn record(&self, outcome: &str, seconds: f64) {
        self.reconciles
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
        self.reconcile_duration.observe(seconds);
    }

    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// `/metrics`, `/healthz` (the process runs) and `/readyz` (it has reached the API server).
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(metrics)
}

async fn serve_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

async fn ready(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    if metrics.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not connected to the API server yet",
        )
    }
}
