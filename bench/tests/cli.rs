//! The binary's contract with scripts: exit codes and messages for runs that
//! cannot happen. (Runs against a real server are in the server crate's
//! `tests/bench_smoke.rs`, which has the server binary at hand.)

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ballast-bench"))
        .args(args)
        .output()
        .expect("run ballast-bench")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A loopback port nothing listens on (probed free a moment ago).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
    listener.local_addr().expect("probe address").port()
}

#[test]
fn help_lists_the_workloads() {
    let out = bench(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for w in [
        "put",
        "range",
        "txn-put",
        "watch",
        "lease-keepalive",
        "list",
        "lease-keys",
        "guarded-update",
    ] {
        assert!(text.contains(w), "--help does not mention {w}:\n{text}");
    }
}

#[test]
fn no_reachable_endpoint_exits_1_with_the_reason() {
    let endpoint = format!("127.0.0.1:{}", closed_port());
    let out = bench(&["--endpoints", &endpoint, "put", "--total", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("no endpoint reachable"), "{err}");
    assert!(err.contains(&endpoint), "{err}");
    assert!(out.stdout.is_empty(), "nothing on stdout for a failed run");
}

#[test]
fn a_silent_server_is_unreachable_not_a_hang() {
    // Accepts TCP connections but never speaks HTTP/2.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a silent server");
    let endpoint = format!("{}", listener.local_addr().expect("address"));
    let started = Instant::now();
    let out = bench(&[
        "--endpoints",
        &endpoint,
        "--dial-timeout",
        "300ms",
        "--request-timeout",
        "300ms",
        "put",
    ]);
    drop(listener);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no endpoint reachable"),
        "{}",
        stderr(&out)
    );
    // Generous: only guards against waiting for the default 30 s timeout.
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn invalid_flags_exit_2_before_connecting() {
    // No server is needed to reject these.
    let endpoint = format!("127.0.0.1:{}", closed_port());
    for args in [
        &["put", "--key-size", "1", "--key-space-size", "1000"][..],
        &["txn-put", "--txn-ops", "3", "--key-space-size", "2"],
        &["watch", "--val-size", "4"],
        &["watch", "--total", "5"],
        &["put", "--total", "0"],
        &["put", "--cacert", "/nonexistent/ca.pem"],
        &["put", "--no-such-flag"],
        &["list", "--page-size", "0"],
        &["lease-keys", "--ttl", "0"],
        &["guarded-update", "--max-attempts", "0"],
    ] {
        let mut argv = vec!["--endpoints", endpoint.as_str()];
        argv.extend_from_slice(args);
        let out = bench(&argv);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("no endpoint reachable"), "{args:?}");
    }
}
