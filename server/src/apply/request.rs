//! Applying one client request to the write batch.

use ballast_proto::etcdserverpb::alarm_request::AlarmAction;
use ballast_proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeResponse, PutRequest,
    PutResponse, ResponseHeader, TxnResponse,
};
use ballast_proto::internal::{internal_request::Request, InternalRequest};

use super::{auth, txn, Applier};
use crate::auth::AuthInfo;
use crate::error::{Error, EtcdError};
use crate::metrics::mvcc::OpCounts;
use crate::mvcc::backend::LEASES;
use crate::mvcc::WriteBatch;

/// The outcome of an applied request, for the handler that proposed it.
#[derive(Debug)]
pub enum Applied {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    Alarm(AlarmResponse),
    Auth(crate::auth::AuthAnswer),
    /// A membership change: the members after it.
    Members(Vec<crate::cluster::Member>),
    /// Requests with nothing to report beyond success.
    Done,
}

pub(super) fn header(rev: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision: rev,
        ..Default::default()
    })
}

/// Applies one request. A request error (etcd's, for the client) comes back
/// as `Error::Etcd`; any other error means the backend failed, and the
/// caller must stop the member rather than commit the batch.
pub(super) fn apply(
    a: &Applier,
    b: &mut WriteBatch<'_>,
    req: InternalRequest,
    index: u64,
) -> Result<Applied, Error> {
    let id = req.id;
    let who = req.auth.map(|h| AuthInfo {
        username: h.username,
        revision: h.revision,
    });
    let who = who.as_ref();
    let Some(req) = req.request else {
        return Ok(Applied::Done);
    };
    let req = match a.auth.apply(b.txn(), who, req, index) {
        Ok(answer) => return answer.map(Applied::Auth),
        Err(other) => other,
    };
    match req {
        Request::Put(p) => {
            if a.alarms.nospace() {
                return Err(EtcdError::NoSpace.into());
            }
            auth::put(a, who, &p)?;
            check_put(a, b, &p)?;
            let mut ops = OpCounts::default();
            let resp = put(b, p, &mut ops)?;
            ops.record(&a.metrics);
            Ok(Applied::Put(resp))
        }
        Request::DeleteRange(d) => {
            auth::delete_range(a, who, &d)?;
            let mut ops = OpCounts::default();
            let resp = delete_range(b, &d, &mut ops)?;
            ops.record(&a.metrics);
            Ok(Applied::DeleteRange(resp))
        }
        Request::Txn(t) => {
            auth::txn(a, who, &t)?;
            txn::apply(a, b, &t, id).map(Applied::Txn)
        }
        Request::Compaction(c) => {
            // etcd 3.6.16 refuses compaction to all but admins (3.4 allowed anyone).
            a.auth.check_admin(who)?;
            b.compact(c.revision)?;
            // etcd reads a key for the response's revision after compacting.
            OpCounts {
                ranges: 1,
                ..Default::default()
            }
            .record(&a.metrics);
            tracing::info!(revision = c.revision, "scheduled compaction");
            Ok(Applied::Compaction(CompactionResponse {
                header: header(b.revision()),
            }))
        }
        Request::LeaseGrant(g) => lease_grant(a, b, &g).map(Applied::LeaseGrant),
        Request::LeaseRevoke(r) => {
            auth::lease_keys(a, who, r.id)?;
            lease_revoke(a, b, r.id).map(Applied::LeaseRevoke)
        }
        Request::Alarm(r) => alarm(a, b, &r).map(Applied::Alarm),
        Request::MemberAttributes(m) => {
            a.members
                .set_attributes(b.txn(), m.id, &m.name, &m.client_ur_ls)?;
            Ok(Applied::Done)
        }
        Request::MemberUpdate(m) => {
            let updated = a.members.update_peer_urls(b.txn(), m.id, &m.peer_ur_ls)??;
            tracing::info!(member_id = format!("{:x}", updated.id), peer_urls = ?updated.peer_urls, "updated member");
            (a.on_member_change)(super::MemberChange::Added(&updated));
            Ok(Applied::Members(a.members.list()))
        }
        _ => Ok(Applied::Done),
    }
}

/// etcd's apply-time checks for a Put: its lease exists, and a key exists
/// when the request keeps its value or lease.
pub(super) fn check_put(a: &Applier, b: &WriteBatch<'_>, p: &PutRequest) -> Result<(), Error> {
    if p.lease != 0 && !a.lessor.exists(p.lease) {
        return Err(EtcdError::LeaseNotFound.into());
    }
    if (p.ignore_value || p.ignore_lease) && b.get(&p.key)?.is_none() {
        return Err(EtcdError::KeyNotFound.into());
    }
    Ok(())
}

pub(super) fn put(
    b: &mut WriteBatch<'_>,
    p: PutRequest,
    ops: &mut OpCounts,
) -> Result<PutResponse, Error> {
    // etcd reads the key first only when the request needs the old one.
    ops.ranges += u64::from(p.prev_kv || p.ignore_value || p.ignore_lease);
    ops.puts += 1;
    let prev = b.get(&p.key)?;
    let value = if p.ignore_value {
        prev.as_ref().map(|kv| kv.value.clone()).unwrap_or_default()
    } else {
        p.value
    };
    let lease = if p.ignore_lease {
        prev.as_ref().map_or(0, |kv| kv.lease)
    } else {
        p.lease
    };
    let prev_kv = if p.prev_kv { prev.clone() } else { None };
    b.put(&p.key, value, lease, prev)?;
    Ok(PutResponse {
        header: header(b.read_rev()),
        prev_kv,
    })
}

pub(super) fn delete_range(
    b: &mut WriteBatch<'_>,
    d: &DeleteRangeRequest,
    ops: &mut OpCounts,
) -> Result<DeleteRangeResponse, Error> {
    ops.ranges += u64::from(d.prev_kv);
    ops.deletes += 1;
    let prevs = b.delete_range(&d.key, &d.range_end)?;
    Ok(DeleteRangeResponse {
        header: header(b.read_rev()),
        deleted: prevs.len() as i64,
        prev_kvs: if d.prev_kv { prevs } else { Vec::new() },
    })
}

fn lease_grant(
    a: &Applier,
    b: &mut WriteBatch<'_>,
    g: &LeaseGrantRequest,
) -> Result<LeaseGrantResponse, Error> {
    if a.alarms.nospace() {
        return Err(EtcdError::NoSpace.into());
    }
    // The table first: a backend failure must not leave a lease granted in memory.
    let mut t = b.txn().open_table(LEASES)?;
    let ttl = a.lessor.grant(g.id, g.ttl)?;
    t.insert(g.id, ttl)?;
    Ok(LeaseGrantResponse {
        header: header(b.revision()),
        id: g.id,
        ttl,
        error: String::new(),
    })
}

fn lease_revoke(
    a: &Applier,
    b: &mut WriteBatch<'_>,
    id: i64,
) -> Result<LeaseRevokeResponse, Error> {
    let keys = a.lessor.keys(id)?;
    // All of the lease's keys go in one revision.
    let ops = OpCounts {
        deletes: keys.len() as u64,
        ..Default::default()
    };
    for k in keys {
        b.delete_range(&k, &[])?;
    }
    ops.record(&a.metrics);
    b.txn().open_table(LEASES)?.remove(id)?;
    a.lessor.remove(id);
    Ok(LeaseRevokeResponse {
        header: header(b.read_rev()),
    })
}

fn alarm(a: &Applier, b: &mut WriteBatch<'_>, r: &AlarmRequest) -> Result<AlarmResponse, Error> {
    let action = AlarmAction::try_from(r.action).unwrap_or(AlarmAction::Get);
    let changed = match action {
        AlarmAction::Get => Vec::new(),
        AlarmAction::Activate => a.alarms.activate(b.txn(), r.member_id, r.alarm)?,
        AlarmAction::Deactivate => a.alarms.deactivate(b.txn(), r.member_id, r.alarm)?,
    };
    let alarms = if action == AlarmAction::Get {
        a.alarms.list()
    } else {
        changed
            .into_iter()
            .map(|(member_id, alarm)| AlarmMember { member_id, alarm })
            .collect()
    };
    if action == AlarmAction::Activate && !alarms.is_empty() {
        tracing::warn!(
            member = format!("{:x}", r.member_id),
            alarm = r.alarm,
            "alarm raised"
        );
    }
    Ok(AlarmResponse {
        header: header(b.revision()),
        alarms,
    })
}
