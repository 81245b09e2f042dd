//! Plain HTTP on the client port beside gRPC: /health, /version, /metrics.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::server::EtcdServer;

pub fn router(s: Arc<EtcdServer>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .with_state(s)
}

/// Only /health and /metrics, for --listen-metrics-urls.
pub fn metrics_router(s: Arc<EtcdServer>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(s)
}

/// etcd's semantics: healthy when there is a leader, no alarm (beyond those
/// excluded) and, unless `serializable=true`, a linearizable read succeeds.
async fn health(
    State(s): State<Arc<EtcdServer>>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let excluded: Vec<&str> = q
        .get("exclude")
        .map(|e| e.split(',').collect())
        .unwrap_or_default();
    let reason = if s.raft.leader() == 0 {
        Some("RAFT NO LEADER".to_string())
    } else if let Some(a) = s
        .alarms
        .list()
        .into_iter()
        .find(|a| !excluded.contains(&alarm_str(a.alarm)))
    {
        Some(format!("ALARM {}", alarm_str(a.alarm)))
    } else if q.get("serializable").map(String::as_str) != Some("true") {
        match s.linearize().await {
            Ok(()) => None,
            Err(e) => Some(format!("QGET ERROR:{e}")),
        }
    } else {
        None
    };
    match reason {
        None => (
            StatusCode::OK,
            Json(json!({"health": "true", "reason": ""})),
        ),
        Some(r) => {
            tracing::warn!(reason = %r, "serving /health false");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"health": "false", "reason": r})),
            )
        }
    }
}

fn alarm_str(a: i32) -> &'static str {
    use ballast_proto::etcdserverpb::AlarmType;
    match AlarmType::try_from(a) {
        Ok(AlarmType::Nospace) => "NOSPACE",
        Ok(AlarmType::Corrupt) => "CORRUPT",
        _ => "NONE",
    }
}

async fn version(State(s): State<Arc<EtcdServer>>) -> impl IntoResponse {
    let v = &s.cfg.emulated_etcd_version;
    let cluster = v.split('.').take(2).collect::<Vec<_>>().join(".") + ".0";
    Json(json!({"etcdserver": v, "etcdcluster": cluster}))
}

async fn metrics(State(s): State<Arc<EtcdServer>>) -> impl IntoResponse {
    let m = &s.metrics;
    let backend = s.store.backend();
    m.db_size.set(backend.size() as i64);
    m.db_size_in_use.set(backend.size_in_use() as i64);
    m.quota_bytes.set(s.cfg.effective_quota_bytes() as i64);
    m.keys_total.set(s.store.live_keys() as i64);
    m.has_leader.set((s.raft.leader() != 0) as i64);
    m.is_leader.set((s.raft.leader() == s.member_id) as i64);
    m.server_id
        .get_or_create(&crate::metrics::ServerIdLabels {
            server_id: format!("{:x}", s.member_id),
        })
        .set(1);
    m.server_version
        .get_or_create(&crate::metrics::VersionLabels {
            server_version: s.cfg.emulated_etcd_version.clone(),
        })
        .set(1);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.encode(),
    )
}
