//! Hands out request numbers to client tasks until the run's limit: a count
//! (`--total`), a deadline (`--duration`), or both, optionally paced to a rate.
//!
//! One atomic counter instead of etcd's request channel: the request number
//! alone determines the request (which key, which value), so there is nothing
//! to send, and the clients never wait on a producer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Shared by all client tasks of one run.
pub struct Work {
    issued: AtomicU64,
    limit: Option<u64>,
    deadline: Option<Instant>,
    /// Seconds between consecutive requests when paced.
    interval: Option<f64>,
    start: Instant,
}

impl Work {
    /// Starts the clock. `rate` 0 means unpaced.
    pub fn new(limit: Option<u64>, duration: Option<Duration>, rate: u64) -> Work {
        let start = Instant::now();
        Work {
            issued: AtomicU64::new(0),
            limit,
            deadline: duration.map(|d| start + d),
            interval: (rate > 0).then(|| 1.0 / rate as f64),
            start,
        }
    }

    /// The next request number, or None when the run is over. Paced runs
    /// schedule request n at `start + n / rate`, so the rate holds over the
    /// whole run even when single requests are slow.
    pub async fn next(&self) -> Option<u64> {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        if self.limit.is_some_and(|limit| n >= limit) {
            return None;
        }
        if let Some(interval) = self.interval {
            let at = self.start + Duration::from_secs_f64(n as f64 * interval);
            if self.deadline.is_some_and(|d| at >= d) {
                return None;
            }
            tokio::time::sleep_until(at.into()).await;
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        Some(n)
    }

    /// When the run started.
    pub fn start(&self) -> Instant {
        self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn count_limit_hands_out_each_number_once() {
        let work = Work::new(Some(3), None, 0);
        let mut got = Vec::new();
        while let Some(n) = work.next().await {
            got.push(n);
        }
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(work.next().await, None);
    }

    #[tokio::test]
    async fn deadline_ends_an_unlimited_run() {
        let work = Work::new(None, Some(Duration::ZERO), 0);
        assert_eq!(work.next().await, None);
    }
}
