//! Peer round-trip time: while a connection to a peer is up, a small
//! `Probe` RPC on it is timed every few seconds, as etcd's prober does, and
//! recorded in `etcd_network_peer_round_trip_time_seconds{To}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_proto::internal::raft_peer_client::RaftPeerClient;
use ballast_proto::internal::ProbeRequest;
use tonic::transport::Channel;

use super::{peer_label, Metrics};

/// etcd probes each peer every 4 s (its connection read timeout less 1 s).
const PROBE_INTERVAL: Duration = Duration::from_secs(4);
/// A probe unanswered this long is not a round trip (etcd's read timeout).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Probes a peer until dropped (when the connection it uses goes away).
pub struct Prober(tokio::task::JoinHandle<()>);

impl Prober {
    /// Starts probing `to` over `channel`, the first time at once.
    pub fn start(channel: Channel, to: u64, metrics: Arc<Metrics>) -> Prober {
        Prober(tokio::spawn(async move {
            let mut client = RaftPeerClient::new(channel);
            let rtt = metrics
                .peer_rtt
                .get_or_create(&peer_label("To", to))
                .clone();
            let mut tick = tokio::time::interval(PROBE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let started = Instant::now();
                let probe = client.probe(ProbeRequest {});
                if let Ok(Ok(_)) = tokio::time::timeout(PROBE_TIMEOUT, probe).await {
                    rtt.observe(started.elapsed().as_secs_f64());
                }
            }
        }))
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.0.abort();
    }
}
