//! The PKI checked with the real `openssl`: chains verify for the right purposes, SANs and
//! key usages are those of the kubeadm table, renewal keeps the CA, a user's CA (made by
//! openssl, in kubeadm's PKCS#1 format too) is used as it is. Member certificates are
//! signed for keys the members make ([`member_identity`]); client certificates and the
//! shared member Secrets of earlier versions come from the plan.

use std::path::Path;
use std::process::Command;

use ballast_operator::crd::EtcdClusterSpec;
use ballast_operator::member_identity::{self, Decision, Grant, Report, Signing};
use ballast_operator::names::ClusterNames;
use ballast_operator::pki::{self, Ca};
use ballast_operator::tls::{self, SecretText, StoredSecrets, TlsPlan};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use time::OffsetDateTime;

fn names() -> ClusterNames {
    ClusterNames::new("main", "db", "cluster.local")
}

fn spec() -> EtcdClusterSpec {
    serde_yaml_ng::from_str("replicas: 3").unwrap()
}

fn owner() -> OwnerReference {
    OwnerReference {
        api_version: "ballast.dev/v1alpha1".into(),
        kind: "EtcdCluster".into(),
        name: "main".into(),
        uid: "uid-1".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be installed (apt-get install openssl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_string_lossy().into_owned()
}

fn verify(ca: &str, cert: &str, purpose: &str, at: Option<i64>) -> (bool, String) {
    let at = at.map(|t| t.to_string());
    let mut args = vec!["verify", "-CAfile", ca, "-purpose", purpose];
    if let Some(at) = &at {
        args.extend(["-attime", at.as_str()]);
    }
    args.push(cert);
    openssl(&args)
}

fn text(cert: &str) -> String {
    let (ok, out) = openssl(&["x509", "-in", cert, "-noout", "-text"]);
    assert!(ok, "{out}");
    out
}

fn subject(cert: &str) -> String {
    let (ok, out) = openssl(&[
        "x509", "-in", cert, "-noout", "-subject", "-nameopt", "RFC2253",
    ]);
    assert!(ok, "{out}");
    out.trim().to_string()
}

/// What the operator hands `member` for a key the member made, and that key's PEM.
fn member_certificates(ca: &Ca, member: &str, now: OffsetDateTime) -> (Grant, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let signing = Signing {
        ca,
        now,
        validity: std::time::Duration::from_secs(365 * 86_400),
        renew_before: std::time::Duration::from_secs(30 * 86_400),
    };
    let report = Report {
        public_key: key.public_key_pem(),
        server: None,
        peer: None,
    };
    match member_identity::decide(signing, &names(), member, &report).unwrap() {
        Decision::Sign { grant, .. } => (grant, key.serialize_pem()),
        other => panic!("{other:?}"),
    }
}

fn secret_data(plan: &TlsPlan, name: &str) -> SecretText {
    let secret = plan
        .apply
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("plan has no Secret {name}"));
    tls::secret_text(secret)
}

fn stored_from(plan: &TlsPlan) -> StoredSecrets {
    let n = names();
    StoredSecrets {
        server: Some(secret_data(plan, &n.server_secret())),
        peer: Some(secret_data(plan, &n.peer_secret())),
        healthcheck: Some(secret_data(plan, &n.healthcheck_client_secret())),
        apiserver: Some(secret_data(plan, &n.apiserver_client_secret())),
        operator: Some(secret_data(plan, &n.operator_client_secret())),
    }
}

#[test]
fn operator_ca_issues_the_kubeadm_set() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = OffsetDateTime::now_utc();
    let ca_pem = pki::generate_ca(now).unwrap();
    let ca = Ca::from_pem(&ca_pem.cert, &ca_pem.key).unwrap();
    let plan = tls::plan(
        &names(),
        &spec(),
        None,
        &ca,
        &StoredSecrets::default(),
        &owner(),
        now,
    )
    .unwrap();
    assert_eq!(plan.apply.len(), 3, "three client Secrets, no member keys");
    assert_eq!(plan.issued.len(), 3);
    let ca_file = write(d, "ca.crt", &ca_pem.cert);

    let ca_text = text(&ca_file);
    assert!(ca_text.contains("CA:TRUE"), "{ca_text}");
    assert!(ca_text.contains("Certificate Sign"), "{ca_text}");
    assert_eq!(subject(&ca_file), "subject=CN=etcd-ca");

    let mut main_0_server = String::new();
    for m in ["main-0", "main-1", "main-2"] {
        let (grant, key) = member_certificates(&ca, m, now);
        if m == "main-0" {
            main_0_server = grant.server.clone();
        }
        let s = write(d, &format!("server-{m}.crt"), &grant.server);
        let p = write(d, &format!("peer-{m}.crt"), &grant.peer);
        // Both are for the key the member made.
        let k = write(d, &format!("{m}.key"), &key);
        let (_, key_pub) = openssl(&["pkey", "-in", &k, "-pubout"]);
        for cert in [&s, &p] {
            let (_, cert_pub) = openssl(&["x509", "-in", cert, "-noout", "-pubkey"]);
            assert_eq!(cert_pub, key_pub, "{cert}");
        }
        for (file, purpose) in [
            (&s, "sslserver"),
            (&s, "sslclient"),
            (&p, "sslserver"),
            (&p, "sslclient"),
        ] {
            let (ok, out) = verify(&ca_file, file, purpose, None);
            assert!(ok && out.contains(": OK"), "{file} {purpose}: {out}");
        }
        assert_eq!(subject(&s), format!("subject=CN={m}"));
        assert_eq!(subject(&p), format!("subject=CN={m}"));

        let st = text(&s);
        for san in [
            format!("DNS:{m}.main-peer"),
            format!("DNS:{m}.main-peer.db"),
            format!("DNS:{m}.main-peer.db.svc"),
            format!("DNS:{m}.main-peer.db.svc.cluster.local"),
            "DNS:main.db.svc".to_string(),
            "DNS:main.db.svc.cluster.local".to_string(),
            "DNS:localhost".to_string(),
            "IP Address:127.0.0.1".to_string(),
            "IP Address:0:0:0:0:0:0:0:1".to_string(),
        ] {
            assert!(st.contains(&san), "server {m} lacks {san}:\n{st}");
        }
        assert!(
            st.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
            "{st}"
        );
        assert!(st.contains("Digital Signature, Key Encipherment"), "{st}");
        assert!(st.contains("CA:FALSE"), "{st}");

        let pt = text(&p);
        assert!(
            pt.contains(&format!("DNS:{m}.main-peer.db.svc.cluster.local")),
            "{pt}"
        );
        assert!(
            !pt.contains("DNS:localhost"),
            "peer certs name members only: {pt}"
        );
        // The name members require of peers (--peer-cert-allowed-hostname): in every peer
        // certificate and in no other.
        assert!(pt.contains("DNS:main-peer.db.svc.cluster.local"), "{pt}");
        assert!(!st.contains("DNS:main-peer.db.svc.cluster.local"), "{st}");
        assert!(
            pt.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
            "{pt}"
        );
    }

    for (secret, cn) in [
        ("main-healthcheck-client", "kube-etcd-healthcheck-client"),
        ("main-apiserver-etcd-client", "kube-apiserver-etcd-client"),
        ("main-operator-client", "ballast-operator"),
    ] {
        let data = secret_data(&plan, secret);
        assert_eq!(data["ca.crt"], ca_pem.cert);
        let f = write(d, &format!("{secret}.crt"), &data["tls.crt"]);
        let (ok, out) = verify(&ca_file, &f, "sslclient", None);
        assert!(ok, "{secret}: {out}");
        // Client certificates must not be usable as server certificates.
        let (ok, out) = verify(&ca_file, &f, "sslserver", None);
        assert!(!ok, "{secret} verified as a server certificate: {out}");
        assert_eq!(subject(&f), format!("subject=CN={cn}"));
        let t = text(&f);
        assert!(t.contains("TLS Web Client Authentication"), "{t}");
        assert!(!t.contains("TLS Web Server Authentication"), "{t}");
        assert!(!t.contains("Subject Alternative Name"), "{t}");
        // The key in the Secret belongs to the certificate.
        let k = write(d, &format!("{secret}.key"), &data["tls.key"]);
        let (_, cert_pub) = openssl(&["x509", "-in", &f, "-noout", "-pubkey"]);
        let (_, key_pub) = openssl(&["pkey", "-in", &k, "-pubout"]);
        assert_eq!(cert_pub, key_pub);
    }

    // A certificate from another CA does not verify: the checks above can fail.
    let other = pki::generate_ca(now).unwrap();
    let other_file = write(d, "other-ca.crt", &other.cert);
    let s = write(d, "server-check.crt", &main_0_server);
    let (ok, _) = verify(&other_file, &s, "sslserver", None);
    assert!(!ok);
}

#[test]
fn renewal_keeps_the_ca_and_reissues_only_when_due() {
    // With the shared member Secrets of earlier versions still mounted (`Some`), so that
    // their renewal is covered until the last such pod is gone.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t0 = OffsetDateTime::now_utc();
    let ca_pem = pki::generate_ca(t0).unwrap();
    let ca = Ca::from_pem(&ca_pem.cert, &ca_pem.key).unwrap();
    let first = tls::plan(
        &names(),
        &spec(),
        Some(0),
        &ca,
        &StoredSecrets::default(),
        &owner(),
        t0,
    )
    .unwrap();
    let stored = stored_from(&first);

    // A day later nothing is due: no writes.
    let next_day = t0 + time::Duration::days(1);
    let quiet = tls::plan(&names(), &spec(), Some(0), &ca, &stored, &owner(), next_day).unwrap();
    assert!(quiet.apply.is_empty(), "nothing to write a day later");
    assert!(quiet.issued.is_empty());

    // Past the renewal time (validity 1 year, renewBefore 30 days) every leaf is renewed...
    let due = t0 + time::Duration::days(365 - 30) + time::Duration::hours(1);
    let renewed = tls::plan(&names(), &spec(), Some(0), &ca, &stored, &owner(), due).unwrap();
    assert_eq!(renewed.issued.len(), 9);
    assert!(renewed.issued.iter().all(|n| n.reason == "Expiring"));
    // ...under the very same CA.
    let server = secret_data(&renewed, "main-server-tls");
    assert_eq!(server["ca.crt"], ca_pem.cert);
    assert_ne!(
        server["main-0.crt"],
        stored.server.as_ref().unwrap()["main-0.crt"]
    );
    let ca_file = write(d, "ca.crt", &ca_pem.cert);
    let new_cert = write(d, "renewed.crt", &server["main-0.crt"]);
    let (ok, out) = verify(&ca_file, &new_cert, "sslserver", Some(due.unix_timestamp()));
    assert!(ok, "{out}");
    // The old certificate is about to expire; the renewed one lasts another year.
    let old_cert = write(d, "old.crt", &stored.server.as_ref().unwrap()["main-0.crt"]);
    let after_old = (t0 + time::Duration::days(366)).unix_timestamp();
    assert!(!verify(&ca_file, &old_cert, "sslserver", Some(after_old)).0);
    assert!(verify(&ca_file, &new_cert, "sslserver", Some(after_old)).0);

    // Scaling to 5 issues only the new members' certificates.
    let five: EtcdClusterSpec = serde_yaml_ng::from_str("replicas: 5").unwrap();
    let grown = tls::plan(&names(), &five, Some(0), &ca, &stored, &owner(), next_day).unwrap();
    let mut what: Vec<_> = grown.issued.iter().map(|n| n.what.clone()).collect();
    what.sort();
    assert_eq!(
        what,
        [
            "peer certificate of main-3",
            "peer certificate of main-4",
            "server certificate of main-3",
            "server certificate of main-4"
        ]
    );
}

fn user_ca(dir: &Path, pkcs1: bool) -> (String, String) {
    let key = dir.join(if pkcs1 { "pkcs1.key" } else { "pkcs8.key" });
    let crt = dir.join(if pkcs1 { "pkcs1.crt" } else { "pkcs8.crt" });
    let key_s = key.to_string_lossy().into_owned();
    let crt_s = crt.to_string_lossy().into_owned();
    let (ok, out) = if pkcs1 {
        openssl(&["genrsa", "-traditional", "-out", &key_s, "2048"])
    } else {
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &key_s,
        ])
    };
    assert!(ok, "{out}");
    let (ok, out) = openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        &key_s,
        "-out",
        &crt_s,
        "-days",
        "3650",
        "-subj",
        "/CN=my-etcd-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    ]);
    assert!(ok, "{out}");
    (
        std::fs::read_to_string(crt).unwrap(),
        std::fs::read_to_string(key).unwrap(),
    )
}

#[test]
fn a_users_openssl_ca_is_used_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for pkcs1 in [true, false] {
        let (cert, key) = user_ca(d, pkcs1);
        assert_eq!(key.contains("BEGIN RSA PRIVATE KEY"), pkcs1);
        // kubeadm's names and cert-manager's names both work.
        for (ck, kk) in [("ca.crt", "ca.key"), ("tls.crt", "tls.key")] {
            let data = SecretText::from([
                (ck.to_string(), cert.clone()),
                (kk.to_string(), key.clone()),
            ]);
            let ca = tls::ca_from_secret("my-ca", &data).unwrap();
            let now = OffsetDateTime::now_utc();
            let plan = tls::plan(
                &names(),
                &spec(),
                None,
                &ca,
                &StoredSecrets::default(),
                &owner(),
                now,
            )
            .unwrap();
            let client = secret_data(&plan, "main-healthcheck-client");
            assert_eq!(
                client["ca.crt"], cert,
                "the user's CA is distributed unchanged"
            );
            let ca_file = write(d, "user-ca.crt", &cert);
            let (grant, _) = member_certificates(&ca, "main-1", now);
            let leaf = write(d, "user-leaf.crt", &grant.server);
            let (ok, out) = verify(&ca_file, &leaf, "sslserver", None);
            assert!(ok, "pkcs1={pkcs1}: {out}");
            let t = text(&leaf);
            assert!(
                t.contains("Issuer: CN=my-etcd-ca") || t.contains("Issuer: CN = my-etcd-ca"),
                "{t}"
            );
        }
    }
}

#[test]
fn unusable_cas_are_refused_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = user_ca(dir.path(), false);
    let now = OffsetDateTime::now_utc();
    // A leaf is not a CA.
    let ca = Ca::from_pem(
        &pki::generate_ca(now).unwrap().cert,
        &pki::generate_ca(now).unwrap().key,
    );
    assert!(matches!(
        ca,
        Err(ballast_operator::error::Error::KeyMismatch)
    ));
    let real = pki::generate_ca(now).unwrap();
    let ca = Ca::from_pem(&real.cert, &real.key).unwrap();
    let leaf = ca
        .issue(
            &pki::LeafProfile::healthcheck_client(),
            now,
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
    let err = Ca::from_pem(&leaf.cert, &leaf.key).unwrap_err();
    assert!(
        matches!(err, ballast_operator::error::Error::NotACa),
        "{err}"
    );
    // Keys and certificates that do not belong together.
    let data = SecretText::from([
        ("ca.crt".to_string(), cert),
        ("ca.key".to_string(), real.key),
    ]);
    let err = tls::ca_from_secret("my-ca", &data).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    // Missing keys are named.
    let err = tls::ca_from_secret("my-ca", &SecretText::new()).unwrap_err();
    assert!(err.to_string().contains("needs ca.crt and ca.key"), "{err}");
    drop(key);
}
