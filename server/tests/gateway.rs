//! etcd's gRPC JSON gateway (`POST /v3/...` on the client port), driven with
//! curl. Each test runs the same requests against the server under test
//! (Ballast, or etcd with `BALLAST_TEST_SERVER=etcd`) and against a real etcd
//! 3.4 started beside it, and compares the answers: HTTP status and JSON, with
//! the values that legitimately differ between two clusters (cluster and member
//! IDs, terms, sizes, hashes, URLs) masked. Revisions are compared: both
//! servers start empty and see the same writes. Each test also checks the facts
//! it is about on its own, so a fault both servers shared would still fail it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{b64, free_port, server_kind, wait_until, ServerKind, TestServer};
use serde_json::{json, Value};

/// How long a server may take to serve its first gateway request.
const READY: Duration = Duration::from_secs(20);
/// How long a watch may take to deliver a line.
const LINE: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// The reference etcd 3.4
// ---------------------------------------------------------------------------

/// A single-member etcd 3.4 on free loopback ports, killed when dropped.
struct Reference {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

fn etcd_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("BALLAST_TEST_ETCD_BIN") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("etcd"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"))
}

impl Reference {
    /// etcd 3.4 (Debian's, or `BALLAST_TEST_ETCD_BIN`).
    fn start() -> Reference {
        Reference::start_binary(etcd_binary())
    }

    fn start_binary(bin: PathBuf) -> Reference {
        let (client, peer) = (free_port(), free_port());
        let dir = tempfile::Builder::new()
            .prefix("ballast-gateway-ref-")
            .tempdir()
            .expect("temp dir for the reference etcd");
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(&bin)
            .args(["--name", "itest", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("itest={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the reference etcd {} ({e}); install Debian's etcd-server \
                     or set BALLAST_TEST_ETCD_BIN",
                    bin.display()
                )
            });
        let r = Reference {
            child,
            url,
            _dir: dir,
        };
        wait_ready(&r.url);
        r
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_ready(url: &str) {
    wait_until(&format!("{url} to serve the gateway"), READY, || {
        Command::new("curl")
            .args([
                "-sf",
                "-o",
                "/dev/null",
                "--max-time",
                "2",
                "-X",
                "POST",
                "-d",
                "{}",
            ])
            .arg(format!("{url}/v3/maintenance/status"))
            .status()
            .is_ok_and(|s| s.success())
    });
}

/// The server under test and a reference etcd, both ready.
fn both() -> (TestServer, Reference) {
    let subject = TestServer::start();
    wait_ready(&subject.client_url());
    (subject, Reference::start())
}

// ---------------------------------------------------------------------------
// curl
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {self:?}"))
    }
}

fn curl(method: &str, url: &str, path: &str, body: &str, headers: &[&str]) -> Reply {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "20",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    // The body goes through stdin: a command-line argument is limited to 128 KiB.
    if method == "POST" {
        cmd.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
        ]);
    }
    let mut child = cmd
        .arg(format!("{url}{path}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run curl (apt-get install curl)");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = body.as_bytes().to_vec();
    let writer = thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("wait for curl");
    writer
        .join()
        .expect("stdin writer")
        .expect("write the body to curl");
    assert!(
        out.status.success(),
        "curl {method} {path} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("curl output is UTF-8");
    let (body, status) = text.rsplit_once('\n').expect("curl printed the status");
    Reply {
        status: status.parse().expect("HTTP status"),
        body: body.to_string(),
    }
}

fn post(url: &str, path: &str, body: &str) -> Reply {
    curl("POST", url, path, body, &[])
}

/// A streaming POST read line by line as the server sends it.
struct Stream {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Stream {
    fn open(url: &str, path: &str, body: &str) -> Stream {
        let mut child = Command::new("curl")
            .args(["-sS", "-N", "-X", "POST", "--data-binary", body])
            .arg(format!("{url}{path}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run curl");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Stream { child, lines }
    }

    fn next(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(LINE)
            .unwrap_or_else(|_| panic!("no line within {LINE:?}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("line is not JSON ({e}): {line}"))
    }

    /// Whether a line arrives within `wait`.
    fn quiet_for(&self, wait: Duration) -> bool {
        self.lines.recv_timeout(wait).is_err()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Comparing
// ---------------------------------------------------------------------------

/// Keys whose values differ between two clusters for good reasons.
const MASKED: &[&str] = &[
    "cluster_id",
    "member_id",
    "raft_term",
    "leader",
    "dbSize",
    "dbSizeInUse",
    "raftIndex",
    "raftTerm",
    "raftAppliedIndex",
    "hash",
    "peerURLs",
    "clientURLs",
];

/// `v` with the values of [`MASKED`] keys (and of `extra`) replaced by `"*"`;
/// the keys themselves stay, so a missing or extra field still shows.
fn mask(v: &Value, extra: &[&str]) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let v = if MASKED.contains(&k.as_str()) || extra.contains(&k.as_str()) {
                        json!("*")
                    } else {
                        mask(v, extra)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| mask(v, extra)).collect()),
        other => other.clone(),
    }
}

/// etcd 3.4.23 (Debian's) builds its gateway with grpc-gateway v1.9.5, which
/// answered FailedPrecondition with 412; grpc-gateway made it 400 later in 2019,
/// and etcd 3.5 and 3.6 (and Ballast) answer 400.
fn as_etcd35(mut reply: Reply) -> Reply {
    if reply.status == 412 {
        reply.status = 400;
    }
    reply
}

/// Sends the same request to both and asserts the same status and masked JSON;
/// returns the subject's answer.
fn same(subject: &str, reference: &str, path: &str, body: &str, extra_mask: &[&str]) -> Value {
    let got = as_etcd35(post(subject, path, body));
    let want = as_etcd35(post(reference, path, body));
    assert_eq!(
        (got.status, mask(&got.json(), extra_mask)),
        (want.status, mask(&want.json(), extra_mask)),
        "POST {path} {body}\nsubject:   {}\nreference: {}",
        got.body,
        want.body
    );
    got.json()
}

/// The error object's gRPC code and HTTP status, checked equal on both; for
/// errors whose text comes from the JSON parser (Go's and serde's differ).
fn same_error_code(subject: &str, reference: &str, path: &str, body: &str) -> (u16, Value) {
    let got = post(subject, path, body);
    let want = post(reference, path, body);
    assert_eq!(
        (got.status, &got.json()["code"]),
        (want.status, &want.json()["code"]),
        "POST {path} {body}\nsubject:   {}\nreference: {}",
        got.body,
        want.body
    );
    (got.status, got.json()["code"].clone())
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn kv_range_put_txn_delete_and_compaction_errors() {
    let (subject, reference) = both();
    let (s, r) = (&subject.client_url(), &reference.url);

    let put = same(
        s,
        r,
        "/v3/kv/put",
        &json!({"key": b64("foo"), "value": b64("bar")}).to_string(),
        &[],
    );
    assert_eq!(put["header"]["revision"], "2");
    // A key that is not UTF-8.
    same(
        s,
        r,
        "/v3/kv/put",
        r#"{"key":"/wA=","value":"AQID","prev_kv":true}"#,
        &[],
    );
    same(
        s,
        r,
        "/v3/kv/put",
        &json!({"key": b64("foo2"), "value": b64("x"), "prev_kv": true}).to_string(),
        &[],
    );

    let got = same(
        s,
        r,
        "/v3/kv/range",
        &json!({"key": b64("foo")}).to_string(),
        &[],
    );
    assert_eq!(got["kvs"][0]["value"], b64("bar"));
    assert_eq!(got["kvs"][0]["create_revision"], "2");
    assert_eq!(got["count"], "1");
    let got = same(s, r, "/v3/kv/range", r#"{"key":"/wA="}"#, &[]);
    assert_eq!(got["kvs"][0]["value"], "AQID");
    // URL-safe base64 without padding, as etcd 3.5/3.6 (protojson) accept it; 3.4 refuses it.
    if server_kind() == ServerKind::Ballast {
        let got = post(s, "/v3/kv/range", r#"{"key":"_wA"}"#).json();
        assert_eq!(got["kvs"][0]["value"], "AQID");
    }
    // A prefix, newest first, keys only, limit; camelCase names and numbers also accepted.
    let got = same(
        s,
        r,
        "/v3/kv/range",
        &json!({"key": b64("foo"), "range_end": b64("fop"), "sortOrder": "DESCEND",
                "sort_target": "KEY", "keys_only": true, "limit": 1})
        .to_string(),
        &[],
    );
    assert_eq!(got["kvs"][0]["key"], b64("foo2"));
    assert_eq!(got["more"], true);
    assert!(got["kvs"][0].get("value").is_none(), "{got}");
    // Count only, at an old revision; unknown fields are ignored.
    same(s, r, "/v3/kv/range", &json!({"key": b64("f"), "range_end": b64("g"), "count_only": true, "revision": "2", "bogus": 1}).to_string(), &[]);
    // Empty answer: only the header.
    let got = same(
        s,
        r,
        "/v3/kv/range",
        &json!({"key": b64("nothing")}).to_string(),
        &[],
    );
    assert!(
        got.get("kvs").is_none() && got.get("count").is_none(),
        "{got}"
    );

    // A transaction whose compare holds, then one whose compare fails.
    let txn = |value: &str| {
        json!({
            "compare": [{"key": b64("foo"), "result": "EQUAL", "target": "VALUE", "value": b64(value)}],
            "success": [{"request_put": {"key": b64("foo"), "value": b64("baz")}},
                        {"request_range": {"key": b64("foo")}}],
            "failure": [{"request_range": {"key": b64("foo2")}}]
        })
        .to_string()
    };
    let got = same(s, r, "/v3/kv/txn", &txn("bar"), &[]);
    assert_eq!(got["succeeded"], true);
    assert_eq!(
        got["responses"][1]["response_range"]["kvs"][0]["value"],
        b64("baz")
    );
    let got = same(s, r, "/v3/kv/txn", &txn("bar"), &[]);
    assert!(got.get("succeeded").is_none(), "{got}");
    assert_eq!(
        got["responses"][0]["response_range"]["kvs"][0]["key"],
        b64("foo2")
    );
    // Compare on a revision, by number.
    same(s, r, "/v3/kv/txn", &json!({"compare": [{"key": b64("foo"), "target": "MOD", "result": "GREATER", "mod_revision": 1}]}).to_string(), &[]);

    let got = same(
        s,
        r,
        "/v3/kv/deleterange",
        &json!({"key": b64("foo"), "range_end": b64("fop"), "prev_kv": true}).to_string(),
        &[],
    );
    assert_eq!(got["deleted"], "2");

    // Errors: the server's own, as etcd's gateway error object.
    same(s, r, "/v3/kv/compaction", r#"{"revision":"1000"}"#, &[]);
    let got = post(s, "/v3/kv/compaction", r#"{"revision":"1000"}"#);
    assert_eq!(got.status, 400);
    assert_eq!(
        got.json(),
        json!({"error": "etcdserver: mvcc: required revision is a future revision", "code": 11,
               "message": "etcdserver: mvcc: required revision is a future revision"})
    );
    same(s, r, "/v3/kv/put", "{}", &[]);
    same(s, r, "/v3/kv/range", "", &[]);
    same(s, r, "/v3/kv/txn", &json!({"success": [{"request_put": {"key": b64("a")}}, {"request_put": {"key": b64("a")}}]}).to_string(), &[]);
    let got = same(
        s,
        r,
        "/v3/kv/compaction",
        r#"{"revision":"3","physical":true}"#,
        &[],
    );
    assert!(got.get("header").is_some(), "{got}");
    same(
        s,
        r,
        "/v3/kv/range",
        &json!({"key": b64("foo"), "revision": 2}).to_string(),
        &[],
    );
    // Over --max-request-bytes (1.5 MiB), then over what the gRPC server takes at all.
    for size in [1700 << 10, 3000 << 10] {
        let big = json!({"key": b64("big"), "value": b64(&"x".repeat(size))}).to_string();
        let got = same(s, r, "/v3/kv/put", &big, &[]);
        assert!(got["code"] == 3 || got["code"] == 8, "{got}");
    }
    // Bad JSON: InvalidArgument (the parser's text differs between Go and Rust).
    assert_eq!(
        same_error_code(s, r, "/v3/kv/range", "{bad"),
        (400, json!(3))
    );
    assert_eq!(
        same_error_code(s, r, "/v3/kv/range", r#"{"key":1}"#),
        (400, json!(3))
    );
}

#[test]
fn leases_cluster_and_maintenance() {
    let (subject, reference) = both();
    let (s, r) = (&subject.client_url(), &reference.url);

    // Explicit lease IDs, so both servers use the same.
    let got = same(s, r, "/v3/lease/grant", r#"{"TTL":60,"ID":"4242"}"#, &[]);
    assert_eq!(
        (got["ID"].as_str(), got["TTL"].as_str()),
        (Some("4242"), Some("60"))
    );
    same(s, r, "/v3/lease/grant", r#"{"TTL":"30","ID":4243}"#, &[]);
    same(s, r, "/v3/lease/grant", r#"{"TTL":60,"ID":"4242"}"#, &[]);
    same(
        s,
        r,
        "/v3/kv/put",
        &json!({"key": b64("leased"), "value": b64("v"), "lease": "4242"}).to_string(),
        &[],
    );
    // The remaining TTL may tick between the two requests.
    let got = same(
        s,
        r,
        "/v3/lease/timetolive",
        r#"{"ID":"4242","keys":true}"#,
        &["TTL"],
    );
    assert_eq!(got["grantedTTL"], "60");
    assert_eq!(got["keys"], json!([b64("leased")]));
    same(
        s,
        r,
        "/v3/kv/lease/timetolive",
        r#"{"ID":"4243"}"#,
        &["TTL"],
    );
    same(s, r, "/v3/lease/timetolive", r#"{"ID":"9"}"#, &[]);
    // etcd lists leases in map order: compared sorted.
    let lease_ids = |url: &str, path: &str| {
        let got = post(url, path, "{}").json();
        let mut ids: Vec<String> = got["leases"]
            .as_array()
            .unwrap_or_else(|| panic!("{got}"))
            .iter()
            .map(|l| l["ID"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    same(s, r, "/v3/lease/leases", "{}", &["leases"]);
    assert_eq!(lease_ids(s, "/v3/lease/leases"), ["4242", "4243"]);
    assert_eq!(lease_ids(r, "/v3/lease/leases"), ["4242", "4243"]);
    assert_eq!(lease_ids(s, "/v3/kv/lease/leases"), ["4242", "4243"]);
    same(s, r, "/v3/kv/lease/revoke", r#"{"ID":"4243"}"#, &[]);
    same(s, r, "/v3/lease/revoke", r#"{"ID":"4243"}"#, &[]);

    // Keep-alive: one answer per request in the body, then the stream ends.
    let got = post(s, "/v3/lease/keepalive", r#"{"ID":"4242"} {"ID":"4243"}"#);
    let want = post(r, "/v3/lease/keepalive", r#"{"ID":"4242"} {"ID":"4243"}"#);
    let lines = |reply: &Reply| -> Vec<Value> {
        reply
            .body
            .lines()
            .map(|l| mask(&serde_json::from_str(l).unwrap(), &[]))
            .collect()
    };
    assert_eq!(
        (got.status, lines(&got)),
        (want.status, lines(&want)),
        "{got:?}\n{want:?}"
    );
    assert_eq!(lines(&got).len(), 2);
    assert_eq!(lines(&got)[0]["result"]["TTL"], "60");

    let got = same(s, r, "/v3/cluster/member/list", "{}", &["ID"]);
    assert_eq!(got["members"][0]["name"], "itest");
    assert_eq!(got["members"][0]["clientURLs"], json!([s]));
    // A peer URL that is no URL.
    same(
        s,
        r,
        "/v3/cluster/member/add",
        r#"{"peerURLs":["not a url"]}"#,
        &[],
    );
    same(s, r, "/v3/cluster/member/remove", r#"{"ID":"12345"}"#, &[]);
    // A learner's life: add, promote (refused: it never caught up), update, remove.
    // Member lists are masked (their order follows the random IDs); etcd 3.4 also
    // drops the learner flag on update, which 3.5 fixed.
    let lists = ["ID", "members"];
    let add = r#"{"peerURLs":["http://127.0.0.1:1"],"isLearner":true}"#;
    let added = same(s, r, "/v3/cluster/member/add", add, &lists);
    assert_eq!(added["member"]["isLearner"], true);
    assert_eq!(added["members"].as_array().map(Vec::len), Some(2));
    let id = |url: &str| {
        let list = post(url, "/v3/cluster/member/list", "{}").json();
        let learner = list["members"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["isLearner"] == true))
            .unwrap_or_else(|| panic!("no learner in {list}"));
        learner["ID"].as_str().expect("an ID").to_string()
    };
    let (sid, rid) = (id(s), id(r));
    assert_eq!(sid, added["member"]["ID"].as_str().unwrap());
    let both_ids = |path: &str, body: &dyn Fn(&str) -> String| {
        let got = as_etcd35(post(s, path, &body(&sid)));
        let want = as_etcd35(post(r, path, &body(&rid)));
        assert_eq!(
            (got.status, mask(&got.json(), &lists)),
            (want.status, mask(&want.json(), &lists)),
            "{path}\nsubject:   {}\nreference: {}",
            got.body,
            want.body
        );
        got.json()
    };
    let got = both_ids("/v3/cluster/member/promote", &|id| {
        json!({"ID": id}).to_string()
    });
    assert_eq!(
        got["message"],
        "etcdserver: can only promote a learner member which is in sync with leader"
    );
    let got = both_ids("/v3/cluster/member/update", &|id| {
        json!({"ID": id, "peerURLs": ["http://127.0.0.1:2"]}).to_string()
    });
    let updated = got["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["ID"] == sid.as_str());
    assert_eq!(updated.unwrap()["peerURLs"], json!(["http://127.0.0.1:2"]));
    let got = both_ids("/v3/cluster/member/remove", &|id| {
        json!({"ID": id}).to_string()
    });
    assert_eq!(got["members"].as_array().map(Vec::len), Some(1));

    let got = same(s, r, "/v3/maintenance/status", "{}", &["version"]);
    assert_eq!(got["leader"], got["header"]["member_id"]);
    // No alarms. etcd 3.4 answers without a header; 3.5 (and Ballast) with one.
    let got = post(s, "/v3/maintenance/alarm", r#"{"action":"GET"}"#);
    assert_eq!(got.status, 200);
    assert!(got.json().get("alarms").is_none(), "{got:?}");
    if server_kind() == ServerKind::Ballast {
        assert!(got.json().get("header").is_some(), "{got:?}");
    }
    assert_eq!(
        post(r, "/v3/maintenance/alarm", r#"{"action":"GET"}"#).body,
        "{}"
    );
    let got = same(s, r, "/v3/maintenance/hash", "{}", &[]);
    assert!(got["hash"].as_u64().is_some(), "{got}");
    same(s, r, "/v3/maintenance/defragment", "{}", &[]);
    same(
        s,
        r,
        "/v3/maintenance/transfer-leadership",
        r#"{"targetID":"1"}"#,
        &[],
    );

    // The snapshot streams the database as base64 chunks.
    let got = post(s, "/v3/maintenance/snapshot", "{}");
    assert_eq!(got.status, 200);
    let blob: usize = got
        .body
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["result"]["blob"]
                .as_str()
                .unwrap()
                .len()
        })
        .sum();
    assert!(blob > 1000, "{}", got.body);
}

#[test]
fn watch_streams_events_as_newline_delimited_results() {
    let (subject, reference) = both();
    let (s, r) = (&subject.client_url(), &reference.url);
    let body = json!({"create_request": {"key": b64("w"), "range_end": b64("x"), "prev_kv": true}})
        .to_string()
        + "\n"
        + &json!({"create_request": {"key": b64("w/other"), "start_revision": "1"}}).to_string();
    let mut answers = Vec::new();
    for url in [s, r] {
        let watch = Stream::open(url, "/v3/watch", &body);
        let created = [watch.next(), watch.next()];
        assert_eq!(
            post(
                url,
                "/v3/kv/put",
                &json!({"key": b64("w/a"), "value": b64("1")}).to_string()
            )
            .status,
            200
        );
        assert_eq!(
            post(
                url,
                "/v3/kv/put",
                &json!({"key": b64("w/a"), "value": b64("2")}).to_string()
            )
            .status,
            200
        );
        let events = [watch.next(), watch.next()];
        // Nothing for a key neither watcher covers.
        assert_eq!(
            post(
                url,
                "/v3/kv/put",
                &json!({"key": b64("z"), "value": b64("1")}).to_string()
            )
            .status,
            200
        );
        assert!(watch.quiet_for(Duration::from_millis(300)));
        answers.push(
            created
                .iter()
                .chain(events.iter())
                .map(|v| mask(v, &[]))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        answers[0], answers[1],
        "subject (left) and reference (right) watch streams differ"
    );
    let got = &answers[0];
    assert_eq!(got[0]["result"]["created"], true);
    assert_eq!(got[1]["result"]["watch_id"], "1");
    let ev = &got[3]["result"]["events"][0];
    assert_eq!(
        (ev["kv"]["key"].as_str(), ev["kv"]["value"].as_str()),
        (Some(&*b64("w/a")), Some(&*b64("2")))
    );
    assert_eq!(ev["prev_kv"]["value"], b64("1"));
    // A PUT event has no "type" (the enum's default is left out).
    assert!(ev.get("type").is_none(), "{ev}");

    // Create, cancel, and a watcher from an old revision that sees the history
    // (a DELETE among it), all in one body.
    assert_eq!(
        post(
            s,
            "/v3/kv/deleterange",
            &json!({"key": b64("w/a")}).to_string()
        )
        .status,
        200
    );
    assert_eq!(
        post(
            r,
            "/v3/kv/deleterange",
            &json!({"key": b64("w/a")}).to_string()
        )
        .status,
        200
    );
    let body = [
        json!({"create_request": {"key": b64("w/a")}}),
        json!({"cancel_request": {"watch_id": "0"}}),
        json!({"create_request": {"key": b64("w/a"), "start_revision": "2", "filters": ["NOPUT"]}}),
    ]
    .map(|v| v.to_string())
    .join("\n");
    let mut answers = Vec::new();
    for url in [s, r] {
        let watch = Stream::open(url, "/v3/watch", &body);
        answers.push((0..4).map(|_| mask(&watch.next(), &[])).collect::<Vec<_>>());
    }
    assert_eq!(
        answers[0], answers[1],
        "subject (left) and reference (right) watch streams differ"
    );
    assert_eq!(answers[0][1]["result"]["canceled"], true);
    assert_eq!(answers[0][3]["result"]["events"][0]["type"], "DELETE");

    // A body that is not JSON fails the request (grpc-gateway v1: Unknown, 500).
    let (status, code) = same_error_code(s, r, "/v3/watch", "{bad");
    assert_eq!((status, code), (500, json!(2)));
}

#[test]
fn unknown_paths_methods_and_aliases() {
    let (subject, reference) = both();
    let (s, r) = (&subject.client_url(), &reference.url);
    for (method, path) in [
        ("POST", "/v3/kv/nothere"),
        ("GET", "/v3/kv/range"),
        ("PUT", "/v3/lease/grant"),
    ] {
        let got = curl(method, s, path, "{}", &[]);
        let want = curl(method, r, path, "{}", &[]);
        assert_eq!(got, want, "{method} {path}");
    }
    assert_eq!(curl("GET", s, "/v3/kv/range", "", &[]).status, 405);
    // The /v3beta/ prefix etcd still accepts.
    let got = same(
        s,
        r,
        "/v3beta/kv/put",
        &json!({"key": b64("b"), "value": b64("1")}).to_string(),
        &[],
    );
    assert_eq!(got["header"]["revision"], "2");
}

#[test]
fn disabled_gateway_answers_404() {
    let server = TestServer::start_with(&["--enable-grpc-gateway=false"]);
    let got = post(&server.client_url(), "/v3/kv/range", "{}");
    assert_eq!(
        got,
        Reply {
            status: 404,
            body: "404 page not found\n".into()
        }
    );
    // gRPC clients are unaffected.
    server.put("k", "v");
}

/// The auth paths (users, roles, enable, login, a token in `Authorization`),
/// on the server under test and on the reference etcd. A server without an
/// Auth service would answer Unimplemented (501): that is checked for shape.
#[test]
fn auth_paths() {
    let (subject, reference) = both();
    let probe = post(&subject.client_url(), "/v3/auth/authenticate", "{}");
    if probe.status == 501 {
        assert_eq!(
            probe.json(),
            json!({"error": "unknown service etcdserverpb.Auth", "code": 12,
                   "message": "unknown service etcdserverpb.Auth"})
        );
    } else {
        auth_flow(
            &subject.client_url(),
            common::server() == common::Server::Etcd34,
        );
    }
    auth_flow(&reference.url, true);
}

/// `checks_tokens_while_disabled`: etcd 3.4 checks a token it is given even
/// while auth is disabled; 3.5 (which Ballast follows) and 3.6 ignore it.
fn auth_flow(r: &str, checks_tokens_while_disabled: bool) {
    let got = curl(
        "POST",
        r,
        "/v3/kv/range",
        &json!({"key": b64("b")}).to_string(),
        &["Authorization: not-a-token"],
    );
    if checks_tokens_while_disabled {
        assert_eq!(
            (got.status, got.json()),
            (
                401,
                json!({"error": "etcdserver: invalid auth token", "code": 16,
                       "message": "etcdserver: invalid auth token"})
            )
        );
    } else {
        assert_eq!(got.status, 200, "{got:?}");
        assert!(got.json()["header"]["revision"].is_string(), "{got:?}");
    }
    let ok = |path: &str, body: Value| {
        let got = post(r, path, &body.to_string());
        assert_eq!(got.status, 200, "{path}: {got:?}");
        got.json()
    };
    ok(
        "/v3/auth/user/add",
        json!({"name": "root", "password": "rootpw"}),
    );
    ok("/v3/auth/role/add", json!({"name": "root"}));
    ok(
        "/v3/auth/user/grant",
        json!({"user": "root", "role": "root"}),
    );
    ok("/v3/auth/enable", json!({}));
    let got = post(r, "/v3/kv/range", &json!({"key": b64("a")}).to_string());
    assert_eq!(
        (got.status, got.json()),
        (
            400,
            json!({"error": "etcdserver: user name is empty", "message": "etcdserver: user name is empty", "code": 3})
        )
    );
    let token = ok(
        "/v3/auth/authenticate",
        json!({"name": "root", "password": "rootpw"}),
    )["token"]
        .as_str()
        .expect("a token")
        .to_string();
    let auth = format!("Authorization: {token}");
    let got = curl("POST", r, "/v3/auth/user/list", "{}", &[&auth]);
    assert_eq!(got.json()["users"], json!(["root"]), "{got:?}");
    let got = curl(
        "POST",
        r,
        "/v3/kv/put",
        &json!({"key": b64("a"), "value": b64("1")}).to_string(),
        &[&auth],
    );
    assert_eq!(got.status, 200, "{got:?}");
    let got = post(
        r,
        "/v3/auth/authenticate",
        &json!({"name": "root", "password": "wrong"}).to_string(),
    );
    assert_eq!(
        (
            got.status,
            got.json()["code"].clone(),
            got.json()["message"].clone()
        ),
        (
            400,
            json!(3),
            json!("etcdserver: authentication failed, invalid user ID or password")
        )
    );
    let got = curl("POST", r, "/v3/auth/disable", "{}", &[&auth]);
    assert_eq!(got.status, 200, "{got:?}");
}

/// With `--emulated-etcd-version` 3.6, errors and refusals take etcd 3.6's
/// shapes (grpc-gateway v2): compared with a real etcd 3.6.
#[test]
fn etcd36_error_shapes() {
    if server_kind() != ServerKind::Ballast {
        return; // The reference run (etcd 3.4) has no 3.6 dialect to compare.
    }
    let subject = TestServer::start_with(&["--emulated-etcd-version", "3.6.16"]);
    wait_ready(&subject.client_url());
    let reference = Reference::start_binary(common::etcd36_dir().join("etcd"));
    let (s, r) = (&subject.client_url(), &reference.url);
    // etcd 3.6 writes a few revisions of its own at start: revisions are masked.
    let revs = ["revision", "create_revision", "mod_revision"];
    same(
        s,
        r,
        "/v3/kv/put",
        &json!({"key": b64("k"), "value": b64("v")}).to_string(),
        &revs,
    );
    let got = same(
        s,
        r,
        "/v3/kv/range",
        &json!({"key": b64("k")}).to_string(),
        &revs,
    );
    assert_eq!(got["kvs"][0]["value"], b64("v"));
    let got = same(s, r, "/v3/kv/compaction", r#"{"revision":"100000"}"#, &[]);
    assert_eq!(
        got,
        json!({"code": 11, "message": "etcdserver: mvcc: required revision is a future revision"})
    );
    same(s, r, "/v3/kv/put", "{}", &[]);
    same(s, r, "/v3/lease/revoke", r#"{"ID":"77"}"#, &[]);
    assert_eq!(
        same_error_code(s, r, "/v3/kv/range", "{bad"),
        (400, json!(3))
    );
    // In v2 a streamed message that is not JSON ends the requests, as the end of
    // the body does: a keep-alive stream answers what came before.
    for body in ["{bad", r#"{"ID":"77"} {bad"#] {
        let got = post(s, "/v3/lease/keepalive", body);
        let want = post(r, "/v3/lease/keepalive", body);
        let lines = |reply: &Reply| -> Vec<Value> {
            reply
                .body
                .lines()
                .map(|l| mask(&serde_json::from_str(l).unwrap(), &revs))
                .collect()
        };
        assert_eq!(
            (got.status, lines(&got)),
            (want.status, lines(&want)),
            "{body}"
        );
    }
    for (method, path) in [("POST", "/v3/kv/nothere"), ("GET", "/v3/kv/range")] {
        let got = curl(method, s, path, "{}", &[]);
        let want = curl(method, r, path, "{}", &[]);
        assert_eq!(
            (got.status, got.json()),
            (want.status, want.json()),
            "{method} {path}"
        );
    }
    assert_eq!(curl("GET", s, "/v3/kv/range", "", &[]).status, 501);
    // Keep-alive of a lease that does not exist: TTL 0 (left out), no error.
    let got = post(s, "/v3/lease/keepalive", r#"{"ID":"77"}"#);
    let want = post(r, "/v3/lease/keepalive", r#"{"ID":"77"}"#);
    let line = |reply: &Reply| mask(&serde_json::from_str(reply.body.trim()).unwrap(), &revs);
    assert_eq!((got.status, line(&got)), (want.status, line(&want)));
}
