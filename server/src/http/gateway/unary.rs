//! One JSON request, one JSON answer: the shape of every gateway route except
//! the three streaming ones.

use std::future::Future;

use axum::http::HeaderMap;
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::Status;

use super::{json, metadata, Gw};

/// Decodes `body`, calls the gRPC method `call` with it and the metadata of
/// `headers`, and answers its response or its status.
pub async fn call<Q, P, F, Fut>(gw: Gw, headers: &HeaderMap, body: &[u8], call: F) -> Response
where
    Q: DeserializeOwned + Default + prost::Message,
    P: Serialize,
    F: FnOnce(tonic::Request<Q>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<P>, Status>>,
{
    let msg = match decode::<Q>(gw, body) {
        Ok(msg) => msg,
        Err(st) => return gw.dialect.error(&st),
    };
    match call(metadata::request(headers, msg)).await {
        Ok(resp) => json::ok(gw.dialect, resp.get_ref()),
        Err(st) => gw.dialect.error(&st),
    }
}

/// The request of a unary call, refused as etcd's gateway refuses it: bad JSON
/// is InvalidArgument; a message over the gRPC server's limit is refused with
/// the text grpc-go's server gives the gateway's client.
pub fn decode<Q: DeserializeOwned + Default + prost::Message>(
    gw: Gw,
    body: &[u8],
) -> Result<Q, Status> {
    let msg: Q = json::decode(body).map_err(|e| Status::invalid_argument(e.to_string()))?;
    check_size(gw, &msg)?;
    Ok(msg)
}

pub fn check_size<Q: prost::Message>(gw: Gw, msg: &Q) -> Result<(), Status> {
    let len = msg.encoded_len();
    if len > gw.max_message {
        return Err(Status::resource_exhausted(format!(
            "grpc: received message larger than max ({len} vs. {})",
            gw.max_message
        )));
    }
    Ok(())
}

/// A POST route calling the unary gRPC method `$method` (a trait method such as
/// `Kv::range`) of the service `$svc` (an `Arc`).
macro_rules! unary {
    ($gw:expr, $svc:expr, $method:path) => {{
        let gw: $crate::http::gateway::Gw = $gw;
        let svc = ::std::sync::Arc::clone(&$svc);
        ::axum::routing::post(
            move |headers: ::axum::http::HeaderMap, body: ::bytes::Bytes| async move {
                $crate::http::gateway::unary::call(gw, &headers, &body, |req| async move {
                    $method(&*svc, req).await
                })
                .await
            },
        )
    }};
}
pub(crate) use unary;
