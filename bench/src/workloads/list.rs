//! `list PREFIX`: full lists of a prefix in pages, as kube-apiserver lists a
//! resource from etcd. The first page is read at the current revision; every
//! further page asks for the keys after the last one received (its key plus a
//! zero byte) at the first page's revision, until `more` is false. One request
//! in the report is one whole list; each list must return exactly `--keys`
//! keys, or it counts as an error (a page lost or repeated).

use ballast_proto::etcdserverpb::kv_client::KvClient;
use ballast_proto::etcdserverpb::RangeRequest;
use serde_json::json;
use tonic::transport::Channel;

use super::keys::random_bytes;
use super::seed::{prefix_end, seed};
use super::{drive_unary, Ctx};
use crate::cli::ListOpts;
use crate::error::{status_text, BenchError};
use crate::report::Report;

pub(crate) fn validate(o: &ListOpts) -> Result<(), BenchError> {
    if o.page_size <= 0 {
        return Err(BenchError::Config("--page-size must be at least 1".into()));
    }
    if o.prefix.is_empty() {
        return Err(BenchError::Config("the prefix must not be empty".into()));
    }
    Ok(())
}

pub(crate) async fn run(ctx: &Ctx<'_>, o: &ListOpts) -> Result<Report, BenchError> {
    if !o.no_seed {
        seed(ctx, &o.prefix, o.keys, &random_bytes(o.val_size)).await?;
    }
    let page = Page {
        start: o.prefix.as_bytes().to_vec(),
        end: prefix_end(o.prefix.as_bytes()),
        limit: o.page_size,
        serializable: o.serializable,
    };
    let want = o.keys;
    let (collector, elapsed) = drive_unary(
        ctx,
        0,
        |ch| KvClient::new(ch).max_decoding_message_size(usize::MAX),
        move |mut kv, _| {
            let page = page.clone();
            async move {
                let r = page.list_all(&mut kv).await.and_then(|(keys, _)| {
                    if keys == want {
                        Ok(())
                    } else {
                        Err(format!("list returned {keys} keys, expected {want}"))
                    }
                });
                (kv, r)
            }
        },
    )
    .await;
    let params = json!({
        "prefix": o.prefix,
        "keys": o.keys,
        "val_size": o.val_size,
        "page_size": o.page_size,
        "serializable": o.serializable,
    });
    let mut report = ctx.report("list", params, &collector, elapsed);
    report.details = Some(json!({
        "pages_per_list": o.keys.div_ceil(o.page_size as u64).max(1),
        "keys_per_list": o.keys,
    }));
    Ok(report)
}

/// What every page request of one list shares.
#[derive(Clone)]
struct Page {
    start: Vec<u8>,
    end: Vec<u8>,
    limit: i64,
    serializable: bool,
}

impl Page {
    /// Reads the whole prefix page by page; returns (keys, pages).
    async fn list_all(&self, kv: &mut KvClient<Channel>) -> Result<(u64, u64), String> {
        let (mut key, mut revision, mut keys, mut pages) = (self.start.clone(), 0, 0u64, 0u64);
        loop {
            let req = RangeRequest {
                key: key.clone(),
                range_end: self.end.clone(),
                limit: self.limit,
                revision,
                serializable: self.serializable,
                ..Default::default()
            };
            let resp = kv
                .range(req)
                .await
                .map_err(|s| status_text(&s))?
                .into_inner();
            pages += 1;
            if revision == 0 {
                revision = resp.header.as_ref().map_or(0, |h| h.revision);
            }
            keys += resp.kvs.len() as u64;
            let Some(last) = resp.kvs.last().filter(|_| resp.more) else {
                return Ok((keys, pages));
            };
            key = last.key.clone();
            key.push(0);
        }
    }
}
