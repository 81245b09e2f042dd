//! `unix://` client and peer URLs, as etcd serves them.
//!
//! etcd 3.4 only takes the `unix://host:port` form and makes a socket named `host:port` in
//! its working directory; peers dial the same name. So every process of a test here (the
//! members and etcdctl) runs in one scratch directory, and the URLs are `unix://localhost:N`
//! with N a name rather than a port. Runs against real etcd 3.4 with
//! `BALLAST_TEST_SERVER=etcd`, except where a test says what differs.

mod common;
mod tls_support;

use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{etcdctl_binary, server_kind, ServerKind};

/// How long a member may take to answer /health, or a condition to come true.
const DEADLINE: Duration = Duration::from_secs(30);

fn server_binary() -> PathBuf {
    match server_kind() {
        ServerKind::Ballast => PathBuf::from(env!("CARGO_BIN_EXE_ballast")),
        ServerKind::Etcd => std::env::var_os("BALLAST_TEST_ETCD_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd")),
    }
}

/// etcdctl 3.6: `BALLAST_TEST_ETCD36_DIR`, or what `scripts/etcd36-tools.sh` prints.
fn etcdctl36() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(d) = std::env::var_os("BALLAST_TEST_ETCD36_DIR") {
            return PathBuf::from(d).join("etcdctl");
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/etcd36-tools.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        assert!(out.status.success(), "{} failed", script.display());
        let text = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(
            text.lines()
                .last()
                .expect("the script prints the directory"),
        )
        .join("etcdctl")
    })
}

/// A server process with unix socket URLs, run in `dir`; killed when dropped.
struct Member {
    name: String,
    dir: PathBuf,
    client: String,
    peer: String,
    args: Vec<String>,
    child: Option<Child>,
    /// `unix`, or `unixs` for TLS over the client socket.
    scheme: &'static str,
    /// The same for the peer socket.
    peer_scheme: &'static str,
    /// etcdctl's TLS flags for `unixs` (`--cacert ...`).
    ctl_tls: Vec<String>,
}

impl Member {
    /// `client` and `peer` are the URLs' names (`localhost:N`), relative to `dir`.
    fn new(dir: &Path, name: &str, client: &str, peer: &str) -> Member {
        Member {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            client: client.to_string(),
            peer: peer.to_string(),
            args: Vec::new(),
            child: None,
            scheme: "unix",
            peer_scheme: "unix",
            ctl_tls: Vec::new(),
        }
    }

    fn client_url(&self) -> String {
        format!("{}://{}", self.scheme, self.client)
    }

    fn peer_url(&self) -> String {
        format!("{}://{}", self.peer_scheme, self.peer)
    }

    /// Whether the member answers healthy on its client socket.
    fn healthy(&self) -> bool {
        if self.ctl_tls.is_empty() {
            return health_ok(&self.dir.join(&self.client));
        }
        let mut args: Vec<&str> = self.ctl_tls.iter().map(String::as_str).collect();
        args.extend(["endpoint", "health"]);
        ctl_with(etcdctl_binary(), &self.dir, &self.client_url(), &args)
            .status
            .success()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.name))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Spawns the member with `initial_cluster`; does not wait.
    fn spawn(&mut self, initial_cluster: &str) {
        assert!(self.child.is_none(), "{} is running already", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open member log");
        let err = log.try_clone().expect("clone log handle");
        let child = Command::new(server_binary())
            .current_dir(&self.dir)
            .args([
                "--name",
                &self.name,
                "--data-dir",
                &format!("{}.etcd", self.name),
            ])
            .args(["--listen-client-urls", &self.client_url()])
            .args(["--advertise-client-urls", &self.client_url()])
            .args(["--listen-peer-urls", &self.peer_url()])
            .args(["--initial-advertise-peer-urls", &self.peer_url()])
            .args(["--initial-cluster", initial_cluster])
            .args(["--initial-cluster-token", "unix-socket-test"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("spawn the server");
        self.child = Some(child);
    }

    fn start(&mut self, initial_cluster: &str) {
        self.spawn(initial_cluster);
        self.wait_healthy();
    }

    fn wait_healthy(&mut self) {
        let socket = self.dir.join(&self.client);
        let deadline = Instant::now() + DEADLINE;
        while !self.healthy() {
            let exited = self.child.as_mut().map(|c| c.try_wait().ok().flatten());
            if let Some(Some(status)) = exited {
                panic!("{} exited with {status}:\n{}", self.name, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{} not healthy on {} within {DEADLINE:?}:\n{}",
                self.name,
                socket.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the member again after `kill9`, on the sockets the crash left behind. etcd 3.4
    /// cannot bind over a stale client socket (3.5 and Ballast can): for it, the test
    /// removes that one first.
    fn restart_after_crash(&mut self, initial_cluster: &str) {
        if server_kind() == ServerKind::Etcd {
            std::fs::remove_file(self.dir.join(&self.client)).expect("remove stale client socket");
        }
        self.start(initial_cluster);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the process to exit.
    fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let ok = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -TERM failed");
        let deadline = Instant::now() + DEADLINE;
        while c.try_wait().expect("poll the server").is_none() {
            assert!(Instant::now() < deadline, "{} ignored SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- {} log ----\n{}", self.name, self.log());
        }
    }
}

/// `GET /health` over the socket answers healthy.
fn health_ok(socket: &Path) -> bool {
    http_get(socket, "/health").is_ok_and(|t| t.contains(r#""health":"true""#))
}

/// An HTTP/1.1 GET over a unix socket: the whole response.
fn http_get(socket: &Path, path: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

/// Runs an etcdctl binary in `dir` against `endpoints`.
fn ctl_with(bin: &Path, dir: &Path, endpoints: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .current_dir(dir)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoints, "--command-timeout", "10s"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run etcdctl")
}

/// etcdctl 3.4, which must succeed; its stdout.
fn ctl_ok(dir: &Path, endpoints: &str, args: &[&str]) -> String {
    ok(ctl_with(etcdctl_binary(), dir, endpoints, args), args)
}

fn ok(out: Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ballast-unix-")
        .tempdir()
        .expect("temp dir")
}

#[test]
fn etcdctl_34_and_36_over_a_unix_client_socket() {
    let dir = scratch();
    let mut m = Member::new(dir.path(), "u1", "localhost:2379", "localhost:2380");
    m.args = vec![
        "--listen-metrics-urls".into(),
        "unix://localhost:2381".into(),
    ];
    m.start("u1=unix://localhost:2380");
    // The sockets are the URLs' host:port, in the working directory.
    assert!(is_socket(&dir.path().join("localhost:2379")));
    assert!(is_socket(&dir.path().join("localhost:2380")));
    let metrics = http_get(&dir.path().join("localhost:2381"), "/metrics").expect("GET /metrics");
    assert!(metrics.contains("\netcd_server_has_leader 1"), "{metrics}");

    let ep = m.client_url();
    assert_eq!(
        ctl_ok(dir.path(), &ep, &["put", "k", "over a socket"]),
        "OK\n"
    );
    assert_eq!(
        ctl_ok(dir.path(), &ep, &["get", "k", "--print-value-only"]),
        "over a socket\n"
    );
    let members: serde_json::Value =
        serde_json::from_str(&ctl_ok(dir.path(), &ep, &["member", "list", "-w", "json"]))
            .expect("member list json");
    let me = &members["members"][0];
    assert_eq!(
        me["clientURLs"],
        serde_json::json!(["unix://localhost:2379"])
    );
    assert_eq!(me["peerURLs"], serde_json::json!(["unix://localhost:2380"]));
    // Per-endpoint commands dial the endpoint by itself.
    let status = ctl_ok(dir.path(), &ep, &["endpoint", "status"]);
    assert!(status.starts_with("unix://localhost:2379, "), "{status}");
    // etcdctl 3.4 prints the health to stderr.
    let health = ctl_with(etcdctl_binary(), dir.path(), &ep, &["endpoint", "health"]);
    let text = String::from_utf8_lossy(&health.stderr);
    assert!(health.status.success(), "{text}");
    assert!(text.contains("unix://localhost:2379 is healthy"), "{text}");
    // etcdctl 3.4 also takes the socket's absolute path.
    let abs = format!("unix://{}", dir.path().join("localhost:2379").display());
    assert_eq!(
        ctl_ok(dir.path(), &abs, &["get", "k", "--print-value-only"]),
        "over a socket\n"
    );

    // etcdctl 3.6 with both spellings gRPC knows for a unix target.
    for ep in ["unix://localhost:2379", "unix:localhost:2379"] {
        let args = ["get", "k", "--print-value-only"];
        let out = ok(ctl_with(etcdctl36(), dir.path(), ep, &args), &args);
        assert_eq!(out, "over a socket\n", "etcdctl 3.6 --endpoints {ep}");
    }
    let args = ["put", "k2", "from 3.6"];
    assert_eq!(
        ok(ctl_with(etcdctl36(), dir.path(), &abs, &args), &args),
        "OK\n"
    );
    assert_eq!(
        ctl_ok(dir.path(), &ep, &["get", "k2", "--print-value-only"]),
        "from 3.6\n"
    );
}

#[test]
fn socket_files_are_removed_on_stop_and_replaced_after_a_crash() {
    let dir = scratch();
    let client = dir.path().join("localhost:4379");
    let peer = dir.path().join("localhost:4380");
    let mut m = Member::new(dir.path(), "r1", "localhost:4379", "localhost:4380");
    let cluster = "r1=unix://localhost:4380";
    m.start(cluster);
    ctl_ok(dir.path(), &m.client_url(), &["put", "k", "v1"]);

    // A graceful stop removes both sockets, as etcd's listeners do when closed.
    m.stop();
    assert!(
        !client.exists() && !peer.exists(),
        "sockets left after SIGTERM"
    );
    m.start(cluster);
    ctl_ok(dir.path(), &m.client_url(), &["put", "k", "v2"]);

    // A crash leaves them behind; the next start binds over the stale ones.
    m.kill9();
    assert!(
        is_socket(&client) && is_socket(&peer),
        "sockets gone after SIGKILL"
    );
    if server_kind() == ServerKind::Etcd {
        // etcd 3.4 replaces a stale peer socket but not a client one (3.5 replaces both).
        m.spawn(cluster);
        let status = m.child.take().expect("spawned").wait().expect("wait");
        assert!(!status.success());
        assert!(
            m.log()
                .contains("listen unix localhost:4379: bind: address already in use"),
            "{}",
            m.log()
        );
    }
    m.restart_after_crash(cluster);
    assert_eq!(
        ctl_ok(
            dir.path(),
            &m.client_url(),
            &["get", "k", "--print-value-only"]
        ),
        "v2\n"
    );

    if server_kind() == ServerKind::Ballast {
        // etcd deletes whatever is at the path and steals a live member's socket; Ballast
        // refuses a socket something still accepts on, as a taken TCP port is refused.
        let mut second = Member::new(dir.path(), "r2", "localhost:4379", "localhost:4390");
        second.spawn("r2=unix://localhost:4390");
        let child = second.child.as_mut().expect("spawned");
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(s) = child.try_wait().expect("poll") {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "a second server on a live socket kept running"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        second.child = None;
        assert!(!status.success());
        assert!(
            second
                .log()
                .contains("listen on unix://localhost:4379: address already in use"),
            "{}",
            second.log()
        );
        assert_eq!(
            ctl_ok(
                dir.path(),
                &m.client_url(),
                &["get", "k", "--print-value-only"]
            ),
            "v2\n",
            "the first server still serves its socket"
        );
    }
}

#[test]
fn a_socket_path_client_url() {
    let dir = scratch();
    let path = dir.path().join("client.sock");
    let mut m = Member::new(dir.path(), "p1", "localhost:5379", "localhost:5380");
    m.args = vec![
        "--listen-client-urls".into(),
        format!("unix://{},unix://localhost:5379", path.display()),
    ];
    if server_kind() == ServerKind::Etcd {
        // etcd 3.4 wants host:port in every URL; 3.5 and later listen on the path.
        m.spawn("p1=unix://localhost:5380");
        let status = m.child.take().expect("spawned").wait().expect("wait");
        assert!(!status.success());
        assert!(
            m.log()
                .contains(r#"URL address does not have the form "host:port""#),
            "{}",
            m.log()
        );
        return;
    }
    m.start("p1=unix://localhost:5380");
    assert!(is_socket(&path));
    let ep = format!("unix://{}", path.display());
    ctl_ok(dir.path(), &ep, &["put", "k", "v"]);
    let args = ["get", "k", "--print-value-only"];
    assert_eq!(
        ok(ctl_with(etcdctl36(), dir.path(), &ep, &args), &args),
        "v\n"
    );
    m.stop();
    assert!(!path.exists(), "socket left after SIGTERM");
}

#[test]
fn three_members_talk_raft_over_unix_sockets() {
    let dir = scratch();
    let mut members: Vec<Member> = (1..=3)
        .map(|i| {
            Member::new(
                dir.path(),
                &format!("m{i}"),
                &format!("localhost:{i}2379"),
                &format!("localhost:{i}2380"),
            )
        })
        .collect();
    let cluster = members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url()))
        .collect::<Vec<_>>()
        .join(",");
    // Members wait for each other to publish; start them all, then wait.
    for m in &mut members {
        m.spawn(&cluster);
    }
    for m in &mut members {
        m.wait_healthy();
    }
    let all = members
        .iter()
        .map(Member::client_url)
        .collect::<Vec<_>>()
        .join(",");
    let list: serde_json::Value =
        serde_json::from_str(&ctl_ok(dir.path(), &all, &["member", "list", "-w", "json"]))
            .expect("member list json");
    let mut peers: Vec<String> = list["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["peerURLs"][0].as_str().expect("peer URL").to_string())
        .collect();
    peers.sort();
    assert_eq!(
        peers,
        [
            "unix://localhost:12380",
            "unix://localhost:22380",
            "unix://localhost:32380"
        ]
    );

    // A write through one member is replicated to the others.
    ctl_ok(
        dir.path(),
        &members[0].client_url(),
        &["put", "k", "replicated"],
    );
    for m in &members[1..] {
        let ep = m.client_url();
        wait_for(&format!("k on {}", m.name), || {
            ctl_with(
                etcdctl_binary(),
                dir.path(),
                &ep,
                &["get", "k", "--print-value-only", "--consistency", "s"],
            )
            .stdout
                == b"replicated\n"
        });
    }

    // A member that crashed comes back on its stale sockets and catches up.
    members[2].kill9();
    // If m3 led, a put racing the election times out (etcd 3.4 drops it): try again.
    let ep = members[0].client_url();
    wait_for("a put while m3 is down", || {
        ctl_with(
            etcdctl_binary(),
            dir.path(),
            &ep,
            &["put", "k", "while m3 was down"],
        )
        .status
        .success()
    });
    members[2].restart_after_crash(&cluster);
    let ep = members[2].client_url();
    wait_for("m3 to catch up", || {
        ctl_with(
            etcdctl_binary(),
            dir.path(),
            &ep,
            &["get", "k", "--print-value-only", "--consistency", "s"],
        )
        .stdout
            == b"while m3 was down\n"
    });
    // Linearizable reads on every member go through the leader over the peer sockets.
    for m in &members {
        assert_eq!(
            ctl_ok(
                dir.path(),
                &m.client_url(),
                &["get", "k", "--print-value-only"]
            ),
            "while m3 was down\n",
            "{}",
            m.name
        );
    }
}

#[test]
fn tls_over_unix_sockets_for_clients_and_peers() {
    let dir = scratch();
    let ca = tls_support::Ca::new(dir.path(), "ca");
    // SANs 127.0.0.1 and localhost: the name clients and peers verify for unixs://localhost:N.
    let cert = ca.issue("member", "etcd");
    let server_tls: Vec<String> = [
        "--cert-file",
        cert.crt(),
        "--key-file",
        cert.key(),
        "--peer-cert-file",
        cert.crt(),
        "--peer-key-file",
        cert.key(),
        "--peer-trusted-ca-file",
        ca.crt(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let ctl_tls = vec!["--cacert".to_string(), ca.crt().to_string()];
    // etcd 3.4 refuses its own peers' TLS connections over a socket: its check that the
    // client certificate names the remote address fails on a unix address ("rejected
    // connection from "@" (error "address @: missing port in address")"). Ballast makes
    // the other certificate checks and forms the cluster; etcd gets plain peer sockets.
    let peer_scheme = match server_kind() {
        ServerKind::Ballast => "unixs",
        ServerKind::Etcd => "unix",
    };
    let mut members: Vec<Member> = (1..=3)
        .map(|i| {
            let mut m = Member::new(
                dir.path(),
                &format!("s{i}"),
                &format!("localhost:{i}4379"),
                &format!("localhost:{i}4380"),
            );
            m.scheme = "unixs";
            m.peer_scheme = peer_scheme;
            m.args = server_tls.clone();
            m.ctl_tls = ctl_tls.clone();
            m
        })
        .collect();
    let cluster = members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url()))
        .collect::<Vec<_>>()
        .join(",");
    for m in &mut members {
        m.spawn(&cluster);
    }
    for m in &mut members {
        m.wait_healthy();
    }
    let tls_args = |args: &[&'static str]| -> Vec<String> {
        ctl_tls
            .iter()
            .cloned()
            .chain(args.iter().map(|s| s.to_string()))
            .collect()
    };
    let run = |bin: &Path, ep: &str, args: &[&'static str]| {
        let args = tls_args(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ctl_with(bin, dir.path(), ep, &args)
    };
    let list = run(
        etcdctl_binary(),
        &members[0].client_url(),
        &["member", "list", "-w", "json"],
    );
    let list: serde_json::Value =
        serde_json::from_str(&ok(list, &["member", "list"])).expect("member list json");
    let mut peers: Vec<String> = list["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["peerURLs"][0].as_str().expect("peer URL").to_string())
        .collect();
    peers.sort();
    let want: Vec<String> = (1..=3)
        .map(|i| format!("{peer_scheme}://localhost:{i}4380"))
        .collect();
    assert_eq!(peers, want);
    // Written through one member with etcdctl 3.4, read through another with 3.6: the
    // entry went over the peers' (TLS, on Ballast) sockets.
    let put = run(
        etcdctl_binary(),
        &members[0].client_url(),
        &["put", "k", "over TLS on a socket"],
    );
    assert_eq!(ok(put, &["put"]), "OK\n");
    let ep = members[2].client_url();
    wait_for("k on s3", || {
        run(
            etcdctl36(),
            &ep,
            &["get", "k", "--print-value-only", "--consistency=s"],
        )
        .stdout
            == b"over TLS on a socket\n"
    });
    // Without the CA the server's certificate is refused.
    let untrusted = ctl_with(etcdctl_binary(), dir.path(), &ep, &["get", "k"]);
    assert!(
        !untrusted.status.success(),
        "a get without --cacert succeeded"
    );
}
