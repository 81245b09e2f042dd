//! The KV service.

use std::sync::Arc;

use ballast_proto::etcdserverpb::kv_server::Kv;
use ballast_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use ballast_proto::internal::internal_request::Request;
use tonic::{Request as Req, Response, Status};

use super::validate;
use crate::apply::Applied;
use crate::server::EtcdServer;

pub struct KvService(pub Arc<EtcdServer>);

fn unexpected(a: Applied) -> Status {
    Status::internal(format!("unexpected apply result {a:?}"))
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Req<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let r = req.into_inner();
        validate::range(&r)?;
        if !r.serializable {
            self.0.check_not_learner()?;
            self.0.linearize().await?;
        }
        // A read is counted where it is served (writes: when applied).
        self.0.metrics.range_total.inc();
        let mut resp = self.0.store.range(&r)?;
        self.0.stamp(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, req: Req<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let r = req.into_inner();
        validate::put(&r)?;
        self.0.check_not_learner()?;
        match self.0.propose(Request::Put(r)).await? {
            Applied::Put(mut resp) => {
                self.0.stamp(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn delete_range(
        &self,
        req: Req<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let r = req.into_inner();
        validate::delete_range(&r)?;
        self.0.check_not_learner()?;
        match self.0.propose(Request::DeleteRange(r)).await? {
            Applied::DeleteRange(mut resp) => {
                self.0.stamp(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn txn(&self, req: Req<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let r = req.into_inner();
        validate::txn(&r, self.0.cfg.max_txn_ops as usize)?;
        self.0.check_not_learner()?;
        match self.0.propose(Request::Txn(r)).await? {
            Applied::Txn(mut resp) => {
                stamp_txn(&self.0, &mut resp);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn compact(
        &self,
        req: Req<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let r = req.into_inner();
        match self.0.propose(Request::Compaction(r)).await {
            Ok(Applied::Compaction(mut resp)) => {
                self.0.stamp(&mut resp.header);
                Ok(Response::new(resp))
            }
            Ok(other) => Err(unexpected(other)),
            Err(e) => Err(e.into()),
        }
    }
}

/// Sub-responses carry headers too; give them the member's identity.
fn stamp_txn(s: &EtcdServer, resp: &mut TxnResponse) {
    use ballast_proto::etcdserverpb::response_op::Response as R;
    s.stamp(&mut resp.header);
    for op in &mut resp.responses {
        match &mut op.response {
            Some(R::ResponseRange(r)) => s.stamp(&mut r.header),
            Some(R::ResponsePut(r)) => s.stamp(&mut r.header),
            Some(R::ResponseDeleteRange(r)) => s.stamp(&mut r.header),
            Some(R::ResponseTxn(t)) => stamp_txn(s, t),
            None => {}
        }
    }
}
