//! etcd's gRPC JSON gateway on the client port: `POST /v3/kv/range` with a JSON
//! `RangeRequest` answers a JSON `RangeResponse`, and so on for every path that
//! etcd's `google.api.http` annotations name (see [`routes`] and [`auth`]).
//!
//! The gateway handles no request itself. It turns the JSON body into the prost
//! request type, builds a `tonic::Request` with the metadata etcd's gateway would
//! send (see [`metadata`]), and calls the very gRPC service implementations that
//! serve gRPC clients (`<KvService as Kv>::range`, ...) in-process, so that their
//! validation, error texts and (once they have them) permission checks apply to
//! JSON clients unchanged. Only the answer is translated back: the message to
//! JSON, or the gRPC status to etcd's gateway error object and HTTP status code
//! ([`dialect`]).
//!
//! # The JSON mapping
//!
//! The serde impls of the prost types come from `pbjson-build`, run in
//! `proto/build.rs`: a maintained generator of the proto3 JSON mapping for prost
//! types (bytes as base64, int64/uint64 as strings, enums by name, default values
//! omitted; both field spellings and numbers-as-strings accepted on input), which
//! is what etcd's gateway speaks through grpc-gateway's JSONPb marshaler. Its
//! `preserve_proto_field_names` option gives etcd's keys (`cluster_id`, `dbSize`,
//! `ID`: the names written in the .proto, as grpc-gateway's `OrigName` /
//! `UseProtoNames` emit them), and `ignore_unknown_fields` matches etcd's
//! `DiscardUnknown`. Hand-written per-message code for ~100 messages would drift
//! from the .proto; a generic reflection-based mapping (prost-reflect) would need
//! descriptors at run time and a second decode step for every request.
//!
//! # Versions
//!
//! etcd 3.4 and 3.5 build the gateway on grpc-gateway v1, etcd 3.6 on v2; the
//! two differ in their error objects, in how they refuse unknown paths and
//! methods, and in a few status codes. [`dialect::Dialect`] follows
//! `--emulated-etcd-version`. Routes are those of etcd 3.5/3.6 (so
//! `/v3/maintenance/hashkv` and `/v3/auth/status`, which 3.4 lacks, are served);
//! the legacy `/v3/kv/lease/{revoke,timetolive,leases}` aliases and the
//! `/v3beta/` prefix that every etcd 3.4–3.6 still accepts are served too.

mod auth;
mod dialect;
mod json;
mod metadata;
mod routes;
mod stream;
mod unary;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, MethodRouter};
use axum::Router;
use ballast_proto::etcdserverpb::auth_server::Auth;

use crate::api::GRPC_OVERHEAD_BYTES;
use crate::server::EtcdServer;
use dialect::Dialect;

/// What every gateway route needs to know besides its service.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gw {
    pub dialect: Dialect,
    /// The gRPC server's largest request (`--max-request-bytes` plus gRPC's
    /// overhead), so a JSON request is refused where the same gRPC one would be.
    pub max_message: usize,
}

impl Gw {
    /// The most one JSON request may take: base64 of the largest gRPC message
    /// plus JSON's own syntax. The decoded message's size is checked exactly.
    pub fn json_limit(self) -> usize {
        self.max_message.saturating_mul(2) + 64 * 1024
    }
}

/// The Auth service the `/v3/auth/*` routes call: the gRPC one, so tokens and
/// permissions are checked exactly as for gRPC clients.
fn auth_service(s: &Arc<EtcdServer>) -> Option<Arc<dyn Auth>> {
    Some(Arc::new(crate::api::auth::AuthService(s.clone())))
}

/// The gateway's routes, for merging into the client port's HTTP router. With
/// `--enable-grpc-gateway=false`, every `/v3/` path is Go's plain 404, as etcd
/// answers then (rather than the gRPC fallback's empty 200).
pub fn router(s: &Arc<EtcdServer>) -> Router {
    if !s.cfg.enable_grpc_gateway {
        let not_found = any(|| async { dialect::go_not_found() });
        return Router::new()
            .route("/v3/{*rest}", not_found.clone())
            .route("/v3beta/{*rest}", not_found);
    }
    let gw = Gw {
        dialect: Dialect::for_version(&s.cfg.emulated_etcd_version),
        max_message: s.cfg.max_request_bytes as usize + GRPC_OVERHEAD_BYTES,
    };
    let mut table = routes::table(s, gw);
    table.extend(match auth_service(s) {
        Some(svc) => auth::table(gw, svc),
        None => auth::unimplemented(gw),
    });
    with_table(gw, table)
}

/// Mounts `table` under `/v3` and its `/v3beta` alias, refusing other methods and
/// other `/v3/` paths the way etcd's gateway does.
fn with_table(gw: Gw, table: Vec<(&'static str, MethodRouter)>) -> Router {
    let mut router = Router::new();
    for (path, route) in table {
        let route = route.fallback(move || async move { gw.dialect.method_not_allowed() });
        router = router
            .route(&format!("/v3{path}"), route.clone())
            .route(&format!("/v3beta{path}"), route);
    }
    let not_found = any(move || async move { gw.dialect.not_found() });
    router
        .route("/v3/{*rest}", not_found.clone())
        .route("/v3beta/{*rest}", not_found)
        .layer(DefaultBodyLimit::max(gw.json_limit()))
}
