//! Choosing the member to take the snapshot from.
//!
//! A snapshot streams the whole database, which costs the serving member disk reads and
//! bandwidth; a follower that is part of a healthy cluster is the best place for that, so
//! the leader keeps its capacity for writes and heartbeats. Learners are skipped: they may
//! lag behind. A member without a leader or with alarms is not trusted to hold the data the
//! cluster has committed. TLS is the server's own dialer (the same flags as etcdctl's
//! `--cacert/--cert/--key`), so backups verify members exactly as members verify each other.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ballast_proto::etcdserverpb::cluster_client::ClusterClient;
use ballast_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use ballast_proto::etcdserverpb::{MemberListRequest, StatusRequest, StatusResponse};
use tonic::transport::Channel;

use crate::error::{Error, Result};
use crate::tls::{PeerDialer, Tls};

/// How to reach the cluster; also the etcdctl-like flags of the commands that dial it
/// (`backup save`, `defrag`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Endpoints {
    /// Client URLs of the members, comma-separated (`http://` or `https://`).
    #[arg(long = "endpoints", value_delimiter = ',', required = true)]
    pub urls: Vec<String>,
    /// CA that signed the members' certificates (system roots without one).
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Client certificate (with --key) for members that require one.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// The client certificate's key.
    #[arg(long)]
    pub key: Option<PathBuf>,
}

/// The member chosen, connected, with the `Status` it answered.
pub struct Member {
    pub endpoint: String,
    pub channel: Channel,
    pub status: StatusResponse,
    /// From the member list; empty if the member did not answer it.
    pub name: String,
}

impl Member {
    pub fn id(&self) -> u64 {
        self.status.header.as_ref().map_or(0, |h| h.member_id)
    }

    pub fn cluster_id(&self) -> u64 {
        self.status.header.as_ref().map_or(0, |h| h.cluster_id)
    }

    pub fn revision(&self) -> i64 {
        self.status.header.as_ref().map_or(0, |h| h.revision)
    }

    fn is_leader(&self) -> bool {
        self.id() != 0 && self.id() == self.status.leader
    }
}

/// The server's TLS dialer, fed the flags a dialing member would get (also used by
/// `ballast defrag`).
pub fn dialer(endpoints: &Endpoints) -> Result<Arc<PeerDialer>> {
    if endpoints.cert.is_some() != endpoints.key.is_some() {
        return Err(Error::Backup(
            "--cert and --key go together: give both or neither".into(),
        ));
    }
    let mut flags = Vec::new();
    let pairs = [
        ("--peer-trusted-ca-file", &endpoints.cacert),
        ("--peer-client-cert-file", &endpoints.cert),
        ("--peer-client-key-file", &endpoints.key),
    ];
    for (flag, file) in pairs {
        if let Some(file) = file {
            flags.push(format!("{flag}={}", file.display()));
        }
    }
    let cfg = match crate::config::parse(flags, &[]) {
        Ok((crate::config::Outcome::Run(cfg), _)) => cfg,
        Ok(_) => return Err(Error::Backup("unexpected TLS flags".into())),
        Err(e) => return Err(Error::Backup(e.to_string())),
    };
    let tls = Tls::from_config(&cfg).map_err(|e| Error::Backup(format!("TLS: {e}")))?;
    Ok(tls.dialer)
}

/// Asks every endpoint for its status and returns the member to snapshot: a healthy
/// follower that votes, else a healthy leader. Errors name each endpoint's problem.
pub async fn pick(endpoints: &Endpoints, timeout: Duration) -> Result<Member> {
    if endpoints.urls.is_empty() {
        return Err(Error::Backup("no endpoint given (--endpoints)".into()));
    }
    let dialer = dialer(endpoints)?;
    let mut healthy = Vec::new();
    let mut problems = Vec::new();
    for url in &endpoints.urls {
        match ask(&dialer, url, timeout).await {
            Ok(member) => healthy.push(member),
            Err(problem) => problems.push(format!("{url}: {problem}")),
        }
    }
    // Followers first, then the leader; learners were already left out.
    healthy.sort_by_key(Member::is_leader);
    let Some(mut member) = healthy.into_iter().next() else {
        return Err(Error::Backup(format!(
            "no healthy member to take the snapshot from ({}); check --endpoints, the TLS \
             flags and the cluster's health",
            problems.join("; ")
        )));
    };
    member.name = member_name(&member, timeout).await;
    Ok(member)
}

/// Connects to one endpoint and checks it is fit to serve the snapshot.
async fn ask(dialer: &PeerDialer, url: &str, timeout: Duration) -> Result<Member, String> {
    let channel = dialer
        .connect(url, timeout)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let status = tokio::time::timeout(
        timeout,
        MaintenanceClient::new(channel.clone()).status(StatusRequest {}),
    )
    .await
    .map_err(|_| format!("no answer to Status within {timeout:?}"))?
    .map_err(|s| format!("Status failed: {}", s.message()))?
    .into_inner();
    if status.leader == 0 {
        return Err("has no leader".into());
    }
    if !status.errors.is_empty() {
        return Err(format!("reports errors: {}", status.errors.join(", ")));
    }
    if status.is_learner {
        return Err("is a learner (may lag behind the cluster)".into());
    }
    Ok(Member {
        endpoint: url.to_string(),
        channel,
        status,
        name: String::new(),
    })
}

/// The member's name from the member list; a name is only informative, so failures give "".
async fn member_name(member: &Member, timeout: Duration) -> String {
    let mut client = ClusterClient::new(member.channel.clone());
    let request = client.member_list(MemberListRequest {
        linearizable: false,
    });
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(list)) => list
            .into_inner()
            .members
            .into_iter()
            .find(|m| m.id == member.id())
            .map(|m| m.name)
            .unwrap_or_default(),
        _ => String::new(),
    }
}
