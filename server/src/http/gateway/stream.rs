//! The streaming routes: `/v3/watch` and `/v3/lease/keepalive` (bidirectional)
//! and `/v3/maintenance/snapshot` (server streaming).
//!
//! As in etcd's gateway, the request body is a sequence of JSON messages, each
//! sent on the gRPC stream as soon as it is complete, and the answer is chunked:
//! one `{"result":<message>}` line per gRPC message, and, if the stream fails,
//! a last `{"error":{...}}` line. The HTTP status is that of the first thing
//! the stream yields: 200 for a message, the error's status for an error.
//!
//! The bidirectional services take a `tonic::Streaming` of requests, the type
//! tonic's server hands them; the gateway builds one by gRPC-framing the
//! decoded JSON messages into an in-memory body, so the services run exactly
//! as for a gRPC client.

use std::convert::Infallible;
use std::future::Future;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::dialect::Dialect;
use super::json::{self, MessageReader, ReadError};
use super::{metadata, unary, Gw};

/// What happens to the gRPC request stream once the HTTP request body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEnd {
    /// The stream ends too (the client half-closes), as for lease keep-alives,
    /// which answer what was sent and then finish.
    Close,
    /// The stream stays open as long as the HTTP client reads the answer: a
    /// watch keeps delivering events after its create requests were sent. (etcd's
    /// watch server ignores the half-close that its gateway sends at the end of
    /// the body; Ballast's ends the stream on it, so the gateway does not send it.)
    HoldOpen,
}

/// A bidirectional streaming route: feeds the JSON messages of `body` to the
/// gRPC method `call` and streams its answers back.
pub async fn bidi<Q, P, S, F, Fut>(
    gw: Gw,
    headers: &HeaderMap,
    body: Body,
    end: BodyEnd,
    call: F,
) -> Response
where
    Q: DeserializeOwned + prost::Message + Default + Send + 'static,
    P: Serialize + Send + 'static,
    S: Stream<Item = Result<P, Status>> + Send + 'static,
    F: FnOnce(tonic::Request<Streaming<Q>>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<S>, Status>>,
{
    let mut reader = MessageReader::new(body, gw.json_limit());
    // grpc-gateway v1 reads the first message before the call: if it is not
    // valid JSON the request fails as a whole (Unknown, HTTP 500). v2 reads all
    // messages beside the call, and one that does not decode just ends the
    // sending side, as the end of the body does.
    let first = match (reader.next::<Q>().await, gw.dialect) {
        (Ok(first), _) => first,
        (Err(ReadError::TooLarge(max)), _) => {
            return gw.dialect.error(&Status::resource_exhausted(format!(
                "grpc: received message larger than max (more than {max} bytes of JSON)"
            )))
        }
        (Err(e), Dialect::V1) => return gw.dialect.error(&Status::unknown(e.to_string())),
        (Err(_), Dialect::V2) => None,
    };
    if let Some(msg) = &first {
        if let Err(st) = unary::check_size(gw, msg) {
            return gw.dialect.error(&st);
        }
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(16);
    let inbound = Streaming::new_request(
        tonic_prost::ProstDecoder::<Q>::default(),
        Body::from_stream(ReceiverStream::new(rx)),
        None,
        Some(gw.max_message),
    );
    tokio::spawn(feed(reader, first, tx, end));
    match call(metadata::request(headers, inbound)).await {
        Ok(resp) => answer(gw.dialect, resp.into_inner()).await,
        Err(st) => first_error(gw.dialect, &st),
    }
}

/// A server-streaming route: one JSON request, a stream of answers.
pub async fn server<Q, P, S, F, Fut>(gw: Gw, headers: &HeaderMap, body: &[u8], call: F) -> Response
where
    Q: DeserializeOwned + prost::Message + Default,
    P: Serialize + Send + 'static,
    S: Stream<Item = Result<P, Status>> + Send + 'static,
    F: FnOnce(tonic::Request<Q>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<S>, Status>>,
{
    let msg = match unary::decode::<Q>(gw, body) {
        Ok(msg) => msg,
        Err(st) => return gw.dialect.error(&st),
    };
    match call(metadata::request(headers, msg)).await {
        Ok(resp) => answer(gw.dialect, resp.into_inner()).await,
        Err(st) => first_error(gw.dialect, &st),
    }
}

/// Sends each message of the body, gRPC-framed, into the request stream.
async fn feed<Q: DeserializeOwned + prost::Message>(
    mut reader: MessageReader,
    first: Option<Q>,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    end: BodyEnd,
) {
    let mut next = first;
    while let Some(msg) = next {
        if tx.send(Ok(grpc_frame(&msg))).await.is_err() {
            return;
        }
        // As etcd's gateway, a message that does not decode ends the sending
        // side as the end of the body does.
        next = reader.next::<Q>().await.ok().flatten();
    }
    if end == BodyEnd::HoldOpen {
        // Until the service drops the request stream (its answer was dropped).
        tx.closed().await;
    }
}

/// A message as gRPC's length-prefixed framing carries it (uncompressed).
fn grpc_frame<Q: prost::Message>(msg: &Q) -> Bytes {
    let encoded = msg.encode_to_vec();
    let mut frame = Vec::with_capacity(5 + encoded.len());
    frame.push(0);
    // A message comes from at most `Gw::json_limit` bytes of JSON, so its length
    // fits; tonic's decoder refuses one over the gRPC limit.
    frame.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    frame.extend_from_slice(&encoded);
    Bytes::from(frame)
}

/// A stream that failed before its first message: the error's HTTP status and
/// the error chunk, as grpc-gateway reports a stream error before any write.
fn first_error(dialect: Dialect, st: &Status) -> Response {
    let body = serde_json::to_vec(&dialect.stream_error_chunk(st)).unwrap_or_default();
    super::dialect::json_response(dialect.http_status(st.code()), body)
}

/// Streams the answers: waits for the first one to choose the HTTP status.
async fn answer<P, S>(dialect: Dialect, stream: S) -> Response
where
    P: Serialize + Send + 'static,
    S: Stream<Item = Result<P, Status>> + Send + 'static,
{
    let mut stream = Box::pin(stream);
    let first = match stream.next().await {
        Some(Err(st)) => return first_error(dialect, &st),
        Some(Ok(first)) => Some(first),
        None => None,
    };
    let chunks = futures::stream::unfold(
        (stream, first, false),
        move |(mut stream, pending, failed)| async move {
            if failed {
                return None;
            }
            let item = match pending {
                Some(msg) => Ok(msg),
                None => stream.next().await?,
            };
            let chunk = item
                .and_then(|m| json::result_chunk(&m).map_err(|e| Status::internal(e.to_string())));
            Some(match chunk {
                Ok(c) => (Ok::<_, Infallible>(Bytes::from(c)), (stream, None, false)),
                Err(st) => {
                    let c =
                        serde_json::to_vec(&dialect.stream_error_chunk(&st)).unwrap_or_default();
                    (Ok(Bytes::from(c)), (stream, None, true))
                }
            })
        },
    );
    let resp = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Body::from_stream(chunks),
    )
        .into_response();
    json::with_grpc_metadata(resp)
}
