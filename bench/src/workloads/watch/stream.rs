//! One watch gRPC stream: creates its watchers, then checks and times every
//! event it receives.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ballast_proto::etcdserverpb::watch_client::WatchClient;
use ballast_proto::etcdserverpb::watch_request::RequestUnion;
use ballast_proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use ballast_proto::mvccpb::event::EventType;
use ballast_proto::mvccpb::Event;
use tokio::sync::{mpsc, oneshot, watch as signal};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

use super::super::seed::prefix_end;
use super::shared::Shared;
use super::SEQ_BYTES;
use crate::error::status_text;
use crate::report::WatchSummary;
use crate::stats::Recorder;

/// One watcher's view.
#[derive(Default, Clone)]
struct Watcher {
    key: usize,
    last_revision: i64,
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    unexpected: u64,
}

/// What one stream task saw.
pub(super) struct StreamOutcome {
    watchers: Vec<Watcher>,
    stream_errors: u64,
}

impl StreamOutcome {
    pub fn add_to(&self, s: &mut WatchSummary, expected_per_key: &[u64]) {
        s.stream_errors += self.stream_errors;
        for w in &self.watchers {
            let expected = expected_per_key[w.key];
            s.events_received += w.received;
            s.missing += expected.saturating_sub(w.received);
            // More events than acknowledged puts: foreign writes or puts that failed yet applied.
            s.unexpected += w.unexpected + w.received.saturating_sub(expected);
            s.duplicates += w.duplicates;
            s.out_of_order += w.out_of_order;
        }
    }
}

/// One watch stream and its watchers.
pub(super) struct WatchStream {
    /// Key index of each watcher, in creation order.
    pub watcher_keys: Vec<usize>,
    pub keys: Arc<Vec<Vec<u8>>>,
    pub shared: Arc<Shared>,
    pub delivery: Recorder,
    pub write_to_event: Recorder,
    /// Created responses seen; the n-th belongs to the n-th create request.
    pub created: usize,
    /// Watch everything under each key (which then ends in '/').
    pub prefix: bool,
}

impl WatchStream {
    pub async fn run(
        mut self,
        channel: Channel,
        ready: oneshot::Sender<Result<(), String>>,
        mut shutdown: signal::Receiver<bool>,
    ) -> StreamOutcome {
        let mut watchers: Vec<Watcher> = self
            .watcher_keys
            .iter()
            .map(|&key| Watcher {
                key,
                ..Default::default()
            })
            .collect();
        let mut stream_errors = 0;
        let mut ready = Some(ready);
        // Creates are queued before the call: grpc-go servers (etcd) send
        // response headers only with the first response.
        let (tx, rx) = mpsc::unbounded_channel();
        for &key in &self.watcher_keys {
            let create = WatchCreateRequest {
                key: self.keys[key].clone(),
                range_end: if self.prefix {
                    prefix_end(&self.keys[key])
                } else {
                    Vec::new()
                },
                ..Default::default()
            };
            let _ = tx.send(WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(create)),
            });
        }
        let mut client = WatchClient::new(channel).max_decoding_message_size(usize::MAX);
        let opened = tokio::select! {
            r = client.watch(UnboundedReceiverStream::new(rx)) => r,
            _ = shutdown.changed() => return StreamOutcome { watchers, stream_errors },
        };
        let mut responses = match opened {
            Ok(r) => r.into_inner(),
            Err(status) => {
                let why = status_text(&status);
                self.delivery.error(format!("watch stream: {why}"));
                if let Some(r) = ready.take() {
                    let _ = r.send(Err(why));
                }
                return StreamOutcome {
                    watchers,
                    stream_errors: 1,
                };
            }
        };
        // Server-assigned watch id -> index into `watchers`, in creation order.
        let mut by_id: HashMap<i64, usize> = HashMap::new();
        loop {
            let message = tokio::select! {
                m = responses.message() => m,
                _ = shutdown.changed() => break,
            };
            let failure = match message {
                Ok(Some(resp)) => match self.handle(resp, &mut watchers, &mut by_id) {
                    Ok(()) => {
                        if self.created == watchers.len() {
                            if let Some(r) = ready.take() {
                                let _ = r.send(Ok(()));
                            }
                        }
                        continue;
                    }
                    Err(why) => why,
                },
                Ok(None) => "watch stream ended by the server".to_string(),
                Err(status) => format!("watch stream: {}", status_text(&status)),
            };
            stream_errors += 1;
            self.delivery.error(failure.clone());
            if let Some(r) = ready.take() {
                let _ = r.send(Err(failure));
                break;
            }
            // A cancelled watcher is lost but the stream goes on; a broken stream is over.
            if !failure.starts_with("watcher cancelled") {
                break;
            }
        }
        drop(tx);
        StreamOutcome {
            watchers,
            stream_errors,
        }
    }

    /// Applies one response; Err for a cancelled watcher.
    fn handle(
        &mut self,
        resp: WatchResponse,
        watchers: &mut [Watcher],
        by_id: &mut HashMap<i64, usize>,
    ) -> Result<(), String> {
        if resp.created {
            if resp.canceled {
                return Err(format!("watch create refused: {}", resp.cancel_reason));
            }
            if self.created < watchers.len() {
                by_id.insert(resp.watch_id, self.created);
                self.created += 1;
            }
            return Ok(());
        }
        if resp.canceled {
            by_id.remove(&resp.watch_id);
            return Err(format!(
                "watcher cancelled by the server: {} (compact revision {})",
                resp.cancel_reason, resp.compact_revision
            ));
        }
        let Some(&index) = by_id.get(&resp.watch_id) else {
            return Ok(());
        };
        let watcher = &mut watchers[index];
        for event in resp.events {
            self.event(watcher, event);
        }
        Ok(())
    }

    fn event(&mut self, w: &mut Watcher, event: Event) {
        let Some(kv) = event.kv else {
            w.unexpected += 1;
            return;
        };
        if kv.mod_revision == w.last_revision {
            w.duplicates += 1;
            return;
        }
        if kv.mod_revision < w.last_revision {
            w.out_of_order += 1;
        } else {
            w.last_revision = kv.mod_revision;
        }
        let seq = kv
            .value
            .get(..SEQ_BYTES)
            .and_then(|b| <[u8; SEQ_BYTES]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n < self.shared.sent_ns.len());
        let watched = &self.keys[w.key];
        let key_matches = if self.prefix {
            kv.key.starts_with(watched)
        } else {
            kv.key == *watched
        };
        let ours = event.r#type == EventType::Put as i32 && key_matches;
        let Some(seq) = seq.filter(|_| ours) else {
            w.unexpected += 1;
            return;
        };
        let now = self.shared.now_ns();
        let sent = self.shared.sent_ns[seq].load(Ordering::Relaxed);
        let acked = self.shared.acked_ns[seq].load(Ordering::Relaxed);
        self.write_to_event
            .ok(Duration::from_nanos(now.saturating_sub(sent)));
        // Not acknowledged yet (acked == 0) means the event overtook the ack: 0.
        let after_ack = if acked == 0 {
            0
        } else {
            now.saturating_sub(acked)
        };
        self.delivery.ok(Duration::from_nanos(after_ack));
        w.received += 1;
        self.shared.received.fetch_add(1, Ordering::Relaxed);
        self.shared.last_event_ns.fetch_max(now, Ordering::Relaxed);
    }
}
