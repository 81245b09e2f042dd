//! The KV service.

use std::sync::Arc;

use ballast_proto::etcdserverpb::kv_server::Kv;
use ballast_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use tonic::{Request as Req, Response, Status};

use super::validate;
use crate::server::EtcdServer;

pub struct KvService(pub Arc<EtcdServer>);

#[tonic::async_trait]
impl Kv for KvService {
    #[tracing::instrument(
        name = "etcdserverpb.KV/Range",
        level = "debug",
        skip_all,
        fields(
            key_len = req.get_ref().key.len(),
            range_end = !req.get_ref().range_end.is_empty(),
            revision = req.get_ref().revision,
            serializable = req.get_ref().serializable,
        )
    )]
    async fn range(&self, req: Req<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        validate::range(&r)?;
        Ok(Response::new(self.0.range(&who, r).await?))
    }

    #[tracing::instrument(
        name = "etcdserverpb.KV/Put",
        level = "debug",
        skip_all,
        fields(
            key_len = req.get_ref().key.len(),
            lease = req.get_ref().lease,
            prev_kv = req.get_ref().prev_kv,
        )
    )]
    async fn put(&self, req: Req<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        validate::put(&r)?;
        Ok(Response::new(self.0.put(&who, r).await?))
    }

    #[tracing::instrument(
        name = "etcdserverpb.KV/DeleteRange",
        level = "debug",
        skip_all,
        fields(
            key_len = req.get_ref().key.len(),
            range_end = !req.get_ref().range_end.is_empty(),
            prev_kv = req.get_ref().prev_kv,
        )
    )]
    async fn delete_range(
        &self,
        req: Req<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        validate::delete_range(&r)?;
        Ok(Response::new(self.0.delete_range(&who, r).await?))
    }

    #[tracing::instrument(
        name = "etcdserverpb.KV/Txn",
        level = "debug",
        skip_all,
        fields(
            compares = req.get_ref().compare.len(),
            success_ops = req.get_ref().success.len(),
            failure_ops = req.get_ref().failure.len(),
        )
    )]
    async fn txn(&self, req: Req<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        validate::txn(&r, self.0.cfg.max_txn_ops as usize)?;
        Ok(Response::new(self.0.txn(&who, r).await?))
    }

    #[tracing::instrument(
        name = "etcdserverpb.KV/Compact",
        level = "debug",
        skip_all,
        fields(
            revision = req.get_ref().revision,
            physical = req.get_ref().physical,
        )
    )]
    async fn compact(
        &self,
        req: Req<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let who = self.0.caller(&req).await?;
        Ok(Response::new(self.0.compact(&who, req.into_inner()).await?))
    }
}
