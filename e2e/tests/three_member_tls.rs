//! What the operator renders for a 3-member EtcdCluster really boots: the StatefulSet's
//! pods, run by the pod runner (each its own network namespace, volumes and `/etc/hosts`),
//! form a TLS cluster that real `etcdctl` uses with the `apiserver-etcd-client`
//! certificate, as kube-apiserver would. Each member makes its own key; a thread here does
//! the operator's part of that exchange with the operator's own code.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ballast_e2e::{http_get, http_put_json, Host, Network, Pod};
use ballast_operator::crd::EtcdCluster;
use ballast_operator::member_identity::{self, Decision, Report, Signing};
use ballast_operator::members::{ClusterView, ObservedMember};
use ballast_operator::pki;
use ballast_operator::render::{self, Live, RenderContext};
use ballast_operator::tls::{self, StoredSecrets};
use k8s_openapi::api::core::v1::Secret;

const NAMESPACE: &str = "db";
const MEMBERS: u32 = 3;

#[test]
fn rendered_statefulset_forms_a_tls_cluster() {
    let root = tempfile::tempdir().expect("tempdir");
    // Pods run as the StatefulSet's non-root user: everything they reach must be traversable.
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = install_ballast(root.path());

    let mut cluster = EtcdCluster::new("main", serde_json::from_str("{}").expect("spec"));
    cluster.metadata.namespace = Some(NAMESPACE.into());
    cluster.metadata.uid = Some("6f1c2a9e-0000-4000-8000-0000000000e2".into());
    let rendered =
        render::render(&cluster, &RenderContext::default(), &Live::default()).expect("render");
    let (secrets, ca_pem) = issue_secrets(&cluster);

    let mut net =
        Network::create("ble2e", [10, 250, 77]).expect("network (needs root and iproute2)");
    let mut hosts_entries = Vec::new();
    let mut pod_hosts = Vec::new();
    for i in 0..MEMBERS {
        let name = format!("main-{i}");
        let host = net.add_host(&name).expect("host");
        hosts_entries.push((host.ip, dns_names(&name)));
        pod_hosts.push(host);
    }
    let client = net.add_host("client").expect("client host");
    net.write_hosts(&hosts_entries).expect("/etc/hosts");

    let mut pods: Vec<Pod> = pod_hosts
        .into_iter()
        .enumerate()
        .map(|(i, host)| {
            Pod::from_statefulset(
                &rendered.statefulset,
                i as u32,
                host,
                root.path(),
                &secrets,
                &bin,
            )
            .expect("pod")
        })
        .collect();

    let signer = Signer::start(
        ca_pem,
        pod_hosts_ips(&pods),
        render::cluster_names(&cluster).expect("names"),
    );
    // Parallel pod management: every member starts at once.
    std::thread::scope(|s| {
        for pod in pods.iter_mut() {
            s.spawn(move || pod.start(Duration::from_secs(60)).expect("pod starts"));
        }
    });
    for pod in pods.iter_mut() {
        pod.wait_ready("etcd", Duration::from_secs(90))
            .expect("member ready");
    }

    let ctl = Etcdctl::new(&client, root.path(), &secrets);
    let all = endpoints(0..MEMBERS);
    assert_eq!(
        ctl.ok(&all, &["put", "/registry/pods/db/web", "running"]),
        "OK\n"
    );
    for i in 0..MEMBERS {
        assert_eq!(
            ctl.ok(
                &endpoints(i..i + 1),
                &["get", "/registry/pods/db/web", "--print-value-only"]
            ),
            "running\n",
            "read through main-{i}"
        );
    }
    let health = ctl.ok(&all, &["endpoint", "health"]);
    assert_eq!(
        health
            .matches("is healthy: successfully committed proposal")
            .count(),
        3,
        "{health}"
    );

    let members = ctl.ok(&all, &["member", "list"]);
    for i in 0..MEMBERS {
        let line = format!(
            ", started, main-{i}, https://main-{i}.main-peer.db.svc.cluster.local:2380, https://main-{i}.main-peer.db.svc.cluster.local:2379, false"
        );
        assert!(members.contains(&line), "member list:\n{members}");
    }

    // Client certificates are required.
    let refused = ctl.run(&all, &["get", "x"], false);
    assert!(!refused.0, "a client without a certificate was served");

    // Each sidecar watches its member over mutual TLS: three members, one leader.
    let seen = wait_for(
        "every sidecar to see its member and the same leader",
        || {
            let views: Vec<serde_json::Value> = pods
                .iter()
                .filter_map(|p| {
                    let (code, body) = http_get(
                        &format!("http://{}:2382/status", p.host.ip),
                        Duration::from_secs(2),
                    )?;
                    (code == 200)
                        .then(|| serde_json::from_str(&body).ok())
                        .flatten()
                })
                .collect();
            let leaders: std::collections::BTreeSet<_> =
                views.iter().map(|v| v["leader"].to_string()).collect();
            (views.len() == MEMBERS as usize && leaders.len() == 1).then_some(views)
        },
    );
    let ids: std::collections::BTreeSet<_> =
        seen.iter().map(|v| v["member_id"].to_string()).collect();
    assert_eq!(ids.len(), 3, "{seen:?}");
    assert_eq!(
        seen.iter().filter(|v| v["is_leader"] == true).count(),
        1,
        "{seen:?}"
    );

    // The operator's own status code, asking over mutual TLS with its client certificate,
    // finds three healthy voters and the leader the sidecars see: the cluster is Available.
    let view = observe_members(&client, root.path(), &secrets);
    assert_eq!(view.members.len(), 3, "{view:?}");
    assert!(
        view.members.iter().all(|m| m.healthy && !m.learner),
        "{view:?}"
    );
    assert_eq!(
        view.leader.map(|l| format!("\"{l:x}\"")),
        Some(seen[0]["leader"].to_string()),
        "operator and sidecars agree on the leader"
    );
    let names = render::cluster_names(&cluster).expect("names");
    let observed = ballast_operator::status::Observed {
        workload: ballast_operator::status::WorkloadState {
            exists: true,
            observed: true,
            replicas: 3,
            ready_replicas: 3,
            updated_replicas: 3,
            revisions_match: true,
        },
        members: Some(Ok(view)),
        ..Default::default()
    };
    let status = ballast_operator::status::compute(
        &cluster,
        &names,
        &observed,
        k8s_openapi::jiff::Timestamp::now(),
    );
    let available = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Available")
        .expect("Available condition");
    assert_eq!(available.status, "True", "{available:?}");

    // The server ran as the pod's user and kept its data on the claim.
    let member_dir = root.path().join("claims/data-main-0/data/member");
    assert_eq!(
        std::fs::metadata(&member_dir).expect("member dir").uid(),
        65532
    );

    // Each member's key stayed on its own volume, and no pod holds another's.
    assert!(signer.signed() >= 3, "every member was signed for");
    for i in 0..MEMBERS as usize {
        let pki = root.path().join(format!("claims/data-main-{i}/pki"));
        let key = std::fs::metadata(pki.join("member.key")).expect("member key");
        assert_eq!(key.uid(), 65532);
        assert_eq!(key.mode() & 0o777, 0o600);
        let volumes = root.path().join(format!("pods/main-{i}/volumes"));
        let found = find_files(&volumes, "key");
        assert!(
            found.iter().all(|f| f.ends_with("client-tls/tls.key")),
            "main-{i} mounts keys other than its client identity: {found:?}"
        );
    }
    // A restart needs no operator: the key and its certificates are on the claim.
    drop(signer);

    // A pod is lost and comes back on the same claim: it rejoins with its data.
    pods[1].stop();
    // If main-1 led, a write forwarded to it is lost until the others elect a leader
    // (etcd behaves the same); a client retries.
    wait_for("a write while main-1 is away", || {
        let (ok, out) = ctl.run(&endpoints(0..1), &["put", "while-away", "yes"], true);
        (ok && out == "OK\n").then_some(())
    });
    pods[1]
        .start(Duration::from_secs(60))
        .expect("pod restarts");
    pods[1]
        .wait_ready("etcd", Duration::from_secs(90))
        .expect("ready again");
    wait_for("main-1 to catch up", || {
        let (ok, out) = ctl.run(
            &endpoints(1..2),
            &[
                "get",
                "while-away",
                "--print-value-only",
                "--consistency",
                "s",
            ],
            true,
        );
        (ok && out == "yes\n").then_some(())
    });
    let restarted = std::fs::read_to_string(pods[1].log_path("etcd")).unwrap_or_default();
    assert!(
        restarted.matches("starting an etcd member").count() >= 2,
        "main-1 restarted from its claim"
    );
}

/// The server binary, built fresh and copied where the pods' user can run it.
fn install_ballast(root: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "ballast", "--bin", "ballast"])
        .status()
        .expect("cargo build");
    assert!(status.success(), "building ballast");
    // Test binaries live in <target>/debug/deps; the server binary one level up.
    let exe = std::env::current_exe().expect("test path");
    let built = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("ballast"))
        .expect("target dir");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    std::fs::copy(&built, bin.join("ballast")).expect("copy ballast");
    for p in [&bin, &bin.join("ballast")] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    bin
}

/// The members as the operator's code sees them from the client host.
fn observe_members(client: &Host, root: &Path, secrets: &[Secret]) -> ClusterView {
    let dir = root.join("operator");
    std::fs::create_dir_all(&dir).expect("operator dir");
    let ca = write_secret_file(
        secrets,
        "main-operator-client",
        "ca.crt",
        &dir.join("ca.crt"),
    );
    let cert = write_secret_file(
        secrets,
        "main-operator-client",
        "tls.crt",
        &dir.join("tls.crt"),
    );
    let key = write_secret_file(
        secrets,
        "main-operator-client",
        "tls.key",
        &dir.join("tls.key"),
    );
    let mut cmd = client.command(env!("CARGO_BIN_EXE_observe-members"));
    cmd.args([&ca, &cert, &key]);
    for i in 0..MEMBERS {
        cmd.arg(format!(
            "main-{i}=https://main-{i}.main-peer.{NAMESPACE}.svc.cluster.local:2379"
        ));
    }
    let out = cmd.output().expect("observe-members runs");
    assert!(
        out.status.success(),
        "observe-members: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    ClusterView {
        cluster_id: v["cluster_id"].as_u64(),
        leader: v["leader"].as_u64(),
        members: v["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| ObservedMember {
                id: m["id"].as_u64().expect("id"),
                name: m["name"].as_str().unwrap_or_default().to_string(),
                learner: m["learner"] == true,
                healthy: m["healthy"] == true,
                answered: m["healthy"] == true,
                alarms: Vec::new(),
                applied_index: 0,
                peer_urls: serde_json::from_value(m["peer_urls"].clone()).unwrap_or_default(),
            })
            .collect(),
        cluster_ids: serde_json::from_value(v["cluster_ids"].clone()).expect("cluster_ids"),
    }
}

fn write_secret_file(secrets: &[Secret], secret: &str, key: &str, path: &Path) -> PathBuf {
    let s = secrets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(secret))
        .unwrap_or_else(|| panic!("secret {secret}"));
    let bytes = &s
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .unwrap_or_else(|| panic!("{secret}/{key}"))
        .0;
    std::fs::write(path, bytes).expect("write");
    path.to_path_buf()
}

/// The certificate Secrets the controller would write for `cluster`, and its CA.
fn issue_secrets(cluster: &EtcdCluster) -> (Vec<Secret>, pki::CaPem) {
    let now = time::OffsetDateTime::now_utc();
    let names = render::cluster_names(cluster).expect("names");
    let owner = render::owner_reference(cluster).expect("owner");
    let ca_pem = pki::generate_ca(now).expect("CA");
    let ca = pki::Ca::from_pem(&ca_pem.cert, &ca_pem.key).expect("CA loads");
    let secrets = tls::plan(
        &names,
        &cluster.spec,
        None,
        &ca,
        &StoredSecrets::default(),
        &owner,
        now,
    )
    .expect("TLS plan")
    .apply;
    (secrets, ca_pem)
}

fn pod_hosts_ips(pods: &[Pod]) -> Vec<(String, std::net::Ipv4Addr)> {
    pods.iter()
        .map(|p| (p.id.name.clone(), p.host.ip))
        .collect()
}

/// The operator's part of the key exchange, as `member_identity::sync` does it: asks each
/// pod's sidecar for its public key and hands back certificates signed for it.
struct Signer {
    stop: Arc<AtomicBool>,
    signed: Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Signer {
    fn start(
        ca_pem: pki::CaPem,
        pods: Vec<(String, std::net::Ipv4Addr)>,
        names: ballast_operator::names::ClusterNames,
    ) -> Signer {
        let stop = Arc::new(AtomicBool::new(false));
        let signed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (stop2, signed2) = (stop.clone(), signed.clone());
        let thread = std::thread::spawn(move || {
            let ca = pki::Ca::from_pem(&ca_pem.cert, &ca_pem.key).expect("CA loads");
            while !stop2.load(Ordering::Relaxed) {
                for (name, ip) in &pods {
                    let url = format!("http://{ip}:2382/identity");
                    let Some((200, body)) = http_get(&url, Duration::from_secs(1)) else {
                        continue;
                    };
                    let report: Report = serde_json::from_str(&body).expect("identity JSON");
                    let signing = Signing {
                        ca: &ca,
                        now: time::OffsetDateTime::now_utc(),
                        validity: Duration::from_secs(365 * 86_400),
                        renew_before: Duration::from_secs(30 * 86_400),
                    };
                    let decision =
                        member_identity::decide(signing, &names, name, &report).expect("decide");
                    if let Decision::Sign { grant, .. } = decision {
                        let body = serde_json::to_string(&grant).expect("grant JSON");
                        let answer = http_put_json(&url, &body, Duration::from_secs(2));
                        assert_eq!(
                            answer.as_ref().map(|a| a.0),
                            Some(200),
                            "{name} refused: {answer:?}"
                        );
                        signed2.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Signer {
            stop,
            signed,
            thread: Some(thread),
        }
    }

    fn signed(&self) -> usize {
        self.signed.load(Ordering::Relaxed)
    }
}

impl Drop for Signer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Files under `dir` whose name ends in `.{ext}`.
fn find_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(find_files(&path, ext));
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
    out
}

fn dns_names(member: &str) -> Vec<String> {
    let base = format!("{member}.main-peer");
    vec![
        format!("{base}.{NAMESPACE}.svc.cluster.local"),
        format!("{base}.{NAMESPACE}.svc"),
        format!("{base}.{NAMESPACE}"),
        base,
    ]
}

fn endpoints(members: std::ops::Range<u32>) -> String {
    members
        .map(|i| format!("https://main-{i}.main-peer.{NAMESPACE}.svc.cluster.local:2379"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Real etcdctl on the client host, with kube-apiserver's certificate.
struct Etcdctl<'a> {
    host: &'a Host,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl<'a> Etcdctl<'a> {
    fn new(host: &'a Host, root: &Path, secrets: &[Secret]) -> Self {
        let dir = root.join("client");
        std::fs::create_dir_all(&dir).expect("client dir");
        let file = |secret: &str, key: &str, out: &str| {
            write_secret_file(secrets, secret, key, &dir.join(out))
        };
        Etcdctl {
            host,
            ca: file("main-apiserver-etcd-client", "ca.crt", "ca.crt"),
            cert: file("main-apiserver-etcd-client", "tls.crt", "client.crt"),
            key: file("main-apiserver-etcd-client", "tls.key", "client.key"),
        }
    }

    /// `(succeeded, stdout or stderr)`.
    fn run(&self, endpoints: &str, args: &[&str], with_cert: bool) -> (bool, String) {
        let mut c = self.host.command("etcdctl");
        c.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoints}"))
            .arg(format!("--cacert={}", self.ca.display()))
            .arg("--dial-timeout=3s")
            .arg("--command-timeout=10s");
        if with_cert {
            c.arg(format!("--cert={}", self.cert.display()))
                .arg(format!("--key={}", self.key.display()));
        }
        let out = c.args(args).output().expect("etcdctl runs");
        // etcdctl 3.4 prints `endpoint health` results on stderr.
        let text = if out.status.success() && !out.stdout.is_empty() {
            out.stdout
        } else {
            out.stderr
        };
        (
            out.status.success(),
            String::from_utf8_lossy(&text).into_owned(),
        )
    }

    fn ok(&self, endpoints: &str, args: &[&str]) -> String {
        let (ok, out) = self.run(endpoints, args, true);
        let tail: String = out.lines().rev().take(5).collect::<Vec<_>>().join("\n");
        assert!(ok, "etcdctl {args:?} failed:\n{tail}");
        out
    }
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
