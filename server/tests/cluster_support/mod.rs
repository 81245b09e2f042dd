//! Multi-member clusters of real `ballast` processes on loopback, driven
//! with etcdctl exactly as the runbooks do.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{etcdctl_binary, free_port};

/// Clusters in one test binary run one at a time: a dozen members starting
/// together on a two-core machine would turn timing into the test.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long a member may take to become healthy, or a cluster to elect.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub struct Node {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
    /// Environment for every start (test-only knobs).
    env: Vec<(String, String)>,
}

impl Node {
    pub fn new(name: &str, root: &std::path::Path) -> Node {
        Node {
            name: name.to_string(),
            client_port: free_port(),
            peer_port: free_port(),
            data_dir: root.join(name),
            child: None,
            extra: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.with_extension("log")
    }

    /// Starts the member with the seeds' flags.
    pub fn start(&mut self, initial_cluster: &str, state: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open member log");
        let child = Command::new(env!("CARGO_BIN_EXE_ballast"))
            .args(["--name", &self.name, "--data-dir"])
            .arg(&self.data_dir)
            .args([
                "--listen-client-urls",
                &self.client_url(),
                "--advertise-client-urls",
                &self.client_url(),
            ])
            .args([
                "--listen-peer-urls",
                &self.peer_url(),
                "--initial-advertise-peer-urls",
                &self.peer_url(),
            ])
            .args([
                "--initial-cluster",
                initial_cluster,
                "--initial-cluster-state",
                state,
            ])
            .args(["--initial-cluster-token", "itest-cluster"])
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ballast");
        self.child = Some(child);
    }

    /// Sends a signal (e.g. "STOP", "CONT") to the member's process.
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .args([&format!("-{sig}"), &c.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill -{sig} {}", self.name);
        }
    }

    /// Sets an environment variable for this member's next starts.
    #[allow(dead_code)]
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Starts with extra flags appended (e.g. --force-new-cluster).
    pub fn start_with(&mut self, initial_cluster: &str, state: &str, extra: &[&str]) {
        self.extra = extra.iter().map(|s| s.to_string()).collect();
        self.start(initial_cluster, state);
        self.extra.clear();
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// GET /health returns 200.
    pub fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.client_port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        if s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.starts_with("HTTP/1.1 200")
    }

    /// The member's log, for a failing test's message.
    #[allow(dead_code)]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs etcdctl against `endpoints`; returns (success, stdout, stderr).
pub fn ctl(endpoints: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(etcdctl_binary())
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoints, "--command-timeout", "10s"])
        .args(args)
        .output()
        .expect("run etcdctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// etcdctl that must succeed.
pub fn ctl_ok(endpoints: &str, args: &[&str]) -> String {
    let (ok, out, err) = ctl(endpoints, args);
    assert!(ok, "etcdctl {args:?} against {endpoints} failed:\n{err}");
    out
}

/// Polls until `check` holds, failing after `DEADLINE`.
pub fn wait_for(what: &str, check: impl FnMut() -> bool) {
    crate::common::wait_until(what, DEADLINE, check);
}

pub fn initial_cluster(nodes: &[&Node]) -> String {
    nodes
        .iter()
        .map(|n| format!("{}={}", n.name, n.peer_url()))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn endpoints(nodes: &[&Node]) -> String {
    nodes
        .iter()
        .map(|n| n.client_url())
        .collect::<Vec<_>>()
        .join(",")
}

/// One `endpoint status` row: (endpoint, member id, is leader, raft term).
pub fn status(endpoints: &str) -> Vec<(String, String, bool, u64)> {
    let (_, out, _) = ctl(endpoints, &["endpoint", "status"]);
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(", ").collect();
            (f.len() >= 7).then(|| {
                (
                    f[0].to_string(),
                    f[1].to_string(),
                    f[4] == "true",
                    f[6].parse().unwrap_or(0),
                )
            })
        })
        .collect()
}

/// The member ID (hex) of the current leader, once exactly one member of
/// those listed claims leadership and all agree on the term.
pub fn leader(endpoints: &str, members: usize) -> String {
    let mut found = String::new();
    wait_for("one leader agreed on by every member", || {
        let rows = status(endpoints);
        let leaders: Vec<_> = rows.iter().filter(|r| r.2).collect();
        let same_term = rows.windows(2).all(|w| w[0].3 == w[1].3);
        if rows.len() == members && leaders.len() == 1 && same_term {
            found = leaders[0].1.clone();
            true
        } else {
            false
        }
    });
    found
}

/// `member list` as (id, name, is learner).
pub fn members(endpoints: &str) -> Vec<(String, String, bool)> {
    ctl_ok(endpoints, &["member", "list"])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(", ").collect();
            (f.len() >= 6).then(|| (f[0].to_string(), f[2].to_string(), f[5] == "true"))
        })
        .collect()
}

/// etcdctl that must succeed once the cluster is ready for it: with
/// --strict-reconfig-check, membership changes are refused as an "unhealthy
/// cluster" until every peer has been connected for etcd's 5 s health interval.
pub fn ctl_reconfig(endpoints: &str, args: &[&str]) -> String {
    let mut out = String::new();
    wait_for(&format!("etcdctl {args:?} to be accepted"), || {
        let (ok, stdout, stderr) = ctl(endpoints, args);
        assert!(
            ok || stderr.contains("etcdserver: unhealthy cluster"),
            "etcdctl {args:?} against {endpoints} failed:\n{}",
            tail(&stderr)
        );
        out = stdout;
        ok
    });
    out
}

/// The last lines of etcdctl's (long) error output.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// Whether the member logged `needle` after byte `from` of its log, in a
/// line that also names `peer`.
pub fn logged_since(node: &Node, from: usize, needle: &str, peer: &str) -> bool {
    let log = node.log();
    log.get(from..)
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains(needle) && l.contains(peer))
}
