//! TLS on the client port with etcdctl 3.4 and certificates made with `openssl`: mutual
//! TLS next to a plain listener, refused clients (no certificate, another CA, revoked),
//! certificates renewed on disk, TLS versions and cipher suites, auto TLS, startup errors.
//! The peer side (a cluster with mutual peer TLS) is in `tls_cluster.rs`.

mod common;
mod tls_support;

use common::{free_port, server_kind, ServerKind};
use tls_support::*;

fn is_ballast() -> bool {
    server_kind() == ServerKind::Ballast
}

#[test]
fn etcdctl_with_client_certificates_over_https_next_to_http() {
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(pki.path(), "ca");
    let server = ca.issue("server", "etcd");
    let client = ca.issue("client", "root");
    let tls = client_flags(&ca, &client);
    let http_port = free_port();
    let http = format!("http://127.0.0.1:{http_port}");
    let metrics_port = free_port();
    let metrics = format!("https://127.0.0.1:{metrics_port}");
    let s = Server::start(
        &http,
        &[
            "--cert-file",
            server.crt(),
            "--key-file",
            server.key(),
            "--trusted-ca-file",
            ca.crt(),
            "--client-cert-auth",
            "--listen-metrics-urls",
            &metrics,
        ],
        &tls,
    );
    let https = s.endpoint();

    assert_eq!(
        etcdctl_ok(&https, &tls, &["put", "greeting", "hello"]),
        "OK\n"
    );
    assert_eq!(
        etcdctl_ok(&https, &tls, &["get", "greeting"]),
        "greeting\nhello\n"
    );
    // The plain listener next to it serves the same data without TLS.
    assert_eq!(
        etcdctl_ok(&http, &[], &["get", "greeting"]),
        "greeting\nhello\n"
    );

    let table = etcdctl_ok(&https, &tls, &["endpoint", "status", "-w", "table"]);
    let (header, rows) = common::parse_table(&table);
    assert_eq!(rows.len(), 1, "{table}");
    let col = |name: &str| header.iter().position(|h| h == name).expect("column");
    assert_eq!(rows[0][col("ENDPOINT")], https);
    assert_eq!(rows[0][col("IS LEADER")], "true");
    let health = etcdctl_ok(&https, &tls, &["endpoint", "health", "-w", "table"]);
    let (_, rows) = common::parse_table(&health);
    assert_eq!(rows.len(), 1, "{health}");
    assert_eq!(rows[0][0], https);
    assert_eq!(rows[0][1], "true", "{health}");

    // etcd's HTTP endpoints answer on the TLS port too.
    let resp = https_get(s.https_port, "/health", &ca, &client);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains(r#""health":"true""#), "{resp}");
    let resp = https_get(s.https_port, "/version", &ca, &client);
    assert!(resp.contains(r#""etcdserver":"#), "{resp}");
    let resp = https_get(s.https_port, "/metrics", &ca, &client);
    assert!(resp.contains("etcd_server_has_leader 1"), "{resp}");
    // An https --listen-metrics-urls uses the client certificate settings.
    let resp = https_get(metrics_port, "/metrics", &ca, &client);
    assert!(resp.contains("etcd_server_has_leader 1"), "{resp}");

    if is_ballast() {
        let log = s.log();
        let secure = format!(
            "\"serving client traffic securely\",\"address\":\"127.0.0.1:{}\"",
            s.https_port
        );
        assert!(log.contains(&secure), "{log}");
        assert!(
            log.contains(&format!(
                "serving insecure client requests on 127.0.0.1:{http_port}"
            )),
            "{log}"
        );
    }
}

#[test]
fn clients_without_a_trusted_certificate_are_refused() {
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(pki.path(), "ca");
    let other = Ca::new(pki.path(), "other-ca");
    let server = ca.issue("server", "etcd");
    let client = ca.issue("client", "root");
    let stranger = other.issue("stranger", "root");
    // A trusted CA file alone already requires client certificates, as in etcd.
    let s = Server::start(
        "",
        &[
            "--cert-file",
            server.crt(),
            "--key-file",
            server.key(),
            "--trusted-ca-file",
            ca.crt(),
        ],
        &client_flags(&ca, &client),
    );
    let eps = s.endpoint();

    let (ok, _, err) = etcdctl(&eps, &["--cacert", ca.crt()], &["put", "k", "v"]);
    assert!(!ok, "a client without a certificate was served");
    assert!(err.contains("Error:"), "{err}");
    let (ok, _, err) = etcdctl(&eps, &client_flags(&ca, &stranger), &["put", "k", "v"]);
    assert!(!ok, "a client certificate from another CA was accepted");
    assert!(err.contains("Error:"), "{err}");
    // Nothing was written by the refused clients.
    assert_eq!(
        etcdctl_ok(&eps, &client_flags(&ca, &client), &["get", "k"]),
        ""
    );

    if is_ballast() {
        let log = s.log();
        assert!(log.contains(r#""msg":"rejected connection""#), "{log}");
        assert!(log.contains("peer sent no certificates"), "{log}");
        assert!(log.contains("UnknownIssuer"), "{log}");
    }
}

#[test]
fn revoked_client_certificates_are_refused_and_the_crl_is_reread() {
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(pki.path(), "ca");
    let server = ca.issue("server", "etcd");
    let alice = ca.issue("alice", "alice");
    let bob = ca.issue("bob", "bob");
    let crl = ca.crl(None);
    let s = Server::start(
        "",
        &[
            "--cert-file",
            server.crt(),
            "--key-file",
            server.key(),
            "--trusted-ca-file",
            ca.crt(),
            "--client-cert-auth",
            "--client-crl-file",
            crl.to_str().expect("utf-8 path"),
        ],
        &client_flags(&ca, &alice),
    );
    let eps = s.endpoint();
    assert_eq!(
        etcdctl_ok(&eps, &client_flags(&ca, &alice), &["put", "k", "by-alice"]),
        "OK\n"
    );

    // Revoking alice takes effect for her next connection, without a restart.
    ca.crl(Some(&alice));
    wait_for("alice's revoked certificate to be refused", || {
        !etcdctl(&eps, &client_flags(&ca, &alice), &["get", "k"]).0
    });
    assert_eq!(
        etcdctl_ok(&eps, &client_flags(&ca, &bob), &["get", "k"]),
        "k\nby-alice\n"
    );
    if is_ballast() {
        let log = s.log();
        assert!(log.contains("invalid peer certificate: Revoked"), "{log}");
    }
}

/// Copies `src` over `dst` through a temporary file and a rename, as cert-manager and most
/// renewal tools replace files.
fn replace(src: &std::path::Path, dst: &std::path::Path) {
    let tmp = dst.with_extension("tmp");
    std::fs::copy(src, &tmp).expect("copy renewed file");
    std::fs::rename(&tmp, dst).expect("install renewed file");
}

fn utf8(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn a_renewed_server_certificate_is_served_to_new_connections() {
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(pki.path(), "ca");
    let first = ca.issue("server", "etcd");
    let client = ca.issue("client", "root");
    let live = pki.path().join("live");
    std::fs::create_dir(&live).expect("mkdir");
    let (crt, key) = (live.join("server.crt"), live.join("server.key"));
    replace(&first.crt, &crt);
    replace(&first.key, &key);
    let tls = client_flags(&ca, &client);
    let s = Server::start(
        "",
        &[
            "--cert-file",
            utf8(&crt),
            "--key-file",
            utf8(&key),
            "--trusted-ca-file",
            ca.crt(),
            "--client-cert-auth",
        ],
        &tls,
    );
    let before = served_certificate(s.https_port, &ca, &client).expect("handshake");
    assert!(
        before.contains("CN = etcd\n") || before.contains("CN=etcd\n"),
        "{before}"
    );

    // Renew: a new certificate (new serial and subject) and key written over the old files.
    let renewed = ca.issue("renewed", "etcd-renewed");
    replace(&renewed.key, &key);
    replace(&renewed.crt, &crt);
    let mut after = String::new();
    wait_for("the renewed certificate to be served", || {
        after = served_certificate(s.https_port, &ca, &client).unwrap_or_default();
        after.contains("etcd-renewed")
    });
    let serial = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("serial="))
            .map(String::from)
    };
    assert!(serial(&after).is_some(), "{after}");
    assert_ne!(serial(&before), serial(&after), "{before}\n{after}");
    assert_eq!(etcdctl_ok(&s.endpoint(), &tls, &["put", "k", "v"]), "OK\n");
}

#[test]
fn a_changed_ca_bundle_is_trusted_without_a_restart() {
    if !is_ballast() {
        return; // etcd 3.4 reads its trusted CA file once
    }
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(pki.path(), "ca");
    let new_ca = Ca::new(pki.path(), "new-ca");
    let server = ca.issue("server", "etcd");
    let client = ca.issue("client", "root");
    let newcomer = new_ca.issue("newcomer", "newcomer");
    let bundle = pki.path().join("bundle.crt");
    replace(&ca.crt, &bundle);
    let s = Server::start(
        "",
        &[
            "--cert-file",
            server.crt(),
            "--key-file",
            server.key(),
            "--trusted-ca-file",
            utf8(&bundle),
            "--client-cert-auth",
        ],
        &client_flags(&ca, &client),
    );
    // A client of the new CA is refused until the bundle on disk includes that CA.
    let flags = client_flags(&ca, &newcomer);
    assert!(
        !etcdctl(&s.endpoint(), &flags, &["get", "k"]).0,
        "untrusted CA accepted"
    );
    let both = [
        std::fs::read(&ca.crt).expect("ca"),
        std::fs::read(&new_ca.crt).expect("new ca"),
    ]
    .concat();
    let staged = pki.path().join("bundle.new");
    std::fs::write(&staged, both).expect("write bundle");
    replace(&staged, &bundle);
    wait_for("the new CA to be trusted", || {
        etcdctl(&s.endpoint(), &flags, &["get", "k"]).0
    });
    assert!(etcdctl(&s.endpoint(), &client_flags(&ca, &client), &["get", "k"]).0);
    assert!(
        s.log().contains("reloaded the client trusted CA"),
        "{}",
        s.log()
    );
}

/// Whether `openssl s_client` with `args` completes a handshake with the server.
fn handshakes(port: u16, ca: &Ca, client: &Cert, args: &[&str]) -> bool {
    std::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-CAfile",
            ca.crt(),
            "-cert",
            client.crt(),
            "-key",
            client.key(),
            "-verify_return_error",
        ])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn tls_versions_and_cipher_suites_are_enforced() {
    if !is_ballast() {
        return; // etcd 3.4 has no --tls-min-version
    }
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(pki.path(), "ca");
    let server = ca.issue("server", "etcd");
    let client = ca.issue("client", "root");
    let tls = client_flags(&ca, &client);
    let base = [
        "--cert-file",
        server.crt(),
        "--key-file",
        server.key(),
        "--trusted-ca-file",
        ca.crt(),
    ];

    let mut flags = base.to_vec();
    flags.extend(["--tls-min-version", "TLS1.3"]);
    let s = Server::start("", &flags, &tls);
    assert!(handshakes(s.https_port, &ca, &client, &["-tls1_3"]));
    assert!(
        !handshakes(s.https_port, &ca, &client, &["-tls1_2"]),
        "TLS 1.2 accepted"
    );
    drop(s);

    let mut flags = base.to_vec();
    flags.extend([
        "--tls-max-version",
        "TLS1.2",
        "--cipher-suites",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ]);
    let s = Server::start("", &flags, &tls);
    assert!(
        !handshakes(s.https_port, &ca, &client, &["-tls1_3"]),
        "TLS 1.3 accepted"
    );
    assert!(handshakes(
        s.https_port,
        &ca,
        &client,
        &["-cipher", "ECDHE-RSA-AES128-GCM-SHA256"]
    ));
    let other = ["-cipher", "ECDHE-RSA-AES256-GCM-SHA384"];
    assert!(
        !handshakes(s.https_port, &ca, &client, &other),
        "unlisted suite accepted"
    );
    assert_eq!(etcdctl_ok(&s.endpoint(), &tls, &["put", "k", "v"]), "OK\n");
}

#[test]
fn auto_tls_encrypts_both_ports_with_generated_certificates() {
    if !is_ballast() {
        return; // uses Ballast's fixture paths and log lines
    }
    let peer_port = free_port();
    let peer = format!("https://127.0.0.1:{peer_port}");
    let insecure = ["--insecure-transport=false", "--insecure-skip-tls-verify"];
    let s = Server::start(
        "",
        &[
            "--auto-tls",
            "--peer-auto-tls",
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("tls={peer}"),
        ],
        &insecure,
    );
    assert_eq!(
        etcdctl_ok(&s.endpoint(), &insecure, &["put", "k", "v"]),
        "OK\n"
    );
    let fixtures = s.dir.path().join("data").join("fixtures");
    for side in ["client", "peer"] {
        assert!(
            fixtures.join(side).join("cert.pem").is_file(),
            "{side} certificate generated"
        );
        assert!(
            fixtures.join(side).join("key.pem").is_file(),
            "{side} key generated"
        );
    }
    // The peer port speaks TLS with the generated certificate (organization etcd).
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{peer_port}"),
            "-alpn",
            "h2",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("O = etcd") || text.contains("O=etcd"),
        "{text}"
    );
    // A client can't get in without skipping verification: the certificate is self-signed.
    assert!(!etcdctl(&s.endpoint(), &[], &["get", "k"]).0);
}

#[test]
fn unusable_tls_settings_stop_the_member_with_the_flag_named() {
    if !is_ballast() {
        return; // Ballast's messages
    }
    let pki = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(pki.path(), "ca");
    let a = ca.issue("a", "etcd");
    let b = ca.issue("b", "etcd");
    let missing = pki.path().join("missing.crt");
    let missing = missing.to_str().expect("utf-8 path");

    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--cert-file", missing, "--key-file", a.key()],
            format!("--cert-file {missing}: cannot read the file"),
        ),
        (
            vec!["--cert-file", a.crt(), "--key-file", b.key()],
            format!(
                "--key-file {}: the private key does not match the certificate in --cert-file {}",
                b.key(),
                a.crt()
            ),
        ),
        (vec![], "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:".into()),
        (
            vec!["--cert-file", a.crt(), "--key-file", a.key(), "--cipher-suites", "TLS_RSA_WITH_RC5"],
            r#"--cipher-suites: unexpected TLS cipher suite "TLS_RSA_WITH_RC5""#.into(),
        ),
        (
            vec!["--cert-file", a.crt(), "--key-file", a.key(), "--trusted-ca-file", missing],
            format!("--trusted-ca-file {missing}: cannot read the file"),
        ),
    ];
    for (flags, expected) in cases {
        let mut s = Server::spawn("", &flags);
        let (status, log) = s.wait_exit();
        assert!(!status.success(), "{flags:?} started");
        assert!(
            log.contains(&expected),
            "{flags:?}: expected {expected:?} in:\n{log}"
        );
    }
}
