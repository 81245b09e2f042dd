//! State the putters and the watch streams share: when each put was sent and
//! acknowledged, so a watcher can compute an event's latencies on arrival.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

/// State the putters and the watch streams share; times are nanoseconds since `epoch`.
pub(super) struct Shared {
    pub epoch: Instant,
    /// When put n was sent (0: not sent).
    pub sent_ns: Vec<AtomicU64>,
    /// When put n's acknowledgement arrived (0: not acknowledged).
    pub acked_ns: Vec<AtomicU64>,
    /// Acknowledged puts per watched key.
    pub acked_per_key: Vec<AtomicU64>,
    /// Events received by all watchers (also drives the progress bar).
    pub received: Arc<AtomicU64>,
    pub last_event_ns: AtomicU64,
}

impl Shared {
    pub fn new(puts: u64, keys: usize, received: Arc<AtomicU64>) -> Shared {
        let zeros = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect();
        let puts = usize::try_from(puts).unwrap_or(usize::MAX);
        Shared {
            epoch: Instant::now(),
            sent_ns: zeros(puts),
            acked_ns: zeros(puts),
            acked_per_key: zeros(keys),
            received,
            last_event_ns: AtomicU64::new(0),
        }
    }

    /// Now, never 0 (0 marks "not yet").
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}
