//! Which certificate Secrets the cluster needs and what must be issued into them: a pure
//! plan over the Secrets as stored, built on [`crate::pki`].
//!
//! Layout (Secret → keys):
//! - `<name>-healthcheck-client`, `<name>-apiserver-etcd-client`, `<name>-operator-client`:
//!   `kubernetes.io/tls` with `tls.crt`, `tls.key` and `ca.crt`. Pods mount the first (the
//!   sidecar's client identity, and `ca.crt` for both containers).
//! - Member keys are in no Secret: each member makes its own, and the operator signs its
//!   certificates ([`crate::member_identity`]).
//! - `<name>-server-tls`, `<name>-peer-tls`: how earlier versions gave members their keys
//!   (`<member>.crt`/`<member>.key` for every member, in every pod). They are kept up while
//!   a pod still mounts them, so an upgrade can roll the members one at a time, and deleted
//!   once none does.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::ByteString;
use time::OffsetDateTime;

use crate::crd::{CertificateStatus, EtcdClusterSpec};
use crate::error::Error;
use crate::names::ClusterNames;
use crate::pki::{Ca, IssuedPem, LeafProfile, LeafVerdict};

use crate::render::object_meta;

/// A Secret's data as text, as read from the API.
pub type SecretText = BTreeMap<String, String>;

/// The certificate Secrets as stored (`None`: the Secret does not exist).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredSecrets {
    /// `<name>-server-tls`.
    pub server: Option<SecretText>,
    /// `<name>-peer-tls`.
    pub peer: Option<SecretText>,
    /// `<name>-healthcheck-client`.
    pub healthcheck: Option<SecretText>,
    /// `<name>-apiserver-etcd-client`.
    pub apiserver: Option<SecretText>,
    /// `<name>-operator-client`.
    pub operator: Option<SecretText>,
}

/// One certificate issued by a plan, for an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedNote {
    /// Which certificate, e.g. `server certificate of main-0`.
    pub what: String,
    /// Why (`Missing`, `Expiring`, ...).
    pub reason: &'static str,
}

/// What to write.
#[derive(Clone, Debug)]
pub struct TlsPlan {
    /// Secrets whose content changes (unchanged ones are left alone).
    pub apply: Vec<Secret>,
    /// Secrets no pod needs any more.
    pub delete: Vec<String>,
    /// Certificates issued, with reasons.
    pub issued: Vec<IssuedNote>,
    /// Expiry summary for status.
    pub certificates: CertificateStatus,
    /// The operator's client certificate, to ask the members.
    pub operator_client: IssuedPem,
}

/// Plans the certificate Secrets of a cluster issued from `ca`. `legacy_members`: how many
/// members' keys the old shared Secrets must still hold because pods mount them
/// (`spec.replicas`, or more while pods beyond it still run); `None` once no pod does.
pub fn plan(
    names: &ClusterNames,
    spec: &EtcdClusterSpec,
    legacy_members: Option<i32>,
    ca: &Ca,
    stored: &StoredSecrets,
    owner: &OwnerReference,
    now: OffsetDateTime,
) -> Result<TlsPlan, Error> {
    let validity: std::time::Duration = spec.tls.validity.into();
    let renew_before: std::time::Duration = spec.tls.renew_before.into();
    let mut planner = Planner {
        ca,
        now,
        validity,
        renew_before,
        issued: Vec::new(),
        earliest: None,
    };
    let mut apply = Vec::new();
    let mut delete = Vec::new();

    for (kind, secret_name, current, profile_for) in [
        (
            "server",
            names.server_secret(),
            &stored.server,
            LeafProfile::server as fn(&ClusterNames, &str) -> LeafProfile,
        ),
        ("peer", names.peer_secret(), &stored.peer, LeafProfile::peer),
    ] {
        let Some(members) = legacy_members else {
            if current.is_some() {
                delete.push(secret_name);
            }
            continue;
        };
        let mut data = SecretText::new();
        data.insert("ca.crt".to_string(), ca.cert_pem().to_string());
        for member in names.members(members.max(spec.replicas)) {
            let profile = profile_for(names, &member);
            let crt = format!("{member}.crt");
            let key = format!("{member}.key");
            let stored_pair = current
                .as_ref()
                .and_then(|d| Some((d.get(&crt)?.as_str(), d.get(&key)?.as_str())));
            let pem = planner.leaf(
                &profile,
                stored_pair,
                format!("{kind} certificate of {member}"),
            )?;
            data.insert(crt, pem.cert);
            data.insert(key, pem.key);
        }
        if current.as_ref() != Some(&data) {
            apply.push(secret(names, owner, secret_name, "Opaque", data));
        }
    }

    let mut operator_client = None;
    for (what, secret_name, current, profile) in [
        (
            "healthcheck client certificate",
            names.healthcheck_client_secret(),
            &stored.healthcheck,
            LeafProfile::healthcheck_client(),
        ),
        (
            "apiserver-etcd-client certificate",
            names.apiserver_client_secret(),
            &stored.apiserver,
            LeafProfile::apiserver_client(),
        ),
        (
            "operator client certificate",
            names.operator_client_secret(),
            &stored.operator,
            LeafProfile::operator_client(),
        ),
    ] {
        let stored_pair = current
            .as_ref()
            .and_then(|d| Some((d.get("tls.crt")?.as_str(), d.get("tls.key")?.as_str())));
        let pem = planner.leaf(&profile, stored_pair, what.to_string())?;
        let data = SecretText::from([
            ("ca.crt".to_string(), ca.cert_pem().to_string()),
            ("tls.crt".to_string(), pem.cert.clone()),
            ("tls.key".to_string(), pem.key.clone()),
        ]);
        if current.as_ref() != Some(&data) {
            apply.push(secret(names, owner, secret_name, "kubernetes.io/tls", data));
        }
        if profile.kind == crate::pki::LeafKind::OperatorClient {
            operator_client = Some(pem);
        }
    }

    let earliest = planner.earliest;
    Ok(TlsPlan {
        apply,
        delete,
        issued: planner.issued,
        certificates: CertificateStatus {
            ca_not_after: time_from_unix(ca.not_after()),
            leaf_not_after: earliest.and_then(time_from_unix),
            renewal_time: earliest
                .map(|t| t - renew_before.as_secs() as i64)
                .and_then(time_from_unix),
        },
        operator_client: operator_client
            .ok_or_else(|| Error::Parse("operator client certificate".to_string()))?,
    })
}

struct Planner<'a> {
    ca: &'a Ca,
    now: OffsetDateTime,
    validity: std::time::Duration,
    renew_before: std::time::Duration,
    issued: Vec<IssuedNote>,
    earliest: Option<i64>,
}

impl Planner<'_> {
    fn leaf(
        &mut self,
        profile: &LeafProfile,
        stored: Option<(&str, &str)>,
        what: String,
    ) -> Result<IssuedPem, Error> {
        let not_after =
            match crate::pki::leaf_verdict(self.ca, profile, stored, self.now, self.renew_before) {
                LeafVerdict::Keep { not_after } => {
                    if let Some((cert, key)) = stored {
                        self.note_expiry(not_after);
                        return Ok(IssuedPem {
                            cert: cert.to_string(),
                            key: key.to_string(),
                        });
                    }
                    not_after
                }
                LeafVerdict::Reissue(reason) => {
                    self.issued.push(IssuedNote {
                        what,
                        reason: reason.as_str(),
                    });
                    i64::MAX
                }
            };
        let pem = self.ca.issue(profile, self.now, self.validity)?;
        let issued_until = crate::pki::CertInfo::from_pem(&pem.cert)?.not_after;
        self.note_expiry(issued_until.min(not_after));
        Ok(pem)
    }

    fn note_expiry(&mut self, not_after: i64) {
        self.earliest = Some(self.earliest.map_or(not_after, |e| e.min(not_after)));
    }
}

fn time_from_unix(secs: i64) -> Option<Time> {
    Timestamp::from_second(secs).ok().map(Time)
}

/// A certificate Secret owned by the cluster.
pub fn secret(
    names: &ClusterNames,
    owner: &OwnerReference,
    name: String,
    type_: &str,
    data: SecretText,
) -> Secret {
    Secret {
        metadata: object_meta(names, name, owner),
        type_: Some(type_.to_string()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// A Secret's data as text; values that are not UTF-8 are dropped (they cannot be PEM).
pub fn secret_text(secret: &Secret) -> SecretText {
    secret
        .data
        .iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.0.clone()).ok()?)))
        .collect()
}

/// Reads a CA from a Secret's data: `ca.crt`/`ca.key` (kubeadm's names) or
/// `tls.crt`/`tls.key` (cert-manager's).
pub fn ca_from_secret(name: &str, data: &SecretText) -> Result<Ca, Error> {
    let pair = data
        .get("ca.crt")
        .zip(data.get("ca.key"))
        .or_else(|| data.get("tls.crt").zip(data.get("tls.key")));
    let Some((cert, key)) = pair else {
        return Err(Error::UserSecret {
            name: name.to_string(),
            problem: "needs ca.crt and ca.key (or tls.crt and tls.key)".to_string(),
        });
    };
    Ca::from_pem(cert, key).map_err(|e| Error::UserSecret {
        name: name.to_string(),
        problem: e.to_string(),
    })
}
