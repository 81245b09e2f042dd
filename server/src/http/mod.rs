//! Plain HTTP on the client port beside gRPC: /health, /version, /metrics, and
//! etcd's gRPC JSON gateway under /v3/ (see [`gateway`]).

mod gateway;
mod health;
mod metrics;

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::server::EtcdServer;

pub fn router(s: Arc<EtcdServer>) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/version", get(version))
        .route("/metrics", get(metrics::metrics))
        .with_state(s.clone())
        .merge(gateway::router(&s))
}

/// Only /health and /metrics, for --listen-metrics-urls.
pub fn metrics_router(s: Arc<EtcdServer>) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(metrics::metrics))
        .with_state(s)
}

async fn version(State(s): State<Arc<EtcdServer>>) -> impl IntoResponse {
    let v = &s.cfg.emulated_etcd_version;
    let cluster = v.split('.').take(2).collect::<Vec<_>>().join(".") + ".0";
    Json(json!({"etcdserver": v, "etcdcluster": cluster}))
}
