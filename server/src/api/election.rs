//! The Election service (`v3electionpb.Election`): leader elections on top
//! of KV, Lease and Watch, as etcd serves them; the recipe is in
//! [`crate::concurrency::election`]. Learners refuse it, as etcd's
//! interceptor makes them.

use std::pin::Pin;
use std::sync::Arc;

use ballast_proto::v3electionpb::election_server::Election;
use ballast_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request as Req, Response, Status};
use tracing::Instrument;

use crate::concurrency::Client;
use crate::server::EtcdServer;

pub struct ElectionService(pub Arc<EtcdServer>);

/// Leader changes an observer may have queued before the observing task
/// waits for the client to read them.
const OBSERVE_BUFFER: usize = 16;

#[tonic::async_trait]
impl Election for ElectionService {
    #[tracing::instrument(
        name = "v3electionpb.Election/Campaign",
        level = "debug",
        skip_all,
        fields(
            name_len = req.get_ref().name.len(),
            lease = req.get_ref().lease,
        )
    )]
    async fn campaign(
        &self,
        req: Req<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        self.0.check_not_learner()?;
        let client = Client::new(self.0.clone(), self.0.caller(&req).await?);
        let r = req.into_inner();
        let elected = client.campaign(&r.name, r.lease, r.value).await?;
        Ok(Response::new(CampaignResponse {
            header: elected.header,
            leader: Some(elected.leader),
        }))
    }

    #[tracing::instrument(
        name = "v3electionpb.Election/Proclaim",
        level = "debug",
        skip_all,
        fields(lease = req.get_ref().leader.as_ref().map(|l| l.lease))
    )]
    async fn proclaim(
        &self,
        req: Req<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        self.0.check_not_learner()?;
        let client = Client::new(self.0.clone(), self.0.caller(&req).await?);
        let r = req.into_inner();
        let header = client.proclaim(r.leader, r.value).await?;
        Ok(Response::new(ProclaimResponse { header }))
    }

    #[tracing::instrument(
        name = "v3electionpb.Election/Leader",
        level = "debug",
        skip_all,
        fields(name_len = req.get_ref().name.len())
    )]
    async fn leader(&self, req: Req<LeaderRequest>) -> Result<Response<LeaderResponse>, Status> {
        self.0.check_not_learner()?;
        let client = Client::new(self.0.clone(), self.0.caller(&req).await?);
        let name = req.into_inner().name;
        Ok(Response::new(client.leader(&name).await?))
    }

    type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

    #[tracing::instrument(
        name = "v3electionpb.Election/Observe",
        level = "debug",
        skip_all,
        fields(name_len = req.get_ref().name.len())
    )]
    async fn observe(
        &self,
        req: Req<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        self.0.check_not_learner()?;
        let client = Client::new(self.0.clone(), self.0.caller(&req).await?);
        let name = req.into_inner().name;
        let (tx, rx) = mpsc::channel(OBSERVE_BUFFER);
        // The stream lives on in its task: in this request's span.
        let observe = client.observe(name, tx);
        tokio::spawn(observe.in_current_span());
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    #[tracing::instrument(
        name = "v3electionpb.Election/Resign",
        level = "debug",
        skip_all,
        fields(lease = req.get_ref().leader.as_ref().map(|l| l.lease))
    )]
    async fn resign(&self, req: Req<ResignRequest>) -> Result<Response<ResignResponse>, Status> {
        self.0.check_not_learner()?;
        let client = Client::new(self.0.clone(), self.0.caller(&req).await?);
        let leader = req.into_inner().leader;
        let header = client.resign(leader).await?;
        Ok(Response::new(ResignResponse { header }))
    }
}
