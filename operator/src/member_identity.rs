//! Certificates for keys the members make themselves.
//!
//! Every pod of a StatefulSet mounts the same Secrets, so Secrets holding member keys
//! would give each pod every member's key. Instead each member's sidecar makes its key on
//! the member's volume and shows only the public half (`GET /identity` on its port 2382);
//! the operator signs a server and a peer certificate for that key, with the names of the
//! pod it found the sidecar in, and hands them back (`PUT /identity`). The sidecar accepts
//! only certificates from the cluster's CA for its own key, so the exchange needs no
//! secret of its own. Renewal is the same exchange once a certificate is due.
//!
//! [`decide`] is the pure part; [`sync`] asks the pods and carries it out.

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Error;
use crate::members::MemberStatusSource;
use crate::names::ClusterNames;
use crate::pki::{self, Ca, LeafProfile, LeafVerdict};
use crate::tls::IssuedNote;

/// The sidecar flag that says its member makes its own key.
pub const IDENTITY_FLAG: &str = "--identity-dir=";

/// What a sidecar shows (`GET /identity`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The member key's public half, PEM.
    pub public_key: String,
    /// Its installed server certificate.
    pub server: Option<String>,
    /// Its installed peer certificate.
    pub peer: Option<String>,
}

/// What the operator hands a sidecar (`PUT /identity`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Server certificate, PEM.
    pub server: String,
    /// Peer certificate, PEM.
    pub peer: String,
}

/// The CA and the certificate policy of the cluster.
#[derive(Clone, Copy, Debug)]
pub struct Signing<'a> {
    /// The cluster's CA.
    pub ca: &'a Ca,
    /// Now.
    pub now: OffsetDateTime,
    /// `spec.tls.validity`.
    pub validity: std::time::Duration,
    /// `spec.tls.renewBefore`.
    pub renew_before: std::time::Duration,
}

/// What to do for one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Its certificates are good.
    Keep {
        /// When the earlier of the two expires (Unix seconds).
        not_after: i64,
    },
    /// Hand it these (a certificate that was still good is passed on unchanged).
    Sign {
        /// Both certificates.
        grant: Grant,
        /// Which were issued, and why.
        issued: Vec<IssuedNote>,
        /// When the earlier of the two expires (Unix seconds).
        not_after: i64,
    },
}

/// Decides whether `member`'s certificates, as its sidecar shows them, must be (re)issued.
pub fn decide(
    signing: Signing<'_>,
    names: &ClusterNames,
    member: &str,
    report: &Report,
) -> Result<Decision, Error> {
    let spki = pki::public_key_der(&report.public_key)?;
    let mut issued = Vec::new();
    let mut not_after = i64::MAX;
    let mut pems = Vec::new();
    for (what, profile, current) in [
        (
            "server",
            LeafProfile::server(names, member),
            report.server.as_deref(),
        ),
        (
            "peer",
            LeafProfile::peer(names, member),
            report.peer.as_deref(),
        ),
    ] {
        match pki::verdict_for_key(
            signing.ca,
            &profile,
            current,
            &spki,
            signing.now,
            signing.renew_before,
        ) {
            LeafVerdict::Keep { not_after: until } => {
                not_after = not_after.min(until);
                pems.push(current.unwrap_or_default().to_string());
            }
            LeafVerdict::Reissue(reason) => {
                let pem = signing.ca.issue_for_public_key(
                    &profile,
                    &report.public_key,
                    signing.now,
                    signing.validity,
                )?;
                not_after = not_after.min(pki::CertInfo::from_pem(&pem)?.not_after);
                issued.push(IssuedNote {
                    what: format!("{what} certificate of {member}"),
                    reason: reason.as_str(),
                });
                pems.push(pem);
            }
        }
    }
    if issued.is_empty() {
        return Ok(Decision::Keep { not_after });
    }
    let mut pems = pems.into_iter();
    Ok(Decision::Sign {
        grant: Grant {
            server: pems.next().unwrap_or_default(),
            peer: pems.next().unwrap_or_default(),
        },
        issued,
        not_after,
    })
}

/// What one pass over the pods did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Synced {
    /// Certificates handed to members, by pod.
    pub issued: Vec<(String, Vec<IssuedNote>)>,
    /// Pods that make their own key but could not be served yet (sidecar not answering,
    /// or the hand-over failed): ask again soon.
    pub waiting: Vec<String>,
    /// The earliest expiry among members' certificates (Unix seconds).
    pub earliest: Option<i64>,
}

/// Whether `pod` runs a sidecar that makes its member's key.
pub fn makes_own_key(pod: &Pod) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .flat_map(|c| c.command.iter().flatten())
        .any(|arg| arg.starts_with(IDENTITY_FLAG))
}

/// Whether `pod` is a member pod the StatefulSet made and that is not going away: only
/// those get certificates with a member's names.
pub fn is_live_member_pod(pod: &Pod, names: &ClusterNames) -> bool {
    let owned = pod.metadata.owner_references.iter().flatten().any(|o| {
        o.kind == "StatefulSet" && o.name == names.statefulset() && o.controller == Some(true)
    });
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    owned
        && pod.metadata.deletion_timestamp.is_none()
        && matches!(phase, None | Some("Pending") | Some("Running"))
}

/// Serves every running pod of the cluster whose sidecar makes its own key.
/// `listed`: the cluster's pods as this reconcile listed them; each is read again before
/// it is trusted.
pub async fn sync(
    client: &kube::Client,
    members: &dyn MemberStatusSource,
    names: &ClusterNames,
    listed: &[Pod],
    signing: Signing<'_>,
) -> Result<Synced, Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &names.namespace);
    let mut out = Synced::default();
    for pod in listed.iter().filter(|p| makes_own_key(p)) {
        let name = pod.name_any();
        if !is_live_member_pod(pod, names) {
            continue;
        }
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()) else {
            // Scheduled, it gets an address and asks within seconds; pods are not watched,
            // so look again soon. Unscheduled, it may wait long: the usual requeue will do.
            if pod.spec.as_ref().is_some_and(|s| s.node_name.is_some()) {
                out.waiting.push(name);
            }
            continue;
        };
        let Some(report) = members.sidecar_identity(ip).await else {
            out.waiting.push(name);
            continue;
        };
        // What answered must still be this pod at this address: an address freed by a
        // pod that went away may already serve another.
        let now = pods.get_opt(&name).await?;
        let same = now.as_ref().is_some_and(|p| {
            is_live_member_pod(p, names)
                && p.metadata.uid == pod.metadata.uid
                && p.status.as_ref().and_then(|s| s.pod_ip.as_deref()) == Some(ip)
        });
        if !same {
            out.waiting.push(name);
            continue;
        }
        // One pod showing something unusable must not stop the others being served.
        let decision = match decide(signing, names, &name, &report) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(pod = %name, error = %e, "the member's sidecar shows no usable public key");
                continue;
            }
        };
        let not_after = match decision {
            Decision::Keep { not_after } => not_after,
            Decision::Sign {
                grant,
                issued,
                not_after,
            } => match members.install_identity(ip, &grant).await {
                Ok(()) => {
                    tracing::info!(pod = %name, "signed the member's certificates");
                    out.issued.push((name, issued));
                    not_after
                }
                Err(e) => {
                    tracing::warn!(pod = %name, error = %e, "handing the member its certificates");
                    out.waiting.push(name);
                    continue;
                }
            },
        };
        out.earliest = Some(out.earliest.map_or(not_after, |e| e.min(not_after)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
