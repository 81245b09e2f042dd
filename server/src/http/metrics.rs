//! `GET /metrics`: samples the values that live elsewhere (sizes, indexes,
//! identity), then serves every metric in Prometheus's text format.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::metrics::{ServerIdLabels, VersionLabels};
use crate::server::EtcdServer;

pub async fn metrics(State(s): State<Arc<EtcdServer>>) -> impl IntoResponse {
    sample(&s);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

fn sample(s: &EtcdServer) {
    let m = &s.metrics;
    let backend = s.store.backend();
    let size = backend.size() as i64;
    m.db_size.set(size);
    m.db_size_debugging.set(size);
    m.db_size_in_use.set(backend.size_in_use() as i64);
    m.quota_bytes.set(s.cfg.effective_quota_bytes() as i64);
    m.keys_total.set(s.store.live_keys() as i64);
    let leader = s.raft.leader();
    m.has_leader.set((leader != 0) as i64);
    m.is_leader
        .set((leader != 0 && leader == s.member_id) as i64);
    let learner = s.members.get(s.member_id).is_some_and(|me| me.is_learner);
    m.is_learner.set(learner as i64);
    m.proposals_committed
        .set(s.raft.status.commit.load(Ordering::Relaxed) as i64);
    m.proposals_applied.set(s.applied_index() as i64);
    m.server_id
        .get_or_create(&ServerIdLabels {
            server_id: format!("{:x}", s.member_id),
        })
        .set(1);
    m.server_version
        .get_or_create(&VersionLabels {
            server_version: s.cfg.emulated_etcd_version.clone(),
        })
        .set(1);
}
