//! Restoring from a snapshot the way the seeds' runbooks do it, and
//! `snapshot restore --bump-revision N --mark-compacted` next to real etcd.
//!
//! * `bump_revision_and_mark_compacted_match_etcd_3_6`: one snapshot (taken with etcdctl 3.4
//!   from a running Ballast) is restored twice, by `ballast snapshot restore` and by real
//!   `etcdutl` 3.6, both with `--bump-revision 1000 --mark-compacted`; Ballast and real etcd
//!   3.6 are started on the results and must answer the same: same keys and values, the
//!   revision moved by 1000, reads and watches below it "compacted", the next put one above,
//!   and the same cluster and member IDs (derived from the restore's cluster flags).
//! * `bump_revision_without_mark_compacted_is_refused_as_etcdutl_does`: the invalid
//!   combinations are refused with etcdutl's message and exit code.
//! * `seed_runbook_restores_a_three_member_cluster`: seed 002's "恢复整个集群" (and seed 004's
//!   restore): `etcdctl snapshot save` from a running 3-member cluster, `snapshot restore` on
//!   each member with `--name --data-dir --initial-cluster --initial-cluster-token
//!   --initial-advertise-peer-urls`, then the members start (one with
//!   `--initial-cluster-state new`, two with `existing`, their configuration otherwise
//!   unchanged): one cluster, a leader, the data, a new cluster ID, the runbook's members.
//!
//! The etcd 3.6 tools come from `scripts/etcd36-tools.sh` (built once, cached under
//! `~/.cache/ballast-tools`); `BALLAST_TEST_ETCD36_DIR` points at another build.

#[allow(dead_code)]
mod cluster_support;
mod common;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cluster_support::{ctl, ctl_ok, endpoints, initial_cluster, leader, wait_for, Node};
use common::{free_port, wait_until, TestServer};
use etcd_client::{Client, GetOptions, WatchOptions};
use serde_json::Value;
use support::{connect, ok, run_ballast, within, Finished};

const TOOL_DEADLINE: Duration = Duration::from_secs(60);
const BUMP: i64 = 1000;
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE: &str = "etcdserver: mvcc: required revision is a future revision";

// ---------------------------------------------------------------------------
// Real etcd 3.6
// ---------------------------------------------------------------------------

fn etcdutl(args: &[&str]) -> Finished {
    let bin = common::etcd36_dir().join("etcdutl");
    let out = Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    Finished {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A real etcd 3.6 member on a restored data dir; killed when dropped.
struct Etcd36 {
    child: Child,
    client_port: u16,
    log: PathBuf,
}

impl Etcd36 {
    fn start(data_dir: &Path) -> Etcd36 {
        let client_port = free_port();
        let peer = format!("http://127.0.0.1:{}", free_port());
        let client = format!("http://127.0.0.1:{client_port}");
        let log = data_dir.with_extension("log");
        let log_file = std::fs::File::create(&log).expect("create etcd log");
        let child = Command::new(common::etcd36_dir().join("etcd"))
            .arg("--data-dir")
            .arg(data_dir)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args(["--listen-peer-urls", &peer])
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn etcd 3.6");
        let e = Etcd36 {
            child,
            client_port,
            log,
        };
        let ep = e.endpoint();
        wait_until("etcd 3.6 healthy", Duration::from_secs(30), || {
            ctl(&ep, &["endpoint", "health"]).0
        });
        e
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
}

impl Drop for Etcd36 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            eprintln!(
                "--- etcd 3.6 log (last lines, newest first) ---\n{}",
                tail.join("\n")
            );
        }
    }
}

// ---------------------------------------------------------------------------
// --bump-revision / --mark-compacted
// ---------------------------------------------------------------------------

/// Everything the bump test compares between Ballast and etcd.
#[derive(Debug, PartialEq)]
struct Observed {
    /// (key, value, create_revision, mod_revision, version) of every key.
    kvs: Vec<(String, String, i64, i64, i64)>,
    /// Header revision of that read.
    revision: i64,
    /// `get k1 --rev X` for X = snapshot, bumped-1, bumped, bumped+1: the value or the error.
    reads: Vec<(i64, String)>,
    /// A watch of every key from bumped-1: (canceled, compact_revision, cancel_reason).
    watch_below: (bool, i64, String),
    /// The revision of a put after the restore.
    put_revision: i64,
    /// A watch of every key from the bumped revision: the first event's (key, mod_revision).
    watch_at: (String, i64),
    /// (cluster ID, member ID) from a response header: both come from the restore's flags.
    ids: (u64, u64),
}

fn error_text(e: etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => s.message().to_string(),
        other => other.to_string(),
    }
}

/// Watches every key from `rev` and returns the first response that is not only "created".
async fn first_watch_answer(c: &Client, rev: i64) -> etcd_client::WatchResponse {
    let mut wc = c.watch_client();
    let opts = WatchOptions::new().with_all_keys().with_start_revision(rev);
    let mut stream = ok(
        "watch",
        within("open watch", wc.watch("", Some(opts))).await,
    );
    loop {
        let msg = within("watch response", stream.message())
            .await
            .unwrap_or_else(|e| panic!("watch from {rev}: {e:?}"))
            .unwrap_or_else(|| panic!("watch from {rev} ended without an answer"));
        if msg.canceled() || msg.compact_revision() != 0 || !msg.events().is_empty() {
            return msg;
        }
    }
}

async fn observe(c: &Client, snap_rev: i64) -> Observed {
    let bumped = snap_rev + BUMP;
    let all = GetOptions::new().with_all_keys();
    let resp = ok("read every key", c.kv_client().get("", Some(all)).await);
    let kvs = resp
        .kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                String::from_utf8_lossy(kv.value()).into_owned(),
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
            )
        })
        .collect();
    let header = resp.header().expect("header");
    let (revision, ids) = (header.revision(), (header.cluster_id(), header.member_id()));
    let mut reads = Vec::new();
    for rev in [snap_rev, bumped - 1, bumped, bumped + 1] {
        let opts = GetOptions::new().with_revision(rev);
        let answer = match c.kv_client().get("k1", Some(opts)).await {
            Ok(r) => r
                .kvs()
                .first()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
                .unwrap_or_default(),
            Err(e) => error_text(e),
        };
        reads.push((rev, answer));
    }
    let below = first_watch_answer(c, bumped - 1).await;
    let watch_below = (
        below.canceled(),
        below.compact_revision(),
        below.cancel_reason().to_string(),
    );
    let put = ok(
        "put after restore",
        c.kv_client().put("after", "restore", None).await,
    );
    let put_revision = put.header().expect("header").revision();
    let at = first_watch_answer(c, bumped).await;
    let first = at.events().first().and_then(|e| e.kv()).map(|kv| {
        (
            String::from_utf8_lossy(kv.key()).into_owned(),
            kv.mod_revision(),
        )
    });
    Observed {
        kvs,
        revision,
        reads,
        watch_below,
        put_revision,
        watch_at: first.unwrap_or_else(|| panic!("watch from {bumped}: no event in {at:?}")),
        ids,
    }
}

async fn connect_url(url: &str) -> Client {
    within("connect", Client::connect([url], None))
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bump_revision_and_mark_compacted_match_etcd_3_6() {
    if support::against_etcd() {
        eprintln!("skipped: uses Ballast's snapshot tool (and runs etcd 3.6 itself)");
        return;
    }
    // Some history: puts, an overwrite, and a delete as the newest revision (etcdutl bumps
    // from the newest revision in the key bucket, a tombstone here).
    let src = TestServer::start();
    let c = connect(&src).await;
    for i in 1..=5 {
        ok(
            "put",
            c.kv_client()
                .put(format!("k{i}"), format!("v{i}"), None)
                .await,
        );
    }
    ok("overwrite", c.kv_client().put("k1", "v1b", None).await);
    ok("delete", c.kv_client().delete("k5", None).await);
    let file = src.scratch_dir().join("bump.db");
    let path = file.display().to_string();
    let saved = tokio::task::block_in_place(|| src.etcdctl(&["snapshot", "save", &path])).ok();
    assert!(saved.contains("Snapshot saved at"), "etcdctl: {saved}");
    let status = run_ballast(&["snapshot", "status", &path, "-w", "json"], TOOL_DEADLINE);
    assert!(status.status.success(), "snapshot status: {status:?}");
    let snap_rev = serde_json::from_str::<Value>(status.stdout.trim()).expect("status JSON")
        ["revision"]
        .as_i64()
        .expect("revision");

    let bump = BUMP.to_string();
    // The new member's identity too (a peer URL nobody listens on: one member needs no peers).
    let peer = format!("http://127.0.0.1:{}", free_port());
    let cluster = format!("restored={peer}");
    let flags = [
        "--bump-revision",
        bump.as_str(),
        "--mark-compacted",
        "--name",
        "restored",
        "--initial-cluster",
        cluster.as_str(),
        "--initial-cluster-token",
        "bumped-cluster",
        "--initial-advertise-peer-urls",
        peer.as_str(),
    ];

    // Ballast's restore, and Ballast on it.
    let mut ours = TestServer::start();
    ours.kill9();
    std::fs::remove_dir_all(ours.data_dir()).expect("clear the data dir");
    let data = ours.data_dir().display().to_string();
    let mut args = vec![
        "snapshot",
        "restore",
        path.as_str(),
        "--data-dir",
        data.as_str(),
    ];
    args.extend(flags);
    let out = run_ballast(&args, TOOL_DEADLINE);
    assert!(out.status.success(), "ballast snapshot restore: {out:?}");
    tokio::task::block_in_place(|| ours.restart());
    let got = observe(&connect(&ours).await, snap_rev).await;

    // etcdutl 3.6's restore, and etcd 3.6 on it.
    let etcd_dir = src.scratch_dir().join("etcd36-restored");
    let etcd_data = etcd_dir.display().to_string();
    let mut args = vec![
        "snapshot",
        "restore",
        path.as_str(),
        "--data-dir",
        etcd_data.as_str(),
    ];
    args.extend(flags);
    let out = tokio::task::block_in_place(|| etcdutl(&args));
    assert!(out.status.success(), "etcdutl snapshot restore: {out:?}");
    let etcd = tokio::task::block_in_place(|| Etcd36::start(&etcd_dir));
    let want = observe(&connect_url(&etcd.endpoint()).await, snap_rev).await;

    assert_eq!(
        got, want,
        "Ballast and etcd 3.6 differ after the same restore"
    );
    // And what etcd answers, spelled out.
    let bumped = snap_rev + BUMP;
    assert_eq!(got.revision, bumped, "the revision moves by the bump");
    assert_eq!(
        got.kvs.iter().map(|kv| kv.0.as_str()).collect::<Vec<_>>(),
        ["k1", "k2", "k3", "k4"]
    );
    assert_eq!(got.kvs[0].1, "v1b");
    assert_eq!(
        got.reads,
        [
            (snap_rev, COMPACTED.to_string()),
            (bumped - 1, COMPACTED.to_string()),
            (bumped, "v1b".to_string()),
            (bumped + 1, FUTURE.to_string()),
        ]
    );
    assert!(got.watch_below.0, "a watch below the bump is canceled");
    assert_eq!(
        got.watch_below.1, bumped,
        "and told the compaction revision"
    );
    assert_eq!(got.put_revision, bumped + 1);
    assert_eq!(got.watch_at, ("after".to_string(), bumped + 1));
}

#[test]
fn bump_revision_without_mark_compacted_is_refused_as_etcdutl_does() {
    if support::against_etcd() {
        eprintln!("skipped: uses Ballast's snapshot tool");
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    // etcdutl refuses the flags before it looks at the file.
    let file = root.path().join("no-such.db").display().to_string();
    for (i, flags) in [
        &["--bump-revision", "5"][..],
        &["--mark-compacted"][..],
        &["--bump-revision", "0", "--mark-compacted"][..],
    ]
    .into_iter()
    .enumerate()
    {
        let ours_dir = root.path().join(format!("ours-{i}"));
        let theirs_dir = root.path().join(format!("theirs-{i}"));
        let run = |tool: &dyn Fn(&[&str]) -> Finished, dir: &Path| {
            let dir = dir.display().to_string();
            let mut args = vec!["snapshot", "restore", file.as_str(), "--data-dir", &dir];
            args.extend(flags);
            tool(&args)
        };
        let ours = run(&|a| run_ballast(a, TOOL_DEADLINE), &ours_dir);
        let theirs = run(&etcdutl, &theirs_dir);
        assert_eq!(
            theirs.stderr, "Error: --mark-compacted required if --revision-bump > 0\n",
            "etcdutl {flags:?}: {theirs:?}"
        );
        assert_eq!(ours.stderr, theirs.stderr, "ballast {flags:?}: {ours:?}");
        assert_eq!(
            ours.status.code(),
            theirs.status.code(),
            "exit code {flags:?}"
        );
        assert_eq!(ours.status.code(), Some(128));
        assert!(
            !ours_dir.exists(),
            "{flags:?} created {}",
            ours_dir.display()
        );
    }
}

// ---------------------------------------------------------------------------
// Seed 002: restore a whole 3-member cluster from one snapshot
// ---------------------------------------------------------------------------

fn cluster_id(endpoint: &str) -> u64 {
    let v: Value = serde_json::from_str(&ctl_ok(endpoint, &["member", "list", "-w", "json"]))
        .expect("member list JSON");
    v["header"]["cluster_id"].as_u64().expect("cluster_id")
}

#[test]
fn seed_runbook_restores_a_three_member_cluster() {
    if support::against_etcd() {
        eprintln!("skipped: starts Ballast members and uses Ballast's snapshot tool");
        return;
    }
    let _serial = cluster_support::one_at_a_time();
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<Node> = ["etcd-1", "etcd-2", "etcd-3"]
        .iter()
        .map(|n| Node::new(n, root.path()))
        .collect();
    let ic = initial_cluster(&nodes.iter().collect::<Vec<_>>());
    for n in &mut nodes {
        n.start(&ic, "new");
    }
    for n in &nodes {
        wait_for(&format!("{} healthy", n.name), || n.healthy());
    }
    let eps = endpoints(&nodes.iter().collect::<Vec<_>>());
    leader(&eps, 3);
    let old_cluster = cluster_id(&eps);

    let data: Vec<(String, String)> = (0..20)
        .map(|i| (format!("/registry/item-{i:02}"), format!("value {i}")))
        .chain([("name".to_string(), "ballast".to_string())])
        .collect();
    for (k, v) in &data {
        ctl_ok(&eps, &["put", k, v]);
    }
    ctl_ok(&eps, &["put", "/registry/item-00", "value 0, second"]);
    ctl_ok(&eps, &["del", "/registry/item-19"]);
    let want = ctl_ok(&eps, &["get", "", "--from-key"]);

    // "先在leader节点上备份快照": etcdctl snapshot save against one member.
    let file = root.path().join("snapshot.db");
    let file_text = file.display().to_string();
    let saved = ctl_ok(&nodes[0].client_url(), &["snapshot", "save", &file_text]);
    assert!(saved.contains("Snapshot saved at"), "etcdctl: {saved}");

    // Stop every member and move its data dir aside.
    for n in &mut nodes {
        n.kill9();
        std::fs::rename(&n.data_dir, n.data_dir.with_extension("bak")).expect("move aside");
    }

    // Restore on every member, with the runbook's flags and a new token.
    for n in &nodes {
        let dir = n.data_dir.display().to_string();
        let peer = n.peer_url();
        let out = run_ballast(
            &[
                "snapshot",
                "restore",
                &file_text,
                "--data-dir",
                &dir,
                "--name",
                &n.name,
                "--initial-cluster",
                &ic,
                "--initial-cluster-token",
                "etcd-cluster-restored",
                "--initial-advertise-peer-urls",
                &peer,
            ],
            TOOL_DEADLINE,
        );
        assert!(out.status.success(), "restore for {}: {out:?}", n.name);
    }

    // "其中一个节点的ETCD_INITIAL_CLUSTER_STATE参数改为new,另外两个节点改为existing",
    // the first started first; the rest of their configuration is unchanged.
    nodes[0].start(&ic, "new");
    for n in &mut nodes[1..] {
        n.start(&ic, "existing");
    }
    for n in &nodes {
        wait_for(&format!("restored {} healthy", n.name), || n.healthy());
    }
    leader(&eps, 3);

    for n in &nodes {
        let got = ctl_ok(
            &n.client_url(),
            &["get", "", "--from-key", "--consistency=s"],
        );
        assert_eq!(got, want, "keys on {} after the restore", n.name);
    }
    assert_eq!(
        ctl_ok(&eps, &["get", "name", "--print-value-only"]),
        "ballast\n"
    );
    let new_cluster = cluster_id(&eps);
    assert_ne!(
        new_cluster, old_cluster,
        "the restored cluster must have a new cluster ID"
    );
    for n in &nodes {
        assert_eq!(
            cluster_id(&n.client_url()),
            new_cluster,
            "{} is in another cluster",
            n.name
        );
    }
    let listed: Value = serde_json::from_str(&ctl_ok(&eps, &["member", "list", "-w", "json"]))
        .expect("member list JSON");
    let mut members: Vec<(String, Vec<String>)> = listed["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or_default().to_string(),
                m["peerURLs"]
                    .as_array()
                    .map(|u| {
                        u.iter()
                            .map(|u| u.as_str().unwrap_or_default().to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect();
    members.sort();
    let expected: Vec<(String, Vec<String>)> = nodes
        .iter()
        .map(|n| (n.name.clone(), vec![n.peer_url()]))
        .collect();
    assert_eq!(members, expected, "member list after the restore");

    // The restored cluster takes writes.
    ctl_ok(&eps, &["put", "after-restore", "yes"]);
    assert_eq!(
        ctl_ok(
            &nodes[2].client_url(),
            &["get", "after-restore", "--print-value-only"]
        ),
        "yes\n"
    );
}
