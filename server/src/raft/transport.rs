//! Raft messages between members: one long-lived gRPC stream per peer,
//! batching whatever is queued, reconnecting with backoff. Messages to an
//! unreachable peer are dropped and raft-rs is told, so it retries later.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ballast_proto::internal::raft_peer_client::RaftPeerClient;
use ballast_proto::internal::RaftBatch;
use parking_lot::Mutex;
use prost011::Message as _;
use raft::prelude::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::RaftHandle;

/// Where a peer that refuses our Raft traffic puts its own cluster ID
/// (etcd's header name).
pub const CLUSTER_ID_HEADER: &str = "x-etcd-cluster-id";

/// Messages queued per peer before new ones are dropped.
const PEER_QUEUE: usize = 4096;
/// Messages per batch on the wire.
const MAX_BATCH: usize = 512;
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

struct Peer {
    tx: mpsc::Sender<Message>,
    urls: Vec<String>,
}

pub struct Transport {
    me: u64,
    cluster_id: u64,
    runtime: tokio::runtime::Handle,
    peers: Mutex<HashMap<u64, Peer>>,
    /// Set once the Raft node exists; used to report unreachable peers.
    raft: OnceLock<RaftHandle>,
    /// Peer traffic and round-trip metrics.
    metrics: Arc<crate::metrics::Metrics>,
    /// Opens the channel to a peer (TLS for `https` peer URLs).
    dialer: Arc<crate::tls::PeerDialer>,
    /// Since when the stream to each peer has been up (etcd's
    /// `ActiveSince`): membership changes are refused when they would
    /// leave too few connected voters.
    active: Mutex<HashMap<u64, Instant>>,
}

impl Transport {
    pub fn new(
        me: u64,
        cluster_id: u64,
        runtime: tokio::runtime::Handle,
        metrics: Arc<crate::metrics::Metrics>,
        dialer: Arc<crate::tls::PeerDialer>,
    ) -> Arc<Transport> {
        Arc::new(Transport {
            me,
            cluster_id,
            runtime,
            peers: Mutex::new(HashMap::new()),
            raft: OnceLock::new(),
            metrics,
            dialer,
            active: Mutex::new(HashMap::new()),
        })
    }

    /// When the current connection to `id` came up; `None` while there is
    /// none (the peer is down, unreachable, or refuses us).
    pub fn active_since(&self, id: u64) -> Option<Instant> {
        self.active.lock().get(&id).copied()
    }

    fn set_active(&self, id: u64, up: bool) {
        let mut active = self.active.lock();
        if up {
            if active.insert(id, Instant::now()).is_none() {
                tracing::info!(peer = format!("{id:x}"), "peer became active");
            }
        } else if active.remove(&id).is_some() {
            tracing::warn!(
                peer = format!("{id:x}"),
                "peer became inactive (message send to peer failed)"
            );
        }
    }

    pub fn set_raft(&self, raft: RaftHandle) {
        let _ = self.raft.set(raft);
    }

    /// Starts (or restarts, if its URLs changed) the stream to a peer.
    pub fn set_peer(self: &Arc<Self>, id: u64, urls: Vec<String>) {
        if id == self.me || urls.is_empty() {
            return;
        }
        let mut peers = self.peers.lock();
        if peers.get(&id).is_some_and(|p| p.urls == urls) {
            return;
        }
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        peers.insert(
            id,
            Peer {
                tx,
                urls: urls.clone(),
            },
        );
        let this = self.clone();
        self.runtime
            .spawn(async move { this.run_peer(id, urls, rx).await });
    }

    /// Stops talking to a removed member (its task ends with its queue).
    pub fn remove_peer(&self, id: u64) {
        self.peers.lock().remove(&id);
        self.active.lock().remove(&id);
    }

    /// Queues messages from the Raft thread; never blocks it.
    pub fn send(&self, msgs: Vec<Message>) {
        let peers = self.peers.lock();
        for m in msgs {
            let to = m.to;
            let snapshot = is_snapshot(&m);
            let full = match peers.get(&to) {
                Some(p) => p.tx.try_send(m).is_err(),
                None => {
                    tracing::debug!(
                        to = format!("{to:x}"),
                        "no transport to peer; dropping raft message"
                    );
                    true
                }
            };
            if full {
                self.report_unreachable(to);
                if snapshot {
                    self.report_snapshot_failed(to);
                }
            }
        }
    }

    /// raft-rs holds a follower in snapshot state until told how it went.
    fn report_snapshot_failed(&self, id: u64) {
        if let Some(r) = self.raft.get() {
            r.report_snapshot(id, false);
        }
    }

    fn report_unreachable(&self, id: u64) {
        if let Some(r) = self.raft.get() {
            r.unreachable(id);
        }
    }

    async fn run_peer(
        self: Arc<Self>,
        to: u64,
        urls: Vec<String>,
        mut rx: mpsc::Receiver<Message>,
    ) {
        let mut backoff = MIN_BACKOFF;
        let mut url_index = 0;
        loop {
            let url = &urls[url_index % urls.len()];
            url_index += 1;
            let ended = self.stream_to(to, url, &mut rx).await;
            self.set_active(to, false);
            match ended {
                Stream::QueueClosed => return,
                Stream::Broken(e) => {
                    tracing::debug!(peer = format!("{to:x}"), url = %url, "raft stream to peer broke: {e}");
                    self.report_unreachable(to);
                }
            }
            // Drop what piled up meanwhile: raft-rs resends what matters.
            let deadline = tokio::time::Instant::now() + backoff;
            loop {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(m)) => {
                        if is_snapshot(&m) {
                            self.report_snapshot_failed(to);
                        }
                        continue;
                    }
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Streams batches until the connection fails or the queue closes.
    async fn stream_to(&self, to: u64, url: &str, rx: &mut mpsc::Receiver<Message>) -> Stream {
        let channel = match self.dialer.connect(url, Duration::from_secs(1)).await {
            Ok(c) => c,
            Err(e) => return Stream::Broken(e),
        };
        let (btx, brx) = mpsc::channel::<RaftBatch>(16);
        // Times round trips over this connection for as long as it is used.
        let _prober =
            crate::metrics::peer::Prober::start(channel.clone(), to, self.metrics.clone());
        let mut client = RaftPeerClient::new(channel);
        // The peer counts as connected once it answers, not when TCP is up.
        let mut prober = client.clone();
        let probe = prober.probe(ballast_proto::internal::ProbeRequest {});
        match tokio::time::timeout(Duration::from_secs(1), probe).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Stream::Broken(format!("probe: {e}")),
            Err(_) => return Stream::Broken("probe timed out".into()),
        }
        let mut call = tokio::spawn(async move { client.send(ReceiverStream::new(brx)).await });
        self.set_active(to, true);
        loop {
            let first = tokio::select! {
                m = rx.recv() => m,
                r = &mut call => {
                    if let Ok(Err(st)) = &r {
                        self.log_cluster_mismatch(to, st);
                    }
                    return Stream::Broken(format!("peer ended the stream: {r:?}"));
                }
            };
            let Some(first) = first else {
                return Stream::QueueClosed;
            };
            let mut snapshots = usize::from(is_snapshot(&first));
            let mut messages = vec![first.encode_to_vec()];
            while messages.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => {
                        snapshots += usize::from(is_snapshot(&m));
                        messages.push(m.encode_to_vec());
                    }
                    Err(_) => break,
                }
            }
            let batch = RaftBatch {
                from: self.me,
                to,
                cluster_id: self.cluster_id,
                messages,
            };
            let bytes = prost::Message::encoded_len(&batch);
            self.metrics.peer_sent(to, bytes);
            let sent = btx.send(batch).await.is_ok();
            // raft-rs pauses a follower until it hears how its snapshot went.
            if snapshots > 0 {
                if let Some(r) = self.raft.get() {
                    r.report_snapshot(to, sent);
                }
            }
            if !sent {
                return Stream::Broken("stream closed".into());
            }
        }
    }
}

impl Transport {
    /// A peer of another cluster refused the stream: say so as etcd does.
    fn log_cluster_mismatch(&self, to: u64, st: &tonic::Status) {
        let Some(remote) = st
            .metadata()
            .get(CLUSTER_ID_HEADER)
            .and_then(|v| v.to_str().ok())
        else {
            return;
        };
        tracing::error!(
            "request sent was ignored (cluster ID mismatch: peer[{to:x}]={remote}, local={:x})",
            self.cluster_id
        );
    }
}

fn is_snapshot(m: &Message) -> bool {
    m.get_msg_type() == raft::prelude::MessageType::MsgSnapshot
}

enum Stream {
    QueueClosed,
    Broken(String),
}

/// Decodes one message of a batch (for the receiving side).
///
/// prost keeps an enum field's value as a plain `i32`, and raft-rs's getters
/// (`get_msg_type`, `get_entry_type`) panic on a value they do not know, so a
/// message carrying one would bring down the Raft thread that steps it (or the
/// apply loop once its entry commits). They are refused here, while the bytes
/// are still the peer's (found by the `peer_message` fuzz target).
pub fn decode(bytes: &[u8]) -> Result<Message, String> {
    use raft::prelude::{EntryType, MessageType};
    let m = Message::decode(bytes).map_err(|e| e.to_string())?;
    if MessageType::from_i32(m.msg_type).is_none() {
        return Err(format!("unknown raft message type {}", m.msg_type));
    }
    if let Some(e) = m
        .entries
        .iter()
        .find(|e| EntryType::from_i32(e.entry_type).is_none())
    {
        return Err(format!(
            "raft entry {} has unknown type {}",
            e.index, e.entry_type
        ));
    }
    Ok(m)
}
