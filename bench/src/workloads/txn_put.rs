//! `txn-put`: transactions of `--txn-ops` unconditional puts, as etcd 3.4/3.5's
//! benchmark sends them (no compares). Transaction n writes key numbers
//! n*ops .. n*ops+ops-1 modulo the key space, so the keys of one transaction
//! are distinct (etcd rejects duplicate keys in a txn).

use std::sync::Arc;

use ballast_proto::etcdserverpb::kv_client::KvClient;
use ballast_proto::etcdserverpb::request_op::Request;
use ballast_proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest};
use serde_json::json;

use super::keys::{check_key_space, numbered_key, random_bytes};
use super::{drive_unary, Ctx};
use crate::cli::TxnPutOpts;
use crate::error::{status_text, BenchError};
use crate::report::Report;

pub(crate) fn validate(o: &TxnPutOpts) -> Result<(), BenchError> {
    check_key_space(o.key_size, o.key_space_size)?;
    if o.txn_ops == 0 {
        return Err(BenchError::Config("--txn-ops must be at least 1".into()));
    }
    if o.txn_ops as u64 > o.key_space_size {
        return Err(BenchError::Config(format!(
            "--txn-ops {} is larger than --key-space-size {}: a txn may not put one key twice",
            o.txn_ops, o.key_space_size
        )));
    }
    Ok(())
}

pub(crate) async fn run(ctx: &Ctx<'_>, o: &TxnPutOpts) -> Result<Report, BenchError> {
    let value: Arc<[u8]> = random_bytes(o.val_size).into();
    let (ops, space, size) = (o.txn_ops as u64, o.key_space_size, o.key_size);
    let (collector, elapsed) = drive_unary(
        ctx,
        o.rate,
        |ch| KvClient::new(ch).max_decoding_message_size(usize::MAX),
        move |mut kv, n| {
            let success = (0..ops)
                .map(|j| RequestOp {
                    request: Some(Request::RequestPut(PutRequest {
                        key: numbered_key(key_number(n, ops, j, space), size),
                        value: value.to_vec(),
                        ..Default::default()
                    })),
                })
                .collect();
            let req = TxnRequest {
                success,
                ..Default::default()
            };
            async move {
                let r = kv.txn(req).await;
                (kv, r.map(drop).map_err(|s| status_text(&s)))
            }
        },
    )
    .await;
    let params = json!({
        "key_size": o.key_size,
        "val_size": o.val_size,
        "txn_ops": o.txn_ops,
        "key_space_size": o.key_space_size,
        "rate": o.rate,
    });
    Ok(ctx.report("txn-put", params, &collector, elapsed))
}

/// Key number of put `j` in transaction `n`, without overflow for any inputs.
fn key_number(n: u64, ops: u64, j: u64, space: u64) -> u64 {
    ((u128::from(n) * u128::from(ops) + u128::from(j)) % u128::from(space)) as u64
}

#[cfg(test)]
mod tests {
    use super::key_number;

    #[test]
    fn txn_keys_are_distinct_and_wrap() {
        let keys: Vec<u64> = (0..3).map(|j| key_number(3, 3, j, 10)).collect();
        assert_eq!(keys, [9, 0, 1]);
        assert_eq!(
            key_number(u64::MAX, u64::MAX, 1, 7),
            ((u128::from(u64::MAX) * u128::from(u64::MAX) + 1) % 7) as u64
        );
    }
}
