//! The client requests, typed (as etcd's `v3_server.go`): each method takes a
//! request the handler has validated and returns its response, header filled in,
//! or the error the client gets. Handlers in `api` call these and never see what
//! the apply thread produced.

use ballast_proto::etcdserverpb::alarm_request::AlarmAction;
use ballast_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, TxnRequest,
    TxnResponse,
};
use ballast_proto::internal::internal_request::Request;
use tonic::Status;

use super::applied::FromApplied;
use super::EtcdServer;
use crate::apply::Applied;
use crate::cluster::Member;
use crate::error::EtcdError;
use crate::lease::MAX_LEASE_TTL;

impl EtcdServer {
    /// Served by this member: linearizable unless `serializable`, which learners
    /// may not refuse.
    pub async fn range(&self, r: RangeRequest) -> Result<RangeResponse, Status> {
        if !r.serializable {
            self.check_not_learner()?;
            self.linearize().await?;
        }
        // A read is counted where it is served (writes: when applied).
        self.metrics.range_total.inc();
        let mut resp = self.store.range(&r)?;
        self.stamp(&mut resp.header);
        Ok(resp)
    }

    pub async fn put(&self, r: PutRequest) -> Result<PutResponse, Status> {
        self.check_not_learner()?;
        let mut resp: PutResponse = self.propose_for(Request::Put(r)).await?;
        self.stamp(&mut resp.header);
        Ok(resp)
    }

    pub async fn delete_range(&self, r: DeleteRangeRequest) -> Result<DeleteRangeResponse, Status> {
        self.check_not_learner()?;
        let mut resp: DeleteRangeResponse = self.propose_for(Request::DeleteRange(r)).await?;
        self.stamp(&mut resp.header);
        Ok(resp)
    }

    pub async fn txn(&self, r: TxnRequest) -> Result<TxnResponse, Status> {
        self.check_not_learner()?;
        let mut resp: TxnResponse = self.propose_for(Request::Txn(r)).await?;
        // Only the outer header gets the member's identity: as in etcd, the
        // responses nested in it keep the revision their operation gave them.
        self.stamp(&mut resp.header);
        Ok(resp)
    }

    pub async fn compact(&self, r: CompactionRequest) -> Result<CompactionResponse, Status> {
        let mut resp: CompactionResponse = self.propose_for(Request::Compaction(r)).await?;
        self.stamp(&mut resp.header);
        Ok(resp)
    }

    /// Grants `r.id`, or a fresh ID if it is 0.
    pub async fn lease_grant(
        &self,
        mut r: LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, Status> {
        self.check_not_learner()?;
        if r.ttl > MAX_LEASE_TTL {
            return Err(EtcdError::LeaseTtlTooLarge.into());
        }
        if r.id == 0 {
            // Positive IDs only, as etcd hands out.
            r.id = (self.next_id() & (i64::MAX as u64)) as i64;
        }
        let mut resp: LeaseGrantResponse = self.propose_for(Request::LeaseGrant(r)).await?;
        self.stamp(&mut resp.header);
        Ok(resp)
    }

    pub async fn lease_revoke(&self, r: LeaseRevokeRequest) -> Result<LeaseRevokeResponse, Status> {
        if !self.lessor.exists(r.id) {
            return Err(EtcdError::LeaseNotFound.into());
        }
        let mut resp: LeaseRevokeResponse = self.propose_for(Request::LeaseRevoke(r)).await?;
        self.stamp(&mut resp.header);
        Ok(resp)
    }

    /// Lists alarms from this member, or raises or clears one through Raft.
    pub async fn alarm(&self, r: AlarmRequest) -> Result<AlarmResponse, Status> {
        if r.action == AlarmAction::Get as i32 {
            return Ok(AlarmResponse {
                header: self.header(self.store.current_revision()),
                alarms: self.alarms.list(),
            });
        }
        let mut resp: AlarmResponse = self.propose_for(Request::Alarm(r)).await?;
        self.stamp(&mut resp.header);
        Ok(resp)
    }

    /// Sets a member's peer URLs; returns the members after it. Checked again when
    /// applied: the member may be gone by then.
    pub async fn member_update(&self, member: Member) -> Result<Vec<Member>, Status> {
        let applied = self.propose(Request::MemberUpdate(member.to_pb())).await?;
        Vec::<Member>::from_applied(applied).map_err(|_| EtcdError::Corrupt.into())
    }

    /// Proposes `request` and takes the answer of type `T` out of its result.
    async fn propose_for<T: FromApplied>(&self, request: Request) -> Result<T, Status> {
        T::from_applied(self.propose(request).await?).map_err(unexpected)
    }
}

/// An answer of the wrong kind: a bug, reported as such.
fn unexpected(applied: Applied) -> Status {
    Status::internal(format!("unexpected apply result {applied:?}"))
}
