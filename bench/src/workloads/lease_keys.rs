//! `lease-keys`: many short leases, each with one key attached, as
//! kube-apiserver stores events (a lease per TTL window; here one per event,
//! the heavier case). A request is a LeaseGrant followed by a Put carrying
//! the lease. After the measured phase the workload waits for the leases to
//! expire and checks that the server deleted every key: a key left behind is
//! an expiry the server lost. The expiry check is not timed into the latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_proto::etcdserverpb::kv_client::KvClient;
use ballast_proto::etcdserverpb::lease_client::LeaseClient;
use ballast_proto::etcdserverpb::{LeaseGrantRequest, PutRequest, RangeRequest};
use serde_json::json;
use tonic::transport::Channel;

use super::keys::random_bytes;
use super::seed::{prefix_end, prefixed_key};
use super::{drive_unary, Ctx};
use crate::cli::LeaseKeysOpts;
use crate::error::{status_text, BenchError};
use crate::report::Report;

/// How often the expiry check counts the remaining keys.
const POLL: Duration = Duration::from_millis(200);

pub(crate) fn validate(o: &LeaseKeysOpts) -> Result<(), BenchError> {
    if o.ttl <= 0 {
        return Err(BenchError::Config("--ttl must be at least 1".into()));
    }
    if o.prefix.is_empty() {
        return Err(BenchError::Config("--prefix must not be empty".into()));
    }
    Ok(())
}

pub(crate) async fn run(ctx: &Ctx<'_>, o: &LeaseKeysOpts) -> Result<Report, BenchError> {
    let value: Arc<[u8]> = random_bytes(o.val_size).into();
    let (ttl, prefix) = (o.ttl, Arc::<str>::from(o.prefix.as_str()));
    let (collector, elapsed) = drive_unary(
        ctx,
        o.rate,
        |ch: Channel| (KvClient::new(ch.clone()), LeaseClient::new(ch)),
        move |(mut kv, mut lease), n| {
            let key = prefixed_key(&prefix, n);
            let value = value.to_vec();
            async move {
                let r = grant_and_put(&mut kv, &mut lease, ttl, key, value).await;
                ((kv, lease), r)
            }
        },
    )
    .await;
    let written = collector.lock().count();
    let mut kv = KvClient::new(ctx.pool.channel(0));
    let expiry = if o.expiry_wait.is_zero() {
        json!(null)
    } else {
        let limit = Duration::from_secs(ttl as u64) + o.expiry_wait;
        expire(&mut kv, o.prefix.as_bytes(), limit).await
    };
    let params = json!({
        "ttl": o.ttl,
        "prefix": o.prefix,
        "val_size": o.val_size,
        "rate": o.rate,
        "expiry_wait_secs": o.expiry_wait.as_secs_f64(),
    });
    let mut report = ctx.report("lease-keys", params, &collector, elapsed);
    report.details = Some(json!({ "leases_with_keys": written, "expiry": expiry }));
    Ok(report)
}

async fn grant_and_put(
    kv: &mut KvClient<Channel>,
    lease: &mut LeaseClient<Channel>,
    ttl: i64,
    key: Vec<u8>,
    value: Vec<u8>,
) -> Result<(), String> {
    let granted = lease
        .lease_grant(LeaseGrantRequest { ttl, id: 0 })
        .await
        .map_err(|s| format!("lease grant: {}", status_text(&s)))?
        .into_inner();
    if !granted.error.is_empty() {
        return Err(format!("lease grant: {}", granted.error));
    }
    kv.put(PutRequest {
        key,
        value,
        lease: granted.id,
        ..Default::default()
    })
    .await
    .map(drop)
    .map_err(|s| format!("put: {}", status_text(&s)))
}

/// Counts the keys under `prefix` until none is left or `limit` passed.
async fn expire(kv: &mut KvClient<Channel>, prefix: &[u8], limit: Duration) -> serde_json::Value {
    let started = Instant::now();
    let mut left: Option<i64> = None;
    loop {
        let req = RangeRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            count_only: true,
            ..Default::default()
        };
        match kv.range(req).await {
            Ok(r) => left = Some(r.into_inner().count),
            Err(s) => {
                return json!({ "error": status_text(&s), "keys_left": left });
            }
        }
        if left == Some(0) || started.elapsed() >= limit {
            return json!({
                "keys_left": left,
                "all_expired": left == Some(0),
                "secs_after_run": started.elapsed().as_secs_f64(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
