//! The Lease service.

use std::pin::Pin;
use std::sync::Arc;

use ballast_proto::etcdserverpb::lease_server::Lease;
use ballast_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request as Req, Response, Status, Streaming};
use tracing::Instrument;

use crate::error::EtcdError;
use crate::server::EtcdServer;

pub struct LeaseService(pub Arc<EtcdServer>);

#[tonic::async_trait]
impl Lease for LeaseService {
    #[tracing::instrument(
        name = "etcdserverpb.Lease/LeaseGrant",
        level = "debug",
        skip_all,
        fields(
            lease = req.get_ref().id,
            ttl = req.get_ref().ttl,
        )
    )]
    async fn lease_grant(
        &self,
        req: Req<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let who = self.0.caller(&req).await?;
        Ok(Response::new(
            self.0.lease_grant(&who, req.into_inner()).await?,
        ))
    }

    #[tracing::instrument(
        name = "etcdserverpb.Lease/LeaseRevoke",
        level = "debug",
        skip_all,
        fields(lease = req.get_ref().id)
    )]
    async fn lease_revoke(
        &self,
        req: Req<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let who = self.0.caller(&req).await?;
        Ok(Response::new(
            self.0.lease_revoke(&who, req.into_inner()).await?,
        ))
    }

    type LeaseKeepAliveStream =
        Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

    #[tracing::instrument(name = "etcdserverpb.Lease/LeaseKeepAlive", level = "debug", skip_all)]
    async fn lease_keep_alive(
        &self,
        req: Req<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let s = self.0.clone();
        // The stream lives on in its task: in this request's span.
        let keep_alive = async move {
            while let Ok(Some(r)) = inbound.message().await {
                let resp = match renew(&s, r.id).await {
                    Ok(resp) => resp,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        break;
                    }
                };
                if tx.send(Ok(resp)).await.is_err() {
                    break;
                }
            }
        };
        tokio::spawn(keep_alive.in_current_span());
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    #[tracing::instrument(
        name = "etcdserverpb.Lease/LeaseTimeToLive",
        level = "debug",
        skip_all,
        fields(
            lease = req.get_ref().id,
            keys = req.get_ref().keys,
        )
    )]
    async fn lease_time_to_live(
        &self,
        req: Req<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        if r.keys {
            // The keys are named in the answer: the caller must be able to read them.
            self.0.check_lease_keys_readable(&who, r.id)?;
        }
        if self.0.lessor.is_primary() {
            return Ok(Response::new(time_to_live_here(&self.0, r)));
        }
        // Only the leader knows how long a lease has left.
        let mut resp = self
            .0
            .leader_client()
            .await?
            .lease_time_to_live(r)
            .await?
            .into_inner();
        self.0.stamp(&mut resp.header);
        Ok(Response::new(resp))
    }

    #[tracing::instrument(name = "etcdserverpb.Lease/LeaseLeases", level = "debug", skip_all)]
    async fn lease_leases(
        &self,
        _req: Req<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let leases = self
            .0
            .lessor
            .ids()
            .into_iter()
            .map(|id| LeaseStatus { id })
            .collect();
        Ok(Response::new(LeaseLeasesResponse {
            header: self.0.header(self.0.store.current_revision()),
            leases,
        }))
    }
}

/// Renews on the leader: here if this member leads, else over the peer port.
async fn renew(s: &Arc<EtcdServer>, id: i64) -> Result<LeaseKeepAliveResponse, Status> {
    s.check_not_learner()?;
    match s.lessor.renew(id) {
        Ok(ttl) => Ok(LeaseKeepAliveResponse {
            header: s.header(s.store.current_revision()),
            id,
            ttl,
        }),
        // etcd answers an unknown lease with TTL 0 rather than an error.
        Err(EtcdError::LeaseNotFound) => Ok(LeaseKeepAliveResponse {
            header: s.header(s.store.current_revision()),
            id,
            ttl: 0,
        }),
        Err(EtcdError::NotLeader) => {
            let mut resp = s
                .leader_client()
                .await?
                .lease_renew(LeaseKeepAliveRequest { id })
                .await?
                .into_inner();
            s.stamp(&mut resp.header);
            Ok(resp)
        }
        Err(e) => Err(e.into()),
    }
}

/// TimeToLive from this member's lessor (the leader's answer).
pub fn time_to_live_here(s: &EtcdServer, r: LeaseTimeToLiveRequest) -> LeaseTimeToLiveResponse {
    let header = s.header(s.store.current_revision());
    match s.lessor.time_to_live(r.id) {
        Ok(info) => LeaseTimeToLiveResponse {
            header,
            id: r.id,
            ttl: info.remaining,
            granted_ttl: info.granted_ttl,
            keys: if r.keys { info.keys } else { Vec::new() },
        },
        // etcd reports a missing lease as TTL -1, not as an error.
        Err(_) => LeaseTimeToLiveResponse {
            header,
            id: r.id,
            ttl: -1,
            ..Default::default()
        },
    }
}
