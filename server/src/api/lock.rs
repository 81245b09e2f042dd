//! The Lock service (`v3lockpb.Lock`): named locks on top of KV, Lease and
//! Watch, as etcd serves them; the recipe is in [`crate::concurrency::mutex`].
//! Learners refuse it, as etcd's interceptor makes them.

use std::sync::Arc;

use ballast_proto::v3lockpb::lock_server::Lock;
use ballast_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::{Request as Req, Response, Status};

use crate::concurrency::Client;
use crate::server::EtcdServer;

pub struct LockService(pub Arc<EtcdServer>);

#[tonic::async_trait]
impl Lock for LockService {
    #[tracing::instrument(
        name = "v3lockpb.Lock/Lock",
        level = "debug",
        skip_all,
        fields(
            name_len = req.get_ref().name.len(),
            lease = req.get_ref().lease,
        )
    )]
    async fn lock(&self, req: Req<LockRequest>) -> Result<Response<LockResponse>, Status> {
        self.0.check_not_learner()?;
        let client = Client::new(self.0.clone(), self.0.caller(&req).await?);
        let r = req.into_inner();
        let locked = client.lock(&r.name, r.lease).await?;
        Ok(Response::new(LockResponse {
            header: locked.header,
            key: locked.key,
        }))
    }

    /// Deletes the key Lock returned, whoever holds it, as etcd does.
    #[tracing::instrument(
        name = "v3lockpb.Lock/Unlock",
        level = "debug",
        skip_all,
        fields(key_len = req.get_ref().key.len())
    )]
    async fn unlock(&self, req: Req<UnlockRequest>) -> Result<Response<UnlockResponse>, Status> {
        self.0.check_not_learner()?;
        let client = Client::new(self.0.clone(), self.0.caller(&req).await?);
        let resp = client.delete(req.into_inner().key).await?;
        Ok(Response::new(UnlockResponse {
            header: resp.header,
        }))
    }
}
