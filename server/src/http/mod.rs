//! Plain HTTP on the client port beside gRPC: /health, /livez, /readyz,
//! /version, /metrics, and etcd's gRPC JSON gateway under /v3/ (see [`gateway`]).

mod gateway;
mod health;
mod metrics;

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower::ServiceExt;

use crate::server::EtcdServer;

/// The client port: `grpc` (the gRPC services) for what etcd hands its gRPC
/// server, [`router`] for everything else. As etcd's `grpcHandlerFunc` decides:
/// a request is gRPC if it is HTTP/2 with a content type naming
/// `application/grpc`. So an HTTP probe of a path nothing serves gets Go's 404
/// rather than a 200 carrying gRPC's "unimplemented", and a gRPC call to an
/// unknown method still gets that gRPC error.
pub fn client_router(s: Arc<EtcdServer>, grpc: Router) -> Router {
    let http = router(s);
    Router::new().fallback(move |req: Request| {
        let target = if is_grpc(&req) {
            grpc.clone()
        } else {
            http.clone()
        };
        async move {
            let res: Result<Response, Infallible> = target.oneshot(req).await;
            match res {
                Ok(r) => r,
                Err(never) => match never {},
            }
        }
    })
}

fn is_grpc(req: &Request) -> bool {
    req.version() == Version::HTTP_2
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.contains("application/grpc"))
}

/// The client port's HTTP routes (see [`client_router`]).
pub fn router(s: Arc<EtcdServer>) -> Router {
    let r = Router::new()
        .route("/version", get(version))
        .route("/metrics", get(metrics::metrics));
    health::routes(r, &s.cfg.emulated_etcd_version)
        .with_state(s.clone())
        .merge(gateway::router(&s))
        .fallback(not_found)
}

/// /metrics and the health endpoints, for --listen-metrics-urls (etcd serves
/// nothing else there).
pub fn metrics_router(s: Arc<EtcdServer>) -> Router {
    let r = Router::new().route("/metrics", get(metrics::metrics));
    health::routes(r, &s.cfg.emulated_etcd_version)
        .with_state(s)
        .fallback(not_found)
}

/// Go's `http.NotFound`, etcd's answer for a path nothing serves.
async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        "404 page not found\n",
    )
        .into_response()
}

async fn version(State(s): State<Arc<EtcdServer>>) -> impl IntoResponse {
    let v = &s.cfg.emulated_etcd_version;
    let cluster = v.split('.').take(2).collect::<Vec<_>>().join(".") + ".0";
    Json(json!({"etcdserver": v, "etcdcluster": cluster}))
}
