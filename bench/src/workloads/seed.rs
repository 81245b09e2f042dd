//! Writing the keys a workload reads or updates before its measured phase:
//! transactions of [`PUTS_PER_TXN`] puts from a few concurrent tasks, so
//! 100 000 keys cost a thousand fsyncs rather than a hundred thousand.

use std::sync::Arc;

use ballast_proto::etcdserverpb::kv_client::KvClient;
use ballast_proto::etcdserverpb::request_op::Request;
use ballast_proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest};
use tokio::task::JoinSet;

use super::{join_all, Ctx};
use crate::error::{status_text, BenchError};

/// Below etcd's default --max-txn-ops (128).
const PUTS_PER_TXN: u64 = 100;
/// Concurrent seeding transactions.
const SEED_TASKS: u64 = 16;

/// `<prefix><n>` with n zero-padded to 10 digits, so keys sort by number
/// (as a list returns them) and read well in `etcdctl get`.
pub fn prefixed_key(prefix: &str, n: u64) -> Vec<u8> {
    format!("{prefix}{n:010}").into_bytes()
}

/// The end of the range holding every key that starts with `prefix` (etcd's
/// `GetPrefixRangeEnd`): the prefix with its last byte below 0xff incremented.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): every key from the prefix on.
    vec![0]
}

/// Writes keys `<prefix>0 .. <prefix>count-1`, each with `value`.
pub async fn seed(ctx: &Ctx<'_>, prefix: &str, count: u64, value: &[u8]) -> Result<(), BenchError> {
    let value: Arc<[u8]> = value.into();
    let batches = count.div_ceil(PUTS_PER_TXN);
    let mut tasks = JoinSet::new();
    for t in 0..SEED_TASKS.min(batches) {
        let mut kv = KvClient::new(ctx.pool.channel(t as usize));
        let (value, prefix) = (Arc::clone(&value), prefix.to_string());
        let timeout = ctx.global.request_timeout;
        tasks.spawn(async move {
            for b in (t..batches).step_by(SEED_TASKS as usize) {
                let first = b * PUTS_PER_TXN;
                let success = (first..(first + PUTS_PER_TXN).min(count))
                    .map(|n| RequestOp {
                        request: Some(Request::RequestPut(PutRequest {
                            key: prefixed_key(&prefix, n),
                            value: value.to_vec(),
                            ..Default::default()
                        })),
                    })
                    .collect();
                let req = TxnRequest {
                    success,
                    ..Default::default()
                };
                match tokio::time::timeout(timeout, kv.txn(req)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(s)) => return Err(format!("writing keys: {}", status_text(&s))),
                    Err(_) => return Err(format!("writing keys: timed out after {timeout:?}")),
                }
            }
            Ok(())
        });
    }
    for outcome in join_all(&mut tasks).await {
        outcome.map_err(BenchError::Setup)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"/registry/pods/"), b"/registry/pods0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), [0]);
    }

    #[test]
    fn keys_sort_by_number() {
        assert!(prefixed_key("p/", 9) < prefixed_key("p/", 10));
        assert_eq!(prefixed_key("p/", 7), b"p/0000000007");
    }
}
