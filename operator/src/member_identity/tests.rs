use std::time::Duration;

use rcgen::{KeyPair, PublicKeyData};

use super::*;
use crate::pki::CertInfo;

const DAY: Duration = Duration::from_secs(86_400);

fn names() -> ClusterNames {
    ClusterNames::new("main", "db", "cluster.local")
}

struct Fixture {
    ca: Ca,
    key: KeyPair,
    t0: OffsetDateTime,
}

impl Fixture {
    fn new() -> Self {
        let t0 = OffsetDateTime::now_utc();
        let pem = pki::generate_ca(t0).expect("CA");
        Fixture {
            ca: Ca::from_pem(&pem.cert, &pem.key).expect("CA loads"),
            key: KeyPair::generate().expect("member key"),
            t0,
        }
    }

    fn signing(&self, now: OffsetDateTime) -> Signing<'_> {
        Signing {
            ca: &self.ca,
            now,
            validity: 365 * DAY,
            renew_before: 30 * DAY,
        }
    }

    fn report(&self, server: Option<String>, peer: Option<String>) -> Report {
        Report {
            public_key: self.key.public_key_pem(),
            server,
            peer,
        }
    }

    /// What the first exchange hands `main-1`.
    fn first_grant(&self) -> Grant {
        match decide(
            self.signing(self.t0),
            &names(),
            "main-1",
            &self.report(None, None),
        ) {
            Ok(Decision::Sign { grant, .. }) => grant,
            other => panic!("expected a grant, got {other:?}"),
        }
    }
}

fn reasons(decision: &Decision) -> Vec<(String, &'static str)> {
    match decision {
        Decision::Sign { issued, .. } => {
            issued.iter().map(|n| (n.what.clone(), n.reason)).collect()
        }
        Decision::Keep { .. } => Vec::new(),
    }
}

#[test]
fn a_new_member_gets_both_certificates_for_its_own_key_and_names() {
    let f = Fixture::new();
    let decision =
        decide(f.signing(f.t0), &names(), "main-1", &f.report(None, None)).expect("decided");
    assert_eq!(
        reasons(&decision),
        [
            ("server certificate of main-1".to_string(), "Missing"),
            ("peer certificate of main-1".to_string(), "Missing"),
        ]
    );
    let Decision::Sign { grant, .. } = decision else {
        unreachable!()
    };
    let spki = f.key.subject_public_key_info();
    for (pem, profile) in [
        (&grant.server, LeafProfile::server(&names(), "main-1")),
        (&grant.peer, LeafProfile::peer(&names(), "main-1")),
    ] {
        // Good for this key, under this CA, with exactly the member's names.
        assert!(matches!(
            pki::verdict_for_key(&f.ca, &profile, Some(pem), &spki, f.t0, 30 * DAY),
            LeafVerdict::Keep { .. }
        ));
        let info = CertInfo::from_pem(pem).expect("parses");
        assert_eq!(info.common_name.as_deref(), Some("main-1"));
    }
    let peer_names = CertInfo::from_pem(&grant.peer).expect("peer").sans;
    assert!(peer_names.contains(&"main-peer.db.svc.cluster.local".to_string()));
    assert!(!peer_names.contains(&"localhost".to_string()));
}

#[test]
fn good_certificates_are_kept_and_due_ones_renewed_alone() {
    let f = Fixture::new();
    let grant = f.first_grant();
    let both = f.report(Some(grant.server.clone()), Some(grant.peer.clone()));

    let next_day = f.t0 + time::Duration::days(1);
    let kept = decide(f.signing(next_day), &names(), "main-1", &both).expect("decided");
    let Decision::Keep { not_after } = kept else {
        panic!("expected keep, got {kept:?}")
    };
    assert_eq!(
        not_after,
        CertInfo::from_pem(&grant.server).expect("cert").not_after
    );

    // Only the peer certificate is missing: the server certificate is passed on as it is.
    let half = f.report(Some(grant.server.clone()), None);
    let decision = decide(f.signing(next_day), &names(), "main-1", &half).expect("decided");
    assert_eq!(
        reasons(&decision),
        [("peer certificate of main-1".to_string(), "Missing")]
    );
    let Decision::Sign { grant: again, .. } = decision else {
        unreachable!()
    };
    assert_eq!(again.server, grant.server);
    assert_ne!(again.peer, grant.peer);

    // Within renewBefore of the end, both are renewed.
    let due = f.t0 + time::Duration::days(365 - 29);
    let renewed = decide(f.signing(due), &names(), "main-1", &both).expect("decided");
    assert_eq!(
        reasons(&renewed),
        [
            ("server certificate of main-1".to_string(), "Expiring"),
            ("peer certificate of main-1".to_string(), "Expiring"),
        ]
    );
}

#[test]
fn certificates_of_another_member_key_or_ca_are_replaced() {
    let f = Fixture::new();
    let grant = f.first_grant();
    // main-1's certificates shown by main-2 (e.g. a volume moved by hand): wrong names.
    let moved = f.report(Some(grant.server.clone()), Some(grant.peer.clone()));
    let decision = decide(f.signing(f.t0), &names(), "main-2", &moved).expect("decided");
    assert!(
        reasons(&decision).iter().all(|(_, r)| *r == "NamesChanged"),
        "{decision:?}"
    );
    // A new key on the same member (volume replaced): the old certificates do not fit it.
    let new_key = KeyPair::generate().expect("key");
    let rekeyed = Report {
        public_key: new_key.public_key_pem(),
        ..moved.clone()
    };
    let decision = decide(f.signing(f.t0), &names(), "main-1", &rekeyed).expect("decided");
    assert!(
        reasons(&decision).iter().all(|(_, r)| *r == "Unreadable"),
        "{decision:?}"
    );
    // A new CA: everything it did not sign is reissued.
    let other = Fixture::new();
    let decision = decide(other.signing(f.t0), &names(), "main-1", &moved).expect("decided");
    assert!(
        reasons(&decision)
            .iter()
            .all(|(_, r)| *r == "SignedByOtherCA"),
        "{decision:?}"
    );
}

#[test]
fn a_report_without_a_public_key_is_an_error() {
    let f = Fixture::new();
    let bad = Report {
        public_key: f.first_grant().server,
        server: None,
        peer: None,
    };
    let err = decide(f.signing(f.t0), &names(), "main-1", &bad).expect_err("refused");
    assert!(err.to_string().contains("PUBLIC KEY"), "{err}");
}

#[test]
fn pods_whose_sidecar_makes_its_key_are_told_apart() {
    let pod = |args: &[&str]| -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "main-0"},
            "spec": {
                "initContainers": [{"name": "sidecar", "command": args}],
                "containers": [{"name": "etcd"}],
            }
        }))
        .expect("pod")
    };
    assert!(makes_own_key(&pod(&[
        "ballast",
        "sidecar",
        "--identity-dir=/var/lib/etcd/pki"
    ])));
    assert!(!makes_own_key(&pod(&["ballast", "sidecar"])));
}

#[test]
fn only_live_pods_of_the_statefulset_are_served() {
    let pod = |owner: &str, phase: &str, deleting: bool| -> Pod {
        let mut p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "main-0", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": owner,
                 "uid": "u1", "controller": true}]},
            "status": {"phase": phase},
        }))
        .expect("pod");
        if deleting {
            p.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ));
        }
        p
    };
    assert!(is_live_member_pod(&pod("main", "Running", false), &names()));
    assert!(is_live_member_pod(&pod("main", "Pending", false), &names()));
    assert!(!is_live_member_pod(
        &pod("other", "Running", false),
        &names()
    ));
    assert!(!is_live_member_pod(&pod("main", "Failed", false), &names()));
    assert!(!is_live_member_pod(&pod("main", "Running", true), &names()));
}
