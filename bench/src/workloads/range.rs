//! `range KEY [END]`: the same read over and over, linearizable or serializable.

use ballast_proto::etcdserverpb::kv_client::KvClient;
use ballast_proto::etcdserverpb::RangeRequest;
use serde_json::json;

use super::{drive_unary, Ctx};
use crate::cli::{Consistency, RangeOpts};
use crate::error::{status_text, BenchError};
use crate::report::Report;

pub(crate) fn validate(o: &RangeOpts) -> Result<(), BenchError> {
    if o.limit < 0 {
        return Err(BenchError::Config("--limit must not be negative".into()));
    }
    Ok(())
}

pub(crate) async fn run(ctx: &Ctx<'_>, o: &RangeOpts) -> Result<Report, BenchError> {
    let request = RangeRequest {
        key: o.key.as_bytes().to_vec(),
        range_end: o.end.as_deref().unwrap_or("").as_bytes().to_vec(),
        limit: o.limit,
        serializable: o.consistency == Consistency::Serializable,
        ..Default::default()
    };
    let (collector, elapsed) = drive_unary(
        ctx,
        o.rate,
        |ch| KvClient::new(ch).max_decoding_message_size(usize::MAX),
        move |mut kv, _| {
            let req = request.clone();
            async move {
                let r = kv.range(req).await;
                (kv, r.map(drop).map_err(|s| status_text(&s)))
            }
        },
    )
    .await;
    let params = json!({
        "key": o.key,
        "end": o.end,
        "consistency": match o.consistency {
            Consistency::Linearizable => "l",
            Consistency::Serializable => "s",
        },
        "limit": o.limit,
        "rate": o.rate,
    });
    Ok(ctx.report("range", params, &collector, elapsed))
}
