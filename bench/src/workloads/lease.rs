//! `lease-keepalive`: each client grants one lease, opens one LeaseKeepAlive
//! stream, and measures request → response round trips on it. A long-lived
//! stream is what real clients (clientv3's KeepAlive) use; etcd's benchmark
//! opens a stream per request (KeepAliveOnce), which mostly measures stream
//! setup.
//!
//! Granting and revoking are setup and cleanup, not timed. Leases are revoked
//! at the end so their expiry cannot disturb the next workload a runner starts.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_proto::etcdserverpb::lease_client::LeaseClient;
use ballast_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseRevokeRequest,
};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

use super::{join_all, Ctx};
use crate::cli::LeaseOpts;
use crate::error::{status_text, BenchError};
use crate::progress::Progress;
use crate::report::Report;
use crate::stats::Collector;
use crate::work::Work;

pub(crate) fn validate(o: &LeaseOpts) -> Result<(), BenchError> {
    if o.ttl <= 0 {
        return Err(BenchError::Config("--ttl must be positive".into()));
    }
    Ok(())
}

pub(crate) async fn run(ctx: &Ctx<'_>, o: &LeaseOpts) -> Result<Report, BenchError> {
    let timeout = ctx.global.request_timeout;

    let mut setup = JoinSet::new();
    for c in 0..ctx.global.clients {
        let channel = ctx.pool.channel(c);
        let ttl = o.ttl;
        setup.spawn(async move { KeepAliver::open(channel, ttl, timeout).await });
    }
    let mut keepers = Vec::new();
    let mut first_error = None;
    for opened in join_all(&mut setup).await {
        match opened {
            Ok(k) => keepers.push(k),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        revoke_all(keepers, timeout).await;
        return Err(BenchError::Setup(format!("granting leases: {e}")));
    }

    let total = ctx.total();
    let progress = Progress::start(ctx.show_progress, total, "keep-alives");
    let collector = Collector::new();
    let work = Arc::new(Work::new(total, ctx.global.duration, 0));
    let mut tasks = JoinSet::new();
    for mut keeper in keepers {
        let work = Arc::clone(&work);
        let mut rec = collector.recorder();
        let done = progress.counter();
        tasks.spawn(async move {
            while work.next().await.is_some() {
                let started = Instant::now();
                let result = match tokio::time::timeout(timeout, keeper.once()).await {
                    Ok(r) => r,
                    Err(_) => {
                        // A late answer would be taken for the next request's: start over.
                        keeper.broken = true;
                        Err(format!("keep-alive timed out after {timeout:?}"))
                    }
                };
                rec.outcome(started.elapsed(), result);
                done.fetch_add(1, Ordering::Relaxed);
            }
            keeper
        });
    }
    let keepers = join_all(&mut tasks).await;
    let elapsed = work.start().elapsed();
    progress.finish();
    revoke_all(keepers, timeout).await;

    let params = json!({ "ttl": o.ttl });
    Ok(ctx.report("lease-keepalive", params, &collector, elapsed))
}

/// One client's lease and keep-alive stream.
struct KeepAliver {
    client: LeaseClient<Channel>,
    id: i64,
    tx: mpsc::Sender<LeaseKeepAliveRequest>,
    rx: Streaming<LeaseKeepAliveResponse>,
    /// The stream failed or fell out of step; reopen before the next request.
    broken: bool,
    timeout: Duration,
}

impl KeepAliver {
    async fn open(channel: Channel, ttl: i64, timeout: Duration) -> Result<KeepAliver, String> {
        let mut client = LeaseClient::new(channel);
        let grant = tokio::time::timeout(
            timeout,
            client.lease_grant(LeaseGrantRequest { ttl, id: 0 }),
        )
        .await
        .map_err(|_| format!("LeaseGrant timed out after {timeout:?}"))?
        .map_err(|s| status_text(&s))?
        .into_inner();
        if !grant.error.is_empty() {
            return Err(grant.error);
        }
        let (tx, rx) = open_stream(&mut client, grant.id, timeout).await?;
        Ok(KeepAliver {
            client,
            id: grant.id,
            tx,
            rx,
            broken: false,
            timeout,
        })
    }

    /// One keep-alive round trip.
    async fn once(&mut self) -> Result<(), String> {
        if self.broken {
            let (tx, rx) = open_stream(&mut self.client, self.id, self.timeout).await?;
            (self.tx, self.rx) = (tx, rx);
            self.broken = false;
        }
        let result = round_trip(&self.tx, &mut self.rx, self.id).await;
        if result.is_err() {
            self.broken = true;
        }
        result
    }
}

type KeepAliveStream = (
    mpsc::Sender<LeaseKeepAliveRequest>,
    Streaming<LeaseKeepAliveResponse>,
);

/// Opens a keep-alive stream and completes one round trip on it. The first
/// request is queued before the call because grpc-go servers (etcd) send the
/// response headers only with the first response.
async fn open_stream(
    client: &mut LeaseClient<Channel>,
    id: i64,
    timeout: Duration,
) -> Result<KeepAliveStream, String> {
    let (tx, rx) = mpsc::channel(1);
    tx.try_send(LeaseKeepAliveRequest { id })
        .map_err(|_| "keep-alive queue full".to_string())?;
    let opened = async {
        let mut responses = client
            .lease_keep_alive(ReceiverStream::new(rx))
            .await
            .map_err(|s| status_text(&s))?
            .into_inner();
        check_response(responses.message().await, id)?;
        Ok::<_, String>(responses)
    };
    let responses = tokio::time::timeout(timeout, opened)
        .await
        .map_err(|_| format!("opening the keep-alive stream timed out after {timeout:?}"))??;
    Ok((tx, responses))
}

async fn round_trip(
    tx: &mpsc::Sender<LeaseKeepAliveRequest>,
    rx: &mut Streaming<LeaseKeepAliveResponse>,
    id: i64,
) -> Result<(), String> {
    tx.send(LeaseKeepAliveRequest { id })
        .await
        .map_err(|_| "keep-alive stream closed".to_string())?;
    check_response(rx.message().await, id)
}

fn check_response(
    message: Result<Option<LeaseKeepAliveResponse>, tonic::Status>,
    id: i64,
) -> Result<(), String> {
    match message {
        Ok(Some(r)) if r.id == id && r.ttl > 0 => Ok(()),
        Ok(Some(r)) if r.ttl <= 0 => {
            Err(format!("lease {id:x} expired or not found (TTL {})", r.ttl))
        }
        Ok(Some(r)) => Err(format!(
            "keep-alive answered for lease {:x}, sent {id:x}",
            r.id
        )),
        Ok(None) => Err("keep-alive stream ended".into()),
        Err(s) => Err(status_text(&s)),
    }
}

/// Best-effort cleanup; failures only mean the leases expire on their own.
async fn revoke_all(keepers: Vec<KeepAliver>, timeout: Duration) {
    let mut tasks = JoinSet::new();
    for k in keepers {
        let KeepAliver {
            mut client, id, tx, ..
        } = k;
        drop(tx);
        tasks.spawn(async move {
            let _ =
                tokio::time::timeout(timeout, client.lease_revoke(LeaseRevokeRequest { id })).await;
        });
    }
    join_all(&mut tasks).await;
}
