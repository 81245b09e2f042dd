//! The load a run puts on the cluster: KV clients making random calls on a small key space
//! (so they contend) and watchers following the whole prefix, everything recorded on one
//! clock.

mod client;
mod convert;
mod watcher;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

pub use client::call;
pub use watcher::Finish;

use crate::cluster::connect;
use crate::history::{ClientId, History, Operation, Time};
use crate::Error;

/// Every key the traffic touches starts with this.
pub const PREFIX: &str = "k/";

/// The shape of the load.
#[derive(Debug, Clone, Copy)]
pub struct TrafficConfig {
    /// KV clients; client `i` talks to member `i % 3`.
    pub clients: u32,
    /// Watchers; watcher `i` watches through member `i % 3`.
    pub watchers: u32,
    /// Keys `k/0` .. `k/<keys-1>`.
    pub keys: u32,
    /// How long a call may take before the client gives up on it (the outcome is then
    /// unknown).
    pub call_timeout: Duration,
    /// Pause between a client's calls (bounds the history's size, which the
    /// linearizability check is exponential in at worst).
    pub think: Duration,
    /// Pause after a failed call or watch.
    pub error_backoff: Duration,
    /// Whether clients now and then compact the history (100 revisions behind the newest
    /// they saw), so watchers resuming after an outage may find their revision compacted.
    pub compaction: bool,
}

impl Default for TrafficConfig {
    fn default() -> Self {
        TrafficConfig {
            clients: 6,
            watchers: 3,
            keys: 10,
            call_timeout: Duration::from_secs(3),
            think: Duration::from_millis(20),
            error_backoff: Duration::from_millis(200),
            compaction: true,
        }
    }
}

/// The run's one monotonic clock: nanoseconds since the run started.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Clock {
        Clock(Instant::now())
    }

    pub fn now(&self) -> Time {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Traffic in progress.
pub struct Traffic {
    clients: Vec<JoinHandle<client::ClientLog>>,
    watchers: Vec<JoinHandle<watcher::WatcherLog>>,
    stop: Arc<AtomicBool>,
    finish: Finish,
}

impl Traffic {
    /// Connects the clients and starts them and the watchers (from `start_revision`).
    pub async fn start(
        endpoints: &[String],
        config: TrafficConfig,
        clock: Clock,
        seed: u64,
        start_revision: i64,
    ) -> Result<Traffic, Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let finish = Finish::default();
        let mut clients = Vec::new();
        for id in 0..config.clients {
            let url = &endpoints[id as usize % endpoints.len()];
            let c = connect(url).await?;
            let client_seed = seed ^ (u64::from(id) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            clients.push(tokio::spawn(client::run(
                id,
                c,
                config,
                clock,
                client_seed,
                stop.clone(),
            )));
        }
        let mut watchers = Vec::new();
        for w in 0..config.watchers {
            let url = endpoints[w as usize % endpoints.len()].clone();
            // Watchers are clients too, numbered after the KV clients.
            let id: ClientId = config.clients + w;
            watchers.push(tokio::spawn(watcher::run(
                id,
                w,
                url,
                start_revision,
                config,
                clock,
                finish.clone(),
            )));
        }
        Ok(Traffic {
            clients,
            watchers,
            stop,
            finish,
        })
    }

    /// Stops the KV clients (each finishes its call in flight) and returns what they
    /// recorded.
    pub async fn stop_clients(&mut self, history: &mut History) -> Result<(), Error> {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.clients.drain(..) {
            let log = handle
                .await
                .map_err(|e| Error::Setup(format!("a client task failed: {e}")))?;
            history.operations.extend(log.operations);
            history.leases.extend(log.leases);
        }
        Ok(())
    }

    /// Waits until every watcher has seen `revision` (or `deadline` passes: those that did
    /// not are named in the error) and adds their sessions to the history.
    pub async fn finish_watchers(
        &mut self,
        revision: i64,
        deadline: Duration,
        history: &mut History,
    ) -> Result<(), String> {
        self.finish.target.store(revision, Ordering::Relaxed);
        let abandon = self.finish.abandon.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            abandon.store(true, Ordering::Relaxed);
        });
        let mut behind = Vec::new();
        for (w, handle) in self.watchers.drain(..).enumerate() {
            match handle.await {
                Ok(log) => {
                    if log.seen < revision {
                        behind.push(format!(
                            "watcher {w} saw up to revision {} of {revision}",
                            log.seen
                        ));
                    }
                    history.watches.extend(log.sessions);
                }
                Err(e) => behind.push(format!("watcher {w}'s task failed: {e}")),
            }
        }
        timer.abort();
        if behind.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "watchers did not catch up within {deadline:?}: {}",
                behind.join("; ")
            ))
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.finish.abandon.store(true, Ordering::Relaxed);
    }
}

/// Orders a history's operations by invocation time (clients record concurrently).
pub fn sort(history: &mut History) {
    history
        .operations
        .sort_by_key(|o: &Operation| (o.call, o.client));
    history.watches.sort_by_key(|w| (w.watcher, w.call));
}
