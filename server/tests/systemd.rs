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
