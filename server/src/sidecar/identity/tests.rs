use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use time::{Duration, OffsetDateTime};

use super::*;

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn ca() -> Ca {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let pem = params.self_signed(&key).expect("CA").pem();
    Ca { params, key, pem }
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

const MEMBER_DNS: &str = "main-0.main-peer.db.svc.cluster.local";
const PEER_SERVICE_DNS: &str = "main-peer.db.svc.cluster.local";

fn expected() -> Expected {
    Expected {
        member: "main-0".to_string(),
        member_dns: MEMBER_DNS.to_string(),
        peer_service_dns: PEER_SERVICE_DNS.to_string(),
    }
}

/// A certificate signed by `ca` for `key` with common name `cn` and `sans`, valid from
/// `from` to `until` (seconds from now).
fn cert_for(
    ca: &Ca,
    key: &impl rcgen::PublicKeyData,
    cn: &str,
    sans: &[&str],
    from: i64,
    until: i64,
) -> String {
    let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn.to_string());
    let t = OffsetDateTime::now_utc();
    params.not_before = t + Duration::seconds(from);
    params.not_after = t + Duration::seconds(until);
    let issuer = Issuer::new(ca.params.clone(), &ca.key);
    params.signed_by(key, &issuer).expect("sign").pem()
}

/// A server certificate of main-0 as the operator makes it.
fn signed(ca: &Ca, key: &impl rcgen::PublicKeyData, from: i64, until: i64) -> String {
    cert_for(
        ca,
        key,
        "main-0",
        &[MEMBER_DNS, "localhost", "127.0.0.1"],
        from,
        until,
    )
}

/// A peer certificate of main-0 as the operator makes it.
fn signed_peer(ca: &Ca, key: &impl rcgen::PublicKeyData, from: i64, until: i64) -> String {
    cert_for(
        ca,
        key,
        "main-0",
        &[MEMBER_DNS, PEER_SERVICE_DNS],
        from,
        until,
    )
}

fn setup() -> (tempfile::TempDir, Ca, Identity, KeyPair) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, &ca.pem).expect("write CA");
    let pki = dir.path().join("pki");
    let identity = Identity::load_or_create(&pki, &ca_file, expected()).expect("identity");
    let key = KeyPair::from_pem(&std::fs::read_to_string(pki.join(KEY_FILE)).expect("key"))
        .expect("key parses");
    (dir, ca, identity, key)
}

#[test]
fn key_is_made_once_private_and_kept_across_restarts() {
    let (dir, _ca, identity, _key) = setup();
    let pki = dir.path().join("pki");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(pki.join(KEY_FILE))
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again =
        Identity::load_or_create(&pki, &dir.path().join("ca.crt"), expected()).expect("reload");
    assert_eq!(identity.report().public_key, again.report().public_key);
    assert!(identity.report().public_key.contains("BEGIN PUBLIC KEY"));
    assert_eq!(identity.report().server, None);
}

#[test]
fn certificates_for_this_key_from_the_ca_are_installed() {
    let (_dir, ca, identity, key) = setup();
    assert!(!identity.complete(now()));
    let grant = Grant {
        server: signed(&ca, &key, -60, 3600),
        peer: signed_peer(&ca, &key, -60, 3600),
    };
    identity.install(&grant, now()).expect("installed");
    assert!(identity.complete(now()));
    let report = identity.report();
    assert_eq!(report.server.as_deref(), Some(grant.server.as_str()));
    assert_eq!(report.peer.as_deref(), Some(grant.peer.as_str()));
    // Past the certificates' end the member is no longer complete: it waits for new ones.
    assert!(!identity.complete(now() + 7200));
}

#[test]
fn wrong_key_other_ca_expired_and_older_certificates_are_refused() {
    let (_dir, ca, identity, key) = setup();
    let other_key = KeyPair::generate().expect("other key");
    let other_ca = self::ca();
    let good = signed(&ca, &key, -60, 3600);
    let good_peer = signed_peer(&ca, &key, -60, 3600);
    let cases = [
        (
            signed(&ca, &other_key, -60, 3600),
            "server certificate: is not for this member's key",
        ),
        (
            signed(&other_ca, &key, -60, 3600),
            "server certificate: was not signed by the cluster's CA",
        ),
        (
            signed(&ca, &key, -3600, -60),
            "server certificate: is not valid now",
        ),
        (
            "garbage".to_string(),
            "server certificate: not a PEM certificate",
        ),
    ];
    for (server, want) in cases {
        let grant = Grant {
            server,
            peer: good_peer.clone(),
        };
        assert_eq!(identity.install(&grant, now()), Err(want.to_string()));
        assert!(identity.report().server.is_none(), "nothing written");
    }

    let longer = Grant {
        server: signed(&ca, &key, -60, 7200),
        peer: signed_peer(&ca, &key, -60, 7200),
    };
    identity.install(&longer, now()).expect("installed");
    let shorter = Grant {
        server: good.clone(),
        peer: good_peer,
    };
    assert_eq!(
        identity.install(&shorter, now()),
        Err("server certificate: expires before the one installed".to_string())
    );
    assert_eq!(identity.report().server, Some(longer.server));
}

#[test]
fn an_unreadable_key_is_an_error_that_says_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(KEY_FILE), "not a key").expect("write");
    let err = Identity::load_or_create(dir.path(), &dir.path().join("ca.crt"), expected())
        .expect_err("refused")
        .to_string();
    assert!(err.contains("not a usable private key"), "{err}");
    assert!(err.contains("delete it"), "{err}");
}

/// Anyone can reach the port: a swap of the two certificates, or another member's, is
/// refused, and what is installed stays.
#[test]
fn swapped_or_foreign_certificates_are_refused() {
    let (_dir, ca, identity, key) = setup();
    let server = signed(&ca, &key, -60, 3600);
    let peer = signed_peer(&ca, &key, -60, 3600);
    let right = Grant {
        server: server.clone(),
        peer: peer.clone(),
    };
    identity.install(&right, now()).expect("installed");
    let other_member = cert_for(
        &ca,
        &key,
        "main-1",
        &["main-1.main-peer.db.svc.cluster.local", "127.0.0.1"],
        -60,
        3600,
    );
    let no_member_name = cert_for(&ca, &key, "main-0", &["127.0.0.1"], -60, 3600);
    let cases = [
        (
            Grant {
                server: peer.clone(),
                peer: server.clone(),
            },
            "server certificate: is not a server certificate (it must name 127.0.0.1 and not the peer Service)",
        ),
        (
            Grant {
                server: server.clone(),
                peer: server.clone(),
            },
            "peer certificate: is not a peer certificate (it does not name main-peer.db.svc.cluster.local)",
        ),
        (
            Grant {
                server: other_member,
                peer: peer.clone(),
            },
            "server certificate: is for \"main-1\", not for this member (main-0)",
        ),
        (
            Grant {
                server: no_member_name,
                peer: peer.clone(),
            },
            "server certificate: does not name main-0.main-peer.db.svc.cluster.local",
        ),
    ];
    for (grant, want) in cases {
        assert_eq!(identity.install(&grant, now()), Err(want.to_string()));
    }
    assert_eq!(identity.report().server, Some(server));
    assert_eq!(identity.report().peer, Some(peer));
    assert!(identity.complete(now()));
}
