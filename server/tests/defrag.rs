//! `ballast defrag` against real members: a 3-member cluster whose databases hold freed
//! space (thousands of 1 KiB values written, deleted and compacted away) is defragmented
//! member by member with the leader last, and shrinks; with a member stopped nothing is
//! touched; over TLS with a client certificate. Sizes and the leader are read with etcdctl,
//! independently of the command under test.

#[allow(dead_code)]
mod cluster_support;
mod common;
mod support;
mod tls_support;

use std::collections::BTreeMap;
use std::time::Duration;

use cluster_support::Node;
use etcd_client::{Client, Txn, TxnOp};
use serde_json::Value;
use support::{run_ballast, Finished};

/// How long one `ballast defrag` run may take.
const RUN_DEADLINE: Duration = Duration::from_secs(120);
/// Values written and deleted to leave freed pages behind: 40 transactions of 100.
const BATCHES: usize = 40;
const PER_BATCH: usize = 100;

/// What a `ballast defrag` run printed, with its termination message.
struct Run {
    finished: Finished,
    termination: String,
}

impl Run {
    /// The JSON line, after checking the run succeeded, printed nothing else on stdout and
    /// left the same line as the termination message.
    #[track_caller]
    fn json(&self) -> Value {
        let f = &self.finished;
        assert!(f.status.success(), "ballast defrag failed: {f:?}");
        let lines: Vec<&str> = f.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "one JSON line on stdout: {f:?}");
        assert_eq!(self.termination, lines[0], "termination message");
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", lines[0]))
    }

    /// The failure line, after checking the exit code is 1 and stdout is empty.
    #[track_caller]
    fn failure(&self) -> String {
        let f = &self.finished;
        assert_eq!(f.status.code(), Some(1), "should fail with 1: {f:?}");
        assert_eq!(f.stdout, "", "nothing on stdout on failure");
        let line = f.stderr.trim().lines().last().unwrap_or_default();
        assert_eq!(self.termination.trim(), line, "termination message");
        line.to_string()
    }
}

/// Runs `ballast defrag --endpoints EPS ARGS` with a termination log file, as in a
/// Kubernetes container.
fn defrag(endpoints: &str, args: &[&str]) -> Run {
    let scratch = tempfile::tempdir().expect("tempdir");
    let termination = scratch.path().join("termination-log");
    std::fs::write(&termination, "").expect("create termination log");
    let mut all = vec![
        "defrag",
        "--endpoints",
        endpoints,
        "--termination-log",
        termination.to_str().expect("utf-8 path"),
    ];
    all.extend_from_slice(args);
    let finished = run_ballast(&all, RUN_DEADLINE);
    Run {
        finished,
        termination: std::fs::read_to_string(&termination).expect("read termination log"),
    }
}

/// Starts m1..m3 and waits for one leader and for every member to be published (so the
/// member list names them all).
fn start_cluster(root: &std::path::Path) -> Vec<Node> {
    let mut nodes: Vec<Node> = ["m1", "m2", "m3"]
        .iter()
        .map(|n| Node::new(n, root))
        .collect();
    let initial = cluster_support::initial_cluster(&nodes.iter().collect::<Vec<_>>());
    for node in &mut nodes {
        node.start(&initial, "new");
    }
    let eps = all_endpoints(&nodes);
    cluster_support::leader(&eps, 3);
    cluster_support::wait_for("every member published in the member list", || {
        let members = cluster_support::members(&eps);
        members.len() == 3 && members.iter().all(|m| !m.1.is_empty())
    });
    nodes
}

fn all_endpoints(nodes: &[Node]) -> String {
    cluster_support::endpoints(&nodes.iter().collect::<Vec<_>>())
}

/// Writes BATCHES * PER_BATCH values of 1 KiB, deletes them and compacts their history
/// away on every member: the databases keep their size with most of it free.
fn fragment(endpoints: &str) {
    let first = endpoints
        .split(',')
        .next()
        .expect("an endpoint")
        .to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut client = Client::connect([first], None).await.expect("connect");
        for batch in 0..BATCHES {
            let ops: Vec<TxnOp> = (0..PER_BATCH)
                .map(|i| {
                    let value = support::filler((batch * PER_BATCH + i) as u64, 1024);
                    TxnOp::put(format!("/fill/{batch:03}/{i:03}"), value, None)
                })
                .collect();
            client
                .txn(Txn::new().and_then(ops))
                .await
                .expect("txn of puts");
        }
    });
    let deleted = cluster_support::ctl_ok(endpoints, &["del", "--prefix", "/fill/"]);
    assert_eq!(deleted.trim(), (BATCHES * PER_BATCH).to_string());
    cluster_support::ctl_ok(endpoints, &["put", "keep", "kept"]);
    let revision = status(endpoints)[0]["Status"]["header"]["revision"]
        .as_i64()
        .expect("revision");
    cluster_support::ctl_ok(endpoints, &["compact", &revision.to_string(), "--physical"]);
    // Every member applies the compaction: each refuses a read below it.
    for ep in endpoints.split(',') {
        cluster_support::wait_for(&format!("{ep} to apply the compaction"), || {
            let (ok, _, err) =
                cluster_support::ctl(ep, &["get", "keep", "--rev", "2", "--consistency", "s"]);
            !ok && err.contains("required revision has been compacted")
        });
    }
}

/// `etcdctl endpoint status -w json`: one object per endpoint.
fn status(endpoints: &str) -> Vec<Value> {
    let out = cluster_support::ctl_ok(endpoints, &["endpoint", "status", "-w", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"));
    v.as_array().expect("an array").clone()
}

/// db size per endpoint.
fn db_sizes(endpoints: &str) -> BTreeMap<String, i64> {
    status(endpoints)
        .iter()
        .map(|s| {
            (
                s["Endpoint"].as_str().expect("Endpoint").to_string(),
                s["Status"]["dbSize"].as_i64().expect("dbSize"),
            )
        })
        .collect()
}

/// The endpoint of the member every member names as leader.
fn leader_endpoint(endpoints: &str) -> String {
    let rows = status(endpoints);
    let leader = rows[0]["Status"]["leader"].as_u64().expect("leader");
    assert!(
        rows.iter()
            .all(|r| r["Status"]["leader"].as_u64() == Some(leader)),
        "the members disagree on the leader: {rows:?}"
    );
    rows.iter()
        .find(|r| r["Status"]["header"]["member_id"].as_u64() == Some(leader))
        .and_then(|r| r["Endpoint"].as_str())
        .expect("the leader's endpoint")
        .to_string()
}

fn name_of(nodes: &[Node], endpoint: &str) -> String {
    nodes
        .iter()
        .find(|n| n.client_url() == endpoint)
        .map(|n| n.name.clone())
        .unwrap_or_else(|| panic!("no member at {endpoint}"))
}

#[test]
fn defragments_every_member_leader_last_and_each_shrinks() {
    let _one = cluster_support::one_at_a_time();
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = start_cluster(root.path());
    let eps = all_endpoints(&nodes);
    fragment(&eps);
    let before = db_sizes(&eps);
    let leader = leader_endpoint(&eps);

    let run = defrag(&eps, &[]);
    let json = run.json();
    assert_eq!(json["skipped"], Value::Null, "{json}");
    let members = json["members"].as_array().expect("members");
    let order: Vec<&str> = members
        .iter()
        .map(|m| m["endpoint"].as_str().expect("endpoint"))
        .collect();
    assert_eq!(order.len(), 3, "{json}");
    assert_eq!(order[2], leader, "the leader is not last: {json}");
    let mut sorted = order.clone();
    sorted.sort();
    let mut expected: Vec<&str> = before.keys().map(String::as_str).collect();
    expected.sort();
    assert_eq!(sorted, expected, "every member once: {json}");
    // Followers in the order of --endpoints.
    let followers: Vec<&str> = eps.split(',').filter(|e| *e != leader).collect();
    assert_eq!(order[..2], followers[..], "{json}");
    for m in members {
        let endpoint = m["endpoint"].as_str().expect("endpoint");
        assert_eq!(m["name"], name_of(&nodes, endpoint), "{json}");
        let (b, a) = (
            m["before"].as_i64().expect("before"),
            m["after"].as_i64().expect("after"),
        );
        assert!(a < b, "{endpoint} did not shrink by its own report: {json}");
    }
    // One line per member on stderr, in the same order.
    let lines: Vec<&str> = run
        .finished
        .stderr
        .lines()
        .filter(|l| l.starts_with("defragmented "))
        .collect();
    assert_eq!(lines.len(), 3, "{:?}", run.finished);
    for (line, m) in lines.iter().zip(members) {
        let prefix = format!(
            "defragmented {} ({}): db size {} -> {} bytes (in use ",
            m["name"].as_str().expect("name"),
            m["endpoint"].as_str().expect("endpoint"),
            m["before"],
            m["after"]
        );
        assert!(line.starts_with(&prefix), "{line:?} vs {prefix:?}");
    }

    let after = db_sizes(&eps);
    for (endpoint, size) in &before {
        assert!(
            after[endpoint] < *size,
            "{endpoint}: db size {size} -> {} (etcdctl endpoint status)",
            after[endpoint]
        );
    }
    assert_eq!(
        cluster_support::ctl_ok(&eps, &["get", "keep"]),
        "keep\nkept\n",
        "data survives"
    );
}

#[test]
fn skips_and_touches_nothing_when_a_member_is_down() {
    let _one = cluster_support::one_at_a_time();
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = start_cluster(root.path());
    let eps = all_endpoints(&nodes);
    fragment(&eps);
    // Stop a follower; the other two keep a leader.
    let leader = leader_endpoint(&eps);
    let down = nodes
        .iter()
        .position(|n| n.client_url() != leader)
        .expect("a follower");
    nodes[down].kill9();
    let down_url = nodes[down].client_url();
    let down_name = nodes[down].name.clone();
    let up: String = nodes
        .iter()
        .filter(|n| n.client_url() != down_url)
        .map(|n| n.client_url())
        .collect::<Vec<_>>()
        .join(",");
    cluster_support::leader(&up, 2);
    let before = db_sizes(&up);

    let run = defrag(&eps, &["--timeout", "10s"]);
    let json = run.json();
    assert_eq!(json["members"], Value::Array(Vec::new()), "{json}");
    let why = json["skipped"].as_str().expect("skipped is a reason");
    let expected =
        format!("the cluster is not healthy: {down_url}: member {down_name} does not answer: ");
    assert!(why.starts_with(&expected), "{why:?} vs {expected:?}");
    assert!(
        run.finished
            .stderr
            .lines()
            .any(|l| l == format!("skipped: {why}")),
        "{:?}",
        run.finished
    );
    assert!(
        !run.finished.stderr.contains("defragmented "),
        "{:?}",
        run.finished
    );
    assert_eq!(db_sizes(&up), before, "a member was defragmented");
}

#[test]
fn defragments_over_tls_with_a_client_certificate() {
    let member = tls_support::ClientAuth::start();
    let (s, tls, ca) = (&member.server, member.flags(), &member.ca);
    let endpoint = s.endpoint();
    let json = defrag(&endpoint, &tls).json();
    assert_eq!(json["skipped"], Value::Null, "{json}");
    let members = json["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "{json}");
    assert_eq!(members[0]["endpoint"], endpoint, "{json}");
    assert_eq!(members[0]["name"], "tls", "{json}");

    // Without the client certificate the member refuses: nothing answers, which is a
    // failure (wrong flags or endpoints), not a skip.
    let message = defrag(&endpoint, &["--cacert", ca.crt(), "--timeout", "10s"]).failure();
    assert!(
        message.starts_with(&format!(
            "ballast defrag: no endpoint answered ({endpoint}: "
        )),
        "{message}"
    );
}
