//! The member lifecycle's contact with the world: it gathers the facts that
//! [`crate::lifecycle::next_step`] decides on (the member list, the pods and what their
//! sidecars say, the claims) and carries out the step it chose, through the members'
//! etcd API and the Kubernetes API. Nothing here decides anything.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, EvictParams, ListParams, Preconditions};
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

/// etcd's answers to a membership change that came too early and will succeed later: the
/// learner has not caught up, or a member was connected for less than 5 s (strict
/// reconfiguration check, e.g. just after the previous promotion).
const NOT_YET: [&str; 3] = [
    "can only promote a learner member which is in sync with leader",
    "etcdserver: unhealthy cluster",
    "etcdserver: re-configuration failed due to not enough started members",
];

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
            answered: m.answered,
            applied_index: m.applied_index,
        })
        .collect()
}

/// Asks for one recovery from a lost quorum, now; removed by the operator once it acts.
pub const RECOVER_ANNOTATION: &str = "ballast.dev/recover-quorum";

/// How long a recovery request stays valid for the sidecar that is to carry it out: its
/// pod is restarted at once, so this only bounds a request that went astray.
const RECOVERY_REQUEST_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// How long the members that answer have had no quorum (`status.quorumLostSince`).
fn quorum_lost_for(
    cluster: &EtcdCluster,
    now: k8s_openapi::jiff::Timestamp,
) -> Option<std::time::Duration> {
    let since = cluster.status.as_ref()?.quorum_lost_since.as_ref()?.0;
    Some(std::time::Duration::from_secs(
        (now.as_second() - since.as_second()).max(0) as u64,
    ))
}

/// Gathers the facts for the next lifecycle step.
#[allow(clippy::too_many_arguments)]
pub async fn facts(
    client: &kube::Client,
    source: &dyn MemberStatusSource,
    cluster: &EtcdCluster,
    names: &ClusterNames,
    view: &ClusterView,
    statefulset: &StatefulSet,
    state: &StateData,
    now: k8s_openapi::jiff::Timestamp,
) -> Result<Facts, Error> {
    let pods_wanted = statefulset
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or_default();
    let update_revision = update_revision(statefulset);
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
        let start = if corrupt(&pod) {
            PodStart::DataCorrupt
        } else {
            start
        };
        let revision = pod.labels().get("controller-revision-hash");
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        pods.push(lifecycle::Pod {
            ordinal,
            start,
            // Until the StatefulSet controller has seen the template, nobody is stale.
            current: update_revision.is_none() || revision == update_revision.as_ref(),
            ready,
        });
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
    let recovering = request_in_force(state, now)
        .and_then(|(m, _)| member_names.iter().position(|n| n == m))
        .map(|o| o as i32);
    Ok(Facts {
        recovering,
        desired: cluster.spec.replicas,
        paused: paused(cluster),
        replace_lost: cluster.spec.replace_lost_members,
        members,
        leader: view.leader,
        pods_wanted,
        pods,
        claims,
        quorum_lost_for: quorum_lost_for(cluster, now),
        recover_after: cluster
            .spec
            .recovery
            .as_ref()
            .filter(|r| r.quorum_loss == crate::crd::QuorumLossPolicy::Automatic)
            .map(|r| r.after.into()),
        recovery_requested: cluster
            .annotations()
            .get(RECOVER_ANNOTATION)
            .is_some_and(|v| v == "true"),
        cluster: names.name.clone(),
    })
}

/// Whether the pod's server last exited because its data is corrupt: the server's last
/// log line is its fatal error, which the kubelet keeps as the termination message
/// (`FallbackToLogsOnError`).
fn corrupt(pod: &Pod) -> bool {
    let Some(server) = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.iter().find(|c| c.name == render::SERVER_CONTAINER))
    else {
        return false;
    };
    [server.state.as_ref(), server.last_state.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|s| s.terminated.as_ref())
        .filter_map(|t| t.message.as_deref())
        .any(|m| m.contains("data corrupted: ") || m.contains(" is corrupt at byte offset "))
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
        // A founding member retrying its restore: nothing for the lifecycle to do.
        (Some("refused"), Some("restoreFailed")) => PodStart::Unknown,
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
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(name = "carry_out", skip_all, fields(step = ?step))]
pub async fn carry_out(
    client: &kube::Client,
    source: &dyn MemberStatusSource,
    cluster: &EtcdCluster,
    now: k8s_openapi::jiff::Timestamp,
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
    let change = |c: MembershipChange, done: (&'static str, String)| async move {
        match source.change(target, &c).await {
            Ok(()) => Ok(Outcome::Done(done.0, done.1)),
            Err(Error::Members(e)) if NOT_YET.iter().any(|n| e.contains(n)) => Ok(Outcome::NotYet(
                format!("the cluster is not ready for it yet: {e}"),
            )),
            Err(e) => Err(e),
        }
    };
    match step {
        Step::AddLearner(_, ordinal) => {
            let member = names.member(*ordinal);
            let peer_url = names.member_peer_url(&member);
            let note =
                format!("added {member} ({peer_url}) as a learner; its pod joins the cluster");
            change(
                MembershipChange::AddLearner { peer_url },
                ("MemberAdded", note),
            )
            .await
        }
        Step::Promote(_, id, _) => {
            let note = format!("promoted learner {} to a voting member", by_id(*id));
            change(
                MembershipChange::Promote { id: *id },
                ("MemberPromoted", note),
            )
            .await
        }
        Step::Remove(_, id, _) => {
            let note = format!("removed member {} ({id:x}) from the cluster", by_id(*id));
            change(
                MembershipChange::Remove { id: *id },
                ("MemberRemoved", note),
            )
            .await
        }
        Step::MoveLeader(_, to) => {
            let leader_url = view
                .leader
                .and_then(|l| view.members.iter().find(|m| m.id == l))
                .and_then(|m| names.ordinal_of(&m.peer_urls))
                .map(|o| names.member_client_url(&names.member(o)))
                .ok_or_else(|| Error::Members("the leader is not one of the pods".into()))?;
            let note = format!("moved leadership to {}", by_id(*to));
            change(
                MembershipChange::MoveLeader {
                    leader_url,
                    to: *to,
                },
                ("LeadershipMoved", note),
            )
            .await
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
        Step::Restart(_, ordinal) => {
            let pod = names.member(*ordinal);
            let pods: Api<Pod> = Api::namespaced(client.clone(), &names.namespace);
            match pods.evict(&pod, &EvictParams::default()).await {
                Ok(_) => Ok(Outcome::Done(
                    "MemberRestarted",
                    format!("restarted {pod} onto the new pod template"),
                )),
                // 429: the PodDisruptionBudget does not allow it now.
                Err(kube::Error::Api(e)) if e.code == 429 => Ok(Outcome::NotYet(format!(
                    "the PodDisruptionBudget does not allow restarting {pod} yet: {}",
                    e.message
                ))),
                Err(e) => Err(e.into()),
            }
        }
        Step::ForceNewCluster(_, ordinal) => {
            let member = names.member(*ordinal);
            let request = request_recovery(client, cluster, names, &member, now).await?;
            // The pod is restarted only once its sidecar sees the request: the kubelet
            // updates a mounted ConfigMap with a delay, and the new pod's sidecar must find
            // it when it starts.
            let pods: Api<Pod> = Api::namespaced(client.clone(), &names.namespace);
            let seen = match pods.get_opt(&member).await? {
                Some(pod) => match pod.status.as_ref().and_then(|s| s.pod_ip.clone()) {
                    Some(ip) => source
                        .sidecar_bootstrap(&ip)
                        .await
                        .is_some_and(|body| seen_request(&body) == Some(request.clone())),
                    None => false,
                },
                None => false,
            };
            if !seen {
                return Ok(Outcome::NotYet(format!(
                    "waiting for {member}'s sidecar to see recovery request {request}"
                )));
            }
            // Every other voter goes back to empty data, as the runbook wipes them: one that
            // came back later on its old data would still count the old membership and
            // could elect a leader of its own beside the recovered cluster.
            let mut wiped = Vec::new();
            for other in view.members.iter().filter(|m| !m.learner) {
                let Some(o) = names.ordinal_of(&other.peer_urls).filter(|o| o != ordinal) else {
                    continue;
                };
                if !holds_data(source, &pods, &names.member(o)).await? {
                    continue;
                }
                delete_volume(client, names, o).await?;
                wiped.push(names.member(o));
            }
            pods.delete(&member, &DeleteParams::default()).await?;
            forget_recovery_annotation(client, cluster, names).await?;
            Ok(Outcome::Done(
                "QuorumRecoveryStarted",
                format!(
                    "restarting {member} with --force-new-cluster: it continues alone with what \
                     it applied, and the other members are added back as learners on empty data \
                     (volumes renewed: {})",
                    if wiped.is_empty() {
                        "none".to_string()
                    } else {
                        wiped.join(", ")
                    }
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

/// Whether the pod of `member` may hold data: its sidecar does not say its data dir is
/// empty (a pod that is gone keeps its claim, which may).
async fn holds_data(
    source: &dyn MemberStatusSource,
    pods: &Api<Pod>,
    member: &str,
) -> Result<bool, Error> {
    let Some(ip) = pods
        .get_opt(member)
        .await?
        .and_then(|p| p.status.and_then(|s| s.pod_ip))
    else {
        return Ok(true);
    };
    let start = parse_bootstrap(source.sidecar_bootstrap(&ip).await.as_deref());
    Ok(!matches!(
        start,
        PodStart::RefusedDataLost | PodStart::RefusedNotMember
    ))
}

/// The state ConfigMap's data.
pub type StateData = std::collections::BTreeMap<String, String>;

/// `(member, request ID)` of the recovery request in `state` that has not expired at `now`.
fn request_in_force(state: &StateData, now: k8s_openapi::jiff::Timestamp) -> Option<(&str, &str)> {
    let not_after: i64 = state.get("recovery-not-after")?.parse().ok()?;
    (not_after > now.as_second()).then_some(())?;
    Some((
        state.get("recovery-member")?,
        state.get("recovery-request")?,
    ))
}

/// The state ConfigMap's data (empty when it does not exist yet), read once per reconcile.
pub async fn read_state(client: &kube::Client, names: &ClusterNames) -> Result<StateData, Error> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &names.namespace);
    Ok(api
        .get_opt(&names.state_config_map())
        .await?
        .and_then(|c| c.data)
        .unwrap_or_default())
}

/// The field manager of the recovery keys of the state ConfigMap, apart from the one of
/// `cluster-id`, so that either set can be applied or cleared without touching the other.
const RECOVERY_MANAGER: &str = "ballast-operator-recovery";

/// Makes sure the state ConfigMap holds a recovery request for `member` and returns its
/// ID: the one already there if it is still valid for that member, a new one otherwise.
async fn request_recovery(
    client: &kube::Client,
    cluster: &EtcdCluster,
    names: &ClusterNames,
    member: &str,
    now: k8s_openapi::jiff::Timestamp,
) -> Result<String, Error> {
    let state = read_state(client, names).await?;
    if let Some((_, id)) = request_in_force(&state, now).filter(|(m, _)| *m == member) {
        return Ok(id.to_string());
    }
    let id = format!("{}-{}", cluster.uid().unwrap_or_default(), now.as_second());
    let not_after = now.as_second() + RECOVERY_REQUEST_TTL.as_secs() as i64;
    apply_state(
        client,
        cluster,
        names,
        RECOVERY_MANAGER,
        [
            ("recovery-member", member.to_string()),
            ("recovery-request", id.clone()),
            ("recovery-not-after", not_after.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    )
    .await?;
    Ok(id)
}

/// The recovery request a sidecar says it sees (`/bootstrap`'s `recoveryRequest`).
fn seen_request(body: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get("recoveryRequest")?
        .as_str()
        .map(str::to_string)
}

/// Takes the one-shot annotation away once its recovery has started, so that a later
/// loss of quorum is not recovered from without being asked again.
async fn forget_recovery_annotation(
    client: &kube::Client,
    cluster: &EtcdCluster,
    names: &ClusterNames,
) -> Result<(), Error> {
    if !cluster.annotations().contains_key(RECOVER_ANNOTATION) {
        return Ok(());
    }
    let clusters: Api<EtcdCluster> = Api::namespaced(client.clone(), &names.namespace);
    let patch = serde_json::json!({"metadata": {"annotations": {RECOVER_ANNOTATION: null}}});
    clusters
        .patch(
            &names.name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

/// Server-side applies `data` to the state ConfigMap as `manager`: keys this manager set
/// before and `data` leaves out are removed.
async fn apply_state(
    client: &kube::Client,
    cluster: &EtcdCluster,
    names: &ClusterNames,
    manager: &str,
    data: std::collections::BTreeMap<String, String>,
) -> Result<(), Error> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let owner = render::owner_reference(cluster)?;
    let config_map = ConfigMap {
        metadata: render::object_meta(names, names.state_config_map(), &owner),
        data: Some(data),
        ..ConfigMap::default()
    };
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &names.namespace);
    api.patch(
        &names.state_config_map(),
        &kube::api::PatchParams::apply(manager).force(),
        &kube::api::Patch::Apply(&config_map),
    )
    .await?;
    Ok(())
}

/// Keeps the state ConfigMap in step with what was observed: the cluster's ID once it has
/// formed (sidecars then never bootstrap it again), and no recovery request once the
/// cluster has a quorum (a request left behind must never reach a member that starts
/// later).
pub async fn sync_state(
    client: &kube::Client,
    cluster: &EtcdCluster,
    names: &ClusterNames,
    data: &StateData,
    cluster_id: Option<u64>,
    quorum: bool,
) -> Result<(), Error> {
    if let Some(id) = cluster_id.filter(|_| quorum) {
        let id = format!("{id:x}");
        if data.get("cluster-id") != Some(&id) {
            let keys = [("cluster-id".to_string(), id)].into_iter().collect();
            apply_state(client, cluster, names, crate::names::FIELD_MANAGER, keys).await?;
        }
    }
    if quorum && data.contains_key("recovery-request") {
        apply_state(client, cluster, names, RECOVERY_MANAGER, Default::default()).await?;
    }
    if quorum {
        // An annotation left from a recovery that was not needed after all must not set
        // off one at the next loss of quorum.
        forget_recovery_annotation(client, cluster, names).await?;
    }
    Ok(())
}

/// The StatefulSet's update revision, once its controller has seen the latest template.
fn update_revision(sts: &StatefulSet) -> Option<String> {
    let status = sts.status.as_ref()?;
    let seen = status.observed_generation.unwrap_or(0) >= sts.metadata.generation.unwrap_or(0);
    status.update_revision.clone().filter(|_| seen)
}

/// A leader, and a healthy majority of the voters the cluster lists.
pub fn has_quorum(view: &ClusterView) -> bool {
    let voters: Vec<_> = view.members.iter().filter(|m| !m.learner).collect();
    let healthy = voters.iter().filter(|m| m.healthy).count() as i32;
    view.leader.is_some() && !voters.is_empty() && healthy >= render::quorum(voters.len() as i32)
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
        Step::Restart(_, o) => format!("restarting {} onto the new pod template", member(o)),
        Step::ForceNewCluster(_, o) => format!("recovering the quorum from {}", member(o)),
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
