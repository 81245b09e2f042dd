//! gRPC handlers: validate, then call the server's typed method for the
//! request (see `server`), or read locally. Each request runs in a debug-level
//! span named after its gRPC method, with its key facts (never keys or values).

pub mod auth;
pub mod cluster;
pub mod election;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod validate;
pub mod watch;

use std::sync::Arc;

use ballast_proto::etcdserverpb::{
    auth_server::AuthServer, cluster_server::ClusterServer, kv_server::KvServer,
    lease_server::LeaseServer, maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use ballast_proto::v3electionpb::election_server::ElectionServer;
use ballast_proto::v3lockpb::lock_server::LockServer;

use crate::metrics::grpc::GrpcMetricsLayer;
use crate::server::EtcdServer;

/// gRPC's own framing overhead on top of --max-request-bytes, as in etcd.
pub(crate) const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// All gRPC services of the client port, counted in the `grpc_server_*`
/// metrics by [`GrpcMetricsLayer`].
pub fn routes(s: &Arc<EtcdServer>) -> tonic::service::Routes {
    let max = s.cfg.max_request_bytes as usize + GRPC_OVERHEAD_BYTES;
    let routes = tonic::service::Routes::new(
        KvServer::new(kv::KvService(s.clone())).max_decoding_message_size(max),
    )
    .add_service(WatchServer::new(watch::WatchService(s.clone())).max_decoding_message_size(max))
    .add_service(LeaseServer::new(lease::LeaseService(s.clone())).max_decoding_message_size(max))
    .add_service(
        ClusterServer::new(cluster::ClusterService(s.clone())).max_decoding_message_size(max),
    )
    .add_service(
        MaintenanceServer::new(maintenance::MaintenanceService(s.clone()))
            .max_decoding_message_size(max),
    )
    .add_service(AuthServer::new(auth::AuthService(s.clone())).max_decoding_message_size(max))
    .add_service(LockServer::new(lock::LockService(s.clone())).max_decoding_message_size(max))
    .add_service(
        ElectionServer::new(election::ElectionService(s.clone())).max_decoding_message_size(max),
    );
    let layer = GrpcMetricsLayer(s.metrics.clone());
    tonic::service::Routes::from(routes.into_axum_router().layer(layer))
}
