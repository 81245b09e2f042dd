//! The sidecar's HTTP endpoints: `/readyz` gates the server's start (the sidecar's
//! startup probe), `/healthz` says the sidecar runs, `/status` shows the member as last seen.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State as Extract;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parking_lot::Mutex;

use super::Observed;
use crate::error::Error;

/// What the endpoints report.
#[derive(Debug, Default)]
pub struct State {
    ready: AtomicBool,
    refused: Mutex<Option<String>>,
    observed: Mutex<Option<Observed>>,
}

impl State {
    /// The member is prepared: the server may start.
    pub fn mark_ready(&self) {
        *self.refused.lock() = None;
        self.ready.store(true, Ordering::Release);
    }

    /// The server must not start, for this reason (shown by `/readyz`).
    pub fn refuse(&self, why: String) {
        *self.refused.lock() = Some(why);
    }

    pub fn observe(&self, seen: Observed) {
        *self.observed.lock() = Some(seen);
    }

    pub fn last_observed(&self) -> Option<Observed> {
        self.observed.lock().clone()
    }
}

pub async fn serve(listener: tokio::net::TcpListener, state: Arc<State>) -> Result<(), Error> {
    let app = Router::new()
        .route("/readyz", get(readyz))
        .route("/healthz", get(|| async { "ok" }))
        .route("/status", get(status))
        .with_state(state);
    axum::serve(listener, app)
        .await
        .map_err(|e| Error::io("sidecar health server", e))
}

async fn readyz(Extract(state): Extract<Arc<State>>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        return "ok".into_response();
    }
    let why = state.refused.lock().clone();
    let body = why.unwrap_or_else(|| "preparing the member".to_string());
    (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
}

async fn status(Extract(state): Extract<Arc<State>>) -> Response {
    match state.last_observed() {
        Some(seen) => Json(seen).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the member has not answered yet",
        )
            .into_response(),
    }
}
