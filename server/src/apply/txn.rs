//! Txn: compares decide the branch, then the branch's operations run in
//! order, all in one revision.

use ballast_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use ballast_proto::etcdserverpb::request_op::Request as Op;
use ballast_proto::etcdserverpb::response_op::Response as OpResponse;
use ballast_proto::etcdserverpb::{
    Compare, RangeRequest, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use ballast_proto::mvccpb::KeyValue;

use super::request::{check_put, delete_range, header, put};
use super::Applier;
use crate::error::{Error, EtcdError};
use crate::metrics::mvcc::OpCounts;
use crate::mvcc::WriteBatch;

pub(super) fn apply(
    a: &Applier,
    b: &mut WriteBatch<'_>,
    t: &TxnRequest,
    request_id: u64,
) -> Result<TxnResponse, Error> {
    // Decide every nested branch first, so that checks can fail the whole
    // txn before any change is made.
    let mut compares = OpCounts::default();
    let plan = plan(b, t, &mut compares)?;
    check(a, b, t, &plan)?;
    let mut next = 0;
    let mut ops = OpCounts::default();
    let resp = execute(b, t, &plan, &mut next, &mut ops)?;
    if read_only(t) {
        // etcd serves a read-only txn on one member, outside Raft, in one
        // storage transaction; count it only where it was asked.
        if a.wait.is_waiting(request_id) {
            OpCounts {
                ranges: compares.ranges + ops.ranges,
                ..Default::default()
            }
            .record(&a.metrics);
        }
    } else {
        // etcd compares in a read transaction, then writes in another.
        compares.record(&a.metrics);
        ops.record(&a.metrics);
    }
    Ok(resp)
}

/// etcd's `isTxnReadonly`: no put or delete in any branch, nested or not.
fn read_only(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| match &op.request {
            Some(Op::RequestPut(_) | Op::RequestDeleteRange(_)) => false,
            Some(Op::RequestTxn(inner)) => read_only(inner),
            Some(Op::RequestRange(_)) | None => true,
        })
}

/// The branch taken by each txn, outermost first, in execution order.
fn plan(b: &WriteBatch<'_>, t: &TxnRequest, ops: &mut OpCounts) -> Result<Vec<bool>, Error> {
    let mut out = Vec::new();
    plan_into(b, t, &mut out, ops)?;
    Ok(out)
}

fn plan_into(
    b: &WriteBatch<'_>,
    t: &TxnRequest,
    out: &mut Vec<bool>,
    ops: &mut OpCounts,
) -> Result<(), Error> {
    let ok = compares_hold(b, &t.compare, ops)?;
    out.push(ok);
    for op in if ok { &t.success } else { &t.failure } {
        if let Some(Op::RequestTxn(inner)) = &op.request {
            plan_into(b, inner, out, ops)?;
        }
    }
    Ok(())
}

/// Each compare evaluated reads its key (etcd stops at the first false one).
fn compares_hold(b: &WriteBatch<'_>, cmps: &[Compare], ops: &mut OpCounts) -> Result<bool, Error> {
    for c in cmps {
        ops.ranges += 1;
        if !compare_holds(b, c)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn compare_holds(b: &WriteBatch<'_>, c: &Compare) -> Result<bool, Error> {
    let kvs = b
        .range(&RangeRequest {
            key: c.key.clone(),
            range_end: c.range_end.clone(),
            ..Default::default()
        })?
        .kvs;
    if kvs.is_empty() {
        // A missing key has no value to compare; other targets compare as zero.
        if c.target == CompareTarget::Value as i32 {
            return Ok(false);
        }
        return Ok(compare_kv(c, &KeyValue::default()));
    }
    Ok(kvs.iter().all(|kv| compare_kv(c, kv)))
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    let ord = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Value) => kv.value.as_slice().cmp(target_bytes(c)),
        Ok(CompareTarget::Version) => kv.version.cmp(&target_int(c)),
        Ok(CompareTarget::Create) => kv.create_revision.cmp(&target_int(c)),
        Ok(CompareTarget::Mod) => kv.mod_revision.cmp(&target_int(c)),
        Ok(CompareTarget::Lease) => kv.lease.cmp(&target_int(c)),
        Err(_) => return false,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord == Ordering::Equal,
        Ok(CompareResult::Greater) => ord == Ordering::Greater,
        Ok(CompareResult::Less) => ord == Ordering::Less,
        Ok(CompareResult::NotEqual) => ord != Ordering::Equal,
        Err(_) => false,
    }
}

fn target_bytes(c: &Compare) -> &[u8] {
    match &c.target_union {
        Some(TargetUnion::Value(v)) => v,
        _ => &[],
    }
}

fn target_int(c: &Compare) -> i64 {
    match c.target_union {
        Some(TargetUnion::Version(v))
        | Some(TargetUnion::CreateRevision(v))
        | Some(TargetUnion::ModRevision(v))
        | Some(TargetUnion::Lease(v)) => v,
        _ => 0,
    }
}

/// Apply-time checks over the chosen branches: leases of puts must exist;
/// puts that keep a value or lease need an existing key; no space, no puts.
fn check(a: &Applier, b: &WriteBatch<'_>, t: &TxnRequest, plan: &[bool]) -> Result<(), Error> {
    let mut next = 0;
    check_into(a, b, t, plan, &mut next)
}

fn check_into(
    a: &Applier,
    b: &WriteBatch<'_>,
    t: &TxnRequest,
    plan: &[bool],
    next: &mut usize,
) -> Result<(), Error> {
    let ok = plan.get(*next).copied().unwrap_or(false);
    *next += 1;
    for op in if ok { &t.success } else { &t.failure } {
        match &op.request {
            Some(Op::RequestPut(p)) => {
                if a.alarms.nospace() {
                    return Err(EtcdError::NoSpace.into());
                }
                check_put(a, b, p)?;
            }
            Some(Op::RequestTxn(inner)) => check_into(a, b, inner, plan, next)?,
            // etcd refuses the whole txn before writing anything.
            Some(Op::RequestRange(r)) if r.revision > 0 => {
                if r.revision > b.revision() {
                    return Err(EtcdError::FutureRev.into());
                }
                if r.revision < b.compacted() {
                    return Err(EtcdError::Compacted.into());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn execute(
    b: &mut WriteBatch<'_>,
    t: &TxnRequest,
    plan: &[bool],
    next: &mut usize,
    counts: &mut OpCounts,
) -> Result<TxnResponse, Error> {
    let ok = plan.get(*next).copied().unwrap_or(false);
    *next += 1;
    let ops: &[RequestOp] = if ok { &t.success } else { &t.failure };
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(Op::RequestRange(r)) => {
                counts.ranges += 1;
                let mut resp = b.range(r)?;
                resp.header = header(b.read_rev());
                OpResponse::ResponseRange(resp)
            }
            Some(Op::RequestPut(p)) => OpResponse::ResponsePut(put(b, p.clone(), counts)?),
            Some(Op::RequestDeleteRange(d)) => {
                OpResponse::ResponseDeleteRange(delete_range(b, d, counts)?)
            }
            Some(Op::RequestTxn(inner)) => {
                let mut resp = execute(b, inner, plan, next, counts)?;
                // etcd sets the revision of the outermost txn's header only; a
                // nested one keeps the empty header it was created with.
                resp.header = Some(ResponseHeader::default());
                OpResponse::ResponseTxn(resp)
            }
            None => continue,
        };
        responses.push(ResponseOp {
            response: Some(response),
        });
    }
    Ok(TxnResponse {
        header: header(b.read_rev()),
        succeeded: ok,
        responses,
    })
}
