//! etcd's probe endpoints `/livez` and `/readyz` (etcd 3.5.11 on) and Go's 404 for
//! paths nothing serves, on the client port and `--listen-metrics-urls`, compared
//! with real etcd 3.6 (`BALLAST_TEST_SERVER=etcd36`). Ballast emulates etcd 3.5.17 by
//! default, whose `/readyz` has no `non_learner` check yet; everything else is
//! byte for byte etcd 3.6's answer. etcd 3.4 (`BALLAST_TEST_SERVER=etcd`) has no
//! probes, which the tests check too.
//!
//! etcd keeps its checks in a Go map, so the order of a verbose listing varies
//! from request to request; the listings are compared as sets of lines.

// Shared with other suites; this one uses part of it.
#[allow(dead_code)]
mod cluster_support;
mod common;
mod metrics_support;

use std::process::Command;
use std::time::Duration;

use common::{free_port, server, wait_until, Server, TestServer};
use etcd_client::{AlarmAction, AlarmOptions, AlarmType, Client};
use metrics_support::{must_get, HttpResponse};

fn port(s: &TestServer) -> u16 {
    let url = s.client_url();
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("client URL ends with a port")
}

/// The checks `/readyz` lists on the server under test (`/livez`: only
/// `serializable_read`); None for etcd 3.4, which has no probes.
fn readyz_checks() -> Option<&'static [&'static str]> {
    match server() {
        Server::Etcd34 => None,
        Server::Ballast => Some(&["data_corruption", "serializable_read", "linearizable_read"]),
        Server::Etcd36 => Some(&[
            "data_corruption",
            "serializable_read",
            "linearizable_read",
            "non_learner",
        ]),
    }
}

/// A verbose listing with every check passing, then `ok`, in etcd's form.
fn all_ok(checks: &[&str]) -> String {
    let mut s: String = checks.iter().map(|c| format!("[+]{c} ok\n")).collect();
    s.push_str("ok\n");
    s
}

/// The body with its check lines sorted (the order is random in etcd).
fn normalized(body: &str) -> Vec<String> {
    let mut checks: Vec<String> = body
        .lines()
        .filter(|l| l.starts_with("[+]") || l.starts_with("[-]"))
        .map(str::to_string)
        .collect();
    checks.sort();
    let rest: Vec<String> = body
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("[+]") && !l.starts_with("[-]"))
        .map(str::to_string)
        .collect();
    checks.extend(rest);
    checks
}

/// Asserts status, body (check lines in any order) and etcd's plain-text headers.
fn assert_probe(r: &HttpResponse, path: &str, status: u16, body: &str) {
    assert_eq!(
        (r.status, normalized(&r.body)),
        (status, normalized(body)),
        "GET {path}: {:?}",
        r.body
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/plain; charset=utf-8"),
        "{path}"
    );
    assert_eq!(
        r.header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{path}"
    );
}

/// Go's `http.NotFound`.
fn assert_go_404(r: &HttpResponse, what: &str) {
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "404 page not found\n"),
        "{what}"
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/plain; charset=utf-8"),
        "{what}"
    );
}

/// A raw HTTP/1.1 request with another method than GET.
fn request(port: u16, method: &str, path: &str) -> HttpResponse {
    request_with_body(port, method, path, "")
}

fn request_with_body(port: u16, method: &str, path: &str, body: &str) -> HttpResponse {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read response");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    HttpResponse {
        status: status_line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        headers: headers.replace("\r\n", "\n"),
        body: body.to_string(),
    }
}

/// The probes every etcd release with them answers the same way on a healthy
/// single member, on `port`.
fn assert_healthy_probes(port: u16, readyz: &[&str]) {
    for path in ["/livez", "/readyz", "/livez/serializable_read"] {
        assert_probe(&must_get(port, path), path, 200, "ok\n");
    }
    assert_probe(
        &must_get(port, "/livez?verbose"),
        "/livez?verbose",
        200,
        &all_ok(&["serializable_read"]),
    );
    assert_probe(
        &must_get(port, "/readyz?verbose"),
        "/readyz?verbose",
        200,
        &all_ok(readyz),
    );
    // Each check has a path of its own, where `verbose` lists just that one.
    for check in readyz {
        let path = format!("/readyz/{check}?verbose");
        assert_probe(&must_get(port, &path), &path, 200, &all_ok(&[check]));
    }
    // `exclude` drops checks; excluding one that does not exist is no error.
    let path = "/readyz?verbose&exclude=linearizable_read&exclude=no_such_check";
    let rest: Vec<&str> = readyz
        .iter()
        .copied()
        .filter(|c| *c != "linearizable_read")
        .collect();
    assert_probe(&must_get(port, path), path, 200, &all_ok(&rest));
}

#[test]
fn probes_answer_ok_and_list_their_checks() {
    let s = TestServer::start();
    let p = port(&s);
    let Some(readyz) = readyz_checks() else {
        for path in ["/livez", "/readyz"] {
            assert_go_404(&must_get(p, path), "etcd 3.4 has no probes");
        }
        return;
    };
    assert_healthy_probes(p, readyz);
    // Only the exact paths: Go's ServeMux patterns without a trailing slash.
    for path in ["/livez/", "/readyz/nope", "/livez/linearizable_read"] {
        assert_go_404(&must_get(p, path), path);
    }
    // GET only, not even HEAD, as for /health.
    for (method, path) in [
        ("POST", "/livez"),
        ("HEAD", "/readyz"),
        ("PUT", "/readyz/data_corruption"),
        ("POST", "/health"),
    ] {
        let r = request(p, method, path);
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("allow").as_deref(), Some("GET"), "{method} {path}");
        if method != "HEAD" {
            assert_eq!(r.body, "Method Not Allowed\n", "{method} {path}");
        }
    }
}

#[test]
fn listen_metrics_urls_serve_the_probes_and_404_elsewhere() {
    let mp = free_port();
    let url = format!("http://127.0.0.1:{mp}");
    let _s = TestServer::start_with(&["--listen-metrics-urls", &url]);
    assert_go_404(&must_get(mp, "/nonexistent"), "metrics port: /nonexistent");
    assert_go_404(&must_get(mp, "/version"), "metrics port: /version");
    match readyz_checks() {
        Some(readyz) => assert_healthy_probes(mp, readyz),
        None => assert_go_404(&must_get(mp, "/livez"), "etcd 3.4 has no probes"),
    }
}

async fn connect(s: &TestServer) -> Client {
    Client::connect([s.client_url()], None)
        .await
        .expect("connect with etcd-client")
}

/// Puts 64 KiB values until the quota refuses one, which raises NOSPACE.
async fn fill_quota(c: &Client) -> usize {
    let mut kv = c.kv_client();
    let value = vec![b'q'; 64 * 1024];
    for written in 0..200 {
        match kv.put(format!("q/{written:04}"), value.clone(), None).await {
            Ok(_) => {}
            Err(e) => {
                assert!(
                    e.to_string().contains("database space exceeded"),
                    "put {written} failed otherwise: {e}"
                );
                return written;
            }
        }
    }
    panic!("200 x 64 KiB fit a 2 MiB quota");
}

#[tokio::test]
async fn nospace_fails_health_but_neither_livez_nor_readyz() {
    let quota = (2 * 1024 * 1024).to_string();
    let s = TestServer::start_with(&["--quota-backend-bytes", &quota]);
    let p = port(&s);
    let c = connect(&s).await;
    let written = fill_quota(&c).await;
    assert!(written >= 1, "the first put already failed");
    wait_until("/health to report NOSPACE", Duration::from_secs(10), || {
        must_get(p, "/health").status == 503
    });
    let h = must_get(p, "/health");
    let Some(readyz) = readyz_checks() else {
        assert_eq!(h.body.trim_end(), r#"{"health":"false"}"#);
        return;
    };
    assert_eq!(
        h.body,
        "{\"health\":\"false\",\"reason\":\"ALARM NOSPACE\"}\n"
    );
    // NOSPACE still lets the member read: it is alive and ready.
    assert_healthy_probes(p, readyz);
}

#[tokio::test]
async fn corrupt_alarm_fails_readyz_until_excluded_or_disarmed() {
    let s = TestServer::start();
    let p = port(&s);
    let Some(readyz) = readyz_checks() else {
        return;
    };
    let c = connect(&s).await;
    let member = u64::from_str_radix(&s.member_id_hex(), 16).expect("member id");
    let mut opts = AlarmOptions::new();
    opts.with_member(member);
    let mut m = c.maintenance_client();
    m.alarm(
        AlarmAction::Activate,
        AlarmType::Corrupt,
        Some(opts.clone()),
    )
    .await
    .expect("activate CORRUPT");

    // A failure always lists every check run, then Go's http.Error adds a newline.
    let failed = "[-]data_corruption failed: alarm activated: CORRUPT\n";
    let mut listing: String = readyz
        .iter()
        .filter(|c| **c != "data_corruption")
        .map(|c| format!("[+]{c} ok\n"))
        .collect();
    listing.push_str(failed);
    for path in ["/readyz", "/readyz?verbose"] {
        assert_probe(&must_get(p, path), path, 503, &(listing.clone() + "\n"));
    }
    let path = "/readyz/data_corruption";
    assert_probe(&must_get(p, path), path, 503, &format!("{failed}\n"));
    // The per-check path ignores `exclude`; the root path honours it.
    let path = "/readyz/data_corruption?exclude=data_corruption";
    assert_eq!(must_get(p, path).status, 503, "{path}");
    let path = "/readyz?exclude=data_corruption";
    assert_probe(&must_get(p, path), path, 200, "ok\n");
    // Liveness does not look at alarms.
    assert_probe(&must_get(p, "/livez"), "/livez", 200, "ok\n");
    let h = must_get(p, "/health");
    assert_eq!(
        (h.status, h.body.as_str()),
        (503, "{\"health\":\"false\",\"reason\":\"ALARM CORRUPT\"}\n")
    );

    m.alarm(AlarmAction::Deactivate, AlarmType::Corrupt, Some(opts))
        .await
        .expect("deactivate CORRUPT");
    assert_probe(&must_get(p, "/readyz"), "/readyz", 200, "ok\n");
}

/// The response headers of a raw gRPC call made with curl over h2c.
fn curl_grpc(url: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "-S",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--http2-prior-knowledge",
            "-X",
            "POST",
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "--data-binary",
            "",
            url,
        ])
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_lowercase()
}

#[tokio::test]
async fn unknown_paths_get_go_404_and_grpc_keeps_working() {
    let s = TestServer::start();
    let p = port(&s);
    for path in ["/nonexistent", "/", "/etcdserverpb.KV/Range", "/v2/keys"] {
        assert_go_404(&must_get(p, path), path);
    }
    let r = request(p, "POST", "/nonexistent");
    assert_go_404(&r, "POST /nonexistent");
    // The gateway's own answer for a /v3/ path no RPC is mapped to (its text
    // depends on the grpc-gateway generation, see gateway.rs).
    let r = must_get(p, "/v3/nonexistent");
    assert_eq!(r.status, 404, "{}", r.body);
    assert_ne!(r.body, "404 page not found\n", "the gateway answers /v3/");
    // And its routes still work.
    let r = request_with_body(p, "POST", "/v3/maintenance/status", "{}");
    assert_eq!(r.status, 200, "{}", r.body);

    // gRPC: etcdctl and etcd-client are served, an unknown method is gRPC's
    // Unimplemented (code 12) in a 200, as grpc-go answers.
    s.put("k", "v");
    let c = connect(&s).await;
    let got = c.kv_client().get("k", None).await.expect("get over gRPC");
    assert_eq!(got.kvs().first().map(|kv| kv.value()), Some(&b"v"[..]));
    let headers = curl_grpc(&format!("{}/foo.Bar/Baz", s.client_url()));
    assert!(headers.starts_with("http/2 200"), "{headers}");
    assert!(headers.contains("grpc-status: 12"), "{headers}");
}

/// The probes follow `--emulated-etcd-version`: none before etcd 3.5.11, and
/// `/readyz` checks `non_learner` from 3.6, listing exactly what etcd 3.6.16 does.
#[test]
fn ballast_probes_follow_the_emulated_release() {
    if server() != Server::Ballast {
        return;
    }
    let s = TestServer::start_with(&["--emulated-etcd-version", "3.6.16"]);
    let checks = [
        "data_corruption",
        "serializable_read",
        "linearizable_read",
        "non_learner",
    ];
    assert_healthy_probes(port(&s), &checks);
    // Ballast's order is fixed: the order etcd registers them in.
    assert_eq!(must_get(port(&s), "/readyz?verbose").body, all_ok(&checks));
    drop(s);

    let s = TestServer::start_with(&["--emulated-etcd-version", "3.5.10"]);
    for path in ["/livez", "/readyz", "/readyz/data_corruption"] {
        assert_go_404(&must_get(port(&s), path), path);
    }
    assert_eq!(must_get(port(&s), "/health").status, 200);
}

/// Without quorum a member is alive but not ready: `/livez` stays ok (a
/// Kubernetes liveness probe must not restart it), while `/readyz`'s
/// linearizable read fails. Ballast only: the cluster harness runs Ballast.
///
/// One difference from etcd remains, in Ballast's read path rather than in the
/// probes: etcd 3.5/3.6 keeps asking for a read index until its request timeout
/// (7 s) and then fails with `etcdserver: request timed out` (etcd 3.6.16 on a
/// two-member cluster that lost a member), while Ballast's raft node refuses a
/// read index at once when it knows no leader (`etcdserver: no leader`), as it
/// does for gRPC reads.
#[test]
fn without_quorum_livez_stays_ok_and_readyz_fails_its_linearizable_read() {
    use cluster_support::{initial_cluster, one_at_a_time, wait_for, Node};
    if server() != Server::Ballast {
        return;
    }
    let _one = one_at_a_time();
    let root = tempfile::tempdir().expect("temp dir");
    let mut nodes = [Node::new("a", root.path()), Node::new("b", root.path())];
    let ic = initial_cluster(&nodes.iter().collect::<Vec<_>>());
    for n in &mut nodes {
        n.start(&ic, "new");
    }
    for n in &nodes {
        wait_for(&format!("{} healthy", n.name), || n.healthy());
    }
    let p = nodes[0].client_port;
    assert_probe(&must_get(p, "/readyz"), "/readyz", 200, "ok\n");

    nodes[1].kill9();
    wait_for("the survivor to lose its leader", || {
        must_get(p, "/health").body == "{\"health\":\"false\",\"reason\":\"RAFT NO LEADER\"}\n"
    });
    assert_probe(&must_get(p, "/livez"), "/livez", 200, "ok\n");
    let failed = "[-]linearizable_read failed: etcdserver: no leader\n";
    let expected = format!("[+]data_corruption ok\n[+]serializable_read ok\n{failed}\n");
    assert_probe(&must_get(p, "/readyz"), "/readyz", 503, &expected);
    // Excluding the read that needs a quorum leaves the member ready.
    let path = "/readyz?exclude=linearizable_read";
    assert_probe(&must_get(p, path), path, 200, "ok\n");
}

/// A learner is alive and, for etcd 3.5, ready: its reads work (the leader
/// confirms the read index). etcd 3.6 adds `non_learner`, which it fails.
/// Ballast only (the cluster harness runs Ballast); the texts are etcd 3.6's.
#[test]
fn a_learner_is_ready_until_etcd_3_6_which_checks_non_learner() {
    use cluster_support::{ctl_reconfig, initial_cluster, one_at_a_time, wait_for, Node};
    if server() != Server::Ballast {
        return;
    }
    let _one = one_at_a_time();
    let root = tempfile::tempdir().expect("temp dir");
    for (release, readyz_status, readyz_body) in [
        (
            "3.5.17",
            200,
            all_ok(&["data_corruption", "serializable_read", "linearizable_read"]),
        ),
        (
            "3.6.16",
            503,
            "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n\
             [-]non_learner failed: not supported for learner\n\n"
                .to_string(),
        ),
    ] {
        let flags = ["--emulated-etcd-version", release];
        let mut a = Node::new(&format!("a{}", &release[2..3]), root.path());
        a.start_with(&initial_cluster(&[&a]), "new", &flags);
        wait_for(&format!("{} healthy", a.name), || a.healthy());
        let mut b = Node::new(&format!("b{}", &release[2..3]), root.path());
        let out = ctl_reconfig(
            &a.client_url(),
            &[
                "member",
                "add",
                &b.name,
                "--learner",
                &format!("--peer-urls={}", b.peer_url()),
            ],
        );
        assert!(out.contains("added to cluster"), "member add:\n{out}");
        b.start_with(&initial_cluster(&[&a, &b]), "existing", &flags);
        wait_for(&format!("learner {} healthy", b.name), || b.healthy());
        let p = b.client_port;
        assert_probe(&must_get(p, "/livez"), "/livez", 200, "ok\n");
        let path = "/readyz?verbose";
        assert_probe(&must_get(p, path), path, readyz_status, &readyz_body);
        // The voting member is ready in both releases.
        assert_eq!(must_get(a.client_port, "/readyz").status, 200, "{release}");
    }
}
