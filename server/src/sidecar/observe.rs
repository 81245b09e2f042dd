//! Watching the local member over mutual TLS, with the client certificate the pod mounts.

use std::sync::Arc;
use std::time::Duration;

use ballast_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use ballast_proto::etcdserverpb::StatusRequest;
use serde::Serialize;

use super::health::State;
use super::Args;
use crate::error::Error;
use crate::tls::{PeerDialer, Tls};

/// The member as its last `Status` answer described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// Hex, as etcdctl prints IDs.
    pub member_id: String,
    pub leader: String,
    pub is_leader: bool,
    pub is_learner: bool,
    pub version: String,
    pub raft_term: u64,
    pub raft_index: u64,
    pub db_size: i64,
    pub errors: Vec<String>,
}

/// A dialer that verifies the member against `--cacert` and presents `--cert`.
pub fn dialer(args: &Args) -> Result<Arc<PeerDialer>, Error> {
    // The server's own TLS setup, fed the flags a dialing member would get.
    let flags = [
        format!("--peer-trusted-ca-file={}", args.cacert.display()),
        format!("--peer-client-cert-file={}", args.cert.display()),
        format!("--peer-client-key-file={}", args.key.display()),
    ];
    let cfg = match crate::config::parse(flags, &[]) {
        Ok((crate::config::Outcome::Run(cfg), _)) => cfg,
        Ok(_) => return Err(Error::Other("unexpected TLS flags".into())),
        Err(e) => return Err(Error::Other(e.to_string())),
    };
    let tls = Tls::from_config(&cfg)?;
    Ok(tls.dialer)
}

/// Asks the member for its status every `every`, forever; logs changes.
pub async fn watch(dialer: Arc<PeerDialer>, endpoint: String, state: Arc<State>, every: Duration) {
    let mut last: Option<Result<Observed, String>> = None;
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = ask(&dialer, &endpoint, every).await;
        match (&last, &now) {
            (Some(Ok(before)), Ok(seen)) if before.leader == seen.leader => {}
            (_, Ok(seen)) => tracing::info!(
                member = %seen.member_id,
                leader = %seen.leader,
                term = seen.raft_term,
                "member answers"
            ),
            (Some(Err(before)), Err(e)) if before == e => {}
            (_, Err(e)) => {
                tracing::warn!(endpoint = %endpoint, error = %e, "member does not answer")
            }
        }
        if let Ok(seen) = &now {
            state.observe(seen.clone());
        }
        last = Some(now);
    }
}

pub(super) async fn ask(
    dialer: &PeerDialer,
    endpoint: &str,
    timeout: Duration,
) -> Result<Observed, String> {
    let channel = dialer.connect(endpoint, timeout).await?;
    let mut client = MaintenanceClient::new(channel);
    let answer = tokio::time::timeout(timeout, client.status(StatusRequest {}))
        .await
        .map_err(|_| "status request timed out".to_string())?
        .map_err(|s| s.message().to_string())?
        .into_inner();
    let member_id = answer.header.map(|h| h.member_id).unwrap_or_default();
    Ok(Observed {
        member_id: format!("{member_id:x}"),
        leader: format!("{:x}", answer.leader),
        is_leader: member_id != 0 && member_id == answer.leader,
        is_learner: answer.is_learner,
        version: answer.version,
        raft_term: answer.raft_term,
        raft_index: answer.raft_index,
        db_size: answer.db_size,
        errors: answer.errors,
    })
}
