//! A watcher whose client stops reading must neither hold up writers nor
//! lose events: once it reads again it gets every change, in order, once.

mod common;

use std::time::Duration;

use ballast_proto::etcdserverpb::watch_request::RequestUnion;
use ballast_proto::etcdserverpb::{kv_client::KvClient, watch_client::WatchClient};
use ballast_proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest};
use common::TestServer;
use tokio_stream::wrappers::ReceiverStream;

const WRITERS: usize = 8;
const PUTS_PER_WRITER: usize = 400;
/// Large enough that the writes overflow every buffer between the server
/// and the stalled client (HTTP/2 windows, the stream's queue).
const VALUE_BYTES: usize = 1024;
/// Liveness bound for one put, not a performance threshold.
const PUT_DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_watcher_does_not_block_writers_or_lose_events() {
    let s = TestServer::start();
    let channel = tonic::transport::Endpoint::from_shared(s.client_url())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");

    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let create = WatchCreateRequest {
        key: b"w/".to_vec(),
        range_end: b"w0".to_vec(),
        ..Default::default()
    };
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(create)),
    })
    .await
    .expect("send create");
    let mut events = WatchClient::new(channel.clone())
        .watch(ReceiverStream::new(rx))
        .await
        .expect("watch")
        .into_inner();
    let created = events
        .message()
        .await
        .expect("created response")
        .expect("stream open");
    assert!(
        created.created,
        "first response creates the watcher: {created:?}"
    );

    // Write while nobody reads the watch stream.
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut kv = KvClient::new(channel.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..PUTS_PER_WRITER {
                let put = PutRequest {
                    key: format!("w/{w}/{i:04}").into_bytes(),
                    value: vec![b'x'; VALUE_BYTES],
                    ..Default::default()
                };
                tokio::time::timeout(PUT_DEADLINE, kv.put(put))
                    .await
                    .unwrap_or_else(|_| panic!("put w/{w}/{i} stuck behind a stalled watcher"))
                    .expect("put");
            }
        }));
    }
    for w in writers {
        w.await.expect("writer task");
    }

    // Now read: every put arrives exactly once, in revision order.
    let total = WRITERS * PUTS_PER_WRITER;
    let mut seen = Vec::with_capacity(total);
    while seen.len() < total {
        let resp = tokio::time::timeout(Duration::from_secs(20), events.message())
            .await
            .expect("events keep coming")
            .expect("stream ok")
            .expect("stream open");
        assert!(!resp.canceled, "watcher canceled: {resp:?}");
        for e in resp.events {
            let kv = e.kv.expect("event kv");
            seen.push((kv.mod_revision, kv.key));
        }
    }
    assert_eq!(seen.len(), total, "no duplicates beyond the writes");
    assert!(
        seen.windows(2).all(|p| p[0].0 < p[1].0),
        "events strictly in revision order"
    );
    let mut keys: Vec<_> = seen.into_iter().map(|(_, k)| k).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), total, "every key once");
}
