//! The apply loop's failure path: a backend error while applying must not
//! commit the batch or answer the client as if it were a request error.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use ballast_proto::etcdserverpb::{LeaseGrantRequest, PutRequest};
use ballast_proto::internal::{internal_request::Request, InternalRequest};
use prost::Message;
use raft::prelude::Entry;

use super::*;
use crate::mvcc::backend::{self, Backend, LEASES, META};
use redb::ReadableTableMetadata;

fn entry(index: u64, id: u64, request: Request) -> Entry {
    Entry {
        index,
        term: 1,
        data: InternalRequest {
            id,
            auth: None,
            request: Some(request),
        }
        .encode_to_vec(),
        ..Default::default()
    }
}

fn applier(dir: &std::path::Path) -> (Applier, Arc<Backend>) {
    let backend = Arc::new(Backend::open(&dir.join("db")).expect("backend"));
    let (store, _) = KvStore::open(backend.clone()).expect("store");
    let store = Arc::new(store);
    let (applied, _) = tokio::sync::watch::channel(0);
    let applier = Applier {
        store: store.clone(),
        lessor: Arc::new(Lessor::new(std::time::Duration::from_secs(1))),
        hub: WatchHub::new(store),
        alarms: Arc::new(Alarms::load(&backend).expect("alarms")),
        auth: Arc::new(
            crate::auth::AuthStore::load(
                &backend,
                crate::auth::Tokens::from_option("simple", std::time::Duration::from_secs(300))
                    .expect("tokens"),
                4,
            )
            .expect("auth"),
        ),
        members: Arc::new(Members::load(&backend).expect("members")),
        wait: Arc::new(Wait::default()),
        metrics: Arc::new(Metrics::default()),
        member_id: 1,
        applied,
        durable_applied: Arc::new(AtomicU64::new(0)),
        start_index: 0,
        on_quota_exceeded: Box::new(|| {}),
        quota_bytes: 0,
        on_member_change: Box::new(|_| {}),
    };
    (applier, backend)
}

fn applied_index(backend: &Backend) -> u64 {
    meta_u64(backend, backend::meta::APPLIED_INDEX)
}

fn meta_u64(backend: &Backend, key: &str) -> u64 {
    let txn = backend.read().expect("read");
    backend::get_u64(&txn.open_table(META).expect("meta"), key).expect("meta value")
}

/// How many backend commits the applier made (etcd's backend commit histogram count).
fn backend_commits(a: &Applier) -> u64 {
    let text = a.metrics.encode();
    let line = text
        .lines()
        .find(|l| l.starts_with("etcd_disk_backend_commit_duration_seconds_count"))
        .expect("the backend commit histogram is exported");
    line.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count")
}

fn put(index: u64, term: u64, id: u64) -> Entry {
    let mut e = entry(
        index,
        id,
        Request::Put(PutRequest {
            key: format!("k{index}").into_bytes(),
            value: b"v".to_vec(),
            ..Default::default()
        }),
    );
    e.term = term;
    e
}

#[test]
fn requests_are_answered_without_waiting_for_a_due_durable_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut a, backend) = applier(dir.path());
    let long_ago = Instant::now()
        .checked_sub(DURABLE_EVERY * 2)
        .expect("a monotonic clock older than a second");
    let mut st = LoopState {
        applied_index: 0,
        applied_term: 0,
        pending: vec![put(1, 3, 21), put(2, 3, 22)],
        confs: HashMap::new(),
        last_durable: long_ago,
    };
    let (mut first, mut second) = (a.wait.register(21), a.wait.register(22));
    a.commit_pending(&mut st).expect("commit");
    assert!(matches!(first.try_recv(), Ok(Ok(Applied::Put(_)))));
    assert!(matches!(second.try_recv(), Ok(Ok(Applied::Put(_)))));
    // The answers came from their own (non-durable) commit, and the durable one
    // followed it: two backend commits, everything durable.
    assert_eq!(backend_commits(&a), 2);
    assert_eq!(a.durable_applied.load(Ordering::Acquire), 2);
    assert_eq!(applied_index(&backend), 2);
    // The empty durable commit keeps the applied entry's term (snapshots export it).
    assert_eq!(meta_u64(&backend, backend::meta::APPLIED_TERM), 3);
    assert!(st.last_durable > long_ago);
}

#[test]
fn a_durable_commit_waits_for_its_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut a, backend) = applier(dir.path());
    let mut st = LoopState {
        applied_index: 0,
        applied_term: 0,
        pending: vec![put(1, 2, 31)],
        confs: HashMap::new(),
        last_durable: Instant::now(),
    };
    let mut answer = a.wait.register(31);
    a.commit_pending(&mut st).expect("commit");
    assert!(matches!(answer.try_recv(), Ok(Ok(Applied::Put(_)))));
    assert_eq!(backend_commits(&a), 1);
    assert_eq!(a.durable_applied.load(Ordering::Acquire), 0);
    assert_eq!(applied_index(&backend), 1, "visible, not yet durable");
    // Nothing new since the last durable commit: none is made.
    st.last_durable = Instant::now()
        .checked_sub(DURABLE_EVERY * 2)
        .expect("a monotonic clock older than a second");
    a.commit_pending(&mut st).expect("durable");
    assert_eq!(a.durable_applied.load(Ordering::Acquire), 1);
    a.commit_pending(&mut st).expect("nothing to do");
    assert_eq!(backend_commits(&a), 2);
}

#[test]
fn a_backend_failure_during_apply_stops_instead_of_committing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut a, backend) = applier(dir.path());
    let mut st = LoopState {
        applied_index: 0,
        applied_term: 0,
        pending: vec![entry(
            1,
            11,
            Request::Put(PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            }),
        )],
        confs: HashMap::new(),
        last_durable: Instant::now(),
    };
    let put = a.wait.register(11);
    a.apply_batch(&mut st, true).expect("a put applies");
    assert!(matches!(put.blocking_recv(), Ok(Ok(Applied::Put(_)))));
    assert_eq!(applied_index(&backend), 1);

    // The lease table is damaged (a table of another type under its name):
    // every access to it now fails inside redb.
    {
        let txn = backend.write(true).expect("write");
        txn.delete_table(LEASES).expect("delete");
        let wrong: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("lease");
        txn.open_table(wrong)
            .expect("create")
            .insert("x", "y")
            .expect("insert");
        txn.commit().expect("commit");
    }
    let mut grant = a.wait.register(12);
    st.pending.push(entry(
        2,
        12,
        Request::LeaseGrant(LeaseGrantRequest { ttl: 60, id: 5 }),
    ));
    st.pending.push(entry(
        3,
        13,
        Request::Put(PutRequest {
            key: b"after".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        }),
    ));
    let err = a
        .apply_batch(&mut st, true)
        .expect_err("a storage error is fatal");
    assert!(
        !matches!(err, crate::error::Error::Etcd(_)),
        "not a request error: {err}"
    );
    // Nothing of the failed batch is committed, the client is not answered
    // (the member stops), and no lease exists in memory either.
    assert_eq!(applied_index(&backend), 1);
    assert!(
        grant.try_recv().is_err(),
        "no answer for the failed request"
    );
    assert!(!a.lessor.exists(5));
    let txn = backend.read().expect("read");
    let kv = txn.open_table(backend::KV).expect("kv");
    assert_eq!(kv.len().expect("len"), 1, "the later put was not applied");
}
