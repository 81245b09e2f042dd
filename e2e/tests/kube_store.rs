//! kube-apiserver, built from Kubernetes' source, stored on a three-member Ballast cluster
//! (`scripts/kube-up.sh`), used as Kubernetes uses its store: many objects written and
//! deleted, `kubectl get --watch`, a watch resumed from a resourceVersion across an API
//! server restart, paginated lists while the API server compacts, and a store member
//! killed under load. `BALLAST_KUBE_STORE=etcd` runs the same test on real etcd.
//!
//! ConfigMaps bypass the API server's watch cache in the test cluster, so their lists,
//! pages and watches are answered by the store itself.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ballast_e2e::kube::KubeCluster;
use serde_json::{json, Value};

const NS: &str = "store-test";
/// The API server compacts the store this often, so pages and watches meet compaction.
const COMPACTION_INTERVAL: &str = "10s";

#[test]
fn kube_apiserver_runs_on_the_store() {
    let kube = KubeCluster::up(&[("BALLAST_KUBE_COMPACTION_INTERVAL", COMPACTION_INTERVAL)])
        .expect("scripts/kube-up.sh");
    node_is_ready_and_the_api_server_answers(&kube);
    kube.kubectl(&["create", "namespace", NS])
        .expect("namespace");
    objects_are_created_updated_and_deleted_in_the_store(&kube);
    kubectl_get_watch_sees_changes(&kube);
    a_watch_resumes_across_an_api_server_restart(&kube);
    pages_are_one_snapshot_and_expire_with_compaction(&kube);
    the_api_server_keeps_serving_when_a_store_member_is_killed(&kube);
    if std::env::var("BALLAST_KUBE_STORE").unwrap_or_default() != "etcd" {
        consistent_lists_are_served_from_the_watch_cache(&kube);
    }
}

/// kube-apiserver serves a consistent list from its watch cache only after the store
/// confirms, through a watch progress request, that the cache has caught up; it falls back
/// to reading the store when the store does not support that (etcd older than 3.4.31 or
/// 3.5.13, as Debian's 3.4.23, so this runs on Ballast only).
fn consistent_lists_are_served_from_the_watch_cache(kube: &KubeCluster) {
    for _ in 0..5 {
        kube.kubectl(&["get", "pods,services,secrets", "-A"])
            .expect("consistent lists");
    }
    let metrics = kube
        .kubectl(&["get", "--raw", "/metrics"])
        .expect("metrics");
    let reads: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_watch_cache_consistent_read_total{"))
        .collect();
    assert!(
        reads
            .iter()
            .any(|l| l.contains(r#"fallback="false""#) && l.contains(r#"success="true""#)),
        "no consistent list was served from the cache: {reads:?}"
    );
    let fell_back: Vec<&&str> = reads
        .iter()
        .filter(|l| l.contains(r#"fallback="true""#) || l.contains(r#"success="false""#))
        .collect();
    assert!(fell_back.is_empty(), "{fell_back:?}");
}

fn node_is_ready_and_the_api_server_answers(kube: &KubeCluster) {
    let ready = kube
        .kubectl(&[
            "get",
            "nodes",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
        ])
        .expect("get nodes");
    assert_eq!(ready, "ballast-node=True\n");
    let readyz = kube
        .kubectl(&["get", "--raw", "/readyz?verbose"])
        .expect("readyz");
    assert!(readyz.contains("[+]etcd ok"), "{readyz}");
    assert!(readyz.ends_with("readyz check passed\n"), "{readyz}");
}

/// A List of `count` ConfigMaps `cm-NNN` with `data.v = value`, half of them labelled `half=second`.
fn config_maps(count: usize, value: &str) -> String {
    let items: Vec<Value> = (0..count)
        .map(|i| {
            let half = if i < count / 2 { "first" } else { "second" };
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": format!("cm-{i:03}"), "namespace": NS,
                             "labels": {"set": "bulk", "half": half}},
                "data": {"v": value},
            })
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

/// The keys the store holds under `prefix`, read with real etcdctl.
fn store_keys(kube: &KubeCluster, prefix: &str, revision: Option<&str>) -> BTreeSet<String> {
    let endpoints = KubeCluster::store_endpoint(1);
    let mut args = vec![
        "--endpoints",
        &endpoints,
        "get",
        prefix,
        "--prefix",
        "--keys-only",
    ];
    let rev;
    if let Some(r) = revision {
        rev = format!("--rev={r}");
        args.push(&rev);
    }
    kube.store_etcdctl(&args)
        .expect("etcdctl get")
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn objects_are_created_updated_and_deleted_in_the_store(kube: &KubeCluster) {
    const COUNT: usize = 200;
    kube.kubectl_with_input(&["create", "-f", "-"], Some(&config_maps(COUNT, "1")))
        .expect("create");
    kube.kubectl_with_input(&["replace", "-f", "-"], Some(&config_maps(COUNT, "2")))
        .expect("replace");
    kube.kubectl(&["delete", "configmaps", "-n", NS, "-l", "half=second"])
        .expect("delete");

    let listed = kube
        .kubectl(&[
            "get",
            "configmaps",
            "-n",
            NS,
            "-l",
            "set=bulk",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}={.data.v}{"\n"}{end}"#,
        ])
        .expect("list");
    let expected: String = (0..COUNT / 2).map(|i| format!("cm-{i:03}=2\n")).collect();
    assert_eq!(listed, expected);

    // The objects are the store's keys, exactly: nothing lost, nothing left behind.
    let keys = store_keys(kube, &format!("/registry/configmaps/{NS}/cm-"), None);
    let expected: BTreeSet<String> = (0..COUNT / 2)
        .map(|i| format!("/registry/configmaps/{NS}/cm-{i:03}"))
        .collect();
    assert_eq!(keys, expected);
}

fn kubectl_get_watch_sees_changes(kube: &KubeCluster) {
    let mut watch = kube
        .kubectl_command(&["get", "configmaps", "-n", NS, "--watch-only", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get --watch");
    let stdout = watch.stdout.take().expect("watch output");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The watch starts after its initial list; keep changing until it reports.
    let start = Instant::now();
    let mut seen = BTreeSet::new();
    let mut n = 0;
    while seen.len() < 2 && start.elapsed() < Duration::from_secs(60) {
        let name = format!("watched-{n}");
        kube.kubectl(&["create", "configmap", &name, "-n", NS])
            .expect("create watched");
        n += 1;
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            seen.insert(line);
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let last = format!("configmap/watched-{}", n - 1);
    assert!(
        seen.contains(&last),
        "kubectl get --watch did not report {last}; it reported {seen:?}"
    );
}

/// One page of the test namespace's ConfigMaps, read raw (kubectl get would show its own
/// List, without the resourceVersion and continue token).
struct Page {
    items: Vec<String>,
    revision: String,
    token: String,
}

fn config_map_page(
    kube: &KubeCluster,
    limit: u32,
    token: Option<&str>,
) -> Result<Page, ballast_e2e::Error> {
    let mut path = format!("/api/v1/namespaces/{NS}/configmaps?limit={limit}");
    if let Some(token) = token {
        path += &format!("&continue={}", query_escape(token));
    }
    let page: Value =
        serde_json::from_str(&kube.kubectl(&["get", "--raw", &path])?).expect("a ConfigMapList");
    let field = |name: &str| {
        page["metadata"][name]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let revision = field("resourceVersion");
    assert!(!revision.is_empty(), "{page}");
    Ok(Page {
        items: page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["metadata"]["name"].as_str().expect("name").to_string())
            .collect(),
        token: field("continue"),
        revision,
    })
}

/// The resourceVersion of a list of the test namespace's ConfigMaps.
fn list_revision(kube: &KubeCluster) -> String {
    config_map_page(kube, 1, None).expect("list").revision
}

fn wait_ready(kube: &KubeCluster) {
    kube.wait_kubectl(
        &["get", "--raw", "/readyz"],
        Duration::from_secs(120),
        |out| out == "ok",
    )
    .expect("kube-apiserver ready again");
}

fn a_watch_resumes_across_an_api_server_restart(kube: &KubeCluster) {
    let from = list_revision(kube);
    kube.component("restart", "kube-apiserver")
        .expect("restart kube-apiserver");
    wait_ready(kube);
    for name in ["resumed-a", "resumed-b", "resumed-c"] {
        kube.kubectl(&["create", "configmap", name, "-n", NS])
            .expect("create");
    }
    kube.kubectl(&["delete", "configmap", "cm-000", "-n", NS])
        .expect("delete");

    let path = format!(
        "/api/v1/namespaces/{NS}/configmaps?watch=true&resourceVersion={from}&timeoutSeconds=3"
    );
    let events: Vec<(String, String)> = kube
        .kubectl(&["get", "--raw", &path])
        .expect("watch from the old resourceVersion")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("watch event");
            (
                v["type"].as_str().unwrap_or_default().to_string(),
                v["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("ADDED", "resumed-a"),
        ("ADDED", "resumed-b"),
        ("ADDED", "resumed-c"),
        ("DELETED", "cm-000"),
    ]
    .iter()
    .map(|(t, n)| (t.to_string(), n.to_string()))
    .collect();
    assert_eq!(
        events, expected,
        "events after resourceVersion {from}, in order, and nothing older"
    );
}

/// `s` escaped for a URL query.
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn pages_are_one_snapshot_and_expire_with_compaction(kube: &KubeCluster) {
    // Writers keep changing the namespace while it is read page by page.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let kubeconfig = kube.kubeconfig().to_string();
        let kubectl = kube.kubectl_command(&[]).get_program().to_owned();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("late-{n}");
                let _ = std::process::Command::new(&kubectl)
                    .env("KUBECONFIG", &kubeconfig)
                    .args(["create", "configmap", &name, "-n", NS])
                    .output();
                n += 1;
            }
        })
    };
    let mut page = config_map_page(kube, 7, None).expect("first page");
    let snapshot = page.revision.clone();
    let mut names: Vec<String> = Vec::new();
    let mut pages = 1;
    loop {
        names.append(&mut page.items);
        if page.token.is_empty() {
            break;
        }
        page = config_map_page(kube, 7, Some(&page.token)).expect("next page");
        pages += 1;
    }
    // Every page was read at the first page's revision: the store's keys at that revision.
    let at_snapshot: Vec<String> = store_keys(
        kube,
        &format!("/registry/configmaps/{NS}/"),
        Some(&snapshot),
    )
    .into_iter()
    .map(|k| k.rsplit('/').next().unwrap_or_default().to_string())
    .collect();
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    assert!(pages > 10, "only {pages} pages");
    assert_eq!(names, at_snapshot, "pages of resourceVersion {snapshot}");

    // kubectl's own paging gives what one unpaged list gives.
    let chunked = kube
        .kubectl(&[
            "get",
            "configmaps",
            "-n",
            NS,
            "--chunk-size=7",
            "-o",
            "name",
        ])
        .expect("kubectl get --chunk-size");
    let whole = kube
        .kubectl(&[
            "get",
            "configmaps",
            "-n",
            NS,
            "--chunk-size=0",
            "-o",
            "name",
        ])
        .expect("kubectl get, one page");
    assert!(chunked.lines().count() > 100, "{chunked}");
    assert_eq!(chunked, whole);

    // A continue token outlives its revision only until the API server compacts past it.
    let first = config_map_page(kube, 5, None).expect("first page");
    let (revision, token) = (first.revision, first.token);
    let start = Instant::now();
    let endpoints = KubeCluster::store_endpoint(1);
    let probe = format!("--rev={revision}");
    let mut n = 0;
    loop {
        // The compactor needs newer revisions to compact to.
        kube.kubectl(&["create", "configmap", &format!("tick-{n}"), "-n", NS])
            .expect("tick");
        n += 1;
        match kube.store_etcdctl(&["--endpoints", &endpoints, "get", "/registry", &probe]) {
            Err(e)
                if e.to_string()
                    .contains("required revision has been compacted") =>
            {
                break
            }
            _ if start.elapsed() > Duration::from_secs(120) => {
                panic!("the API server never compacted past revision {revision}")
            }
            _ => std::thread::sleep(Duration::from_secs(1)),
        }
    }
    let err = config_map_page(kube, 5, Some(&token))
        .err()
        .expect("a continue token older than the compacted revision is refused");
    let err = err.to_string();
    assert!(
        err.contains("(Expired)") && err.contains("The provided continue parameter is too old"),
        "{err}"
    );
}

/// The store member (1-based) that leads, asked of every member.
fn store_leader(kube: &KubeCluster) -> u32 {
    let endpoints: Vec<String> = (1..=3).map(KubeCluster::store_endpoint).collect();
    let status = kube
        .store_etcdctl(&[
            "--endpoints",
            &endpoints.join(","),
            "endpoint",
            "status",
            "-w",
            "json",
        ])
        .expect("endpoint status");
    let status: Value = serde_json::from_str(&status).expect("status json");
    let all = status.as_array().expect("array");
    let leader = all[0]["Status"]["leader"].as_u64().expect("leader");
    let index = all
        .iter()
        .position(|s| s["Status"]["header"]["member_id"].as_u64() == Some(leader))
        .expect("the leader is one of the members");
    index as u32 + 1
}

fn the_api_server_keeps_serving_when_a_store_member_is_killed(kube: &KubeCluster) {
    let leader = store_leader(kube);
    let victim = format!("store-{leader}");
    let mut acknowledged = Vec::new();
    let mut failures = Vec::new();
    let mut acknowledged_after_kill = 0;
    let start = Instant::now();
    let mut killed = false;
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(20) {
        if !killed && start.elapsed() > Duration::from_secs(3) {
            kube.component("kill", &victim).expect("kill the leader");
            killed = true;
        }
        let name = format!("load-{n}");
        n += 1;
        match kube.kubectl(&["create", "configmap", &name, "-n", NS, "--from-literal=n=1"]) {
            Ok(_) => {
                acknowledged_after_kill += usize::from(killed);
                acknowledged.push(name);
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(killed);
    assert!(
        acknowledged_after_kill > 10,
        "only {acknowledged_after_kill} writes succeeded after the store's leader was killed; failures: {failures:?}"
    );
    wait_ready(kube);
    let listed: BTreeSet<String> = kube
        .kubectl(&["get", "configmaps", "-n", NS, "-o", "name"])
        .expect("list")
        .lines()
        .map(|l| l.trim_start_matches("configmap/").to_string())
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !listed.contains(*n))
        .collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    eprintln!(
        "{} writes acknowledged ({acknowledged_after_kill} after {victim}, the leader, was killed), {} failed: {failures:?}",
        acknowledged.len(),
        failures.len()
    );

    // The member comes back and catches up.
    kube.component("start", &victim)
        .expect("restart the member");
    let endpoint = KubeCluster::store_endpoint(leader);
    let start = Instant::now();
    while kube
        .store_etcdctl(&["--endpoints", &endpoint, "endpoint", "health"])
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{victim} did not come back"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let last = acknowledged.last().expect("some writes");
    let key = format!("/registry/configmaps/{NS}/{last}");
    let start = Instant::now();
    loop {
        let got = kube
            .store_etcdctl(&[
                "--endpoints",
                &endpoint,
                "get",
                &key,
                "--keys-only",
                "--consistency=s",
            ])
            .unwrap_or_default();
        if got.trim() == key {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{victim} did not catch up to {key}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
