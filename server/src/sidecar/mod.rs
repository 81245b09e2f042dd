//! `ballast sidecar`: the container that runs beside the server in an operator-managed
//! pod. It starts first (a native sidecar), prepares the member (checks its identity and
//! certificates, writes its configuration), opens its startup gate (`/readyz`), then
//! keeps watching the local member over mutual TLS and serves what it sees (`/status`).
//!
//! Join, replace and restore (deciding `initial-cluster-state`, adding the member through
//! the cluster first) build on this.

mod args;
mod health;
mod member_config;
mod observe;

use std::sync::Arc;

pub use args::Args;
pub use member_config::{prepare, MemberConfig};
pub use observe::Observed;

use crate::error::Error;

/// How often the local member is asked for its status.
const OBSERVE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Prepares the member, opens the gate and watches the member until the process is stopped.
pub async fn run(args: Args) -> Result<(), Error> {
    let state = Arc::new(health::State::default());
    let listener = tokio::net::TcpListener::bind(&args.listen_health)
        .await
        .map_err(|e| Error::io(format!("--listen-health {}", args.listen_health), e))?;
    tracing::info!(address = %args.listen_health, "sidecar serving /readyz, /healthz and /status");
    let server = tokio::spawn(health::serve(listener, state.clone()));

    let config = prepare(&args)?;
    tracing::info!(
        member = %config.name,
        path = %args.config_out.display(),
        state = %config.initial_cluster_state,
        "wrote the member configuration"
    );
    state.mark_ready();

    let dialer = observe::dialer(&args)?;
    let watcher = tokio::spawn(observe::watch(
        dialer,
        args.endpoint.clone(),
        state.clone(),
        OBSERVE_EVERY,
    ));
    tokio::select! {
        res = server => match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(Error::Other(format!("health server: {e}"))),
        },
        _ = watcher => Err(Error::Other("member watcher stopped".into())),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
