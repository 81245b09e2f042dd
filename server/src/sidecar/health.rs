//! The sidecar's HTTP endpoints: `/readyz` gates the server's start (the sidecar's
//! startup probe), `/healthz` says the sidecar runs, `/status` shows the member as last
//! seen, and `/bootstrap` says how the member was let start or why it was not (JSON, read
//! by the operator to tell a member whose data was lost from one that is restarting), and
//! `/identity` shows the member's public key and takes its certificates ([`super::identity`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State as Extract;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parking_lot::Mutex;

use serde::Serialize;

use super::bootstrap::Refusal;
use super::identity::{Grant, Identity};
use super::Observed;
use crate::error::Error;

/// `/bootstrap`: how far the member's start has come.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrap {
    /// `preparing`, `refused` or `started`.
    pub state: &'static str,
    /// Why the member is kept from starting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Refusal>,
    /// `bootstrap`, `join` or `restart`, once started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<&'static str>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// A request to recover from a lost quorum that names this member, as the sidecar
    /// sees it now: the operator restarts the pod only once it is seen here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_request: Option<String>,
}

/// What the endpoints report.
#[derive(Debug, Default)]
pub struct State {
    ready: AtomicBool,
    bootstrap: Mutex<Bootstrap>,
    observed: Mutex<Option<Observed>>,
    /// `(state dir, member, data dir)`, to show a recovery request not yet carried out.
    recovery: Option<(std::path::PathBuf, String, std::path::PathBuf)>,
    identity: Option<Arc<Identity>>,
}

impl State {
    pub fn new(args: &super::Args, identity: Option<Arc<Identity>>) -> Self {
        State {
            recovery: args
                .state_dir
                .clone()
                .map(|d| (d, args.member.clone(), args.data_dir.clone())),
            identity,
            ..State::default()
        }
    }

    /// The member is not started yet, for this reason (shown by `/readyz` and `/bootstrap`).
    pub fn preparing(&self, why: String) {
        *self.bootstrap.lock() = Bootstrap {
            state: "preparing",
            message: why,
            ..Bootstrap::default()
        };
    }

    /// The member is prepared: the server may start.
    pub fn mark_ready(&self, decision: &'static str) {
        *self.bootstrap.lock() = Bootstrap {
            state: "started",
            refusal: None,
            decision: Some(decision),
            message: String::new(),
            recovery_request: None,
        };
        self.ready.store(true, Ordering::Release);
    }

    /// The server must not start, for this reason (shown by `/readyz` and `/bootstrap`).
    pub fn refuse(&self, refusal: Refusal, why: String) {
        *self.bootstrap.lock() = Bootstrap {
            state: "refused",
            refusal: Some(refusal),
            decision: None,
            message: why,
            recovery_request: None,
        };
    }

    fn bootstrap(&self) -> Bootstrap {
        let mut b = self.bootstrap.lock().clone();
        if b.state.is_empty() {
            b.state = "preparing";
        }
        if let Some((dir, member, data_dir)) = &self.recovery {
            // A request already carried out is not shown: the operator would restart the
            // pod for it again.
            let consumed = std::fs::read_to_string(super::recovery::consumed_path(data_dir))
                .unwrap_or_default();
            b.recovery_request =
                super::recovery::pending(dir, member, super::unix_now(), &consumed).map(|r| r.id);
        }
        b
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
        .route(
            "/bootstrap",
            get(|Extract(state): Extract<Arc<State>>| async move { Json(state.bootstrap()) }),
        )
        .route("/identity", get(identity_report).put(identity_install))
        .with_state(state);
    axum::serve(listener, app)
        .await
        .map_err(|e| Error::io("sidecar health server", e))
}

async fn readyz(Extract(state): Extract<Arc<State>>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        return "ok".into_response();
    }
    let b = state.bootstrap();
    let body = if b.message.is_empty() {
        "preparing the member".to_string()
    } else {
        b.message
    };
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

async fn identity_report(Extract(state): Extract<Arc<State>>) -> Response {
    match &state.identity {
        Some(identity) => Json(identity.report()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "this member's certificates are mounted, not signed for it",
        )
            .into_response(),
    }
}

async fn identity_install(
    Extract(state): Extract<Arc<State>>,
    Json(grant): Json<Grant>,
) -> Response {
    let Some(identity) = &state.identity else {
        return (
            StatusCode::NOT_FOUND,
            "this member's certificates are mounted, not signed for it",
        )
            .into_response();
    };
    match identity.install(&grant, super::unix_now()) {
        Ok(()) => "installed".into_response(),
        Err(why) => {
            tracing::warn!(%why, "refused certificates offered for this member");
            (StatusCode::BAD_REQUEST, why).into_response()
        }
    }
}
