//! The Watch service: one task per stream multiplexes its watchers.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ballast_proto::etcdserverpb::watch_create_request::FilterType;
use ballast_proto::etcdserverpb::watch_request::RequestUnion;
use ballast_proto::etcdserverpb::watch_server::Watch;
use ballast_proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use ballast_proto::mvccpb::Event;
use futures::Stream;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::server::EtcdServer;
use crate::watch::{Delivery, StreamId, WatchSpec};

pub struct WatchService(pub Arc<EtcdServer>);

/// Room for event batches per stream before its watchers fall back to
/// catching up from history.
const STREAM_BUFFER: usize = 1024;

static NEXT_STREAM: AtomicU64 = AtomicU64::new(1);

type Out = mpsc::Sender<Result<WatchResponse, Status>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

    #[tracing::instrument(name = "etcdserverpb.Watch/Watch", level = "debug", skip_all)]
    async fn watch(
        &self,
        req: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        // Credentials are checked at each watch's creation, as etcd does: a
        // token may expire while the stream lives.
        let credentials = Request::from_parts(req.metadata().clone(), req.extensions().clone(), ());
        let inbound = req.into_inner();
        let (out_tx, out_rx) = mpsc::channel(STREAM_BUFFER);
        let stream = StreamTask {
            s: self.0.clone(),
            id: NEXT_STREAM.fetch_add(1, Ordering::Relaxed),
            out: out_tx,
            credentials,
            next_watch_id: 0,
            fragment: HashMap::new(),
        };
        // The stream lives on in its task: in this request's span.
        tokio::spawn(stream.run(inbound).in_current_span());
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }
}

struct StreamTask {
    s: Arc<EtcdServer>,
    id: StreamId,
    out: Out,
    credentials: Request<()>,
    next_watch_id: i64,
    /// Watchers that accept fragmented responses.
    fragment: HashMap<i64, bool>,
}

impl StreamTask {
    async fn run(mut self, mut inbound: Streaming<WatchRequest>) {
        let (ev_tx, mut ev_rx) = mpsc::channel::<Delivery>(STREAM_BUFFER);
        let mut progress = tokio::time::interval(self.s.cfg.watch_progress_notify_interval);
        progress.tick().await;
        loop {
            tokio::select! {
                msg = inbound.message() => match msg {
                    Ok(Some(req)) => {
                        if self.handle(req, &ev_tx).await.is_err() {
                            break;
                        }
                    }
                    _ => break,
                },
                Some(d) = ev_rx.recv() => {
                    if self.deliver(d).await.is_err() {
                        break;
                    }
                }
                _ = progress.tick() => self.s.hub.notify_progress(self.id),
                _ = self.out.closed() => break,
            }
        }
        self.s.hub.cancel_stream(self.id);
    }

    async fn send(&self, resp: WatchResponse) -> Result<(), ()> {
        self.out.send(Ok(resp)).await.map_err(|_| ())
    }

    async fn handle(
        &mut self,
        req: WatchRequest,
        ev_tx: &mpsc::Sender<Delivery>,
    ) -> Result<(), ()> {
        match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => self.create(c, ev_tx).await,
            Some(RequestUnion::CancelRequest(c)) => {
                if self.s.hub.cancel(self.id, c.watch_id) {
                    self.fragment.remove(&c.watch_id);
                    let rev = self.s.store.current_revision();
                    let resp = WatchResponse {
                        header: self.s.header(rev),
                        watch_id: c.watch_id,
                        canceled: true,
                        ..Default::default()
                    };
                    self.send(resp).await?;
                }
                Ok(())
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                // Answered through the events' channel, behind what it promises.
                self.s.hub.request_progress(self.id, ev_tx.clone());
                Ok(())
            }
            None => Ok(()),
        }
    }

    async fn create(
        &mut self,
        c: WatchCreateRequest,
        ev_tx: &mpsc::Sender<Delivery>,
    ) -> Result<(), ()> {
        // etcd refuses a range that holds no key (an empty key is "\0", a range
        // end of "\0" means every key from the key on), before taking an ID.
        let key: &[u8] = if c.key.is_empty() { &[0] } else { &c.key };
        if !c.range_end.is_empty() && c.range_end != [0] && key >= c.range_end.as_slice() {
            return self.refuse_create("mvcc: watcher range is empty").await;
        }
        if let Err(refused) = self.permitted(&c).await {
            return self.refuse_create(refused.message()).await;
        }
        let watch_id = if c.watch_id == 0 {
            while self.s.hub.exists(self.id, self.next_watch_id) {
                self.next_watch_id += 1;
            }
            let id = self.next_watch_id;
            self.next_watch_id += 1;
            id
        } else {
            c.watch_id
        };
        if c.watch_id != 0 && self.s.hub.exists(self.id, watch_id) {
            return self
                .refuse_create("mvcc: duplicate watch ID provided on the WatchStream")
                .await;
        }
        let rev = self.s.store.current_revision();
        let spec = WatchSpec {
            key: c.key,
            range_end: c.range_end,
            start_revision: c.start_revision,
            no_put: c.filters.contains(&(FilterType::Noput as i32)),
            no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
            prev_kv: c.prev_kv,
            progress_notify: c.progress_notify,
        };
        match self.s.hub.watch(self.id, watch_id, spec, ev_tx.clone()) {
            Ok(rev) => {
                self.fragment.insert(watch_id, c.fragment);
                self.send(WatchResponse {
                    header: self.s.header(rev),
                    watch_id,
                    created: true,
                    ..Default::default()
                })
                .await
            }
            Err(compact_revision) => {
                self.send(WatchResponse {
                    header: self.s.header(rev),
                    watch_id,
                    created: true,
                    ..Default::default()
                })
                .await?;
                // etcd's watcher reports compaction without a revision.
                self.send(WatchResponse {
                    header: self.s.header(0),
                    watch_id,
                    canceled: true,
                    compact_revision,
                    ..Default::default()
                })
                .await
            }
        }
    }

    /// Whether the stream's caller may read the watched range. etcd 3.5 checks
    /// a from-key watch (range end "\0") as if it named one key; Ballast
    /// checks the whole open range.
    async fn permitted(&self, c: &WatchCreateRequest) -> Result<(), Status> {
        let who = self.s.caller(&self.credentials).await?;
        let key: &[u8] = if c.key.is_empty() { &[0] } else { &c.key };
        self.s
            .auth
            .check(Some(&who), crate::auth::Access::Read, key, &c.range_end)?;
        Ok(())
    }

    /// A watch that could not be created: created and canceled at once, for
    /// watch ID -1 (what etcd's watch stream returns on failure), with the reason.
    async fn refuse_create(&self, reason: &str) -> Result<(), ()> {
        let rev = self.s.store.current_revision();
        self.send(WatchResponse {
            header: self.s.header(rev),
            watch_id: -1,
            created: true,
            canceled: true,
            cancel_reason: reason.into(),
            ..Default::default()
        })
        .await
    }

    async fn deliver(&mut self, d: Delivery) -> Result<(), ()> {
        match d {
            Delivery::Events {
                watch_id,
                revision,
                events,
            } => {
                if !self.s.hub.exists(self.id, watch_id) {
                    return Ok(()); // canceled meanwhile
                }
                let fragment = self.fragment.get(&watch_id).copied().unwrap_or(false);
                // etcd fragments above what a request may carry, gRPC overhead included.
                let limit = self.s.cfg.max_request_bytes as usize + super::GRPC_OVERHEAD_BYTES;
                for resp in split(self.s.header(revision), watch_id, events, fragment, limit) {
                    self.send(resp).await?;
                }
                Ok(())
            }
            Delivery::Compacted {
                watch_id,
                compact_revision,
            } => {
                self.fragment.remove(&watch_id);
                // etcd's watcher reports compaction without a revision.
                self.send(WatchResponse {
                    header: self.s.header(0),
                    watch_id,
                    canceled: true,
                    compact_revision,
                    ..Default::default()
                })
                .await
            }
            Delivery::Progress { watch_id, revision } => {
                if watch_id >= 0 && !self.s.hub.exists(self.id, watch_id) {
                    return Ok(()); // canceled meanwhile
                }
                self.send(WatchResponse {
                    header: self.s.header(revision),
                    watch_id,
                    ..Default::default()
                })
                .await
            }
        }
    }
}

/// Splits a large batch into fragments when the watcher allows it: all but
/// the last carry `fragment = true`, and a client reassembles them.
fn split(
    header: Option<ballast_proto::etcdserverpb::ResponseHeader>,
    watch_id: i64,
    events: Vec<Event>,
    fragment: bool,
    limit: usize,
) -> Vec<WatchResponse> {
    let whole = WatchResponse {
        header,
        watch_id,
        events,
        ..Default::default()
    };
    if !fragment || whole.encoded_len() <= limit {
        return vec![whole];
    }
    let mut out = Vec::new();
    let mut cur = WatchResponse {
        header,
        watch_id,
        fragment: true,
        ..Default::default()
    };
    let mut size = 0;
    for e in whole.events {
        let n = e.encoded_len();
        if size + n > limit && !cur.events.is_empty() {
            out.push(std::mem::replace(
                &mut cur,
                WatchResponse {
                    header,
                    watch_id,
                    fragment: true,
                    ..Default::default()
                },
            ));
            size = 0;
        }
        size += n;
        cur.events.push(e);
    }
    cur.fragment = false;
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_proto::mvccpb::KeyValue;

    fn ev(n: usize) -> Event {
        Event {
            kv: Some(KeyValue {
                key: b"k".to_vec(),
                value: vec![0; n],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn fragments_only_when_asked_and_needed() {
        let events = vec![ev(100), ev(100), ev(100)];
        assert_eq!(split(None, 1, events.clone(), false, 150).len(), 1);
        let parts = split(None, 1, events, true, 150);
        assert_eq!(parts.len(), 3);
        assert!(parts[0].fragment && parts[1].fragment && !parts[2].fragment);
        assert_eq!(parts.iter().map(|p| p.events.len()).sum::<usize>(), 3);
    }
}
