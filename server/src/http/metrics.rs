//! `GET /metrics`: samples the values that live elsewhere (sizes, indexes,
//! identity), then serves every metric in Prometheus's text format.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::metrics::{ClusterVersionLabels, ServerIdLabels, VersionLabels};
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
    let version = &s.cfg.emulated_etcd_version;
    m.server_version
        .get_or_create(&VersionLabels {
            server_version: version.clone(),
        })
        .set(1);
    // The cluster runs at the emulated major.minor, as /version reports.
    let cluster_version = version.split('.').take(2).collect::<Vec<_>>().join(".");
    m.cluster_version
        .get_or_create(&ClusterVersionLabels { cluster_version })
        .set(1);
    m.current_revision.set(s.store.current_revision());
    // etcd reports -1 until the first compaction.
    let compacted = s.store.compact_revision();
    m.compact_revision
        .set(if compacted == 0 { -1 } else { compacted });
    m.process.sample();
}
