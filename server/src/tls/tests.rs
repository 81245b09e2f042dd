//! Unit tests for loading, reloading and checking certificates. Keys in the formats
//! operators have on disk are made with the real `openssl`, as the integration tests do.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::crypto::ring::default_provider;

use super::auto;
use super::certs::KeyPair;
use super::identity::Allowed;
use super::pem::FlagFile;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed certificate for the key in `key`, written to `cert`.
fn self_signed_for(dir: &Path, key: &str, cert: &str, cn: &str) {
    let subj = format!("/CN={cn}");
    openssl(
        dir,
        &[
            "req", "-x509", "-key", key, "-out", cert, "-days", "1", "-subj", &subj,
        ],
    );
}

fn load(dir: &Path, cert: &str, key: &str) -> Result<KeyPair, String> {
    KeyPair::load(
        "test certificate",
        FlagFile::new("cert-file", &dir.join(cert)),
        FlagFile::new("key-file", &dir.join(key)),
        Arc::new(default_provider()),
    )
}

fn pem_body(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read PEM")
}

#[test]
fn pkcs8_pkcs1_and_sec1_keys_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "pkcs8.key",
        ],
    );
    openssl(d, &["genrsa", "-traditional", "-out", "pkcs1.key", "2048"]);
    openssl(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "sec1.key",
        ],
    );
    assert!(pem_body(&d.join("pkcs8.key")).starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(pem_body(&d.join("pkcs1.key")).starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(pem_body(&d.join("sec1.key")).starts_with("-----BEGIN EC PRIVATE KEY-----"));
    for key in ["pkcs8", "pkcs1", "sec1"] {
        let cert = format!("{key}.crt");
        self_signed_for(d, &format!("{key}.key"), &cert, key);
        let pair = load(d, &cert, &format!("{key}.key"))
            .unwrap_or_else(|e| panic!("{key} key should load: {e}"));
        assert_eq!(pair.current().cert.len(), 1);
    }
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    openssl(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "a.key",
        ],
    );
    openssl(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "b.key",
        ],
    );
    self_signed_for(d, "a.key", "a.crt", "a");
    let err = load(d, "a.crt", "b.key").expect_err("mismatched key refused");
    assert_eq!(
        err,
        format!(
            "--key-file {}: the private key does not match the certificate in --cert-file {}",
            d.join("b.key").display(),
            d.join("a.crt").display()
        )
    );
}

#[test]
fn missing_and_empty_files_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let err = load(d, "nope.crt", "nope.key").expect_err("missing file refused");
    assert!(
        err.starts_with(&format!(
            "--cert-file {}: cannot read the file:",
            d.join("nope.crt").display()
        )),
        "{err}"
    );
    std::fs::write(d.join("empty.crt"), "not pem").expect("write");
    let err = load(d, "empty.crt", "nope.key").expect_err("empty file refused");
    assert!(err.contains("no CERTIFICATE block found"), "{err}");
    openssl(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "a.key",
        ],
    );
    self_signed_for(d, "a.key", "a.crt", "a");
    let err = load(d, "a.crt", "a.crt").expect_err("certificate as key refused");
    assert!(
        err.contains("--key-file") && err.contains("no private key found"),
        "{err}"
    );
}

#[test]
fn renewed_files_are_used_by_the_next_lookup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    openssl(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "tls.key",
        ],
    );
    self_signed_for(d, "tls.key", "tls.crt", "first");
    let pair = load(d, "tls.crt", "tls.key").expect("loads");
    let first = pair.current().cert[0].clone();
    assert_eq!(
        pair.current().cert[0],
        first,
        "unchanged files keep the same certificate"
    );

    // Half-renewed (new certificate, old key): refused, the old pair stays in use.
    openssl(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "new.key",
        ],
    );
    self_signed_for(d, "new.key", "new.crt", "second");
    std::fs::copy(d.join("new.crt"), d.join("tls.crt")).expect("copy cert");
    assert_eq!(pair.current().cert[0], first);
    // Completed: the new pair is served.
    std::fs::copy(d.join("new.key"), d.join("tls.key")).expect("copy key");
    let second = pair.current().cert[0].clone();
    assert_ne!(second, first);
    assert_eq!(
        second.as_ref(),
        rustls_pem_cert(&d.join("new.crt")).as_slice()
    );
}

fn rustls_pem_cert(path: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(path)
        .expect("PEM certificate")
        .to_vec()
}

#[test]
fn auto_tls_generates_once_and_reuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixtures = dir.path().join("fixtures").join("client");
    let hosts = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let (cert, key) = auto::self_signed(&fixtures, &hosts, 1).expect("generated");
    let first = std::fs::read(&cert).expect("cert written");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key)
        .expect("key written")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the key is private");
    let (cert2, _) = auto::self_signed(&fixtures, &hosts, 1).expect("reused");
    assert_eq!(
        std::fs::read(&cert2).expect("cert"),
        first,
        "an existing pair is reused"
    );
    let pair = KeyPair::load(
        "auto",
        FlagFile::new("auto-tls", &cert),
        FlagFile::new("auto-tls", &key),
        Arc::new(default_provider()),
    )
    .expect("the generated pair is usable");
    let (ips, dns) = super::identity::sans(&pair.current().cert[0]);
    assert_eq!(ips, vec![std::net::IpAddr::from([127, 0, 0, 1])]);
    assert_eq!(dns, vec!["localhost".to_string()]);
}

fn cert_with(cn: &str, sans: &[&str]) -> rustls::pki_types::CertificateDer<'static> {
    let mut params =
        rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().expect("key");
    params.self_signed(&key).expect("cert").der().clone()
}

#[test]
fn allowed_cn_and_hostname() {
    let etcd = cert_with("etcd", &["127.0.0.1", "node1.example"]);
    let intruder = cert_with("intruder", &["10.0.0.9"]);
    let open = Allowed::new(None, None);
    assert!(open.check(&intruder).is_ok());

    let cn = Allowed::new(Some("etcd-a, etcd"), None);
    assert!(cn.check(&etcd).is_ok());
    let err = cn.check(&intruder).expect_err("other CN refused");
    assert!(
        err.to_string()
            .contains("client certificate authentication failed"),
        "{err}"
    );

    let host = Allowed::new(None, Some("node1.example"));
    assert!(host.check(&etcd).is_ok());
    assert!(host.check(&intruder).is_err());
}

#[tokio::test]
async fn peer_san_must_name_the_remote_address() {
    let with_ip = cert_with("etcd", &["127.0.0.1"]);
    let localhost = [127, 0, 0, 1].into();
    assert!(super::identity::check_san(&with_ip, localhost)
        .await
        .is_ok());
    let err = super::identity::check_san(&with_ip, [127, 0, 0, 2].into())
        .await
        .expect_err("other address refused");
    assert!(err.contains("127.0.0.2"), "{err}");
    let by_name = cert_with("etcd", &["localhost"]);
    assert!(super::identity::check_san(&by_name, localhost)
        .await
        .is_ok());
    let no_san = cert_with("etcd", &[]);
    assert!(super::identity::check_san(&no_san, [10, 1, 2, 3].into())
        .await
        .is_ok());
}

fn config(args: &[&str]) -> crate::config::Config {
    match crate::config::parse(args.iter().copied(), &[]) {
        Ok((crate::config::Outcome::Run(cfg), _)) => *cfg,
        Ok(_) => panic!("{args:?}: unexpected print-and-exit"),
        Err(e) => panic!("{args:?} should parse: {e}"),
    }
}

fn tls_error(args: &[&str]) -> String {
    match super::Tls::from_config(&config(args)) {
        Ok(_) => panic!("{args:?} should fail"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn startup_errors_name_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let missing: PathBuf = d.join("missing.crt");
    let m = missing.to_str().expect("utf-8 path");
    let https = [
        "--listen-client-urls",
        "https://127.0.0.1:2379",
        "--advertise-client-urls",
        "https://127.0.0.1:2379",
    ];
    let mut args = https.to_vec();
    args.extend(["--cert-file", m, "--key-file", m]);
    let err = tls_error(&args);
    assert!(
        err.contains(&format!("--cert-file {m}: cannot read the file")),
        "{err}"
    );

    openssl(
        d,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "a.key",
        ],
    );
    self_signed_for(d, "a.key", "a.crt", "a");
    let (crt, key) = (d.join("a.crt"), d.join("a.key"));
    let (crt, key) = (crt.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let mut args = https.to_vec();
    args.extend(["--cert-file", crt, "--key-file", key, "--client-cert-auth"]);
    let err = tls_error(&args);
    assert!(
        err.contains("--client-cert-auth needs --trusted-ca-file"),
        "{err}"
    );

    let mut args = https.to_vec();
    args.extend([
        "--cert-file",
        crt,
        "--key-file",
        key,
        "--cipher-suites",
        "TLS_NOPE",
    ]);
    let err = tls_error(&args);
    assert!(
        err.contains("unexpected TLS cipher suite \"TLS_NOPE\""),
        "{err}"
    );

    let mut args = https.to_vec();
    args.extend([
        "--cert-file",
        crt,
        "--key-file",
        key,
        "--trusted-ca-file",
        m,
    ]);
    let err = tls_error(&args);
    assert!(
        err.contains(&format!("--trusted-ca-file {m}: cannot read the file")),
        "{err}"
    );

    // Certificates given for http URLs only are not loaded for serving (etcd ignores them).
    let cfg = config(&["--cert-file", m, "--key-file", m]);
    let tls = super::Tls::from_config(&cfg).expect("no https client URL");
    assert!(tls.client.is_none());
}
