//! `watch`: `--watchers` watchers on `--streams` gRPC streams receive the
//! events of `--puts` puts issued at `--put-rate` by `--clients` tasks.
//!
//! Every put's value starts with its sequence number (8 bytes, big endian),
//! so a watcher can tell which put an event belongs to without any lookup on
//! the server. From that the workload checks delivery — each acknowledged put
//! reaches every watcher of its key exactly once, and each watcher sees
//! strictly increasing revisions — and measures two latencies per event:
//!
//! * delivery (the report's main latency): from the put's acknowledgement to
//!   the event's receipt, as etcd's `watch-latency` benchmark measures it.
//!   Events that overtake the acknowledgement count as 0.
//! * write-to-event: from sending the put to the event's receipt, the delay a
//!   watching application sees end to end.
//!
//! With `--prefix` each watcher watches a prefix and every put creates a new
//! key under it, as kube-apiserver watches a resource type.
//!
//! Watchers are all created (and acknowledged by the server) before the first
//! put, so no event can be missed by starting late.

mod putter;
mod shared;
mod stream;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_proto::etcdserverpb::kv_client::KvClient;
use serde_json::json;
use tokio::sync::{oneshot, watch as signal};
use tokio::task::JoinSet;

use super::keys::random_bytes;
use super::{join_all, Ctx};
use crate::cli::{GlobalOpts, WatchOpts};
use crate::error::BenchError;
use crate::progress::Progress;
use crate::report::{Report, WatchSummary};
use crate::stats::Collector;
use crate::work::Work;
use putter::Putter;
use shared::Shared;
use stream::WatchStream;

/// Bytes of the sequence number at the start of every value.
pub(super) const SEQ_BYTES: usize = 8;

pub(crate) async fn run(ctx: &Ctx<'_>, o: &WatchOpts) -> Result<Report, BenchError> {
    let keys: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..o.watched_keys)
            .map(|k| {
                let mut key = watch_key(k, o.key_size);
                if o.prefix {
                    key.push(b'/');
                }
                key
            })
            .collect(),
    );
    let progress = Progress::start(ctx.show_progress, Some(events_if_all_succeed(o)), "events");
    let shared = Arc::new(Shared::new(o.puts, o.watched_keys, progress.counter()));
    let delivery = Collector::new();
    let write_to_event = Collector::new();

    // 1. Watchers, spread round-robin over streams, streams over connections.
    let (shutdown, shutdown_rx) = signal::channel(false);
    let mut streams = JoinSet::new();
    let mut readiness = Vec::new();
    for s in 0..o.streams {
        let watcher_keys: Vec<usize> = (s..o.watchers)
            .step_by(o.streams)
            .map(|w| w % o.watched_keys)
            .collect();
        let (ready, ready_rx) = oneshot::channel();
        readiness.push(ready_rx);
        let stream = WatchStream {
            watcher_keys,
            keys: Arc::clone(&keys),
            shared: Arc::clone(&shared),
            delivery: delivery.recorder(),
            write_to_event: write_to_event.recorder(),
            created: 0,
            prefix: o.prefix,
        };
        streams.spawn(stream.run(ctx.pool.channel(s), ready, shutdown_rx.clone()));
    }
    if let Err(why) = await_ready(readiness, ctx.global.request_timeout).await {
        let _ = shutdown.send(true);
        join_all(&mut streams).await;
        progress.finish();
        return Err(BenchError::Setup(format!("creating watchers: {why}")));
    }

    // 2. Puts.
    let puts = Collector::new();
    let work = Arc::new(Work::new(Some(o.puts), ctx.global.duration, o.put_rate));
    let put_start_ns = shared.now_ns();
    let value_tail: Arc<[u8]> = random_bytes(o.val_size - SEQ_BYTES).into();
    let mut putters = JoinSet::new();
    for c in 0..ctx.global.clients {
        let putter = Putter {
            kv: KvClient::new(ctx.pool.channel(c)),
            keys: Arc::clone(&keys),
            shared: Arc::clone(&shared),
            value_tail: Arc::clone(&value_tail),
            rec: puts.recorder(),
            timeout: ctx.global.request_timeout,
            prefix: o.prefix,
        };
        putters.spawn(putter.run(Arc::clone(&work)));
    }
    join_all(&mut putters).await;
    let puts_end_ns = shared.now_ns();

    // 3. Wait for the events still in flight, then stop the streams.
    let expected: Vec<u64> = shared
        .acked_per_key
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .collect();
    let expected_total: u64 = (0..o.watchers).map(|w| expected[w % o.watched_keys]).sum();
    drain(&shared, expected_total, o.drain_timeout).await;
    let _ = shutdown.send(true);
    let outcomes = join_all(&mut streams).await;
    progress.finish();

    // 4. Tally.
    let (put_errors, put_latency) = {
        let p = puts.lock();
        (p.error_count(), p.latency())
    };
    let write_to_event_latency = write_to_event.lock().latency();
    let mut summary = WatchSummary {
        watchers: o.watchers,
        streams: o.streams,
        watched_keys: o.watched_keys,
        puts: expected.iter().sum(),
        put_errors,
        events_expected: expected_total,
        events_received: 0,
        missing: 0,
        duplicates: 0,
        out_of_order: 0,
        unexpected: 0,
        stream_errors: 0,
        all_delivered_once_in_order: false,
        put_latency,
        write_to_event_latency,
    };
    for outcome in &outcomes {
        outcome.add_to(&mut summary, &expected);
    }
    summary.all_delivered_once_in_order = summary.missing == 0
        && summary.duplicates == 0
        && summary.out_of_order == 0
        && summary.unexpected == 0
        && summary.stream_errors == 0;

    let end_ns = puts_end_ns.max(shared.last_event_ns.load(Ordering::Relaxed));
    let elapsed = Duration::from_nanos(end_ns.saturating_sub(put_start_ns));
    let params = json!({
        "watchers": o.watchers,
        "streams": o.streams,
        "watched_keys": o.watched_keys,
        "puts": o.puts,
        "put_rate": o.put_rate,
        "key_size": o.key_size,
        "val_size": o.val_size,
        "prefix": o.prefix,
    });
    let mut report = ctx.report("watch", params, &delivery, elapsed);
    // Errors of the run: failed puts and broken watch streams, with their messages.
    report.errors += put_errors;
    let mut messages = puts.lock().error_messages();
    messages.append(&mut report.error_messages);
    report.error_messages = messages;
    report.watch = Some(summary);
    Ok(report)
}

pub(crate) fn validate(o: &WatchOpts, global: &GlobalOpts) -> Result<(), BenchError> {
    let bad = |m: &str| Err(BenchError::Config(m.into()));
    if global.total.is_some() {
        return bad("watch counts puts with --puts, not --total");
    }
    if o.watchers == 0 || o.streams == 0 || o.watched_keys == 0 || o.puts == 0 {
        return bad("--watchers, --streams, --watched-keys and --puts must be at least 1");
    }
    if o.streams > o.watchers {
        return bad(
            "--streams must not exceed --watchers (a stream without watchers measures nothing)",
        );
    }
    if o.val_size < SEQ_BYTES {
        return bad("--val-size must be at least 8: values carry the put's sequence number");
    }
    let digits = (o.watched_keys - 1).to_string().len();
    if o.key_size < digits {
        return Err(BenchError::Config(format!(
            "--key-size {} is too small for --watched-keys {} (needs {digits})",
            o.key_size, o.watched_keys
        )));
    }
    Ok(())
}

/// Key number `k` as zero-padded decimal digits, readable in `etcdctl get`.
fn watch_key(k: usize, size: usize) -> Vec<u8> {
    format!("{k:0size$}").into_bytes()
}

/// Events the watchers receive if every put succeeds (the progress bar's length).
fn events_if_all_succeed(o: &WatchOpts) -> u64 {
    let k = o.watched_keys as u64;
    let w = o.watchers as u64;
    (0..k)
        .map(|key| {
            let puts = o.puts / k + u64::from(key < o.puts % k);
            let watchers = w / k + u64::from(key < w % k);
            puts * watchers
        })
        .sum()
}

async fn await_ready(
    readiness: Vec<oneshot::Receiver<Result<(), String>>>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    for ready in readiness {
        match tokio::time::timeout_at(deadline, ready).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(why))) => return Err(why),
            Ok(Err(_)) => {
                return Err("a watch stream task ended before its watchers were created".into())
            }
            Err(_) => return Err(format!("watchers not created within {timeout:?}")),
        }
    }
    Ok(())
}

/// Waits until `expected` events arrived or none arrived for `stall`.
async fn drain(shared: &Shared, expected: u64, stall: Duration) {
    let mut last = shared.received.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    loop {
        let now = shared.received.load(Ordering::Relaxed);
        if now >= expected {
            return;
        }
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() >= stall {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn opts(args: &[&str]) -> WatchOpts {
        let mut argv = vec!["ballast-bench", "watch"];
        argv.extend_from_slice(args);
        match crate::cli::Cli::try_parse_from(argv)
            .expect("parse")
            .command
        {
            crate::cli::Command::Watch(o) => o,
            _ => unreachable!("parsed a watch command"),
        }
    }

    #[test]
    fn expected_events_count_watchers_per_key() {
        // 3 keys; puts 0..10 go to keys 0,1,2,0,1,2,...: 4,3,3 puts.
        // 5 watchers on keys 0,1,2,0,1: 2,2,1 watchers.
        let o = opts(&["--watchers", "5", "--watched-keys", "3", "--puts", "10"]);
        assert_eq!(events_if_all_succeed(&o), 4 * 2 + 3 * 2 + 3);
    }

    #[test]
    fn watch_keys_are_padded_numbers() {
        assert_eq!(watch_key(7, 4), b"0007");
        assert_eq!(watch_key(12345, 2), b"12345");
    }
}
