//! Shared harness for the etcdctl integration tests.
//!
//! Every test starts its own server (Ballast or, for reference runs, real
//! etcd) on free loopback ports with a fresh data directory, and drives it
//! with a real `etcdctl` binary.
//!
//! Choose the server with `BALLAST_TEST_SERVER`:
//! * `ballast` (the default): the `ballast` binary cargo built;
//! * `etcd`: real etcd 3.4 (Debian's etcd-server, `/usr/bin/etcd`);
//! * `etcd36`: real etcd 3.6 from `BALLAST_TEST_ETCD36_DIR` (built and cached by
//!   `scripts/etcd36-tools.sh`, which is run when the variable is unset).
//!
//! Choose etcdctl with `BALLAST_TEST_ETCDCTL`: `3.4` (the default: `etcdctl` on PATH,
//! Debian's etcd-client), `3.6` (the one next to etcd 3.6), or a path. Where etcdctl 3.4
//! and 3.6 print the same answer differently, the tests take the expected text from the
//! "etcdctl 3.4 and 3.6" section below, keyed on [`etcdctl_version`].
//!
//! Optional overrides: `BALLAST_TEST_BALLAST_BIN`, `BALLAST_TEST_ETCD_BIN` (etcd 3.4),
//! `BALLAST_TEST_ETCDCTL_BIN` (etcdctl 3.4) (paths).
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a server may take to answer `GET /health` after being spawned.
const READY_DEADLINE: Duration = Duration::from_secs(20);
/// How long a graceful stop (SIGTERM) may take before we SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// Interval between readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Default deadline for reading output of a long-running etcdctl.
pub const LINE_DEADLINE: Duration = Duration::from_secs(5);
/// How often `start` retries with new ports if the server lost a port race.
const START_ATTEMPTS: usize = 3;

// ---------------------------------------------------------------------------
// Which binaries to run
// ---------------------------------------------------------------------------

/// Ballast or real etcd: what most tests need to know about the server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    Ballast,
    /// Real etcd, 3.4 or 3.6 (see [`server`]).
    Etcd,
}

/// The server under test, with the release when it is real etcd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    Ballast,
    Etcd34,
    Etcd36,
}

/// `BALLAST_TEST_SERVER`: `ballast` (default), `etcd` (3.4) or `etcd36`.
pub fn server() -> Server {
    match std::env::var("BALLAST_TEST_SERVER").as_deref() {
        Err(_) | Ok("") | Ok("ballast") => Server::Ballast,
        Ok("etcd") => Server::Etcd34,
        Ok("etcd36") => Server::Etcd36,
        Ok(other) => {
            panic!("BALLAST_TEST_SERVER must be `ballast`, `etcd` or `etcd36`, got `{other}`")
        }
    }
}

pub fn server_kind() -> ServerKind {
    match server() {
        Server::Ballast => ServerKind::Ballast,
        Server::Etcd34 | Server::Etcd36 => ServerKind::Etcd,
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Resolves a tool from an env override, then PATH, then /usr/bin.
fn locate_tool(env_var: &str, name: &str, install_hint: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "{env_var}={} does not exist", p.display());
        return p;
    }
    find_in_path(name)
        .or_else(|| Some(Path::new("/usr/bin").join(name)).filter(|p| p.is_file()))
        .unwrap_or_else(|| panic!("`{name}` not found on PATH (or set {env_var}); {install_hint}"))
}

/// The directory with real etcd, etcdctl and etcdutl 3.6: `BALLAST_TEST_ETCD36_DIR`, or
/// what `scripts/etcd36-tools.sh` prints (it builds them on the first run and caches them
/// under `~/.cache/ballast-tools`, so a test run without the variable still finds them).
pub fn etcd36_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os("BALLAST_TEST_ETCD36_DIR") {
            return PathBuf::from(d);
        }
        // option_env!, as for the ballast binary below: this file also compiles outside cargo.
        let manifest = option_env!("CARGO_MANIFEST_DIR").unwrap_or(".");
        let script = Path::new(manifest).join("../scripts/etcd36-tools.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed (it builds etcd 3.6 from the Go module proxy); or set BALLAST_TEST_ETCD36_DIR",
            script.display()
        );
        let text = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(
            text.lines()
                .last()
                .expect("etcd36-tools.sh prints the directory"),
        )
    })
}

/// A tool from [`etcd36_dir`] (`etcd`, `etcdctl`, `etcdutl`), checked to exist.
pub fn etcd36_tool(name: &str) -> PathBuf {
    let path = etcd36_dir().join(name);
    assert!(
        path.is_file(),
        "{} does not exist (BALLAST_TEST_ETCD36_DIR or scripts/etcd36-tools.sh)",
        path.display()
    );
    path
}

fn server_binary(server: Server) -> PathBuf {
    match server {
        Server::Ballast => {
            if let Some(p) = std::env::var_os("BALLAST_TEST_BALLAST_BIN") {
                return PathBuf::from(p);
            }
            // option_env!, not env!, so this file also compiles outside the
            // ballast package (e.g. a scratch crate) and for etcd-only runs.
            match option_env!("CARGO_BIN_EXE_ballast") {
                Some(built) => PathBuf::from(built),
                None => panic!(
                    "CARGO_BIN_EXE_ballast is unset: run with `cargo test -p ballast`, \
                     set BALLAST_TEST_BALLAST_BIN, or use BALLAST_TEST_SERVER=etcd"
                ),
            }
        }
        Server::Etcd34 => locate_tool(
            "BALLAST_TEST_ETCD_BIN",
            "etcd",
            "install Debian's `etcd-server` package (apt-get install etcd-server) to run the reference suite",
        ),
        Server::Etcd36 => etcd36_tool("etcd"),
    }
}

/// The etcdctl series the tests know the output of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtlVersion {
    /// Debian's etcd-client (3.4.23): the expectations were first recorded with it.
    V34,
    /// etcdctl 3.6 (3.6.16, from `scripts/etcd36-tools.sh`).
    V36,
}

struct Etcdctl {
    path: PathBuf,
    version: CtlVersion,
}

/// The etcdctl to run, resolved once from `BALLAST_TEST_ETCDCTL` and checked to be a
/// series whose output the tests know.
fn etcdctl() -> &'static Etcdctl {
    static ETCDCTL: OnceLock<Etcdctl> = OnceLock::new();
    ETCDCTL.get_or_init(|| {
        let choice = std::env::var("BALLAST_TEST_ETCDCTL").unwrap_or_default();
        let path = match choice.as_str() {
            "" | "3.4" => locate_tool(
                "BALLAST_TEST_ETCDCTL_BIN",
                "etcdctl",
                "install Debian's etcd-client (apt-get install etcd-client), which ships etcdctl 3.4",
            ),
            "3.6" => etcd36_tool("etcdctl"),
            path => {
                let path = PathBuf::from(path);
                assert!(
                    path.is_file(),
                    "BALLAST_TEST_ETCDCTL={} is neither 3.4, 3.6 nor an existing file",
                    path.display()
                );
                path
            }
        };
        // No ETCDCTL_API here: etcdctl 3.6 warns about it on stderr.
        let out = Command::new(&path)
            .arg("version")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
        let text = String::from_utf8_lossy(&out.stdout);
        let version = if text.starts_with("etcdctl version: 3.4.") {
            CtlVersion::V34
        } else if text.starts_with("etcdctl version: 3.6.") {
            CtlVersion::V36
        } else {
            panic!(
                "these tests know the output of etcdctl 3.4 and 3.6; {} reports:\n{text}",
                path.display()
            )
        };
        if !choice.is_empty() && choice != "3.4" && choice != "3.6" {
            eprintln!("etcdctl: {} ({version:?})", path.display());
        }
        Etcdctl { path, version }
    })
}

/// Path of the etcdctl the tests run (see [`etcdctl_version`]).
pub fn etcdctl_binary() -> &'static Path {
    &etcdctl().path
}

/// Which etcdctl series the tests run: the key for the expected outputs below.
pub fn etcdctl_version() -> CtlVersion {
    etcdctl().version
}

/// A `Command` for the chosen etcdctl, with the environment it needs: etcdctl 3.4 is
/// told the API version (as the runbooks do), etcdctl 3.6 is not (it has only v3 and
/// warns about the variable on stderr).
pub fn etcdctl_cmd() -> Command {
    let mut cmd = Command::new(etcdctl_binary());
    if etcdctl_version() == CtlVersion::V34 {
        cmd.env("ETCDCTL_API", "3");
    }
    cmd
}

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

/// Ports handed out by this test process, so parallel tests never share one.
fn handed_out_ports() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A loopback port that was free a moment ago and that no other test in this
/// process has been given.
pub fn free_port() -> u16 {
    let mut taken = handed_out_ports().lock().expect("port registry poisoned");
    loop {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
        let port = listener
            .local_addr()
            .expect("local_addr of probe listener")
            .port();
        if taken.insert(port) {
            return port;
        }
    }
}

// ---------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------

pub struct TestServer {
    kind: Server,
    binary: PathBuf,
    name: String,
    client_port: u16,
    peer_port: u16,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    child: Option<Child>,
    starts: usize,
}

impl TestServer {
    /// Starts a single-member server with etcd's default settings.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a single-member server with extra etcd flags (e.g. `--max-request-bytes`).
    pub fn start_with(extra_args: &[&str]) -> Self {
        for attempt in 1..=START_ATTEMPTS {
            let mut server = Self::new_unstarted(free_port(), free_port(), extra_args);
            match server.try_launch() {
                Ok(()) => return server,
                // Another process grabbed a port between probing and binding: retry.
                Err(_) if attempt < START_ATTEMPTS && server.lost_port_race() => continue,
                // Dropping `server` while panicking prints its log.
                Err(reason) => panic!("server failed to start: {reason}"),
            }
        }
        unreachable!("the last attempt either returns or panics")
    }

    /// Starts a single-member server with extra flags and environment variables.
    pub fn start_with_env(extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut server = Self::new_unstarted(free_port(), free_port(), extra_args);
        server.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Err(reason) = server.try_launch() {
            panic!("server failed to start: {reason}");
        }
        server
    }

    /// Starts a server whose peer URL uses `peer_port` (fixed), so that its
    /// member/cluster IDs are predictable.
    pub fn start_with_peer_port(peer_port: u16, extra_args: &[&str]) -> Self {
        let mut server = Self::new_unstarted(free_port(), peer_port, extra_args);
        if let Err(reason) = server.try_launch() {
            panic!("server failed to start with fixed peer port {peer_port}: {reason}");
        }
        server
    }

    /// Starts a new server (fresh data dir) with the same name, ports and flags
    /// as `other`, which must be stopped already.
    pub fn start_like(other: &TestServer) -> Self {
        assert!(
            other.child.is_none(),
            "start_like needs the other server stopped (ports are reused)"
        );
        let extra: Vec<&str> = other.extra_args.iter().map(String::as_str).collect();
        let mut server = Self::new_unstarted(other.client_port, other.peer_port, &extra);
        if let Err(reason) = server.try_launch() {
            panic!("server failed to start on reused ports: {reason}");
        }
        server
    }

    fn lost_port_race(&self) -> bool {
        self.log().to_lowercase().contains("address already in use")
    }

    fn new_unstarted(client_port: u16, peer_port: u16, extra_args: &[&str]) -> Self {
        let kind = server();
        // Checked up front so a missing etcdctl fails before any server starts.
        etcdctl_binary();
        TestServer {
            kind,
            binary: server_binary(kind),
            name: "itest".to_string(),
            client_port,
            peer_port,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            dir: tempfile::Builder::new()
                .prefix("ballast-itest-")
                .tempdir()
                .expect("create temp dir for server data"),
            child: None,
            starts: 0,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    /// A scratch directory that is removed with the server.
    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }
    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Everything the server printed so far (all starts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn server_args(&self) -> Vec<String> {
        let client = self.client_url();
        let peer = self.peer_url();
        let mut args: Vec<String> = vec![
            "--name".into(),
            self.name.clone(),
            "--data-dir".into(),
            self.data_dir().display().to_string(),
            "--listen-client-urls".into(),
            client.clone(),
            "--advertise-client-urls".into(),
            client,
            "--listen-peer-urls".into(),
            peer.clone(),
            "--initial-advertise-peer-urls".into(),
            peer.clone(),
            "--initial-cluster".into(),
            format!("{}={}", self.name, peer),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Spawns the server and waits for `/health`; on failure returns why
    /// (the log is printed when the panicking test drops the server).
    fn try_launch(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "server already running");
        self.starts += 1;
        let args = self.server_args();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open server log file");
        writeln!(
            log,
            "===== start #{}: {} {} =====",
            self.starts,
            self.binary.display(),
            args.join(" ")
        )
        .expect("write server log header");
        let stderr_log = log.try_clone().expect("clone server log handle");
        let child = Command::new(&self.binary)
            .args(&args)
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr_log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", self.binary.display()));
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_DEADLINE;
        let addr: SocketAddr = format!("127.0.0.1:{}", self.client_port)
            .parse()
            .expect("loopback socket address");
        loop {
            let child = self
                .child
                .as_mut()
                .expect("wait_ready needs a running child");
            if let Some(status) = child.try_wait().expect("poll server process") {
                self.child = None;
                return Err(format!("server exited early with {status}"));
            }
            if health_ok(addr) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill9();
                return Err(format!(
                    "server did not report healthy on {addr}/health within {READY_DEADLINE:?}"
                ));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Starts the server again on the same ports and data dir (stopping it
    /// gracefully first if it is still running).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        if let Err(reason) = self.try_launch() {
            panic!("server failed to restart: {reason}");
        }
    }

    /// SIGKILLs the server and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            child.wait().expect("reap killed server");
        }
    }

    /// SIGTERMs the server and waits for it to exit (SIGKILL after a deadline).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run `kill -TERM`");
        assert!(status.success(), "kill -TERM {} failed", child.id());
        let deadline = Instant::now() + STOP_DEADLINE;
        while child.try_wait().expect("poll stopping server").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                child.wait().expect("reap server");
                panic!("server ignored SIGTERM for {STOP_DEADLINE:?}");
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    // -- etcdctl -----------------------------------------------------------

    fn etcdctl_command(&self, args: &[&str]) -> Command {
        let mut cmd = etcdctl_cmd();
        cmd.arg("--endpoints").arg(self.client_url()).args(args);
        cmd
    }

    /// Runs etcdctl to completion with empty stdin.
    pub fn etcdctl(&self, args: &[&str]) -> CtlOutput {
        self.etcdctl_stdin(args, "")
    }

    /// Runs etcdctl to completion, feeding `input` on stdin.
    pub fn etcdctl_stdin(&self, args: &[&str], input: &str) -> CtlOutput {
        let mut child = self
            .etcdctl_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn etcdctl");
        let mut stdin = child.stdin.take().expect("etcdctl stdin is piped");
        let input = input.to_owned();
        // Write from a thread so a large input cannot deadlock against a full stdout pipe.
        let writer = thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let out = child.wait_with_output().expect("wait for etcdctl");
        writer.join().expect("stdin writer thread");
        CtlOutput {
            args: args.iter().map(|s| s.to_string()).collect(),
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs etcdctl, asserts it succeeded, returns stdout.
    pub fn etcdctl_ok(&self, args: &[&str]) -> String {
        self.etcdctl(args).ok()
    }

    /// Runs etcdctl, asserts it failed, returns its `Error: ...` line.
    pub fn etcdctl_err(&self, args: &[&str]) -> String {
        self.etcdctl(args).err_line()
    }

    /// Starts a long-running etcdctl (e.g. `watch`).
    pub fn spawn_etcdctl(&self, args: &[&str]) -> Spawned {
        Spawned::new(self.etcdctl_command(args), args)
    }

    /// `etcdctl -w json <args>` parsed.
    pub fn etcdctl_json(&self, args: &[&str]) -> Value {
        let mut full = vec!["-w", "json"];
        full.extend_from_slice(args);
        let out = self.etcdctl_ok(&full);
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("etcdctl {full:?} printed invalid JSON ({e}):\n{out}"))
    }

    /// The store's current revision (from a response header).
    pub fn revision(&self) -> i64 {
        let v = self.etcdctl_json(&["get", "__itest_revision_probe__"]);
        v["header"]["revision"]
            .as_i64()
            .unwrap_or_else(|| panic!("no header.revision in {v}"))
    }

    /// `put key value`, asserting etcdctl's `OK`.
    pub fn put(&self, key: &str, value: &str) {
        assert_eq!(self.etcdctl_ok(&["put", key, value]), "OK\n", "put {key}");
    }

    /// `lease grant <ttl>`: checks etcdctl's exact output (the ID is printed
    /// with `%016x`) and returns the hex lease ID.
    pub fn grant_lease(&self, ttl: u32) -> String {
        let out = self.etcdctl_ok(&["lease", "grant", &ttl.to_string()]);
        let re = regex::Regex::new(r"^lease ([0-9a-f]{16}) granted with TTL\((\d+)s\)\n$")
            .expect("valid regex");
        let caps = re
            .captures(&out)
            .unwrap_or_else(|| panic!("unexpected `lease grant` output: {out:?}"));
        assert_eq!(&caps[2], ttl.to_string(), "granted TTL");
        caps[1].to_string()
    }

    /// The member ID as etcdctl shows it (hex), from `member list`.
    pub fn member_id_hex(&self) -> String {
        let out = self.etcdctl_ok(&["member", "list"]);
        let first = out.lines().next().expect("member list printed a line");
        first
            .split(", ")
            .next()
            .expect("member list line has an ID")
            .to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
        if thread::panicking() {
            let log = self.log();
            const MAX: usize = 64 * 1024;
            let start = log.len().saturating_sub(MAX);
            let start = (start..log.len())
                .find(|&i| log.is_char_boundary(i))
                .unwrap_or(0);
            eprintln!(
                "----- {:?} server log ({}; last {} bytes) -----\n{}\n----- end of server log -----",
                self.kind,
                self.log_path().display(),
                log.len() - start,
                &log[start..]
            );
        }
    }
}

/// One plain HTTP/1.1 `GET /health`; true on a 200 whose body says healthy.
fn health_ok(addr: SocketAddr) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.set_write_timeout(Some(Duration::from_secs(2)))?;
        write!(
            stream,
            "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let ok_status =
            response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200");
        Ok(ok_status && response.contains("\"true\""))
    };
    attempt().unwrap_or(false)
}

// ---------------------------------------------------------------------------
// etcdctl results
// ---------------------------------------------------------------------------

pub struct CtlOutput {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CtlOutput {
    fn describe(&self) -> String {
        format!(
            "etcdctl {:?} exited with {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.args, self.status, self.stdout, self.stderr
        )
    }

    /// Asserts success and returns stdout.
    pub fn ok(self) -> String {
        assert!(
            self.status.success(),
            "expected success: {}",
            self.describe()
        );
        self.stdout
    }

    /// Asserts failure and returns the `Error: ...` line etcdctl printed on stderr.
    ///
    /// etcdctl 3.4 also logs a JSON "retrying of unary invoker failed" warning
    /// on stderr; only the final `Error:` line is the user-facing text.
    pub fn err_line(self) -> String {
        assert!(
            !self.status.success(),
            "expected failure: {}",
            self.describe()
        );
        self.stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("Error:"))
            .unwrap_or_else(|| panic!("no `Error:` line on stderr: {}", self.describe()))
            .to_string()
    }

    /// Exit code (panics if killed by a signal).
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("etcdctl killed by a signal: {}", self.describe()))
    }
}

// ---------------------------------------------------------------------------
// Long-running etcdctl (watch, keep-alive)
// ---------------------------------------------------------------------------

pub struct Spawned {
    args: Vec<String>,
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    seen: Vec<String>,
}

impl Spawned {
    fn new(mut cmd: Command, args: &[&str]) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn long-running etcdctl");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("stderr buffer poisoned")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Spawned {
            args: args.iter().map(|s| s.to_string()).collect(),
            child,
            lines: rx,
            stderr,
            seen: Vec::new(),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "etcdctl {:?}\n--- stdout lines so far ---\n{}\n--- stderr so far ---\n{}",
            self.args,
            self.seen.join("\n"),
            self.stderr_text()
        )
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().expect("stderr buffer poisoned").clone()
    }

    /// The next stdout line, or None if none arrives within `timeout` (or stdout closed).
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Reads exactly `n` lines within [`LINE_DEADLINE`] (overall).
    pub fn read_lines(&mut self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + LINE_DEADLINE;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(line) => out.push(line),
                None => panic!(
                    "expected {n} lines within {LINE_DEADLINE:?}, got {}: {out:?}\n{}",
                    out.len(),
                    self.describe()
                ),
            }
        }
        out
    }

    /// Asserts the next stdout lines are exactly `expected`.
    pub fn expect_lines<S: AsRef<str>>(&mut self, expected: &[S]) {
        let expected: Vec<&str> = expected.iter().map(AsRef::as_ref).collect();
        let got = self.read_lines(expected.len());
        assert_eq!(got, expected, "unexpected output from {}", self.describe());
    }

    /// Reads lines until one equals `line` (within [`LINE_DEADLINE`]).
    pub fn skip_through(&mut self, line: &str) {
        let deadline = Instant::now() + LINE_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(l) if l == line => return,
                Some(_) => {}
                None => panic!(
                    "never saw line {line:?} within {LINE_DEADLINE:?}\n{}",
                    self.describe()
                ),
            }
        }
    }

    /// Waits for the process to exit by itself; returns its status and stderr.
    pub fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll etcdctl") {
                // Let the reader thread drain what is left of stderr.
                let drained = Instant::now() + Duration::from_secs(2);
                while Arc::strong_count(&self.stderr) > 1 && Instant::now() < drained {
                    thread::sleep(Duration::from_millis(10));
                }
                return (status, self.stderr_text());
            }
            if Instant::now() > deadline {
                panic!(
                    "etcdctl did not exit within {timeout:?}\n{}",
                    self.describe()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// After the process exited: every stdout line not read yet (until EOF).
    pub fn drain_stdout(&mut self) -> Vec<String> {
        let deadline = Instant::now() + LINE_DEADLINE;
        let mut rest = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    rest.push(line);
                }
                Err(RecvTimeoutError::Disconnected) => return rest,
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "stdout not closed within {LINE_DEADLINE:?}\n{}",
                        self.describe()
                    )
                }
            }
        }
    }

    pub fn kill(mut self) {
        self.kill_now();
    }

    /// Sends `sig` (e.g. `-TERM`) to the process: lets `etcdctl lock` and
    /// `elect` unlock or resign before they exit.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {}", self.child.id());
    }

    /// SIGKILL (if still running) and reap.
    pub fn kill_now(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// Makes sure `watch` (watching a range that contains `sync_key`) is
/// established, and consumes everything it printed so far.
///
/// etcdctl prints nothing when a watch is created, so we put probe values to
/// `sync_key` until one shows up, then put a final marker and read through it.
/// Afterwards the watch output is deterministic.
pub fn sync_watch(server: &TestServer, watch: &mut Spawned, sync_key: &str) {
    let deadline = Instant::now() + LINE_DEADLINE;
    let mut probe = 0;
    loop {
        server.put(sync_key, &format!("__probe_{probe}__"));
        if watch.next_line(Duration::from_millis(200)).is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "watch never reported a probe\n{}",
            watch.describe()
        );
        probe += 1;
    }
    server.put(sync_key, "__synced__");
    watch.skip_through("__synced__");
}

// ---------------------------------------------------------------------------
// etcdctl 3.4 and 3.6: where the same answer is printed differently
// ---------------------------------------------------------------------------
//
// Everything a test expects that depends on the etcdctl series (or on fields only an
// etcd 3.6 server fills in) is here, so each difference is written down once. Ballast
// emulates etcd 3.5 (`--emulated-etcd-version`, default 3.5.17): where etcd 3.6 added a
// field to a response, Ballast leaves it unset as 3.5 does, except `hash_revision` (see
// `Server::sends_hash_revision`).

/// A Go `time.Duration` as etcdctl prints it: "512µs", "7.663634ms", "1.2s".
pub const GO_DURATION: &str = r"\d+(\.\d+)?(ns|µs|ms|s)";

/// go-humanize's byte sizes, e.g. "20 kB", "1.2 MB", "512 B", "0 B".
pub const HUMAN_SIZE: &str = r"^\d+(\.\d+)? [kMGT]?B$";

impl Server {
    /// The version `endpoint status` reports: Ballast the etcd version it emulates (3.5.x),
    /// real etcd its own release.
    pub fn version_pattern(self) -> &'static str {
        match self {
            Server::Ballast => r"^3\.5\.\d+$",
            Server::Etcd34 => r"^3\.4\.\d+$",
            Server::Etcd36 => r"^3\.6\.\d+$",
        }
    }

    /// The storage (schema) version etcd 3.6 reports in `endpoint status` and records in
    /// its snapshots (`etcdutl snapshot status`'s VERSION). etcd 3.4 and 3.5 have none,
    /// and neither has Ballast, which emulates 3.5.
    pub fn storage_version(self) -> &'static str {
        match self {
            Server::Ballast | Server::Etcd34 => "",
            Server::Etcd36 => "3.6.0",
        }
    }

    /// The backend quota `endpoint status` reports (StatusResponse.dbSizeQuota, new in
    /// etcd 3.6): etcd 3.6's default 2 GiB; unset by etcd 3.4/3.5 and Ballast.
    pub fn status_quota(self) -> Option<u64> {
        match self {
            Server::Ballast | Server::Etcd34 => None,
            Server::Etcd36 => Some(2 * 1024 * 1024 * 1024),
        }
    }

    /// Whether HashKV answers carry `hash_revision` (the revision the hash covers), a field
    /// etcd 3.6 added. Ballast fills it although etcd 3.5 does not (so etcdctl 3.6 shows the
    /// same hash revision for Ballast as for etcd 3.6, and 0 for etcd 3.4/3.5).
    pub fn sends_hash_revision(self) -> bool {
        match self {
            Server::Ballast | Server::Etcd36 => true,
            Server::Etcd34 => false,
        }
    }

    /// The server version etcd 3.6 sends on the snapshot stream (SnapshotResponse.version,
    /// new in 3.6; its storage version). etcd 3.4/3.5 send none, nor does Ballast.
    pub fn snapshot_stream_version(self) -> Option<&'static str> {
        match self {
            Server::Ballast | Server::Etcd34 => None,
            Server::Etcd36 => Some("3.6.0"),
        }
    }
}

/// `defrag`'s output for one endpoint, as an anchored regex: etcdctl 3.6 adds how long
/// the defragmentation took.
pub fn defrag_output_pattern(endpoint: &str) -> String {
    let done = format!(
        "Finished defragmenting etcd member\\[{}\\]",
        regex::escape(endpoint)
    );
    match etcdctl_version() {
        CtlVersion::V34 => format!("^{done}\n$"),
        CtlVersion::V36 => format!(r"^{done}\. took {GO_DURATION}\n$"),
    }
}

/// The text of `endpoint health`'s per-endpoint lines: etcdctl 3.4 prints them on stderr,
/// etcdctl 3.6 on stdout. Asserts the other stream is empty.
pub fn endpoint_health_text(out: &CtlOutput) -> &str {
    let (lines, other, other_name) = match etcdctl_version() {
        CtlVersion::V34 => (&out.stderr, &out.stdout, "stdout"),
        CtlVersion::V36 => (&out.stdout, &out.stderr, "stderr"),
    };
    assert_eq!(
        other,
        "",
        "etcdctl {:?} prints nothing on {other_name} for `endpoint health`",
        etcdctl_version()
    );
    lines
}

/// `endpoint hashkv`'s simple output for one endpoint: `<endpoint>, <hash>` (3.4) or
/// `<endpoint>, <hash>, <hash revision>` (3.6). Returns the hash and, for 3.6, the
/// hash revision.
pub fn parse_hashkv_line(out: &str, endpoint: &str) -> (String, Option<i64>) {
    let pattern = match etcdctl_version() {
        CtlVersion::V34 => format!(r"^{}, (\d+)\n$", regex::escape(endpoint)),
        CtlVersion::V36 => format!(r"^{}, (\d+), (\d+)\n$", regex::escape(endpoint)),
    };
    let re = regex::Regex::new(&pattern).expect("valid regex");
    let caps = re
        .captures(out)
        .unwrap_or_else(|| panic!("unexpected hashkv output {out:?} (/{pattern}/)"));
    let revision = caps.get(2).map(|r| {
        r.as_str()
            .parse()
            .unwrap_or_else(|e| panic!("hash revision {:?}: {e}", r.as_str()))
    });
    (caps[1].to_string(), revision)
}

/// The hash revision etcdctl 3.6 shows for a server at `revision` (see
/// [`Server::sends_hash_revision`]).
pub fn expected_hash_revision(revision: i64) -> i64 {
    if server().sends_hash_revision() {
        revision
    } else {
        0
    }
}

/// `endpoint hashkv -w table`'s columns: etcdctl 3.6 adds the hash revision.
pub fn hashkv_table_columns() -> &'static [&'static str] {
    match etcdctl_version() {
        CtlVersion::V34 => &["ENDPOINT", "HASH"],
        CtlVersion::V36 => &["ENDPOINT", "HASH", "HASH REVISION"],
    }
}

/// `endpoint status -w table`'s columns: etcdctl 3.6 adds the storage version, the size in
/// use and its share, the quota, and the downgrade state.
pub fn endpoint_status_columns() -> &'static [&'static str] {
    match etcdctl_version() {
        CtlVersion::V34 => &[
            "ENDPOINT",
            "ID",
            "VERSION",
            "DB SIZE",
            "IS LEADER",
            "IS LEARNER",
            "RAFT TERM",
            "RAFT INDEX",
            "RAFT APPLIED INDEX",
            "ERRORS",
        ],
        CtlVersion::V36 => &[
            "ENDPOINT",
            "ID",
            "VERSION",
            "STORAGE VERSION",
            "DB SIZE",
            "IN USE",
            "PERCENTAGE NOT IN USE",
            "QUOTA",
            "IS LEADER",
            "IS LEARNER",
            "RAFT TERM",
            "RAFT INDEX",
            "RAFT APPLIED INDEX",
            "ERRORS",
            "DOWNGRADE TARGET VERSION",
            "DOWNGRADE ENABLED",
        ],
    }
}

/// The `endpoint status -w json` Status fields beyond etcd 3.5's that this etcdctl shows
/// for this server: only etcdctl 3.6 knows them, and only etcd 3.6 fills them (JSON
/// omits them when unset).
pub fn endpoint_status_json_extras() -> serde_json::Map<String, Value> {
    let mut extras = serde_json::Map::new();
    if etcdctl_version() == CtlVersion::V36 {
        let s = server();
        if !s.storage_version().is_empty() {
            extras.insert("storageVersion".into(), s.storage_version().into());
        }
        if let Some(quota) = s.status_quota() {
            extras.insert("dbSizeQuota".into(), quota.into());
        }
        if s == Server::Etcd36 {
            // No downgrade in progress: an empty DowngradeInfo.
            extras.insert("downgradeInfo".into(), serde_json::json!({}));
        }
    }
    extras
}

/// The name under which `txn -w json` shows one operation's response inside
/// `responses[i].Response`, for `op` "Put", "Range", "DeleteRange" or "Txn": etcdctl 3.4
/// names the Go oneof field ("ResponsePut"), etcdctl 3.6 its JSON tag ("response_put").
pub fn txn_json_response_key(op: &str) -> String {
    assert!(
        ["Put", "Range", "DeleteRange", "Txn"].contains(&op),
        "no txn response kind {op:?}"
    );
    match etcdctl_version() {
        CtlVersion::V34 => format!("Response{op}"),
        CtlVersion::V36 => {
            let mut snake = String::from("response");
            for c in op.chars() {
                if c.is_ascii_uppercase() {
                    snake.push('_');
                }
                snake.push(c.to_ascii_lowercase());
            }
            snake
        }
    }
}

/// `snapshot save`'s stdout: etcdctl 3.6 adds the server's version when the snapshot
/// stream carries one (see [`Server::snapshot_stream_version`]).
pub fn snapshot_saved_output(path: &str) -> String {
    let mut out = format!("Snapshot saved at {path}\n");
    if etcdctl_version() == CtlVersion::V36 {
        if let Some(version) = server().snapshot_stream_version() {
            out.push_str(&format!("Server version {version}\n"));
        }
    }
    out
}

/// `snapshot status <file> <args>`, by the tool of the chosen series: etcdctl 3.4 has the
/// command, etcdctl 3.6 does not (it moved to `etcdutl`), so for 3.6 it is etcdutl 3.6.
/// Asserts success, returns stdout.
pub fn snapshot_status(path: &str, args: &[&str]) -> String {
    let mut cmd = match etcdctl_version() {
        CtlVersion::V34 => etcdctl_cmd(),
        CtlVersion::V36 => Command::new(etcd36_tool("etcdutl")),
    };
    let out = cmd
        .args(["snapshot", "status", path])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run snapshot status: {e}"));
    let ctl = CtlOutput {
        args: ["snapshot", "status", path]
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect(),
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    ctl.ok()
}

/// `snapshot status -w table`'s columns: etcdutl 3.6 adds the snapshot's storage version.
pub fn snapshot_status_columns() -> &'static [&'static str] {
    match etcdctl_version() {
        CtlVersion::V34 => &["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
        CtlVersion::V36 => &["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE", "VERSION"],
    }
}

/// `snapshot status`'s total key count for a snapshot with `live_keys` keys: etcdutl 3.6
/// counts the live keys; etcdctl 3.4 counts every entry of every bucket (revisions,
/// tombstones, meta, members, ...), which depends on the server's internals, so `None`.
pub fn snapshot_total_keys(live_keys: u64) -> Option<u64> {
    match etcdctl_version() {
        CtlVersion::V34 => None,
        CtlVersion::V36 => Some(live_keys),
    }
}

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

/// Standard base64 (as etcdctl's JSON output encodes keys and values).
pub fn b64(input: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

/// Asserts `text` matches the regex `pattern` (anchored by the caller).
pub fn assert_matches(text: &str, pattern: &str) {
    let re = regex::Regex::new(pattern).unwrap_or_else(|e| panic!("bad regex {pattern:?}: {e}"));
    assert!(
        re.is_match(text),
        "output does not match /{pattern}/:\n{text}"
    );
}

/// Polls `cond` until it returns true or `timeout` passes.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Reads a file's size, with context.
pub fn file_size(path: &Path) -> u64 {
    File::open(path)
        .and_then(|f| f.metadata())
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .len()
}

/// Parses etcdctl's `-w table` output into (header, rows) of trimmed cells.
pub fn parse_table(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rows = text.lines().filter(|l| l.starts_with('|')).map(|l| {
        l.trim_matches('|')
            .split('|')
            .map(|cell| cell.trim().to_string())
            .collect::<Vec<String>>()
    });
    let header = rows
        .next()
        .unwrap_or_else(|| panic!("no table header in:\n{text}"));
    let rows: Vec<Vec<String>> = rows.collect();
    for row in &rows {
        assert_eq!(row.len(), header.len(), "ragged table:\n{text}");
    }
    (header, rows)
}

/// The single data row of a table, as (column name, cell) lookups.
pub fn single_row(
    text: &str,
    expected_header: &[&str],
) -> std::collections::HashMap<String, String> {
    let (header, rows) = parse_table(text);
    assert_eq!(header, expected_header, "table header of:\n{text}");
    assert_eq!(rows.len(), 1, "expected exactly one row in:\n{text}");
    header
        .into_iter()
        .zip(rows.into_iter().next().expect("one row"))
        .collect()
}
