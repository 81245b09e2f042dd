//! `guarded-update`: updates of existing keys guarded by their mod_revision,
//! as kube-apiserver's GuaranteedUpdate writes an object: a Txn comparing the
//! key's mod_revision with the revision the client last saw, putting the new
//! value on success and reading the key on failure. On a conflict the client
//! takes the revision from the failure branch's read and tries again. One
//! request in the report is one update, retries included.
//!
//! The revision a client last saw is shared by all clients (one slot per
//! key), standing in for kube-apiserver's watch cache, from which it takes
//! the object it updates. Keys are chosen at random, so concurrent clients
//! sometimes update the same key and conflict, as controllers do.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use ballast_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use ballast_proto::etcdserverpb::kv_client::KvClient;
use ballast_proto::etcdserverpb::request_op::Request;
use ballast_proto::etcdserverpb::response_op::Response;
use ballast_proto::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use rand::Rng;
use serde_json::json;
use tonic::transport::Channel;

use super::keys::random_bytes;
use super::seed::{prefix_end, prefixed_key, seed};
use super::{drive_unary, Ctx};
use crate::cli::GuardedUpdateOpts;
use crate::error::{status_text, BenchError};
use crate::report::Report;

pub(crate) fn validate(o: &GuardedUpdateOpts) -> Result<(), BenchError> {
    if o.key_space_size == 0 || o.max_attempts == 0 {
        return Err(BenchError::Config(
            "--key-space-size and --max-attempts must be at least 1".into(),
        ));
    }
    Ok(())
}

/// What the clients share.
struct Cache {
    /// Last mod_revision seen per key.
    revisions: Vec<AtomicI64>,
    conflicts: AtomicU64,
}

pub(crate) async fn run(ctx: &Ctx<'_>, o: &GuardedUpdateOpts) -> Result<Report, BenchError> {
    let value: Arc<[u8]> = random_bytes(o.val_size).into();
    seed(ctx, &o.prefix, o.key_space_size, &value).await?;
    let cache = Arc::new(Cache {
        revisions: initial_revisions(ctx, o).await?,
        conflicts: AtomicU64::new(0),
    });
    let (space, attempts) = (o.key_space_size, o.max_attempts);
    let prefix = Arc::<str>::from(o.prefix.as_str());
    let shared = Arc::clone(&cache);
    let (collector, elapsed) = drive_unary(ctx, o.rate, KvClient::new, move |mut kv, _| {
        let n = rand::rng().random_range(0..space);
        let key = prefixed_key(&prefix, n);
        let (cache, value) = (Arc::clone(&shared), value.to_vec());
        async move {
            let r = update(&mut kv, &cache, n as usize, key, value, attempts).await;
            (kv, r)
        }
    })
    .await;
    let params = json!({
        "key_space_size": o.key_space_size,
        "prefix": o.prefix,
        "val_size": o.val_size,
        "max_attempts": o.max_attempts,
        "rate": o.rate,
    });
    let mut report = ctx.report("guarded-update", params, &collector, elapsed);
    report.details = Some(json!({ "conflicts": cache.conflicts.load(Ordering::Relaxed) }));
    Ok(report)
}

/// The seeded keys' mod_revisions, read in one range (setup).
async fn initial_revisions(
    ctx: &Ctx<'_>,
    o: &GuardedUpdateOpts,
) -> Result<Vec<AtomicI64>, BenchError> {
    let mut kv = KvClient::new(ctx.pool.channel(0)).max_decoding_message_size(usize::MAX);
    let req = RangeRequest {
        key: prefixed_key(&o.prefix, 0),
        range_end: prefix_end(o.prefix.as_bytes()),
        keys_only: true,
        ..Default::default()
    };
    let resp = kv
        .range(req)
        .await
        .map_err(|s| BenchError::Setup(format!("reading keys: {}", status_text(&s))))?
        .into_inner();
    let revisions: Vec<AtomicI64> = (0..o.key_space_size).map(|_| AtomicI64::new(0)).collect();
    for kv in resp.kvs {
        let slot = std::str::from_utf8(&kv.key[o.prefix.len().min(kv.key.len())..])
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| revisions.get(n));
        if let Some(slot) = slot {
            slot.store(kv.mod_revision, Ordering::Relaxed);
        }
    }
    Ok(revisions)
}

/// One guaranteed update: compare-and-put, re-read on conflict, retry.
async fn update(
    kv: &mut KvClient<Channel>,
    cache: &Cache,
    n: usize,
    key: Vec<u8>,
    value: Vec<u8>,
    attempts: u32,
) -> Result<(), String> {
    for _ in 0..attempts {
        let seen = cache.revisions[n].load(Ordering::Relaxed);
        let req = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Mod as i32,
                key: key.clone(),
                target_union: Some(TargetUnion::ModRevision(seen)),
                ..Default::default()
            }],
            success: vec![RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: key.clone(),
                    value: value.clone(),
                    ..Default::default()
                })),
            }],
            failure: vec![RequestOp {
                request: Some(Request::RequestRange(RangeRequest {
                    key: key.clone(),
                    ..Default::default()
                })),
            }],
        };
        let resp = kv.txn(req).await.map_err(|s| status_text(&s))?.into_inner();
        if resp.succeeded {
            let revision = resp.header.map_or(0, |h| h.revision);
            // Only move forward: another client may have stored a newer revision.
            cache.revisions[n].fetch_max(revision, Ordering::Relaxed);
            return Ok(());
        }
        cache.conflicts.fetch_add(1, Ordering::Relaxed);
        let current = resp
            .responses
            .into_iter()
            .find_map(|r| match r.response {
                Some(Response::ResponseRange(range)) => range.kvs.into_iter().next(),
                _ => None,
            })
            .ok_or_else(|| "conflict, and the failure branch did not return the key".to_string())?;
        cache.revisions[n].fetch_max(current.mod_revision, Ordering::Relaxed);
    }
    Err(format!("no update after {attempts} conflicting attempts"))
}
