//! The paths of the KV, Watch, Lease, Cluster and Maintenance services, as
//! etcd's `google.api.http` annotations map them (relative to `/v3`), each to
//! the gRPC method that serves gRPC clients.

use std::sync::Arc;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::routing::{post, MethodRouter};
use ballast_proto::etcdserverpb::cluster_server::Cluster;
use ballast_proto::etcdserverpb::kv_server::Kv;
use ballast_proto::etcdserverpb::lease_server::Lease;
use ballast_proto::etcdserverpb::maintenance_server::Maintenance;
use ballast_proto::etcdserverpb::watch_server::Watch;
use bytes::Bytes;

use super::stream::{self, BodyEnd};
use super::unary::unary;
use super::Gw;
use crate::api::cluster::ClusterService;
use crate::api::kv::KvService;
use crate::api::lease::LeaseService;
use crate::api::maintenance::MaintenanceService;
use crate::api::watch::WatchService;
use crate::server::EtcdServer;

pub fn table(s: &Arc<EtcdServer>, gw: Gw) -> Vec<(&'static str, MethodRouter)> {
    let kv = Arc::new(KvService(s.clone()));
    let watch = Arc::new(WatchService(s.clone()));
    let lease = Arc::new(LeaseService(s.clone()));
    let cluster = Arc::new(ClusterService(s.clone()));
    let mt = Arc::new(MaintenanceService(s.clone()));
    vec![
        ("/kv/range", unary!(gw, kv, Kv::range)),
        ("/kv/put", unary!(gw, kv, Kv::put)),
        ("/kv/deleterange", unary!(gw, kv, Kv::delete_range)),
        ("/kv/txn", unary!(gw, kv, Kv::txn)),
        ("/kv/compaction", unary!(gw, kv, Kv::compact)),
        ("/watch", watch_route(gw, watch)),
        ("/lease/grant", unary!(gw, lease, Lease::lease_grant)),
        ("/lease/revoke", unary!(gw, lease, Lease::lease_revoke)),
        ("/kv/lease/revoke", unary!(gw, lease, Lease::lease_revoke)),
        ("/lease/keepalive", keepalive_route(gw, lease.clone())),
        (
            "/lease/timetolive",
            unary!(gw, lease, Lease::lease_time_to_live),
        ),
        (
            "/kv/lease/timetolive",
            unary!(gw, lease, Lease::lease_time_to_live),
        ),
        ("/lease/leases", unary!(gw, lease, Lease::lease_leases)),
        ("/kv/lease/leases", unary!(gw, lease, Lease::lease_leases)),
        (
            "/cluster/member/add",
            unary!(gw, cluster, Cluster::member_add),
        ),
        (
            "/cluster/member/remove",
            unary!(gw, cluster, Cluster::member_remove),
        ),
        (
            "/cluster/member/update",
            unary!(gw, cluster, Cluster::member_update),
        ),
        (
            "/cluster/member/list",
            unary!(gw, cluster, Cluster::member_list),
        ),
        (
            "/cluster/member/promote",
            unary!(gw, cluster, Cluster::member_promote),
        ),
        ("/maintenance/alarm", unary!(gw, mt, Maintenance::alarm)),
        ("/maintenance/status", unary!(gw, mt, Maintenance::status)),
        (
            "/maintenance/defragment",
            unary!(gw, mt, Maintenance::defragment),
        ),
        ("/maintenance/hash", unary!(gw, mt, Maintenance::hash)),
        ("/maintenance/hashkv", unary!(gw, mt, Maintenance::hash_kv)),
        ("/maintenance/snapshot", snapshot_route(gw, mt.clone())),
        (
            "/maintenance/transfer-leadership",
            unary!(gw, mt, Maintenance::move_leader),
        ),
        (
            "/maintenance/downgrade",
            unary!(gw, mt, Maintenance::downgrade),
        ),
    ]
}

fn watch_route(gw: Gw, svc: Arc<WatchService>) -> MethodRouter {
    post(move |headers: HeaderMap, body: Body| async move {
        stream::bidi(gw, &headers, body, BodyEnd::HoldOpen, |req| async move {
            Watch::watch(&*svc, req).await
        })
        .await
    })
}

fn keepalive_route(gw: Gw, svc: Arc<LeaseService>) -> MethodRouter {
    post(move |headers: HeaderMap, body: Body| async move {
        stream::bidi(gw, &headers, body, BodyEnd::Close, |req| async move {
            Lease::lease_keep_alive(&*svc, req).await
        })
        .await
    })
}

fn snapshot_route(gw: Gw, svc: Arc<MaintenanceService>) -> MethodRouter {
    post(move |headers: HeaderMap, body: Bytes| async move {
        stream::server(gw, &headers, &body, |req| async move {
            Maintenance::snapshot(&*svc, req).await
        })
        .await
    })
}
