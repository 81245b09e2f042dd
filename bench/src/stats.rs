//! Latency and error collection.
//!
//! Every client task owns a [`Recorder`] that buffers latencies locally and
//! folds them into one shared HDR histogram every few hundred requests. That
//! keeps the hot path free of locks without giving each of 1000 clients its
//! own ~100 KiB histogram (which would cost the benchmark more cache than the
//! server under test gets).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::report::{Bucket, ErrorCount, Latency};

/// Latencies buffered per recorder before taking the shared lock.
const FLUSH_EVERY: usize = 256;
/// Distinct error messages kept; later distinct ones are only counted.
const MAX_DISTINCT_ERRORS: usize = 8;
/// Rows in the text histogram (etcd prints 10 + the slowest).
const HISTOGRAM_BUCKETS: usize = 10;
/// Percentiles printed, as etcd's report does.
pub const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

/// Everything measured for one kind of latency.
pub struct Collected {
    /// Nanoseconds, 3 significant digits (0.1 %), growing as needed.
    hist: Histogram<u64>,
    /// Exact sum, so the average does not inherit the histogram's rounding.
    sum_ns: u128,
    min_ns: u64,
    max_ns: u64,
    errors: ErrorTally,
}

impl Collected {
    fn new() -> Self {
        Collected {
            hist: Histogram::new(3).expect("3 significant digits is a valid precision"),
            sum_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
            errors: ErrorTally::default(),
        }
    }

    fn record(&mut self, ns: u64) {
        // record() grows the histogram; it only fails beyond ~u64::MAX / 2 ns.
        if self.hist.record(ns).is_err() {
            self.hist.saturating_record(ns);
        }
        self.sum_ns += u128::from(ns);
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// Successful requests recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Failed requests recorded.
    pub fn error_count(&self) -> u64 {
        self.errors.total
    }

    /// The first distinct error messages with their counts.
    pub fn error_messages(&self) -> Vec<ErrorCount> {
        self.errors.messages()
    }

    /// Average, stddev, percentiles and extremes, or None when nothing succeeded.
    pub fn latency(&self) -> Option<Latency> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let ms = |ns: f64| ns / 1e6;
        // hdr answers with a bucket's upper edge, which can exceed the exact maximum.
        let pct = |p: f64| ms(self.hist.value_at_quantile(p / 100.0).min(self.max_ns) as f64);
        Some(Latency {
            min_ms: ms(self.min_ns as f64),
            average_ms: ms(self.sum_ns as f64 / n as f64),
            stddev_ms: ms(self.hist.stdev()),
            p10_ms: pct(10.0),
            p25_ms: pct(25.0),
            p50_ms: pct(50.0),
            p75_ms: pct(75.0),
            p90_ms: pct(90.0),
            p95_ms: pct(95.0),
            p99_ms: pct(99.0),
            p99_9_ms: pct(99.9),
            // The exact maximum: hdr would report its bucket's upper edge.
            max_ms: ms(self.max_ns as f64),
        })
    }

    /// etcd's response-time histogram: 10 equal-width buckets from the fastest
    /// to the slowest request, plus one at the slowest. Each bucket counts the
    /// requests slower than the previous bound and at most its own.
    pub fn histogram(&self) -> Vec<Bucket> {
        if self.count() == 0 {
            return Vec::new();
        }
        let (lo, hi) = (self.min_ns as f64, self.max_ns as f64);
        let width = (hi - lo) / HISTOGRAM_BUCKETS as f64;
        let mut bounds: Vec<f64> = (0..HISTOGRAM_BUCKETS)
            .map(|i| lo + width * i as f64)
            .collect();
        bounds.push(hi);
        let mut counts = vec![0u64; bounds.len()];
        for v in self.hist.iter_recorded() {
            // The hdr bucket's lower edge, so the fastest request lands in the first row.
            let value = (self.hist.lowest_equivalent(v.value_iterated_to()) as f64).clamp(lo, hi);
            let slot = bounds
                .iter()
                .position(|b| value <= *b)
                .unwrap_or(bounds.len() - 1);
            counts[slot] += v.count_at_value();
        }
        bounds
            .into_iter()
            .zip(counts)
            .map(|(b, count)| Bucket {
                upper_ms: b / 1e6,
                count,
            })
            .collect()
    }
}

/// A shared sink for one kind of latency.
#[derive(Clone)]
pub struct Collector {
    inner: Arc<Mutex<Collected>>,
}

impl Default for Collector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector {
    pub fn new() -> Self {
        Collector {
            inner: Arc::new(Mutex::new(Collected::new())),
        }
    }

    /// A per-task recorder feeding this collector.
    pub fn recorder(&self) -> Recorder {
        Recorder {
            shared: Arc::clone(&self.inner),
            buf: Vec::with_capacity(FLUSH_EVERY),
        }
    }

    /// The results so far. Recorders flush when dropped, so read this after
    /// the client tasks have finished.
    pub fn lock(&self) -> MutexGuard<'_, Collected> {
        // A poisoned lock only means a task panicked mid-record; the numbers are still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A client task's handle for recording outcomes.
pub struct Recorder {
    shared: Arc<Mutex<Collected>>,
    buf: Vec<u64>,
}

impl Recorder {
    /// Records a successful request's latency.
    pub fn ok(&mut self, latency: Duration) {
        self.buf
            .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
        if self.buf.len() >= FLUSH_EVERY {
            self.flush();
        }
    }

    /// Records a failed request. Failures are rare, so this takes the lock at once.
    pub fn error(&mut self, message: String) {
        self.lock().errors.add(message);
    }

    /// Records a request's outcome.
    pub fn outcome(&mut self, latency: Duration, result: Result<(), String>) {
        match result {
            Ok(()) => self.ok(latency),
            Err(message) => self.error(message),
        }
    }

    /// Moves buffered latencies into the shared histogram.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let buf = std::mem::take(&mut self.buf);
        {
            let mut shared = self.lock();
            for ns in &buf {
                shared.record(*ns);
            }
        }
        self.buf = buf;
        self.buf.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Collected> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Error messages in order of first appearance, with counts.
#[derive(Default)]
struct ErrorTally {
    total: u64,
    distinct: Vec<(String, u64)>,
    /// Errors whose message did not fit in `distinct`.
    other: u64,
}

impl ErrorTally {
    fn add(&mut self, message: String) {
        self.total += 1;
        if let Some(entry) = self.distinct.iter_mut().find(|(m, _)| *m == message) {
            entry.1 += 1;
        } else if self.distinct.len() < MAX_DISTINCT_ERRORS {
            self.distinct.push((message, 1));
        } else {
            self.other += 1;
        }
    }

    fn messages(&self) -> Vec<ErrorCount> {
        let mut out: Vec<ErrorCount> = self
            .distinct
            .iter()
            .map(|(message, count)| ErrorCount {
                message: message.clone(),
                count: *count,
            })
            .collect();
        if self.other > 0 {
            out.push(ErrorCount {
                message: "(other messages)".into(),
                count: self.other,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorders_flush_on_drop_and_percentiles_follow_the_data() {
        let collector = Collector::new();
        {
            let mut rec = collector.recorder();
            for ms in 1..=1000u64 {
                rec.ok(Duration::from_millis(ms));
            }
            rec.error("Unavailable: boom".into());
            rec.error("Unavailable: boom".into());
        }
        let c = collector.lock();
        assert_eq!(c.count(), 1000);
        assert_eq!(c.error_count(), 2);
        assert_eq!(c.error_messages().len(), 1);
        assert_eq!(c.error_messages()[0].count, 2);
        let l = c.latency().expect("data");
        assert!((l.average_ms - 500.5).abs() < 1e-9);
        assert!((l.p50_ms - 500.0).abs() < 1.0, "p50 {}", l.p50_ms);
        assert!((l.p99_ms - 990.0).abs() < 1.0, "p99 {}", l.p99_ms);
        assert_eq!(l.min_ms, 1.0);
        assert_eq!(l.max_ms, 1000.0);
        let h = c.histogram();
        assert_eq!(h.len(), HISTOGRAM_BUCKETS + 1);
        assert_eq!(h.iter().map(|b| b.count).sum::<u64>(), 1000);
        assert_eq!(h.last().map(|b| b.upper_ms), Some(1000.0));
    }

    #[test]
    fn error_messages_are_capped() {
        let collector = Collector::new();
        let mut rec = collector.recorder();
        for i in 0..20 {
            rec.error(format!("error {i}"));
        }
        drop(rec);
        let msgs = collector.lock().error_messages();
        assert_eq!(msgs.len(), MAX_DISTINCT_ERRORS + 1);
        assert_eq!(msgs[0].message, "error 0");
        assert_eq!(msgs.last().map(|m| m.count), Some(12));
        assert!(collector.lock().latency().is_none());
    }
}
