//! The space quota's check before a write is proposed, as etcd's gRPC layer makes it: a
//! put, txn or lease grant that would take the backend past --quota-backend-bytes is
//! refused with NOSPACE and raises the alarm, before it reaches the log.
//!
//! The check runs here rather than where requests are applied because it depends on this
//! member's backend size, which differs between members: refusing in the state machine
//! would let replicas diverge. Once the alarm is raised every member refuses the same
//! writes (`apply::request`), and the apply loop raises it when a batch went past the
//! quota (see [`crate::mvcc::backend::Backend::quota_size`] for what is counted).
//!
//! The same check refuses a write, with the same error and alarm, when the data volume is
//! about to fill up, and every request when it is full (see `disk_space`).

use ballast_proto::etcdserverpb::{
    alarm_request::AlarmAction, request_op, AlarmRequest, AlarmType, PutRequest, RequestOp,
};
use ballast_proto::internal::internal_request::Request;

use super::EtcdServer;
use crate::error::EtcdError;

/// etcd's estimate of what storing a key's metadata costs (`kvOverhead`).
const KV_OVERHEAD: u64 = 256;
/// etcd's estimate of what storing a lease costs (`leaseOverhead`).
const LEASE_OVERHEAD: u64 = 64;

impl EtcdServer {
    /// etcd's `quotaAlarmer.check`: when `request` does not fit in what is left of the
    /// quota, raises the NOSPACE alarm (waiting for it, as etcd does) and refuses it.
    pub(super) async fn check_quota(&self, request: &Request) -> Result<(), EtcdError> {
        // The member's own publication (it serves nothing before) and the alarm take a page
        // or two; everything else waits for space.
        let own = matches!(request, Request::MemberAttributes(_) | Request::Alarm(_));
        let charged = cost(request);
        let space = self.space.check(&self.cfg, charged);
        if !own && space.exhausted {
            return Err(EtcdError::NoSpace);
        }
        let Some(cost) = charged else {
            return Ok(());
        };
        let disk = space.shortage;
        let quota = self.cfg.effective_quota_bytes();
        if disk.is_none() && self.store.backend().quota_fits(cost, quota) {
            return Ok(());
        }
        if !self.alarms.nospace() {
            if let Some(short) = disk {
                tracing::warn!("{short}; refusing the write and raising the NOSPACE alarm");
            }
            let alarm = AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: self.member_id,
                alarm: AlarmType::Nospace as i32,
            };
            // An alarm is not charged, so this goes one level deep.
            if let Err(e) = Box::pin(self.propose(Request::Alarm(alarm))).await {
                tracing::warn!("raising the NOSPACE alarm failed: {e}");
            }
        }
        Err(EtcdError::NoSpace)
    }
}

/// etcd's `backendQuota.Cost`; `None` for requests the quota does not charge.
fn cost(request: &Request) -> Option<u64> {
    match request {
        Request::Put(p) => Some(put_cost(p)),
        // The costlier branch's puts; deletes, ranges and nested txns cost nothing (as in
        // etcd, which looks at the top level only).
        Request::Txn(t) => Some(ops_cost(&t.success).max(ops_cost(&t.failure))),
        Request::LeaseGrant(_) => Some(LEASE_OVERHEAD),
        _ => None,
    }
}

fn put_cost(p: &PutRequest) -> u64 {
    KV_OVERHEAD + p.key.len() as u64 + p.value.len() as u64
}

fn ops_cost(ops: &[RequestOp]) -> u64 {
    ops.iter()
        .map(|op| match &op.request {
            Some(request_op::Request::RequestPut(p)) => put_cost(p),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_proto::etcdserverpb::{DeleteRangeRequest, LeaseGrantRequest, TxnRequest};

    fn put(key: &str, value_len: usize) -> PutRequest {
        PutRequest {
            key: key.as_bytes().to_vec(),
            value: vec![b'v'; value_len],
            ..Default::default()
        }
    }

    fn op(p: PutRequest) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(p)),
        }
    }

    #[test]
    fn costs_as_etcd_estimates_them() {
        assert_eq!(cost(&Request::Put(put("key", 100))), Some(256 + 3 + 100));
        let txn = TxnRequest {
            success: vec![op(put("a", 10)), op(put("b", 10))],
            failure: vec![
                op(put("c", 1000)),
                RequestOp {
                    request: Some(request_op::Request::RequestDeleteRange(
                        DeleteRangeRequest::default(),
                    )),
                },
            ],
            ..Default::default()
        };
        assert_eq!(cost(&Request::Txn(txn)), Some(256 + 1 + 1000));
        assert_eq!(
            cost(&Request::LeaseGrant(LeaseGrantRequest::default())),
            Some(64)
        );
        assert_eq!(
            cost(&Request::DeleteRange(DeleteRangeRequest::default())),
            None
        );
    }
}
