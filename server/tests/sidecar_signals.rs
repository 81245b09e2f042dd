//! `ballast sidecar` stops on SIGTERM when it runs as a container's first process.
//!
//! In a pod the sidecar is PID 1 of its container's PID namespace, where the kernel
//! delivers only the signals a process handles. The kubelet stops a container with
//! SIGTERM, and a sidecar that ignored it held every pod deletion (a member replaced,
//! an upgrade rolled, a scale-down) for the full 30 s grace period until SIGKILL. Here the
//! sidecar runs as PID 1 of a new PID namespace (`unshare --pid --fork`, which needs
//! root, as CI runs the suite) while it waits for a cluster that never answers.

mod common;
mod tls_support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, wait_until};
use tls_support::Ca;

/// Kills the namespace (and the sidecar in it) if the test fails before it ends.
struct Namespace(Child);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn the_sidecar_stops_on_sigterm_as_pid_1() {
    assert!(
        is_root(),
        "this test makes a PID namespace with unshare: run the suite as root (CI does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "ca");
    let cert = ca.issue("member", "m0");
    let health = free_port();
    // Peers on ports nobody listens on, and a cluster domain that does not resolve: the
    // sidecar keeps asking and waiting, as one whose pod is deleted mid-start does.
    let peer = format!("https://127.0.0.1:{}", free_port());
    let log_path = dir.path().join("sidecar.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let child = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "--"])
        .arg(env!("CARGO_BIN_EXE_ballast"))
        .args([
            "sidecar",
            "--member=m0",
            "--cluster=c",
            "--namespace=default",
            "--peer-service=c-peer",
            "--cluster-domain=cluster.invalid",
            &format!("--initial-cluster=m0={peer}"),
            "--initial-cluster-token=c",
            &format!("--endpoint=https://127.0.0.1:{}", free_port()),
            &format!("--listen-health=127.0.0.1:{health}"),
        ])
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .arg(format!(
            "--config-out={}",
            dir.path().join("member.conf").display()
        ))
        .arg(format!("--cacert={}", ca.crt()))
        .arg(format!("--cert={}", cert.crt()))
        .arg(format!("--key={}", cert.key()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("run unshare (util-linux)");
    let mut ns = Namespace(child);
    wait_until(
        "the sidecar to serve its health port",
        Duration::from_secs(20),
        || std::net::TcpStream::connect(("127.0.0.1", health)).is_ok(),
    );
    assert!(
        ns.0.try_wait().expect("unshare's status").is_none(),
        "the sidecar must still be running when it is asked to stop"
    );

    // The sidecar is unshare's only child, PID 1 inside the namespace.
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", ns.0.id()))
        .expect("unshare's children");
    let sidecar = children
        .split_whitespace()
        .next()
        .expect("a child")
        .to_string();
    let status = std::fs::read_to_string(format!("/proc/{sidecar}/status")).expect("status");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("NSpid:") && l.ends_with("\t1")),
        "the sidecar is PID 1 in its namespace:\n{status}"
    );
    let sent = Command::new("kill")
        .args(["-TERM", &sidecar])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM {sidecar}");

    let mut exit = None;
    wait_until(
        "the sidecar to exit on SIGTERM",
        Duration::from_secs(20),
        || {
            exit = ns.0.try_wait().expect("unshare's status");
            exit.is_some()
        },
    );
    let stderr = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(
        exit.and_then(|s| s.code()),
        Some(0),
        "a stop asked for is a clean exit:\n{stderr}"
    );
    assert!(
        stderr.contains("received signal; stopping the sidecar"),
        "{stderr}"
    );
}
