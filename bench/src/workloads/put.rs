//! `put`: one key per request, random or sequential within the key space.

use std::sync::Arc;

use ballast_proto::etcdserverpb::kv_client::KvClient;
use ballast_proto::etcdserverpb::PutRequest;
use rand::Rng;
use serde_json::json;

use super::keys::{check_key_space, numbered_key, random_bytes};
use super::{drive_unary, Ctx};
use crate::cli::PutOpts;
use crate::error::{status_text, BenchError};
use crate::report::Report;

pub(crate) fn validate(o: &PutOpts) -> Result<(), BenchError> {
    check_key_space(o.key_size, o.key_space_size)
}

pub(crate) async fn run(ctx: &Ctx<'_>, o: &PutOpts) -> Result<Report, BenchError> {
    // One value for the whole run, as etcd's benchmark does: values are opaque to the server.
    let value: Arc<[u8]> = random_bytes(o.val_size).into();
    let (space, size, sequential) = (o.key_space_size, o.key_size, o.sequential_keys);
    let (collector, elapsed) = drive_unary(
        ctx,
        o.rate,
        |ch| KvClient::new(ch).max_decoding_message_size(usize::MAX),
        move |mut kv, n| {
            let k = if sequential {
                n % space
            } else {
                rand::rng().random_range(0..space)
            };
            let req = PutRequest {
                key: numbered_key(k, size),
                value: value.to_vec(),
                ..Default::default()
            };
            async move {
                let r = kv.put(req).await;
                (kv, r.map(drop).map_err(|s| status_text(&s)))
            }
        },
    )
    .await;
    let params = json!({
        "key_size": o.key_size,
        "val_size": o.val_size,
        "key_space_size": o.key_space_size,
        "sequential_keys": o.sequential_keys,
        "rate": o.rate,
    });
    Ok(ctx.report("put", params, &collector, elapsed))
}
