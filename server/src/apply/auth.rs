//! Permission checks made when a request is applied (etcd's authApplierV3):
//! with the roles as they are at that point of the log, so a permission
//! revoked after the request was sent, but before it was applied, still
//! refuses it.

use ballast_proto::etcdserverpb::request_op::Request as Op;
use ballast_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, TxnRequest};

use super::Applier;
use crate::auth::{Access, AuthInfo};
use crate::error::EtcdError;

type Check = Result<(), EtcdError>;

pub(super) fn put(a: &Applier, who: Option<&AuthInfo>, p: &PutRequest) -> Check {
    a.auth.check(who, Access::Write, &p.key, &[])?;
    lease_keys(a, who, p.lease)?;
    if p.prev_kv {
        a.auth.check(who, Access::Read, &p.key, &[])?;
    }
    Ok(())
}

pub(super) fn delete_range(a: &Applier, who: Option<&AuthInfo>, d: &DeleteRangeRequest) -> Check {
    a.auth.check(who, Access::Write, &d.key, &d.range_end)?;
    if d.prev_kv {
        a.auth.check(who, Access::Read, &d.key, &d.range_end)?;
    }
    Ok(())
}

/// Every compare and every operation of both branches, nested txns included:
/// which branch runs must not decide whether a forbidden key is touched.
pub(super) fn txn(a: &Applier, who: Option<&AuthInfo>, t: &TxnRequest) -> Check {
    for c in &t.compare {
        a.auth.check(who, Access::Read, &c.key, &c.range_end)?;
    }
    for op in t.success.iter().chain(&t.failure) {
        match &op.request {
            Some(Op::RequestRange(r)) => a.auth.check(who, Access::Read, &r.key, &r.range_end)?,
            Some(Op::RequestPut(p)) => put(a, who, p)?,
            Some(Op::RequestDeleteRange(d)) => delete_range(a, who, d)?,
            Some(Op::RequestTxn(inner)) => txn(a, who, inner)?,
            None => {}
        }
    }
    Ok(())
}

/// Attaching a key to a lease, or revoking it, may delete every key of the
/// lease: the caller must be able to write all of them (or be an admin).
pub(super) fn lease_keys(a: &Applier, who: Option<&AuthInfo>, lease: i64) -> Check {
    if lease == 0 || !a.auth.enabled() || a.auth.check_admin(who).is_ok() {
        return Ok(());
    }
    // A lease that does not exist fails later with its own error.
    for key in a.lessor.keys(lease).unwrap_or_default() {
        a.auth.check(who, Access::Write, &key, &[])?;
    }
    Ok(())
}
