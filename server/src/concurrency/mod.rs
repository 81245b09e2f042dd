//! Distributed locks and leader elections, served by the member itself for
//! the `v3lockpb.Lock` and `v3electionpb.Election` gRPC services.
//!
//! etcd serves these through an in-process client and its `concurrency`
//! package, so everything they do is ordinary KV, Txn, Lease and Watch
//! traffic: a contender writes `<name>/<lease ID in hex>` bound to its lease,
//! and the key with the lowest create revision under `<name>/` holds the lock
//! (or leads the election). A contender waits until every key created before
//! its own is deleted, by unlocking, resigning, or its lease expiring. Doing
//! the same here keeps the keys, revisions and headers a client sees exactly
//! etcd's, and lets `etcdctl lock`/`elect` (which use the client-side package)
//! and gRPC users contend for the same names.
//!
//! [`Client`] is the only place that calls the server's typed request
//! methods; [`mutex`] and [`election`] are the two recipes on top of it.

pub mod election;
pub mod mutex;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ballast_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use ballast_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use ballast_proto::etcdserverpb::request_op::Request as Op;
use ballast_proto::etcdserverpb::response_op::Response as OpResponse;
use ballast_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest, PutRequest, RangeRequest,
    RangeResponse, RequestOp, ResponseHeader, TxnRequest, TxnResponse,
};
use ballast_proto::mvccpb::event::EventType;
use ballast_proto::mvccpb::{Event, KeyValue};
use tokio::sync::mpsc;
use tonic::Status;

use crate::api::validate;
use crate::auth::AuthInfo;
use crate::error::EtcdError;
use crate::server::EtcdServer;
use crate::watch::{Delivery, StreamId, WatchHub, WatchSpec};

/// TTL of the lease granted for a request that names none (lease 0), as
/// etcd's sessions default to.
const SESSION_TTL: i64 = 60;

/// Batches a waiting watcher may have queued before the hub lets it catch
/// up from history instead; a waiter reads them as fast as they come.
const WATCH_BUFFER: usize = 16;

/// Watch stream IDs for the watchers of locks and elections. The Watch
/// service numbers its streams upwards from 1, so starting at the top half
/// of the range keeps the two apart in the hub.
static NEXT_STREAM: AtomicU64 = AtomicU64::new(1 << 63);

/// The member's KV, Lease and Watch, used as etcd's in-process client uses
/// them: every request is checked as its gRPC handler checks it, then goes
/// to the server's typed method, so a lock or an election behaves as the same
/// calls made by a remote client would, with the caller's permissions.
#[derive(Clone)]
pub struct Client {
    s: Arc<EtcdServer>,
    /// The caller of the lock or election request: every request made for
    /// it is checked with its permissions.
    who: AuthInfo,
}

impl Client {
    pub fn new(s: Arc<EtcdServer>, who: AuthInfo) -> Client {
        Client { s, who }
    }

    async fn range(&self, r: RangeRequest) -> Result<RangeResponse, Status> {
        validate::range(&r).map_err(plain)?;
        self.s.range(&self.who, r).await.map_err(plain)
    }

    async fn txn(&self, r: TxnRequest) -> Result<TxnResponse, Status> {
        validate::txn(&r, self.s.cfg.max_txn_ops as usize).map_err(plain)?;
        self.s.txn(&self.who, r).await.map_err(plain)
    }

    pub async fn delete(&self, key: Vec<u8>) -> Result<DeleteRangeResponse, Status> {
        let r = DeleteRangeRequest {
            key,
            ..Default::default()
        };
        validate::delete_range(&r).map_err(plain)?;
        self.s.delete_range(&self.who, r).await.map_err(plain)
    }

    /// The lease a contender's key is bound to: the one it named, or, for 0, a
    /// fresh lease of [`SESSION_TTL`] that nobody keeps alive (what etcd's
    /// session does for a request without a lease).
    async fn session_lease(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let r = LeaseGrantRequest {
            ttl: SESSION_TTL,
            id: 0,
        };
        Ok(self.s.lease_grant(&self.who, r).await.map_err(plain)?.id)
    }

    /// Watches `key` (a prefix if `range_end` is set) from `start_revision` on.
    fn watch(
        &self,
        key: &[u8],
        range_end: Vec<u8>,
        start_revision: i64,
    ) -> Result<Watcher, Status> {
        let read = crate::auth::Access::Read;
        self.s
            .auth
            .check(Some(&self.who), read, key, &range_end)
            .map_err(plain)?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let stream = NEXT_STREAM.fetch_add(1, Ordering::Relaxed);
        let spec = WatchSpec {
            key: key.to_vec(),
            range_end,
            start_revision,
            ..Default::default()
        };
        self.s
            .hub
            .watch(stream, 0, spec, tx)
            .map_err(|_| plain(EtcdError::Compacted))?;
        Ok(Watcher {
            hub: self.s.hub.clone(),
            stream,
            rx,
        })
    }

    /// Waits until every key under `prefix` created at or before
    /// `max_create_rev` is gone, newest first: once the newest is deleted,
    /// the next newest is looked up again, since any of them may have gone
    /// meanwhile.
    async fn wait_deletes(&self, prefix: &[u8], max_create_rev: i64) -> Result<(), Status> {
        loop {
            let mut r = first_by_create(prefix, SortOrder::Descend);
            r.max_create_revision = max_create_rev;
            let resp = self.range(r).await?;
            let Some(newest) = resp.kvs.first() else {
                return Ok(());
            };
            self.wait_delete(&newest.key, revision(&resp.header))
                .await?;
        }
    }

    /// Waits for `key` to be deleted at or after revision `from`.
    async fn wait_delete(&self, key: &[u8], from: i64) -> Result<(), Status> {
        let mut w = self.watch(key, Vec::new(), from)?;
        loop {
            let (_, events) = w.next().await?;
            if events.iter().any(is_delete) {
                return Ok(());
            }
        }
    }
}

/// An error of a request a lock or an election made, as their services
/// return it: etcd's in-process client hands them the error's text, which
/// reaches their callers with gRPC code Unknown.
fn plain(e: impl Into<Status>) -> Status {
    Status::unknown(e.into().message())
}

/// A watcher registered in the hub for one wait; canceled when dropped, also
/// when the RPC that waits is dropped because its client went away.
struct Watcher {
    hub: Arc<WatchHub>,
    stream: StreamId,
    rx: mpsc::Receiver<Delivery>,
}

impl Watcher {
    /// The next batch of events and its revision.
    async fn next(&mut self) -> Result<(i64, Vec<Event>), Status> {
        loop {
            return match self.rx.recv().await {
                Some(Delivery::Events {
                    revision, events, ..
                }) => Ok((revision, events)),
                Some(Delivery::Compacted { .. }) => Err(plain(EtcdError::Compacted)),
                // Says nothing about the key awaited.
                Some(Delivery::Progress { .. }) => continue,
                // The hub only drops a watcher that was canceled: not while waiting.
                None => Err(Status::unknown("lost watcher waiting for delete")),
            };
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.hub.cancel(self.stream, 0);
    }
}

/// The key of a contender under `prefix` (which ends in `/`): the lease ID in
/// lowercase hex, signed as Go's `%x` prints an int64.
fn contender_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    let mut key = prefix.to_vec();
    key.extend_from_slice(hex.as_bytes());
    key
}

/// `name` followed by `/`: where an election's or a lock's keys live.
fn prefix_of(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

/// The end of the range of keys starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff: every key from the prefix on.
    vec![0]
}

/// The single key under `prefix` with the lowest (ascending) or highest
/// (descending) create revision.
fn first_by_create(prefix: &[u8], order: SortOrder) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: order as i32,
        sort_target: SortTarget::Create as i32,
        ..Default::default()
    }
}

/// `create_revision(key) == rev`.
fn created_at(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

fn put_op(key: &[u8], value: Vec<u8>, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.to_vec(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

fn get_op(r: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(r)),
    }
}

fn get_key_op(key: &[u8]) -> RequestOp {
    get_op(RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    })
}

fn delete_op(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
            key: key.to_vec(),
            ..Default::default()
        })),
    }
}

/// The keys a range inside a txn response found (none if the op was no range).
fn range_kvs(resp: &TxnResponse, index: usize) -> &[KeyValue] {
    match resp.responses.get(index).and_then(|r| r.response.as_ref()) {
        Some(OpResponse::ResponseRange(r)) => &r.kvs,
        _ => &[],
    }
}

fn revision(h: &Option<ResponseHeader>) -> i64 {
    h.as_ref().map_or(0, |h| h.revision)
}

fn is_delete(e: &Event) -> bool {
    e.r#type == EventType::Delete as i32
}

/// A key the txn's failure branch read must exist: its compare said so.
fn existing(resp: &TxnResponse, index: usize) -> Result<&KeyValue, Status> {
    range_kvs(resp, index)
        .first()
        .ok_or_else(|| Status::internal("txn compare and range disagree"))
}

/// Runs `cleanup` in the background if dropped armed: a waiting RPC is
/// dropped, not returned from, when its client cancels or disconnects, and
/// what it left in the store must still go, as etcd cleans up on a canceled
/// context.
struct CleanupGuard {
    cleanup: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

impl CleanupGuard {
    fn new(cleanup: impl std::future::Future<Output = ()> + Send + 'static) -> Self {
        CleanupGuard {
            cleanup: Some(Box::pin(cleanup)),
        }
    }

    fn disarm(mut self) {
        self.cleanup = None;
    }
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        if let Some(cleanup) = self.cleanup.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(cleanup);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contender_keys_print_the_lease_as_go_does() {
        assert_eq!(
            contender_key(b"l/", 0x694d_a23d_8d9c_770f),
            b"l/694da23d8d9c770f"
        );
        assert_eq!(contender_key(b"l/", 10), b"l/a");
        assert_eq!(contender_key(b"l/", -1), b"l/-1");
        assert_eq!(contender_key(b"l/", i64::MIN), b"l/-8000000000000000");
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
