//! The result of a run: a serde struct (the `--json` output, which a
//! comparison runner parses back with [`Report`]'s `Deserialize`) and its
//! text rendering in the style of etcd's benchmark report.
//!
//! Times in JSON are milliseconds (`*_ms`) or seconds (`total_secs`) as
//! floating-point numbers. See the crate README for the field list.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::stats::PERCENTILES;

/// Identifies the JSON layout; bumped on incompatible changes.
pub const SCHEMA: &str = "ballast-bench/v1";

/// One benchmark run.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Subcommand: put, range, txn-put, watch, lease-keepalive.
    pub workload: String,
    /// Endpoints the load went to (after --target-leader).
    pub endpoints: Vec<String>,
    /// Version the first endpoint reported in Maintenance.Status.
    pub server_version: Option<String>,
    pub conns: usize,
    pub clients: usize,
    /// The workload's settings (key/value sizes, consistency, ...).
    pub params: serde_json::Value,
    /// Successful requests (for watch: events received).
    pub requests: u64,
    /// Failed requests (for watch: failed puts plus watch stream failures).
    pub errors: u64,
    /// The first distinct error messages with counts.
    pub error_messages: Vec<ErrorCount>,
    /// Wall time of the measured phase (setup excluded).
    pub total_secs: f64,
    /// `requests / total_secs`.
    pub requests_per_sec: f64,
    /// Per-request latency (for watch: put ack to event receipt); None if nothing succeeded.
    pub latency: Option<Latency>,
    /// etcd-style histogram of the same latencies.
    pub histogram: Vec<Bucket>,
    /// Delivery checks and extra latencies of the watch workload.
    pub watch: Option<WatchSummary>,
    /// What the Kubernetes-shaped workloads counted besides requests (list:
    /// pages and keys per list; lease-keys: leases, expiry; guarded-update:
    /// conflicts and retries). A JSON object, because each workload counts
    /// different things and a runner only copies them into its table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// Non-fatal problems (e.g. an endpoint that was unreachable and skipped).
    pub warnings: Vec<String>,
}

/// Latency statistics in milliseconds.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub min_ms: f64,
    pub average_ms: f64,
    pub stddev_ms: f64,
    pub p10_ms: f64,
    pub p25_ms: f64,
    pub p50_ms: f64,
    pub p75_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn percentiles(&self) -> [f64; 8] {
        [
            self.p10_ms,
            self.p25_ms,
            self.p50_ms,
            self.p75_ms,
            self.p90_ms,
            self.p95_ms,
            self.p99_ms,
            self.p99_9_ms,
        ]
    }
}

/// One histogram row: requests slower than the previous row's bound and at most `upper_ms`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub upper_ms: f64,
    pub count: u64,
}

/// An error message and how often it occurred.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ErrorCount {
    pub message: String,
    pub count: u64,
}

/// What the watch workload checked.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct WatchSummary {
    pub watchers: usize,
    pub streams: usize,
    pub watched_keys: usize,
    /// Puts acknowledged by the server.
    pub puts: u64,
    pub put_errors: u64,
    /// Events the watchers should have received for the acknowledged puts.
    pub events_expected: u64,
    /// Events received (each counted once per watcher).
    pub events_received: u64,
    /// Expected events that never arrived (by the end of --drain-timeout).
    pub missing: u64,
    /// Events received twice (same revision again on one watcher).
    pub duplicates: u64,
    /// Events whose revision was lower than an earlier event's on the same watcher.
    pub out_of_order: u64,
    /// Events the workload did not write (foreign writers, failed-but-applied puts).
    pub unexpected: u64,
    /// Watch streams that failed or watchers the server cancelled.
    pub stream_errors: u64,
    /// True when every acknowledged put reached every watcher exactly once, in order.
    pub all_delivered_once_in_order: bool,
    /// Latency of the puts themselves.
    pub put_latency: Option<Latency>,
    /// From sending a put to receiving its event (includes the put's commit).
    pub write_to_event_latency: Option<Latency>,
}

impl Report {
    /// The text report, in the layout of etcd's benchmark.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let version = self
            .server_version
            .as_deref()
            .map(|v| format!(" (server {v})"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "{}: {} conns, {} clients, endpoints {}{version}",
            self.workload,
            self.conns,
            self.clients,
            self.endpoints.join(",")
        );
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        let what = if self.watch.is_some() {
            "Events"
        } else {
            "Requests"
        };
        let _ = writeln!(s, "\nSummary:");
        let _ = writeln!(s, "  Total:\t{:.4} secs.", self.total_secs);
        if let Some(l) = &self.latency {
            let _ = writeln!(s, "  Slowest:\t{:.3} ms.", l.max_ms);
            let _ = writeln!(s, "  Fastest:\t{:.3} ms.", l.min_ms);
            let _ = writeln!(s, "  Average:\t{:.3} ms.", l.average_ms);
            let _ = writeln!(s, "  Stddev:\t{:.3} ms.", l.stddev_ms);
        }
        let _ = writeln!(s, "  {what}:\t{}", self.requests);
        let _ = writeln!(s, "  {what}/sec:\t{:.4}", self.requests_per_sec);
        if !self.histogram.is_empty() {
            let title = if self.watch.is_some() {
                "Delivery time histogram (put ack to event)"
            } else {
                "Response time histogram"
            };
            let _ = writeln!(s, "\n{title}:");
            s.push_str(&render_histogram(&self.histogram));
        }
        if let Some(l) = &self.latency {
            let _ = writeln!(s, "\nLatency distribution:");
            s.push_str(&render_percentiles(l));
        }
        if let Some(w) = &self.watch {
            s.push_str(&render_watch(w));
        }
        if let Some(d) = &self.details {
            let _ = writeln!(s, "\nDetails:\n  {d}");
        }
        if !self.error_messages.is_empty() {
            let _ = writeln!(s, "\nError distribution ({} errors):", self.errors);
            for e in &self.error_messages {
                let _ = writeln!(s, "  [{}]\t{}", e.count, e.message);
            }
        }
        s
    }
}

/// Bars of `∎` scaled to 40 for the fullest bucket, as etcd draws them.
pub fn render_histogram(buckets: &[Bucket]) -> String {
    let max = buckets.iter().map(|b| b.count).max().unwrap_or(0);
    let mut s = String::new();
    for b in buckets {
        let len = (b.count * 40).checked_div(max).unwrap_or(0) as usize;
        let _ = writeln!(
            s,
            "  {:.3} ms [{}]\t|{}",
            b.upper_ms,
            b.count,
            "∎".repeat(len)
        );
    }
    s
}

fn render_percentiles(l: &Latency) -> String {
    let mut s = String::new();
    for (p, v) in PERCENTILES.iter().zip(l.percentiles()) {
        let _ = writeln!(s, "  {p}% in {v:.3} ms.");
    }
    s
}

fn render_watch(w: &WatchSummary) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\nWatch delivery:");
    let _ = writeln!(
        s,
        "  Watchers:\t{} on {} streams, {} keys",
        w.watchers, w.streams, w.watched_keys
    );
    let _ = writeln!(s, "  Puts:\t\t{} acked, {} failed", w.puts, w.put_errors);
    let _ = writeln!(
        s,
        "  Events:\t{} expected, {} received; {} missing, {} duplicate, {} out of order, {} unexpected, {} stream errors",
        w.events_expected,
        w.events_received,
        w.missing,
        w.duplicates,
        w.out_of_order,
        w.unexpected,
        w.stream_errors
    );
    let verdict = if w.all_delivered_once_in_order {
        "every event delivered exactly once, in order"
    } else {
        "DELIVERY CHECK FAILED"
    };
    let _ = writeln!(s, "  Check:\t{verdict}");
    for (name, l) in [
        ("Put latency", &w.put_latency),
        ("Write-to-event latency", &w.write_to_event_latency),
    ] {
        if let Some(l) = l {
            let _ = writeln!(
                s,
                "  {name}:\tavg {:.3} ms, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
                l.average_ms, l.p50_ms, l.p99_ms, l.p99_9_ms, l.max_ms
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(v: f64) -> Latency {
        Latency {
            min_ms: v,
            average_ms: v,
            stddev_ms: 0.0,
            p10_ms: v,
            p25_ms: v,
            p50_ms: v,
            p75_ms: v,
            p90_ms: v,
            p95_ms: v,
            p99_ms: v,
            p99_9_ms: v,
            max_ms: v,
        }
    }

    fn sample() -> Report {
        Report {
            schema: SCHEMA.into(),
            workload: "put".into(),
            endpoints: vec!["http://127.0.0.1:2379".into()],
            server_version: Some("3.5.17".into()),
            conns: 1,
            clients: 2,
            params: serde_json::json!({"key_size": 8}),
            requests: 10,
            errors: 1,
            error_messages: vec![ErrorCount {
                message: "Unavailable: x".into(),
                count: 1,
            }],
            total_secs: 0.5,
            requests_per_sec: 20.0,
            latency: Some(latency(1.5)),
            histogram: vec![
                Bucket {
                    upper_ms: 1.0,
                    count: 2,
                },
                Bucket {
                    upper_ms: 2.0,
                    count: 8,
                },
            ],
            watch: None,
            details: None,
            warnings: vec![],
        }
    }

    #[test]
    fn json_round_trips() {
        let r = sample();
        let text = serde_json::to_string(&r).expect("serialize");
        let back: Report = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, r);
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["latency"]["p99_9_ms"], 1.5);
        assert_eq!(v["schema"], SCHEMA);
    }

    #[test]
    fn text_has_etcd_sections() {
        let t = sample().to_text();
        for needle in [
            "Summary:",
            "Requests/sec:\t20.0000",
            "Response time histogram:",
            "  2.000 ms [8]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎\n",
            "  1.000 ms [2]\t|∎∎∎∎∎∎∎∎∎∎\n",
            "99.9% in 1.500 ms.",
            "Error distribution (1 errors):",
        ] {
            assert!(t.contains(needle), "missing {needle:?} in\n{t}");
        }
    }
}
