//! Observability on one member: `/metrics` carries etcd's metric names,
//! types and labels with sensible values, gRPC calls are counted with their
//! final status, `/health` follows etcd 3.5, and `--listen-metrics-urls`
//! serves both. Runs against real etcd too (`BALLAST_TEST_SERVER=etcd`),
//! where etcd 3.4's differences are noted.
//! Multi-member behaviour is in `metrics_cluster.rs`.

mod common;
mod metrics_support;

use std::time::Duration;

use common::{free_port, server_kind, ServerKind, TestServer};
use etcd_client::{AlarmAction, AlarmOptions, AlarmType, Client};
use metrics_support::{must_get, scrape, Scrape, SEED_004_ANY_MEMBER};

/// The reference's metric list, with etcd's TYPE for each.
const REFERENCE: &[(&str, &str)] = &[
    ("etcd_server_has_leader", "gauge"),
    ("etcd_server_is_leader", "gauge"),
    ("etcd_server_leader_changes_seen_total", "counter"),
    ("etcd_server_proposals_committed_total", "gauge"),
    ("etcd_server_proposals_applied_total", "gauge"),
    ("etcd_server_proposals_pending", "gauge"),
    ("etcd_server_proposals_failed_total", "counter"),
    ("etcd_mvcc_db_total_size_in_bytes", "gauge"),
    ("etcd_mvcc_db_total_size_in_use_in_bytes", "gauge"),
    ("etcd_server_quota_backend_bytes", "gauge"),
    ("etcd_disk_wal_fsync_duration_seconds", "histogram"),
    ("etcd_disk_backend_commit_duration_seconds", "histogram"),
    ("etcd_server_id", "gauge"),
    ("etcd_server_version", "gauge"),
    ("etcd_debugging_mvcc_keys_total", "gauge"),
    ("etcd_mvcc_put_total", "counter"),
    ("etcd_mvcc_delete_total", "counter"),
    ("etcd_mvcc_range_total", "counter"),
    ("etcd_mvcc_txn_total", "counter"),
    ("grpc_server_started_total", "counter"),
    ("grpc_server_handled_total", "counter"),
    // Beyond the reference, as etcd exposes them.
    ("etcd_server_is_learner", "gauge"),
    ("etcd_server_health_success", "counter"),
    ("etcd_server_health_failures", "counter"),
    ("etcd_debugging_mvcc_db_total_size_in_bytes", "gauge"),
    ("etcd_network_client_grpc_received_bytes_total", "counter"),
    ("etcd_network_client_grpc_sent_bytes_total", "counter"),
    ("etcd_cluster_version", "gauge"),
    ("etcd_debugging_mvcc_current_revision", "gauge"),
    ("etcd_debugging_mvcc_compact_revision", "gauge"),
    ("process_cpu_seconds_total", "counter"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_virtual_memory_bytes", "gauge"),
    ("process_start_time_seconds", "gauge"),
    ("process_open_fds", "gauge"),
    ("process_max_fds", "gauge"),
    ("os_fd_used", "gauge"),
    ("os_fd_limit", "gauge"),
];

fn port(s: &TestServer) -> u16 {
    let url = s.client_url();
    url.rsplit(':').next().unwrap().parse().expect("port")
}

/// etcd 3.4's /health JSON has no `reason`; 3.5's (and Ballast's) does.
fn health_json(ok: bool, reason: &str) -> String {
    let h = if ok { "true" } else { "false" };
    match server_kind() {
        ServerKind::Ballast => format!(r#"{{"health":"{h}","reason":"{reason}"}}"#),
        ServerKind::Etcd => format!(r#"{{"health":"{h}"}}"#),
    }
}

fn grpc(m: &Scrape, family: &str, method: &str, code: Option<&str>) -> f64 {
    let mut labels = vec![("grpc_method", method)];
    labels.extend(code.map(|c| ("grpc_code", c)));
    m.find(family, &labels).iter().map(|s| s.value).sum()
}

/// Buckets are cumulative, carry `le`, and `+Inf` equals `_count`, so
/// `histogram_quantile` (seed 004) works on them.
fn assert_histogram(m: &Scrape, family: &str, labels: &[(&str, &str)]) -> f64 {
    let buckets = m.find(&format!("{family}_bucket"), labels);
    assert!(buckets.len() > 2, "{family} has buckets");
    let mut bounds: Vec<(f64, f64)> = buckets
        .iter()
        .map(|b| {
            let le = b.labels.get("le").expect("bucket has le");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("le")
            };
            (le, b.value)
        })
        .collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        bounds.windows(2).all(|w| w[0].1 <= w[1].1),
        "{family} cumulative"
    );
    let count = m.must(&format!("{family}_count"), labels);
    assert_eq!(
        bounds.last().unwrap(),
        &(f64::INFINITY, count),
        "{family} +Inf"
    );
    assert!(m.must(&format!("{family}_sum"), labels) >= 0.0);
    count
}

#[test]
fn every_reference_metric_has_etcds_type_and_a_sensible_value() {
    let s = TestServer::start();
    for i in 0..5 {
        s.put(&format!("k{i}"), "v");
    }
    s.etcdctl_ok(&["del", "k0"]);
    assert_eq!(s.etcdctl_ok(&["get", "k1", "--print-value-only"]), "v\n");
    let future = s.etcdctl(&["get", "k1", "--rev", "1000"]);
    assert!(future.err_line().contains("future revision"));

    let m = scrape(port(&s));
    assert!(!m.text.contains("# EOF"), "classic format has no EOF");
    for (name, kind) in REFERENCE {
        assert_eq!(m.kind(name), Some(*kind), "TYPE of {name}");
        let series = [name.to_string(), format!("{name}_count")];
        assert!(
            m.samples.iter().any(|s| series.contains(&s.name)),
            "{name} has a sample"
        );
    }
    for name in SEED_004_ANY_MEMBER {
        assert!(!m.find(name, &[]).is_empty(), "seed 004 uses {name}");
    }

    assert_eq!(m.must("etcd_server_has_leader", &[]), 1.0);
    assert_eq!(m.must("etcd_server_is_leader", &[]), 1.0);
    assert_eq!(m.must("etcd_server_is_learner", &[]), 0.0);
    assert_eq!(m.must("etcd_server_leader_changes_seen_total", &[]), 1.0);
    let keys = m.must("etcd_debugging_mvcc_keys_total", &[]);
    assert_eq!(keys, 4.0, "live keys");
    let revision = m.must("etcd_debugging_mvcc_current_revision", &[]);
    assert_eq!(revision, s.revision() as f64);
    assert_eq!(m.must("etcd_debugging_mvcc_compact_revision", &[]), -1.0);
    assert!(m.must("process_resident_memory_bytes", &[]) > 0.0);
    assert!(m.must("process_open_fds", &[]) > 0.0);
    assert!(m.must("etcd_mvcc_put_total", &[]) >= 5.0);
    assert!(m.must("etcd_mvcc_delete_total", &[]) >= 1.0);
    assert!(m.must("etcd_mvcc_range_total", &[]) >= 1.0);
    let committed = m.must("etcd_server_proposals_committed_total", &[]);
    let applied = m.must("etcd_server_proposals_applied_total", &[]);
    assert!(committed >= 6.0 && applied >= 6.0 && applied <= committed);
    assert_eq!(m.must("etcd_server_proposals_pending", &[]), 0.0);
    let db = m.must("etcd_mvcc_db_total_size_in_bytes", &[]);
    let in_use = m.must("etcd_mvcc_db_total_size_in_use_in_bytes", &[]);
    assert!(
        db > 0.0 && in_use > 0.0 && in_use <= db,
        "db {db}, in use {in_use}"
    );
    assert_eq!(m.must("etcd_server_quota_backend_bytes", &[]), 2147483648.0);
    assert!(assert_histogram(&m, "etcd_disk_wal_fsync_duration_seconds", &[]) > 0.0);
    assert!(assert_histogram(&m, "etcd_disk_backend_commit_duration_seconds", &[]) > 0.0);
    let id = s.member_id_hex();
    assert_eq!(m.must("etcd_server_id", &[("server_id", &id)]), 1.0);
    let versions = m.find("etcd_server_version", &[]);
    assert_eq!(versions.len(), 1);
    assert!(versions[0].labels["server_version"].starts_with("3."));

    assert_eq!(grpc(&m, "grpc_server_started_total", "Put", None), 5.0);
    assert_eq!(
        grpc(&m, "grpc_server_handled_total", "Put", Some("OK")),
        5.0
    );
    let labels = [
        ("grpc_type", "unary"),
        ("grpc_service", "etcdserverpb.KV"),
        ("grpc_method", "Range"),
        ("grpc_code", "OutOfRange"),
    ];
    assert_eq!(m.must("grpc_server_handled_total", &labels), 1.0);
    // Counted at 0 before the first call, as etcd does.
    assert_eq!(grpc(&m, "grpc_server_started_total", "Compact", None), 0.0);
    assert_eq!(
        m.find("grpc_server_handled_total", &[("grpc_method", "Compact")])
            .len(),
        17
    );
    assert!(m.must("etcd_network_client_grpc_received_bytes_total", &[]) > 0.0);
    assert!(m.must("etcd_network_client_grpc_sent_bytes_total", &[]) > 0.0);
}

#[test]
fn streams_count_when_they_end() {
    let s = TestServer::start();
    let file = s.scratch_dir().join("snap.db");
    s.etcdctl_ok(&["snapshot", "save", file.to_str().unwrap()]);
    let snapshot = [
        ("grpc_type", "server_stream"),
        ("grpc_method", "Snapshot"),
        ("grpc_code", "OK"),
    ];
    assert_eq!(
        scrape(port(&s)).must("grpc_server_handled_total", &snapshot),
        1.0
    );

    let mut watch = s.spawn_etcdctl(&["watch", "w"]);
    common::sync_watch(&s, &mut watch, "w");
    let m = scrape(port(&s));
    assert_eq!(grpc(&m, "grpc_server_started_total", "Watch", None), 1.0);
    assert_eq!(grpc(&m, "grpc_server_handled_total", "Watch", None), 0.0);
    drop(watch); // kills etcdctl: the client goes away mid-stream
    common::wait_until(
        "the canceled watch to be counted",
        Duration::from_secs(10),
        || {
            let m = scrape(port(&s));
            grpc(&m, "grpc_server_handled_total", "Watch", Some("Canceled")) == 1.0
        },
    );
}

#[tokio::test]
async fn health_follows_alarms_and_exclude() {
    let s = TestServer::start();
    let p = port(&s);
    let ok = must_get(p, "/health");
    assert_eq!(
        (ok.status, ok.body.as_str()),
        (200, health_json(true, "").as_str())
    );

    let c = Client::connect([s.client_url()], None)
        .await
        .expect("connect");
    let member = u64::from_str_radix(&s.member_id_hex(), 16).expect("member id");
    let mut opts = AlarmOptions::new();
    opts.with_member(member);
    let mut m = c.maintenance_client();
    m.alarm(
        AlarmAction::Activate,
        AlarmType::Nospace,
        Some(opts.clone()),
    )
    .await
    .expect("activate NOSPACE");

    let failures_before = scrape(p).must("etcd_server_health_failures", &[]);
    for path in [
        "/health",
        "/health?serializable=true",
        "/health?exclude=CORRUPT",
    ] {
        let r = must_get(p, path);
        assert_eq!(r.status, 503, "{path}");
        assert_eq!(
            r.body.trim_end(),
            health_json(false, "ALARM NOSPACE"),
            "{path}"
        );
    }
    let excluded = must_get(p, "/health?exclude=NOSPACE");
    assert_eq!(excluded.status, 200, "{}", excluded.body);
    assert_eq!(excluded.body, health_json(true, ""));
    // etcd 3.4 only counts successes; 3.5 counts both.
    if server_kind() == ServerKind::Ballast {
        let failures = scrape(p).must("etcd_server_health_failures", &[]);
        assert_eq!(failures, failures_before + 3.0);
    }

    m.alarm(AlarmAction::Deactivate, AlarmType::Nospace, Some(opts))
        .await
        .expect("deactivate");
    assert_eq!(must_get(p, "/health").status, 200);
}

#[test]
fn listen_metrics_urls_serve_metrics_and_health() {
    let mp = free_port();
    let url = format!("http://127.0.0.1:{mp}");
    let s = TestServer::start_with(&["--listen-metrics-urls", &url]);
    let m = scrape(mp);
    assert_eq!(m.must("etcd_server_has_leader", &[]), 1.0);
    assert_eq!(
        m.must("etcd_server_id", &[("server_id", &s.member_id_hex())]),
        1.0
    );
    let h = must_get(mp, "/health");
    assert_eq!((h.status, h.body), (200, health_json(true, "")));
    assert_eq!(
        must_get(mp, "/version").status,
        404,
        "only /metrics and /health"
    );
}
