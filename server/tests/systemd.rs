//! The seeds run etcd from systemd units with `Type=notify`: the member must tell systemd
//! when it is ready, or systemd kills it at the start timeout.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::TestServer;

#[test]
fn tells_systemd_it_is_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let notify = path.display().to_string();
    let s = TestServer::start_with_env(&[], &[("NOTIFY_SOCKET", notify.as_str())]);
    let mut buf = [0u8; 512];
    let n = socket
        .recv(&mut buf)
        .expect("a notification from the member");
    let message = String::from_utf8_lossy(&buf[..n]);
    assert!(
        message.lines().any(|l| l == "READY=1"),
        "notification: {message:?}"
    );
    s.put("after-ready", "1");
}

/// Scripts wait for "ready to serve client requests"; as in etcd, it comes only after the
/// member's attributes are committed, so every client it serves sees them in `member list`.
#[test]
fn serves_clients_only_after_publishing_itself() {
    // etcd 3.4 logs these lines only with its zap logger; Ballast always uses it.
    let s = TestServer::start_with(&["--logger", "zap"]);
    let log = s.log();
    let published = log
        .find("published local member to cluster through raft")
        .expect("publish line");
    // etcd's zap logger says "serving client traffic insecurely" where capnslog (and the
    // reference) say "ready to serve client requests".
    let serving = ["ready to serve client requests", "serving client traffic"]
        .iter()
        .filter_map(|line| log.find(line))
        .min()
        .expect("serving line");
    assert!(published < serving, "{log}");
    let members = s.etcdctl_ok(&["member", "list"]);
    assert!(
        members.contains(&format!(", started, {}, ", s.name()))
            && members.contains(&s.client_url()),
        "{members}"
    );
}
