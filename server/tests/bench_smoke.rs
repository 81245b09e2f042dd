//! Smoke run of the benchmark tool (`ballast-bench`, issue 4) against the real
//! server binary: every workload with small counts, asserting on what was
//! counted (requests, errors, delivered events), never on timing.
//!
//! Why it lives here and not in `bench/`: only tests of the `ballast` package
//! get `CARGO_BIN_EXE_ballast`, i.e. a server binary cargo guarantees is built
//! and current. So the server's tests depend on the `ballast-bench` library
//! (a dev-dependency) and call it in-process with the same argument lists the
//! binary parses; `bench/tests/cli.rs` covers the binary's own exit codes.
//!
//! Like the etcdctl suites this runs against real etcd with
//! `BALLAST_TEST_SERVER=etcd`.

mod common;

use ballast_bench::{BenchError, Cli, Report};
use common::{free_port, TestServer};

/// Runs one benchmark against `url` on a fresh runtime.
fn bench(url: &str, args: &[&str]) -> Result<Report, BenchError> {
    let mut argv = vec!["--endpoints", url, "--request-timeout", "10s"];
    argv.extend_from_slice(args);
    let cli = Cli::from_args(&argv).unwrap_or_else(|e| panic!("bad arguments {argv:?}: {e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(ballast_bench::run(&cli, false))
}

/// Runs a benchmark that must complete, and checks what every report must hold.
fn bench_ok(url: &str, args: &[&str]) -> Report {
    let report = bench(url, args).unwrap_or_else(|e| panic!("benchmark {args:?} failed: {e}"));
    assert_eq!(
        report.errors, 0,
        "{args:?} reported errors: {:?}",
        report.error_messages
    );
    if report.requests > 0 {
        assert!(report.latency.is_some(), "{args:?}: no latency summary");
    }
    let in_histogram: u64 = report.histogram.iter().map(|b| b.count).sum();
    assert_eq!(
        in_histogram, report.requests,
        "{args:?}: histogram rows must add up to the requests"
    );
    // The JSON a runner reads has the same counts.
    let json = serde_json::to_value(&report).expect("report serializes");
    assert_eq!(json["schema"], ballast_bench::report::SCHEMA);
    assert_eq!(json["requests"], report.requests);
    report
}

#[test]
fn unary_workloads_count_every_request() {
    let server = TestServer::start();
    let url = server.client_url();

    let put = bench_ok(
        &url,
        &[
            "put",
            "--total",
            "200",
            "--clients",
            "8",
            "--conns",
            "2",
            "--key-space-size",
            "50",
            "--sequential-keys",
            "--val-size",
            "256",
        ],
    );
    assert_eq!(put.requests, 200);
    assert_eq!(put.workload, "put");
    assert_eq!((put.conns, put.clients), (2, 8));

    // "\0".."\0" is etcd's "every key" range; the put keys are binary varints.
    for consistency in ["l", "s"] {
        let range = bench_ok(
            &url,
            &[
                "range",
                "\0",
                "\0",
                "--consistency",
                consistency,
                "--limit",
                "10",
                "--total",
                "100",
                "--clients",
                "4",
            ],
        );
        assert_eq!(range.requests, 100, "range --consistency {consistency}");
        assert_eq!(range.params["consistency"], consistency);
    }

    let txn = bench_ok(
        &url,
        &[
            "txn-put",
            "--total",
            "50",
            "--clients",
            "4",
            "--txn-ops",
            "3",
            "--key-space-size",
            "10",
        ],
    );
    assert_eq!(txn.requests, 50);

    let lease = bench_ok(
        &url,
        &["lease-keepalive", "--total", "100", "--clients", "4"],
    );
    assert_eq!(lease.requests, 100);

    // --duration alone: the run ends by itself; only that it did work is checked.
    let timed = bench_ok(&url, &["put", "--duration", "300ms", "--clients", "2"]);
    assert!(timed.requests > 0, "a 300 ms put run completed no request");
}

#[test]
fn watch_delivers_every_event_once_in_order() {
    let server = TestServer::start();
    let url = server.client_url();
    let cases: [(&[&str], u64, u64); 2] = [
        // 6 watchers on 2 keys (3 each), 20 puts (10 per key): 60 events.
        (
            &[
                "--watchers",
                "6",
                "--streams",
                "2",
                "--watched-keys",
                "2",
                "--puts",
                "20",
                "--put-rate",
                "0",
                "--clients",
                "2",
            ],
            20,
            60,
        ),
        // Fan-out: 40 watchers on one key over 4 streams and 2 connections, 25 paced puts.
        (
            &[
                "--watchers",
                "40",
                "--streams",
                "4",
                "--conns",
                "2",
                "--puts",
                "25",
                "--put-rate",
                "500",
            ],
            25,
            1000,
        ),
    ];
    for (flags, puts, events) in cases {
        let mut args = vec!["watch", "--drain-timeout", "5s"];
        args.extend_from_slice(flags);
        let report = bench_ok(&url, &args);
        let w = report.watch.as_ref().expect("watch summary");
        assert_eq!(w.puts, puts, "{args:?}");
        assert_eq!(w.events_expected, events, "{args:?}");
        assert_eq!(w.events_received, events, "{args:?}: {w:?}");
        assert_eq!(
            (
                w.missing,
                w.duplicates,
                w.out_of_order,
                w.unexpected,
                w.stream_errors
            ),
            (0, 0, 0, 0, 0),
            "{args:?}: {w:?}"
        );
        assert!(w.all_delivered_once_in_order, "{args:?}: {w:?}");
        assert_eq!(report.requests, events);
    }
}

/// The Kubernetes-shaped workloads (issue 15): each run small, each checked by
/// what it counted and by reading the server's state back with etcdctl.
#[test]
fn kubernetes_shaped_workloads_count_what_they_did() {
    let server = TestServer::start();
    let url = server.client_url();

    // Paginated list: 1234 keys in pages of 100 is 13 pages; a list that does
    // not return exactly 1234 keys (a page lost or repeated) is an error.
    let list = bench_ok(
        &url,
        &[
            "list",
            "/smoke/pods/",
            "--keys",
            "1234",
            "--page-size",
            "100",
            "--val-size",
            "64",
            "--total",
            "6",
            "--clients",
            "2",
        ],
    );
    assert_eq!(list.requests, 6);
    let details = list.details.as_ref().expect("list details");
    assert_eq!(details["pages_per_list"], 13);
    let stored = server.etcdctl_json(&["get", "/smoke/pods/", "--prefix", "--limit", "1"]);
    assert_eq!(stored["count"], 1234, "{stored}");

    // Prefix watches: 20 watchers on 4 prefixes (5 each), 40 puts of new keys
    // (10 per prefix): 200 events, none lost, duplicated or reordered.
    let watch = bench_ok(
        &url,
        &[
            "watch",
            "--prefix",
            "--watchers",
            "20",
            "--streams",
            "4",
            "--watched-keys",
            "4",
            "--puts",
            "40",
            "--put-rate",
            "0",
            "--clients",
            "4",
            "--drain-timeout",
            "5s",
        ],
    );
    let w = watch.watch.as_ref().expect("watch summary");
    assert_eq!(
        (w.puts, w.events_expected, w.events_received),
        (40, 200, 200),
        "{w:?}"
    );
    assert_eq!(
        (
            w.missing,
            w.duplicates,
            w.out_of_order,
            w.unexpected,
            w.stream_errors
        ),
        (0, 0, 0, 0, 0),
        "{w:?}"
    );
    assert!(w.all_delivered_once_in_order, "{w:?}");
    // Each put created a new key under its prefix (the prefixes are
    // zero-padded numbers, so all start with "0").
    let created = server.etcdctl_json(&["get", "0", "--prefix", "--limit", "1"]);
    assert_eq!(created["count"], 40, "{created}");

    // Short leases with keys: every lease expires and takes its key along.
    let leases = bench_ok(
        &url,
        &[
            "lease-keys",
            "--prefix",
            "/smoke/events/",
            "--ttl",
            "2",
            "--total",
            "40",
            "--clients",
            "4",
            "--expiry-wait",
            "30s",
        ],
    );
    assert_eq!(leases.requests, 40);
    let d = leases.details.as_ref().expect("lease-keys details");
    assert_eq!(d["leases_with_keys"], 40, "{d}");
    assert_eq!(d["expiry"]["keys_left"], 0, "{d}");
    assert_eq!(d["expiry"]["all_expired"], true, "{d}");
    let left = server.etcdctl_json(&["get", "/smoke/events/", "--prefix", "--limit", "1"]);
    // etcdctl's JSON omits a zero count; with --limit 1 the count is still the total.
    assert_eq!(left["count"].as_i64().unwrap_or(0), 0, "{left}");

    // Guarded updates on 5 keys from 8 clients: conflicts happen, no update is
    // lost. Each key's version is 1 (seeded) + its successful updates.
    let updates = bench_ok(
        &url,
        &[
            "guarded-update",
            "--prefix",
            "/smoke/cm/",
            "--key-space-size",
            "5",
            "--total",
            "200",
            "--clients",
            "8",
        ],
    );
    assert_eq!(updates.requests, 200);
    let kvs = server.etcdctl_json(&["get", "/smoke/cm/", "--prefix"]);
    let kvs = kvs["kvs"].as_array().expect("kvs");
    assert_eq!(kvs.len(), 5);
    let updated: i64 = kvs
        .iter()
        .map(|kv| kv["version"].as_i64().expect("version") - 1)
        .sum();
    assert_eq!(
        updated, 200,
        "sum of versions-1 must be the successful updates: {kvs:?}"
    );
    let d = updates.details.as_ref().expect("guarded-update details");
    assert!(d["conflicts"].is_u64(), "{d}");
}

#[test]
fn unreachable_endpoint_is_fatal() {
    // Nothing listens on a port we just probed free.
    let url = format!("http://127.0.0.1:{}", free_port());
    match bench(&url, &["--dial-timeout", "1s", "put", "--total", "1"]) {
        Err(BenchError::Unreachable(message)) => {
            assert!(message.contains("no endpoint reachable"), "{message}");
            assert!(message.contains(&url), "{message}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}
