//! The member lifecycle's contact with the world: it gathers the facts that
//! [`crate::lifecycle::next_step`] decides on (the member list, the pods and what their
//! sidecars say, the claims) and carries out the step it chose, through the members'
//! etcd API and the Kubernetes API. Nothing here decides anything.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::ResourceExt;

use crate::crd::{EtcdCluster, MAX_REPLICAS};
use crate::error::Error;
use crate::lifecycle::{self, Facts, PodStart, Step};
use crate::members::{ClusterView, MemberStatusSource, MembershipChange, Target};
use crate::names::ClusterNames;
use crate::render;

/// Setting this annotation to `"true"` stops the operator from changing the cluster's
/// membership, pods or volumes (status is still reported), for a person working on the
/// cluster by hand.
pub const PAUSE_ANNOTATION: &str = "ballast.dev/paused";

/// etcd's answer to a promotion that came too early: the learner has not caught up.
const NOT_IN_SYNC: &str = "can only promote a learner member which is in sync with leader";

/// Whether the cluster carries the pause annotation.
pub fn paused(cluster: &EtcdCluster) -> bool {
    cluster
        .annotations()
        .get(PAUSE_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// The lifecycle's view of the members the cluster listed.
pub fn members(names: &ClusterNames, view: &ClusterView) -> Vec<lifecycle::Member> {
    view.members
        .iter()
        .map(|m| lifecycle::Member {
            id: m.id,
            name: m.name.clone(),
            ordinal: names.ordinal_of(&m.peer_urls),
            learner: m.learner,
            healthy: m.healthy,
        })
        .collect()
}

/// Gathers the facts for the next lifecycle step.
pub async fn facts(
    client: &kube::Client,
    source: &dyn MemberStatusSource,
    cluster: &EtcdCluster,
    names: &ClusterNames,
    view: &ClusterView,
    pods_wanted: i32,
) -> Result<Facts, Error> {
    let members = members(names, view);
    let selector = ListParams::default().labels(&names.selector_string());
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), &names.namespace);
    let member_names: Vec<String> = names.members(MAX_REPLICAS);
    let mut pods = Vec::new();
    for pod in pod_api.list(&selector).await? {
        let Some(ordinal) = member_names.iter().position(|n| *n == pod.name_any()) else {
            continue;
        };
        let ordinal = ordinal as i32;
        let healthy = members
            .iter()
            .any(|m| m.ordinal == Some(ordinal) && m.healthy);
        // Only a pod whose member is not healthy needs its sidecar asked.
        let start = if healthy {
            PodStart::Started
        } else {
            match pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()) {
                Some(ip) => parse_bootstrap(source.sidecar_bootstrap(ip).await.as_deref()),
                None => PodStart::Unknown,
            }
        };
        pods.push(lifecycle::Pod { ordinal, start });
    }
    let claim_api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &names.namespace);
    let claim_names = render::claim_names(names, MAX_REPLICAS);
    let claims = claim_api
        .list(&selector)
        .await?
        .into_iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter_map(|c| claim_names.iter().position(|n| *n == c.name_any()))
        .map(|o| o as i32)
        .collect();
    Ok(Facts {
        desired: cluster.spec.replicas,
        paused: paused(cluster),
        replace_lost: cluster.spec.replace_lost_members,
        members,
        leader: view.leader,
        pods_wanted,
        pods,
        claims,
    })
}

/// The sidecar's `/bootstrap` answer, as the lifecycle needs it.
pub fn parse_bootstrap(body: Option<&str>) -> PodStart {
    let Some(doc) = body.and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok()) else {
        return PodStart::Unknown;
    };
    match (
        doc.get("state").and_then(|v| v.as_str()),
        doc.get("refusal").and_then(|v| v.as_str()),
    ) {
        (Some("started"), _) => PodStart::Started,
        (Some("refused"), Some("dataLost")) => PodStart::RefusedDataLost,
        (Some("refused"), Some(_)) => PodStart::RefusedNotMember,
        _ => PodStart::Unknown,
    }
}

/// What carrying out a step gave: an Event to publish, or a reason to wait.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done; publish this (reason, note).
    Done(&'static str, String),
    /// The cluster was not ready for it; try again shortly.
    NotYet(String),
    /// Nothing to carry out (the step only reports).
    Nothing,
}

/// Carries out a membership or volume step. `SetPods` is carried out by rendering the
/// StatefulSet with that many pods, not here.
pub async fn carry_out(
    client: &kube::Client,
    source: &dyn MemberStatusSource,
    names: &ClusterNames,
    target: &Target,
    view: &ClusterView,
    step: &Step,
) -> Result<Outcome, Error> {
    let by_id = |id: u64| -> String {
        view.members
            .iter()
            .find(|m| m.id == id)
            .filter(|m| !m.name.is_empty())
            .map_or_else(|| format!("{id:x}"), |m| m.name.clone())
    };
    match step {
        Step::AddLearner(_, ordinal) => {
            let member = names.member(*ordinal);
            let peer_url = names.member_peer_url(&member);
            source
                .change(
                    target,
                    &MembershipChange::AddLearner {
                        peer_url: peer_url.clone(),
                    },
                )
                .await?;
            Ok(Outcome::Done(
                "MemberAdded",
                format!("added {member} ({peer_url}) as a learner; its pod joins the cluster"),
            ))
        }
        Step::Promote(_, id, _) => {
            match source
                .change(target, &MembershipChange::Promote { id: *id })
                .await
            {
                Ok(()) => Ok(Outcome::Done(
                    "MemberPromoted",
                    format!("promoted learner {} to a voting member", by_id(*id)),
                )),
                Err(Error::Members(e)) if e.contains(NOT_IN_SYNC) => Ok(Outcome::NotYet(format!(
                    "learner {} has not caught up with the leader yet",
                    by_id(*id)
                ))),
                Err(e) => Err(e),
            }
        }
        Step::Remove(_, id, _) => {
            source
                .change(target, &MembershipChange::Remove { id: *id })
                .await?;
            Ok(Outcome::Done(
                "MemberRemoved",
                format!("removed member {} ({id:x}) from the cluster", by_id(*id)),
            ))
        }
        Step::MoveLeader(_, to) => {
            let leader = view
                .leader
                .and_then(|l| view.members.iter().find(|m| m.id == l))
                .and_then(|m| names.ordinal_of(&m.peer_urls))
                .map(|o| names.member_client_url(&names.member(o)))
                .ok_or_else(|| Error::Members("the leader is not one of the pods".into()))?;
            source
                .change(
                    target,
                    &MembershipChange::MoveLeader {
                        leader_url: leader,
                        to: *to,
                    },
                )
                .await?;
            Ok(Outcome::Done(
                "LeadershipMoved",
                format!(
                    "moved leadership to {} before removing the leader",
                    by_id(*to)
                ),
            ))
        }
        Step::DeleteVolume(_, ordinal) => {
            delete_volume(client, names, *ordinal).await?;
            Ok(Outcome::Done(
                "VolumeDeleted",
                format!(
                    "deleted the claim of {} so that a member there starts on empty data",
                    names.member(*ordinal)
                ),
            ))
        }
        Step::Steady | Step::Wait(..) | Step::Blocked(..) | Step::Paused | Step::SetPods(..) => {
            Ok(Outcome::Nothing)
        }
    }
}

/// Deletes the claim of `ordinal`, and its pod if one runs (a claim in use is only deleted
/// once its pod goes). Preconditions on the UIDs keep a newer object from being deleted by
/// a decision made on an older one.
async fn delete_volume(
    client: &kube::Client,
    names: &ClusterNames,
    ordinal: i32,
) -> Result<(), Error> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &names.namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &names.namespace);
    let claim_name = render::claim_names(names, ordinal + 1)
        .pop()
        .ok_or(Error::MissingMetadata("claim name"))?;
    let guarded = |uid: Option<String>| DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    if let Some(claim) = claims.get_opt(&claim_name).await? {
        claims.delete(&claim_name, &guarded(claim.uid())).await?;
    }
    let pod_name = names.member(ordinal);
    if let Some(pod) = pods.get_opt(&pod_name).await? {
        pods.delete(&pod_name, &guarded(pod.uid())).await?;
    }
    Ok(())
}

/// Counts of what the cluster lists, for status and the PodDisruptionBudget.
pub fn voters(view: &ClusterView) -> i32 {
    view.members.iter().filter(|m| !m.learner).count() as i32
}

/// The `Progressing` reason and message of a step, if it is part of an operation.
pub fn progress(step: &Step, names: &ClusterNames) -> Option<(String, String)> {
    let op = step.operation()?;
    let member = |o: &i32| names.member(*o);
    let what = match step {
        Step::Wait(_, m) => m.clone(),
        Step::SetPods(_, n) => format!("running pods {}..{}", names.member(0), member(&(n - 1))),
        Step::AddLearner(_, o) => format!("adding {} as a learner", member(o)),
        Step::Promote(_, _, o) => format!("promoting {}", member(o)),
        Step::MoveLeader(..) => "moving leadership away from the member to remove".to_string(),
        Step::Remove(_, _, o) => format!("removing {}", member(o)),
        Step::DeleteVolume(_, o) => format!("deleting the claim of {}", member(o)),
        _ => return None,
    };
    Some((op.reason().to_string(), what))
}

/// Problems the lifecycle reports as `Degraded`.
pub fn problem(step: &Step) -> Option<crate::status::Problem> {
    match step {
        Step::Blocked(reason, message) => Some(crate::status::Problem {
            reason: (*reason).to_string(),
            message: message.clone(),
            blocking: false,
        }),
        _ => None,
    }
}
