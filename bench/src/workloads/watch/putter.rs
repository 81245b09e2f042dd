//! The put side of the watch workload: puts whose values carry their
//! sequence number, with send and acknowledgement times recorded in [`Shared`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_proto::etcdserverpb::kv_client::KvClient;
use ballast_proto::etcdserverpb::PutRequest;
use tonic::transport::Channel;

use super::shared::Shared;
use super::SEQ_BYTES;
use crate::error::status_text;
use crate::stats::Recorder;
use crate::work::Work;

/// One put client.
pub(super) struct Putter {
    pub kv: KvClient<Channel>,
    pub keys: Arc<Vec<Vec<u8>>>,
    pub shared: Arc<Shared>,
    pub value_tail: Arc<[u8]>,
    pub rec: Recorder,
    pub timeout: Duration,
    /// Write `<key>/<n>` (keys end in '/' then) instead of the key itself.
    pub prefix: bool,
}

impl Putter {
    pub async fn run(mut self, work: Arc<Work>) {
        while let Some(n) = work.next().await {
            let Ok(slot) = usize::try_from(n) else { break };
            let key = slot % self.keys.len();
            let mut value = Vec::with_capacity(SEQ_BYTES + self.value_tail.len());
            value.extend_from_slice(&n.to_be_bytes());
            value.extend_from_slice(&self.value_tail);
            let mut put_key = self.keys[key].clone();
            if self.prefix {
                put_key.extend_from_slice(n.to_string().as_bytes());
            }
            let req = PutRequest {
                key: put_key,
                value,
                ..Default::default()
            };
            let started = Instant::now();
            self.shared.sent_ns[slot].store(self.shared.now_ns(), Ordering::Relaxed);
            match tokio::time::timeout(self.timeout, self.kv.put(req)).await {
                Ok(Ok(_)) => {
                    self.shared.acked_ns[slot].store(self.shared.now_ns(), Ordering::Relaxed);
                    self.shared.acked_per_key[key].fetch_add(1, Ordering::Relaxed);
                    self.rec.ok(started.elapsed());
                }
                Ok(Err(status)) => self.rec.error(status_text(&status)),
                Err(_) => self
                    .rec
                    .error(format!("put timed out after {:?}", self.timeout)),
            }
        }
    }
}
