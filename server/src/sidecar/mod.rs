//! `ballast sidecar`: the container that runs beside the server in an operator-managed
//! pod. It starts first (a native sidecar), prepares the member (checks its identity and
//! certificates, writes its configuration), opens its startup gate (`/readyz`), then
//! keeps watching the local member over mutual TLS and serves what it sees (`/status`).
//!
//! A member with no data is started only while its cluster is being created
//! ([`bootstrap`]); join, replace and restore (deciding `initial-cluster-state`, adding the
//! member through the cluster first) build on this.

mod args;
mod bootstrap;
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
/// How long a peer has to answer whether a cluster already runs.
const ASK_PEERS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// How often a refused member asks its peers again.
const RECHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

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
    let dialer = observe::dialer(&args)?;
    loop {
        let has_data = args.data_dir.join("member").is_dir();
        let peers = if has_data {
            bootstrap::Peers::Silent
        } else {
            bootstrap::ask_peers(&dialer, &args, ASK_PEERS_TIMEOUT).await
        };
        match bootstrap::decide(
            has_data,
            &config.name,
            &config.initial_advertise_peer_urls,
            &peers,
        ) {
            bootstrap::Decision::Refuse(why) => {
                tracing::error!(member = %config.name, "not starting the member: {why}");
                state.refuse(why);
                tokio::time::sleep(RECHECK_EVERY).await;
            }
            _ => break,
        }
    }
    state.mark_ready();

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
