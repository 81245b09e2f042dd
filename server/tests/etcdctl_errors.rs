//! Server-side errors as etcdctl shows them: a final `Error: <grpc message>`
//! line on stderr (after a client-side JSON warning log line) and a non-zero
//! exit code. The message text is the gRPC status message the server sends,
//! so it must match etcd's exactly.

mod common;

use common::{CtlOutput, TestServer};

/// Asserts etcdctl failed with `code` and printed exactly `error` as its `Error:` line.
fn assert_error(out: CtlOutput, code: i32, error: &str) {
    assert_eq!(
        out.code(),
        code,
        "exit code for {:?}; stderr:\n{}",
        out.args,
        out.stderr
    );
    assert_eq!(out.err_line(), format!("Error: {error}"));
}

/// A server with `k` written three times (revisions 2, 3, 4).
fn with_history() -> TestServer {
    let s = TestServer::start();
    for v in ["1", "2", "3"] {
        s.put("k", v);
    }
    assert_eq!(s.revision(), 4);
    s
}

#[test]
fn get_at_future_revision() {
    let s = with_history();
    assert_error(
        s.etcdctl(&["get", "k", "--rev=5"]),
        1,
        "etcdserver: mvcc: required revision is a future revision",
    );
    assert_error(
        s.etcdctl(&["get", "k", "--rev=1000"]),
        1,
        "etcdserver: mvcc: required revision is a future revision",
    );
}

#[test]
fn get_at_compacted_revision() {
    let s = with_history();
    s.etcdctl_ok(&["compact", "3"]);
    assert_error(
        s.etcdctl(&["get", "k", "--rev=2"]),
        1,
        "etcdserver: mvcc: required revision has been compacted",
    );
}

#[test]
fn compact_to_future_or_already_compacted_revision() {
    let s = with_history();
    assert_error(
        s.etcdctl(&["compact", "5"]),
        1,
        "etcdserver: mvcc: required revision is a future revision",
    );
    s.etcdctl_ok(&["compact", "3"]);
    // Equal to or below the current compaction point.
    assert_error(
        s.etcdctl(&["compact", "3"]),
        1,
        "etcdserver: mvcc: required revision has been compacted",
    );
    assert_error(
        s.etcdctl(&["compact", "2"]),
        1,
        "etcdserver: mvcc: required revision has been compacted",
    );
}

#[test]
fn empty_key_is_rejected_by_the_server() {
    // etcdctl passes the empty key through; the server rejects it.
    let s = TestServer::start();
    for args in [&["put", "", "v"][..], &["get", ""], &["del", ""]] {
        assert_error(s.etcdctl(args), 1, "etcdserver: key is not provided");
    }
    assert_eq!(s.revision(), 1, "nothing was written");
}

#[test]
fn put_ignore_value_of_missing_key() {
    let s = TestServer::start();
    assert_error(
        s.etcdctl(&["put", "--ignore-value", "missing"]),
        1,
        "etcdserver: key not found",
    );
}

#[test]
fn put_with_unknown_lease() {
    let s = TestServer::start();
    assert_error(
        s.etcdctl(&["put", "k", "v", "--lease=1234"]),
        1,
        "etcdserver: requested lease not found",
    );
    assert_eq!(s.etcdctl_ok(&["get", "k"]), "");
}

#[test]
fn lease_revoke_of_unknown_id() {
    let s = TestServer::start();
    assert_error(
        s.etcdctl(&["lease", "revoke", "2c188c067d363d35"]),
        1,
        "failed to revoke lease (etcdserver: requested lease not found)",
    );
}

#[test]
fn lease_keep_alive_of_unknown_id() {
    let s = TestServer::start();
    // etcdctl maps this one to exit code 2 (ExitBadConnection).
    assert_error(
        s.etcdctl(&["lease", "keep-alive", "--once", "2c188c067d363d35"]),
        2,
        "etcdserver: requested lease not found",
    );
}

#[test]
fn lease_timetolive_of_unknown_id_is_not_an_error() {
    let s = TestServer::start();
    // The server answers TTL -1; etcdctl prints "already expired" and exits 0.
    assert_eq!(
        s.etcdctl_ok(&["lease", "timetolive", "1234"]),
        "lease 0000000000001234 already expired\n"
    );
    let resp = s.etcdctl_json(&["lease", "timetolive", "1234"]);
    assert_eq!(resp["id"], 0x1234);
    assert_eq!(resp["ttl"], -1);
}

#[test]
fn request_larger_than_max_request_bytes() {
    let s = TestServer::start_with(&["--max-request-bytes", "1024"]);
    let big = "x".repeat(2000);
    assert_error(
        s.etcdctl(&["put", "big", &big]),
        1,
        "etcdserver: request is too large",
    );
    // Just under the limit still works.
    let fits = "y".repeat(900);
    assert_eq!(s.etcdctl_ok(&["put", "fits", &fits]), "OK\n");
    assert_eq!(s.etcdctl_ok(&["get", "big"]), "");
}

#[test]
fn txn_with_more_ops_than_max_txn_ops() {
    let s = TestServer::start_with(&["--max-txn-ops", "2"]);
    let out = s.etcdctl_stdin(&["txn"], "\n\nput a 1\nput b 2\nput c 3\n\n\n");
    assert_error(out, 1, "etcdserver: too many operations in txn request");
    assert_eq!(s.etcdctl_ok(&["get", "a"]), "");
}
