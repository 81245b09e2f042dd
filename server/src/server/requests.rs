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
use crate::auth::{Access, AuthInfo};
use crate::cluster::Member;
use crate::error::EtcdError;
use crate::lease::MAX_LEASE_TTL;

impl EtcdServer {
    /// Served by this member: linearizable unless `serializable`, which learners
    /// may not refuse.
    pub async fn range(&self, who: &AuthInfo, r: RangeRequest) -> Result<RangeResponse, Status> {
        if !r.serializable {
            self.check_not_learner()?;
            self.linearize().await?;
        }
        self.auth
            .check(Some(who), Access::Read, &r.key, &r.range_end)?;
        // A read is counted where it is served (writes: when applied).
        self.metrics.range_total.inc();
        let mut resp = self.store.range(&r)?;
        // The roles may have changed while it was read (etcd's doSerialize).
        if who.revision != 0 && who.revision != self.auth.revision() {
            return Err(EtcdError::AuthOldRevision.into());
        }
        self.stamp(&mut resp.header);
        Ok(resp)
    }

    pub async fn put(&self, who: &AuthInfo, r: PutRequest) -> Result<PutResponse, Status> {
        self.check_not_learner()?;
        let mut resp: PutResponse = self.propose_for(who, Request::Put(r)).await?;
        self.stamp(&mut resp.header);
        Ok(resp)
    }

    pub async fn delete_range(
        &self,
        who: &AuthInfo,
        r: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Status> {
        self.check_not_learner()?;
        let mut resp: DeleteRangeResponse = self.propose_for(who, Request::DeleteRange(r)).await?;
        self.stamp(&mut resp.header);
        Ok(resp)
    }

    pub async fn txn(&self, who: &AuthInfo, r: TxnRequest) -> Result<TxnResponse, Status> {
        self.check_not_learner()?;
        let mut resp: TxnResponse = self.propose_for(who, Request::Txn(r)).await?;
        // Only the outer header gets the member's identity: as in etcd, the
        // responses nested in it keep the revision their operation gave them.
        self.stamp(&mut resp.header);
        Ok(resp)
    }

    pub async fn compact(
        &self,
        who: &AuthInfo,
        r: CompactionRequest,
    ) -> Result<CompactionResponse, Status> {
        let (rev, physical) = (r.revision, r.physical);
        let mut resp: CompactionResponse = self.propose_for(who, Request::Compaction(r)).await?;
        if physical {
            self.store.compacted_physically(rev).await;
        }
        self.stamp(&mut resp.header);
        Ok(resp)
    }

    /// Grants `r.id`, or a fresh ID if it is 0.
    pub async fn lease_grant(
        &self,
        who: &AuthInfo,
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
        let mut resp: LeaseGrantResponse = self.propose_for(who, Request::LeaseGrant(r)).await?;
        self.stamp(&mut resp.header);
        Ok(resp)
    }

    pub async fn lease_revoke(
        &self,
        who: &AuthInfo,
        r: LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse, Status> {
        if !self.lessor.exists(r.id) {
            return Err(EtcdError::LeaseNotFound.into());
        }
        let mut resp: LeaseRevokeResponse = self.propose_for(who, Request::LeaseRevoke(r)).await?;
        self.stamp(&mut resp.header);
        Ok(resp)
    }

    /// Lists alarms from this member, or raises or clears one through Raft.
    pub async fn alarm(&self, who: &AuthInfo, r: AlarmRequest) -> Result<AlarmResponse, Status> {
        if r.action == AlarmAction::Get as i32 {
            return Ok(AlarmResponse {
                header: self.header(self.store.current_revision()),
                alarms: self.alarms.list(),
            });
        }
        let mut resp: AlarmResponse = self.propose_for(who, Request::Alarm(r)).await?;
        self.stamp(&mut resp.header);
        Ok(resp)
    }

    /// Sets a member's peer URLs; returns the members after it. Checked again when
    /// applied: the member may be gone by then.
    pub async fn member_update(
        &self,
        who: &AuthInfo,
        member: Member,
    ) -> Result<Vec<Member>, Status> {
        self.auth.check_admin(Some(who))?;
        let applied = self
            .propose_as(who, Request::MemberUpdate(member.to_pb()))
            .await?;
        Vec::<Member>::from_applied(applied).map_err(|_| EtcdError::Corrupt.into())
    }

    /// Proposes `request` and takes the answer of type `T` out of its result.
    pub(crate) async fn propose_for<T: FromApplied>(
        &self,
        who: &AuthInfo,
        request: Request,
    ) -> Result<T, Status> {
        T::from_applied(self.propose_as(who, request).await?).map_err(unexpected)
    }
}

/// An answer of the wrong kind: a bug, reported as such.
pub(super) fn unexpected(applied: Applied) -> Status {
    Status::internal(format!("unexpected apply result {applied:?}"))
}
