//! go-grpc-prometheus's server metrics as a tower layer around the tonic
//! routes: `grpc_server_started_total` when a call arrives,
//! `grpc_server_handled_total` with its final status when it ends, plus
//! etcd's client traffic byte counters.
//!
//! The final status is in the response headers for a trailers-only answer
//! (how tonic returns most errors) and in the trailers otherwise; a stream
//! counts when its trailers go out. A call whose response (or response body)
//! is dropped first was cancelled by the client, as grpc-go counts it.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::body::{Body, Bytes};
use futures::future::BoxFuture;
use http::{HeaderMap, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use tower::{Layer, Service};

use super::grpc_methods::{self, GrpcMethod, CODE_NAMES};
use super::{GrpcHandledLabels, GrpcLabels, Metrics};

/// Creates every etcd method's counters at 0, as etcd does at startup.
pub(super) fn initialize(metrics: &Metrics) {
    for m in grpc_methods::METHODS.iter().filter(|m| m.preinit) {
        let _ = metrics.grpc_started.get_or_create(&started_labels(m));
        for code in CODE_NAMES {
            let _ = metrics.grpc_handled.get_or_create(&handled_labels(m, code));
        }
    }
}

fn started_labels(m: &GrpcMethod) -> GrpcLabels {
    GrpcLabels {
        grpc_method: m.method,
        grpc_service: m.service,
        grpc_type: m.kind,
    }
}

fn handled_labels(m: &GrpcMethod, code: &'static str) -> GrpcHandledLabels {
    GrpcHandledLabels {
        grpc_code: code,
        grpc_method: m.method,
        grpc_service: m.service,
        grpc_type: m.kind,
    }
}

/// Wraps the client port's gRPC routes (see `api::routes`).
#[derive(Clone)]
pub struct GrpcMetricsLayer(pub Arc<Metrics>);

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> Service<Request<Body>> for GrpcMetrics<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let method = grpc_methods::lookup(req.uri().path()).filter(|_| is_grpc(req.headers()));
        let Some(method) = method else {
            return Box::pin(self.inner.call(req));
        };
        let m = &self.metrics;
        m.grpc_started.get_or_create(&started_labels(method)).inc();
        let received = m.client_received_bytes.clone();
        let req = req.map(|b| Body::new(Counted::new(b, received, None)));
        let call = Call {
            metrics: self.metrics.clone(),
            method,
            done: false,
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            // Dropped while waiting: `call` counts the RPC as cancelled.
            let resp = fut.await?;
            Ok(call.watch(resp))
        })
    }
}

fn is_grpc(h: &HeaderMap) -> bool {
    h.get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

fn status_code(h: &HeaderMap) -> Option<&'static str> {
    h.get("grpc-status")
        .map(|v| grpc_methods::code_name(v.as_bytes()))
}

/// One RPC in flight; counted as handled exactly once.
struct Call {
    metrics: Arc<Metrics>,
    method: &'static GrpcMethod,
    done: bool,
}

impl Call {
    fn finish(mut self, code: &'static str) {
        self.count(code);
    }

    fn count(&mut self, code: &'static str) {
        if !std::mem::replace(&mut self.done, true) {
            self.metrics
                .grpc_handled
                .get_or_create(&handled_labels(self.method, code))
                .inc();
        }
    }

    /// Counts a trailers-only answer now, or follows the body to its trailers.
    fn watch(self, resp: Response<Body>) -> Response<Body> {
        if let Some(code) = status_code(resp.headers()) {
            self.finish(code);
            return resp;
        }
        if !resp.status().is_success() {
            self.finish("Unknown");
            return resp;
        }
        let sent = self.metrics.client_sent_bytes.clone();
        resp.map(|b| Body::new(Counted::new(b, sent, Some(self))))
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.count("Canceled");
    }
}

/// A body that counts its data bytes and, for a response, reports the
/// status in its trailers (or the cancellation when dropped before them).
struct Counted {
    inner: Body,
    bytes: Counter,
    call: Option<Call>,
}

impl Counted {
    fn new(inner: Body, bytes: Counter, call: Option<Call>) -> Counted {
        Counted { inner, bytes, call }
    }

    fn finish(&mut self, code: &'static str) {
        if let Some(c) = self.call.take() {
            c.finish(code);
        }
    }
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(data) = f.data_ref() {
                    this.bytes.inc_by(data.len() as u64);
                } else if let Some(trailers) = f.trailers_ref() {
                    this.finish(status_code(trailers).unwrap_or("Unknown"));
                }
            }
            // A broken body resets the stream; the client sees no status.
            Some(Err(_)) | None => this.finish("Unknown"),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
