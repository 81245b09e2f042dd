//! Helpers for the gRPC-level integration tests (`grpc_api`, `crash`,
//! `restore`), on top of the shared process harness in `tests/common`.
//!
//! `common::TestServer` starts and stops the server; this module adds gRPC
//! clients (the independent `etcd-client` crate, and Ballast's own generated
//! tonic clients for fields etcd-client hides), exact error assertions,
//! polling with deadlines, and running the `ballast` binary to completion
//! (offline snapshot commands, starts that must fail).
#![allow(dead_code)]

use std::fmt::Debug;
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tonic::Code;

use crate::common::{ServerKind, TestServer};

/// Deadline for a single RPC or stream message in these tests.
pub const RPC_DEADLINE: Duration = Duration::from_secs(10);
/// Interval between polls in [`eventually`].
const POLL: Duration = Duration::from_millis(50);

/// The `ballast` binary cargo built for this test run.
pub fn ballast_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ballast"))
}

/// True when the suite runs against real etcd (`BALLAST_TEST_SERVER=etcd`).
pub fn against_etcd() -> bool {
    crate::common::server_kind() == ServerKind::Etcd
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/// An `etcd-client` connected to the server.
pub async fn connect(s: &TestServer) -> etcd_client::Client {
    let url = s.client_url();
    tokio::time::timeout(
        RPC_DEADLINE,
        etcd_client::Client::connect([url.as_str()], None),
    )
    .await
    .unwrap_or_else(|_| panic!("connecting etcd-client to {url} timed out"))
    .unwrap_or_else(|e| panic!("connecting etcd-client to {url}: {e}"))
}

/// A raw tonic channel for Ballast's generated clients (`ballast_proto`).
pub async fn channel(s: &TestServer) -> tonic::transport::Channel {
    let url = s.client_url();
    let endpoint = tonic::transport::Endpoint::from_shared(url.clone())
        .unwrap_or_else(|e| panic!("bad endpoint {url}: {e}"))
        .connect_timeout(RPC_DEADLINE)
        .timeout(RPC_DEADLINE);
    endpoint
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connecting tonic channel to {url}: {e}"))
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Asserts that a raw tonic call failed with exactly `code` and `message`.
#[track_caller]
pub fn assert_status<T: Debug>(
    what: &str,
    res: Result<T, tonic::Status>,
    code: Code,
    message: &str,
) {
    match res {
        Ok(v) => panic!("{what}: expected {code:?} {message:?}, got success: {v:?}"),
        Err(st) => {
            assert_eq!(
                (st.code(), st.message()),
                (code, message),
                "{what}: wrong gRPC error (full status: {st:?})"
            );
        }
    }
}

/// Asserts that an etcd-client call failed with a gRPC status of exactly
/// `code` and `message`.
#[track_caller]
pub fn assert_grpc_err<T: Debug>(
    what: &str,
    res: Result<T, etcd_client::Error>,
    code: Code,
    message: &str,
) {
    match res {
        Ok(v) => panic!("{what}: expected {code:?} {message:?}, got success: {v:?}"),
        Err(etcd_client::Error::GRpcStatus(st)) => {
            assert_status::<()>(what, Err(st), code, message)
        }
        Err(other) => panic!("{what}: expected gRPC status {code:?} {message:?}, got {other:?}"),
    }
}

/// Unwraps an etcd-client result with the call's description on failure.
#[track_caller]
pub fn ok<T>(what: &str, res: Result<T, etcd_client::Error>) -> T {
    res.unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

// ---------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------

/// Awaits `fut`, failing the test if it takes longer than [`RPC_DEADLINE`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(RPC_DEADLINE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {RPC_DEADLINE:?}"))
}

/// Polls `check` until it returns `Some`, failing after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------
// Running the binary to completion
// ---------------------------------------------------------------------------

/// What a finished `ballast` process left behind.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `ballast ARGS` (e.g. `snapshot status FILE`), waiting at most `timeout`.
pub fn run_ballast(args: &[&str], timeout: Duration) -> Finished {
    let mut cmd = Command::new(ballast_bin());
    cmd.args(args);
    run_to_exit(cmd, &format!("ballast {args:?}"), timeout).unwrap_or_else(|partial| {
        panic!("ballast {args:?} did not exit within {timeout:?}: {partial:?}")
    })
}

/// Starts `ballast` on `s`'s data dir, ports and name (the server itself must
/// be stopped) and returns how it ended; `Err` with what it printed so far if
/// it was still running after `timeout` (it is then killed).
pub fn start_to_exit(s: &TestServer, timeout: Duration) -> Result<Finished, Finished> {
    start_to_exit_as(s, None, timeout)
}

/// [`start_to_exit`] as user and group `uid` (through `setpriv`, so the test needs root),
/// for what only a non-root server meets: files it may not read.
pub fn start_to_exit_as(
    s: &TestServer,
    uid: Option<u32>,
    timeout: Duration,
) -> Result<Finished, Finished> {
    let data_dir = s.data_dir();
    let args = [
        "--name".to_string(),
        s.name().to_string(),
        "--data-dir".to_string(),
        data_dir.display().to_string(),
        "--listen-client-urls".to_string(),
        s.client_url(),
        "--advertise-client-urls".to_string(),
        s.client_url(),
        "--listen-peer-urls".to_string(),
        s.peer_url(),
        "--initial-advertise-peer-urls".to_string(),
        s.peer_url(),
        "--initial-cluster".to_string(),
        format!("{}={}", s.name(), s.peer_url()),
    ];
    let mut cmd = match uid {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(ballast_bin());
            c
        }
        None => Command::new(ballast_bin()),
    };
    cmd.args(&args);
    run_to_exit(cmd, "ballast server", timeout)
}

fn run_to_exit(mut cmd: Command, what: &str, timeout: Duration) -> Result<Finished, Finished> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out_pipe.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err_pipe.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let deadline = Instant::now() + timeout;
    let (status, timed_out) = loop {
        if let Some(status) = child
            .try_wait()
            .unwrap_or_else(|e| panic!("poll {what}: {e}"))
        {
            break (status, false);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break (
                child.wait().unwrap_or_else(|e| panic!("reap {what}: {e}")),
                true,
            );
        }
        std::thread::sleep(POLL);
    };
    let finished = Finished {
        status,
        stdout: out_reader.join().expect("stdout reader thread"),
        stderr: err_reader.join().expect("stderr reader thread"),
    };
    if timed_out {
        Err(finished)
    } else {
        Ok(finished)
    }
}

// ---------------------------------------------------------------------------
// Files in a data dir
// ---------------------------------------------------------------------------

/// The WAL segment files of a data dir, in log order.
pub fn wal_segments(data_dir: &Path) -> Vec<PathBuf> {
    let dir = data_dir.join("member").join("wal");
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| {
            e.unwrap_or_else(|e| panic!("read entry of {}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segs.sort();
    assert!(!segs.is_empty(), "no WAL segment in {}", dir.display());
    segs
}

/// The backend database file of a data dir.
pub fn db_file(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join("snap").join("db")
}

/// A deterministic pseudo-random byte string (no RNG state needed).
pub fn filler(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
