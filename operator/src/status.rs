//! The status the operator reports, computed purely from what it observed.
//!
//! Conditions follow Kubernetes conventions so GitOps tools can tell when a change is done:
//! `Available` (a quorum of members is healthy), `Progressing` (pods are being created or
//! rolled), `Degraded` (something needs attention, with a reason), and
//! `ReplicaCountWarning` (an even member count, which the schema allows but which tolerates
//! no more failures than one member less), and with `spec.backup`, `BackupFailing` (the
//! last backup failed, or none succeeded for two periods of the schedule).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub use crate::backup::assess::BACKUP_FAILING;
use crate::crd::{CertificateStatus, EtcdCluster, EtcdClusterStatus, MemberRole, MemberStatus};
use crate::members::ClusterView;
use crate::names::ClusterNames;
use crate::render::quorum;

/// Condition types.
pub const AVAILABLE: &str = "Available";
/// Condition types.
pub const PROGRESSING: &str = "Progressing";
/// Condition types.
pub const DEGRADED: &str = "Degraded";
/// Condition types.
pub const REPLICA_COUNT_WARNING: &str = "ReplicaCountWarning";
/// The cluster serves and the operator has nothing left to do (GitOps tools wait on it).
pub const READY: &str = "Ready";
/// kstatus's "work under way" condition (Flux, `kubectl wait`): mirrors `Progressing`.
pub const RECONCILING: &str = "Reconciling";
/// kstatus's "cannot get there without help" condition: a blocking problem, or no
/// progress for [`PROGRESS_DEADLINE`].
pub const STALLED: &str = "Stalled";
/// How long one step of an operation may go without progress before the cluster is
/// reported `Stalled` (a member joining, promoting, restarting; Deployments use 10 minutes).
pub const PROGRESS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);
/// Reason of `Available=False` and `Degraded=True` when the members are more than one cluster.
pub const CLUSTER_ID_MISMATCH: &str = "ClusterIDMismatch";

/// The StatefulSet's progress, from its status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadState {
    /// The StatefulSet exists.
    pub exists: bool,
    /// Its spec has been seen by the StatefulSet controller (`observedGeneration`).
    pub observed: bool,
    /// Pods that exist.
    pub replicas: i32,
    /// Pods that are ready.
    pub ready_replicas: i32,
    /// Pods on the latest template.
    pub updated_replicas: i32,
    /// `currentRevision == updateRevision`.
    pub revisions_match: bool,
}

/// Something that keeps the operator from doing its job, reported as `Degraded`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// CamelCase reason.
    pub reason: String,
    /// What the user should know or do.
    pub message: String,
    /// The operator will not create or change the members until it is fixed.
    pub blocking: bool,
}

/// Everything the status is computed from.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// StatefulSet progress.
    pub workload: WorkloadState,
    /// The members' answer; `None` when they were not asked (no pod exists yet).
    pub members: Option<Result<ClusterView, String>>,
    /// Certificate expiries.
    pub certificates: Option<CertificateStatus>,
    /// Configuration or PKI problems found during this reconcile.
    pub problems: Vec<Problem>,
    /// The version the rendered pods run.
    pub version: String,
    /// A member lifecycle operation under way: `Progressing` reason and message.
    pub operation: Option<(String, String)>,
    /// The pause annotation holds the operator back.
    pub paused: bool,
    /// Scheduled backups, when `spec.backup` is set.
    pub backup: Option<crate::backup::assess::Assessment>,
    /// The last rollback, when there was one.
    pub rollback: Option<crate::crd::RollbackStatus>,
    /// The last scheduled defragmentation.
    pub defrag: Option<crate::crd::DefragStatus>,
    /// The backup the cluster is created from.
    pub restored_from: Option<crate::crd::RestoreSource>,
}

/// The status for `cluster` given what was observed at `now`. Conditions whose status did
/// not change keep their `lastTransitionTime`.
pub fn compute(
    cluster: &EtcdCluster,
    names: &ClusterNames,
    observed: &Observed,
    now: Timestamp,
) -> EtcdClusterStatus {
    let previous = cluster.status.clone().unwrap_or_default();
    let spec = &cluster.spec;
    let generation = cluster.metadata.generation;
    let w = &observed.workload;

    let view = observed.members.as_ref().and_then(|m| m.as_ref().ok());
    let members: Vec<MemberStatus> = view
        .map(|v| {
            let mut list: Vec<MemberStatus> = v
                .members
                .iter()
                .map(|m| MemberStatus {
                    name: m.name.clone(),
                    id: format!("{:x}", m.id),
                    role: if m.learner {
                        MemberRole::Learner
                    } else if v.leader == Some(m.id) {
                        MemberRole::Leader
                    } else if m.healthy {
                        MemberRole::Follower
                    } else {
                        MemberRole::Unknown
                    },
                    healthy: m.healthy,
                    learner: m.learner,
                })
                .collect();
            list.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
            list
        })
        .unwrap_or_default();
    let leader = view.and_then(|v| {
        v.leader
            .and_then(|id| v.members.iter().find(|m| m.id == id))
            .map(|m| m.name.clone())
    });
    let voters: Vec<&MemberStatus> = members.iter().filter(|m| !m.learner).collect();
    let healthy_voters = voters.iter().filter(|m| m.healthy).count() as i32;
    let voter_count = voters.len() as i32;
    let has_quorum = voter_count > 0 && healthy_voters >= quorum(voter_count) && leader.is_some();

    let split = view.and_then(cluster_id_mismatch);

    // Available
    let blocking = observed.problems.iter().find(|p| p.blocking);
    let (available, a_reason, a_message) = if let Some(p) = blocking.filter(|_| !w.exists) {
        (false, "Blocked".to_string(), p.message.clone())
    } else if let Some(message) = &split {
        (false, CLUSTER_ID_MISMATCH.to_string(), message.clone())
    } else {
        match &observed.members {
            None => (
                false,
                "Bootstrapping".to_string(),
                "no member has started yet".to_string(),
            ),
            Some(Err(e)) => (
                false,
                "MembersUnreachable".to_string(),
                format!("no member answered: {e}"),
            ),
            Some(Ok(_)) if has_quorum => (
                true,
                "QuorumHealthy".to_string(),
                format!(
                    "{healthy_voters} of {voter_count} voting members are healthy; leader is {}",
                    leader.clone().unwrap_or_default()
                ),
            ),
            Some(Ok(_)) => (
                false,
                "QuorumLost".to_string(),
                format!(
                    "{healthy_voters} of {voter_count} voting members are healthy, {} are needed",
                    quorum(voter_count.max(1))
                ),
            ),
        }
    };

    // Progressing
    let rolled_out = w.exists
        && w.observed
        && w.revisions_match
        && w.updated_replicas == spec.replicas
        && w.ready_replicas == spec.replicas
        && w.replicas == spec.replicas;
    let (progressing, p_reason, p_message) = if !w.exists || (w.replicas == 0 && members.is_empty())
    {
        match (blocking, &observed.operation) {
            (Some(p), _) => (false, p.reason.clone(), p.message.clone()),
            // Before the members, e.g. the check of a backup to restore from.
            (None, Some((reason, message))) => (true, reason.clone(), message.clone()),
            (None, None) => (true, "Creating".to_string(), "creating members".to_string()),
        }
    } else if observed.paused {
        (
            false,
            "Paused".to_string(),
            "ballast.dev/paused=true: membership, pods and volumes are left as they are"
                .to_string(),
        )
    } else if let Some((reason, message)) = &observed.operation {
        (true, reason.clone(), message.clone())
    } else if rolled_out {
        (
            false,
            "Reconciled".to_string(),
            format!("{} members run the latest spec", spec.replicas),
        )
    } else if w.replicas != spec.replicas {
        (
            true,
            "Scaling".to_string(),
            format!("{} of {} members exist", w.replicas, spec.replicas),
        )
    } else {
        (
            true,
            "RollingOut".to_string(),
            format!(
                "{} of {} members updated, {} ready",
                w.updated_replicas, spec.replicas, w.ready_replicas
            ),
        )
    };

    // Degraded
    // A member added but not started yet has no name: it goes by its ID.
    let unhealthy: Vec<String> = members
        .iter()
        .filter(|m| !m.healthy)
        .map(|m| {
            if m.name.is_empty() {
                format!("{} (not started)", m.id)
            } else {
                m.name.clone()
            }
        })
        .collect();
    let (degraded, d_reason, d_message) = if let Some(message) = &split {
        (true, CLUSTER_ID_MISMATCH.to_string(), message.clone())
    } else if let Some(p) = observed.problems.first() {
        (true, p.reason.clone(), p.message.clone())
    } else if let Some(Err(e)) = &observed.members {
        if w.exists && w.ready_replicas > 0 {
            (
                true,
                "MembersUnreachable".to_string(),
                format!("the operator cannot reach any member: {e}"),
            )
        } else {
            (false, "AsExpected".to_string(), String::new())
        }
    } else if let Some((reason, message)) = alarms(view) {
        (true, reason, message)
    } else if !unhealthy.is_empty() {
        (
            true,
            "MembersUnhealthy".to_string(),
            format!("unhealthy members: {}", unhealthy.join(", ")),
        )
    } else {
        (false, "AsExpected".to_string(), String::new())
    };

    let even = spec.replicas % 2 == 0;
    let (w_status, w_reason, w_message) = if even {
        (
            true,
            "EvenReplicaCount",
            format!(
                "{} members tolerate {} failure(s), no more than {}; prefer an odd count",
                spec.replicas,
                spec.replicas - quorum(spec.replicas),
                spec.replicas - 1
            ),
        )
    } else {
        (false, "OddReplicaCount", String::new())
    };

    // GitOps: kstatus's pair, and Ready for tools that wait on one condition.
    let reconciling = Condition {
        type_: RECONCILING.to_string(),
        // The clock restarts at every step (the message changes), so the deadline
        // measures a step that makes no progress, not a long operation.
        last_transition_time: previous
            .conditions
            .iter()
            .find(|c| {
                c.type_ == RECONCILING
                    && c.status == if progressing { "True" } else { "False" }
                    && c.message == p_message
            })
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now)),
        ..condition(
            &previous,
            RECONCILING,
            progressing,
            &p_reason,
            &p_message,
            generation,
            now,
        )
    };
    let without_progress = now.as_second() - reconciling.last_transition_time.0.as_second();
    let (stalled, s_reason, s_message) = if let Some(p) = blocking {
        (true, p.reason.clone(), p.message.clone())
    } else if progressing && without_progress >= PROGRESS_DEADLINE.as_secs() as i64 {
        (
            true,
            "ProgressDeadlineExceeded".to_string(),
            format!(
                "no progress for {} minutes: {p_message}",
                without_progress / 60
            ),
        )
    } else {
        (false, "AsExpected".to_string(), String::new())
    };
    let (ready, r_reason, r_message) = if !available {
        (false, a_reason.clone(), a_message.clone())
    } else if progressing {
        (false, p_reason.clone(), p_message.clone())
    } else if degraded {
        (false, d_reason.clone(), d_message.clone())
    } else {
        (true, "Ready".to_string(), a_message.clone())
    };

    let conditions = vec![
        condition(
            &previous, READY, ready, &r_reason, &r_message, generation, now,
        ),
        condition(
            &previous, AVAILABLE, available, &a_reason, &a_message, generation, now,
        ),
        condition(
            &previous,
            PROGRESSING,
            progressing,
            &p_reason,
            &p_message,
            generation,
            now,
        ),
        condition(
            &previous, DEGRADED, degraded, &d_reason, &d_message, generation, now,
        ),
        condition(
            &previous,
            REPLICA_COUNT_WARNING,
            w_status,
            w_reason,
            &w_message,
            generation,
            now,
        ),
        reconciling,
        condition(
            &previous, STALLED, stalled, &s_reason, &s_message, generation, now,
        ),
    ];
    let mut conditions = conditions;
    if let Some(b) = &observed.backup {
        let (failing, reason, message) = &b.failing;
        conditions.push(condition(
            &previous,
            BACKUP_FAILING,
            *failing,
            reason,
            message,
            generation,
            now,
        ));
    }

    EtcdClusterStatus {
        observed_generation: generation,
        conditions,
        replicas: w.replicas,
        ready_replicas: w.ready_replicas,
        selector: Some(names.selector_string()),
        members,
        leader,
        // No single ID to report while the members disagree.
        cluster_id: view
            .filter(|_| split.is_none())
            .and_then(|v| v.cluster_id)
            .map(|id| format!("{id:x}")),
        quorum_lost_since: match &observed.members {
            Some(Ok(_)) if !has_quorum => previous.quorum_lost_since.clone().or(Some(Time(now))),
            _ => None,
        },
        version: if rolled_out {
            Some(observed.version.clone())
        } else {
            previous.version.clone()
        },
        certificates: observed
            .certificates
            .clone()
            .or(previous.certificates.clone()),
        backup: observed.backup.as_ref().map(|b| b.status.clone()),
        rollback: observed
            .rollback
            .clone()
            .or_else(|| previous.rollback.clone()),
        defrag: observed.defrag.clone(),
        restored_from: observed
            .restored_from
            .clone()
            .or_else(|| previous.restored_from.clone()),
    }
}

/// Alarms the members raised, as `Degraded`: a full backend (`NOSPACE`) refuses writes
/// and a `CORRUPT` member must be replaced, and neither is a loss of quorum.
fn alarms(view: Option<&ClusterView>) -> Option<(String, String)> {
    let view = view?;
    let mut raised: Vec<(String, String)> = Vec::new();
    for text in view.members.iter().flat_map(|m| m.alarms.iter()) {
        let Some((id, alarm)) = parse_alarm(text) else {
            continue;
        };
        let member = view
            .members
            .iter()
            .find(|m| m.id == id)
            .map_or_else(|| format!("{id:x}"), |m| m.name.clone());
        if !raised.contains(&(member.clone(), alarm.clone())) {
            raised.push((member, alarm));
        }
    }
    raised.sort();
    let (_, first) = raised.first()?;
    let (reason, advice) = match first.as_str() {
        "NOSPACE" => (
            "AlarmNoSpace",
            "the backend quota is used up and writes are refused: compact, defragment, then `etcdctl alarm disarm`",
        ),
        "CORRUPT" => (
            "AlarmCorrupt",
            "a member's data differs from the others': replace that member",
        ),
        _ => ("Alarm", "see `etcdctl alarm list`"),
    };
    let list: Vec<String> = raised.iter().map(|(m, a)| format!("{a} on {m}")).collect();
    Some((
        reason.to_string(),
        format!("alarm {}; {advice}", list.join(", ")),
    ))
}

/// `memberID:<decimal id> alarm:<NAME>`, as etcd's `Status` lists alarms.
fn parse_alarm(text: &str) -> Option<(u64, String)> {
    let mut id = None;
    let mut alarm = None;
    for part in text.split_whitespace() {
        if let Some(v) = part.strip_prefix("memberID:") {
            id = v.parse().ok();
        } else if let Some(v) = part.strip_prefix("alarm:") {
            alarm = Some(v.to_string());
        }
    }
    Some((id?, alarm?))
}

/// Why the members are not one cluster, when the cluster IDs they answered with differ.
pub fn cluster_id_mismatch(view: &ClusterView) -> Option<String> {
    let mut by_id: std::collections::BTreeMap<u64, Vec<&str>> = Default::default();
    for (name, id) in &view.cluster_ids {
        by_id.entry(*id).or_default().push(name);
    }
    if by_id.len() < 2 {
        return None;
    }
    let groups: Vec<String> = by_id
        .iter()
        .map(|(id, names)| format!("{id:x} ({})", names.join(", ")))
        .collect();
    Some(format!(
        "members answer with different cluster IDs: {}. They are separate clusters behind one \
         client Service, and clients may see either; stop writing through it, keep the cluster \
         that holds your data and recreate the other members from it",
        groups.join(", ")
    ))
}

fn condition(
    previous: &EtcdClusterStatus,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = previous
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time,
    }
}

/// A condition that changed between two statuses, for an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// `Warning` when the new state needs attention.
    pub warning: bool,
    /// Event reason (the condition's reason).
    pub reason: String,
    /// Event note.
    pub note: String,
    /// The condition's type.
    pub condition: String,
}

/// Condition changes worth an Event: becoming (un)available, degraded or healthy again,
/// finishing a rollout, stalling or moving again, and an even member count.
pub fn transitions(old: Option<&EtcdClusterStatus>, new: &EtcdClusterStatus) -> Vec<Transition> {
    let find = |s: Option<&EtcdClusterStatus>, t: &str| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == t).cloned())
    };
    let mut out = Vec::new();
    for c in &new.conditions {
        let before = find(old, &c.type_);
        let changed = match &before {
            Some(b) => b.status != c.status || b.reason != c.reason,
            None => true,
        };
        if !changed {
            continue;
        }
        let is_true = c.status == "True";
        let (warning, interesting) = match c.type_.as_str() {
            AVAILABLE => (!is_true, is_true || before.is_some()),
            PROGRESSING => (false, !is_true && before.is_some()),
            DEGRADED => (is_true, is_true || before.is_some()),
            REPLICA_COUNT_WARNING => (true, is_true),
            STALLED => (is_true, is_true || before.is_some()),
            BACKUP_FAILING => (is_true, is_true || before.is_some()),
            _ => (false, false),
        };
        if interesting {
            out.push(Transition {
                warning,
                condition: c.type_.clone(),
                reason: c.reason.clone(),
                note: if c.message.is_empty() {
                    format!("{} is {}", c.type_, c.status)
                } else {
                    format!("{} is {}: {}", c.type_, c.status, c.message)
                },
            });
        }
    }
    out
}

/// When to look again: soon while something is changing or wrong, rarely when all is
/// well, and never later than the next certificate renewal.
pub fn requeue_after(status: &EtcdClusterStatus, now: Timestamp) -> std::time::Duration {
    let is_true = |t: &str| {
        status
            .conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True")
    };
    let base = if is_true(PROGRESSING) {
        10
    } else if is_true(DEGRADED) || !is_true(AVAILABLE) {
        30
    } else {
        300
    };
    let until_renewal = status
        .certificates
        .as_ref()
        .and_then(|c| c.renewal_time.as_ref())
        .map(|t| (t.0.as_second() - now.as_second()).max(1) as u64)
        .unwrap_or(u64::MAX);
    std::time::Duration::from_secs(base.min(until_renewal))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::members::ObservedMember;

    fn cluster(replicas: i32) -> EtcdCluster {
        let mut c = EtcdCluster::new(
            "main",
            serde_json::from_value(serde_json::json!({ "replicas": replicas })).unwrap(),
        );
        c.metadata.namespace = Some("db".into());
        c.metadata.generation = Some(3);
        c
    }

    fn names() -> ClusterNames {
        ClusterNames::new("main", "db", "cluster.local")
    }

    fn member(id: u64, healthy: bool, learner: bool) -> ObservedMember {
        ObservedMember {
            id,
            name: format!("main-{id}"),
            learner,
            healthy,
            answered: healthy,
            alarms: Vec::new(),
            applied_index: 0,
            peer_urls: Vec::new(),
        }
    }

    /// `quorumLostSince` counts only time during which members answered without a
    /// quorum: it survives reconciles, and resets when the quorum is back or nobody answers.
    #[test]
    fn quorum_lost_since_counts_only_observed_loss() {
        let view = |healthy: &[bool]| ClusterView {
            cluster_id: Some(1),
            leader: None,
            members: healthy
                .iter()
                .enumerate()
                .map(|(i, h)| member(i as u64 + 1, *h, false))
                .collect(),
            cluster_ids: vec![("main-1".into(), 1)],
        };
        let at = |secs| Timestamp::from_second(secs).unwrap();
        let lost = Observed {
            workload: running(3),
            members: Some(Ok(view(&[true, false, false]))),
            ..Observed::default()
        };
        let mut c = cluster(3);
        let first = compute(&c, &names(), &lost, at(100));
        assert_eq!(first.quorum_lost_since, Some(Time(at(100))));
        c.status = Some(first);
        let later = compute(&c, &names(), &lost, at(700));
        assert_eq!(later.quorum_lost_since, Some(Time(at(100))), "kept");
        c.status = Some(later);
        let unreachable = Observed {
            workload: running(3),
            members: Some(Err("no answer".into())),
            ..Observed::default()
        };
        assert_eq!(
            compute(&c, &names(), &unreachable, at(800)).quorum_lost_since,
            None
        );
        let mut healthy = view(&[true, true, true]);
        healthy.leader = Some(1);
        let back = Observed {
            workload: running(3),
            members: Some(Ok(healthy)),
            ..Observed::default()
        };
        assert_eq!(
            compute(&c, &names(), &back, at(800)).quorum_lost_since,
            None
        );
    }

    /// A learner added but not started has no name yet; status names it by its ID.
    #[test]
    fn an_unstarted_member_is_named_by_its_id() {
        let mut learner = member(4, false, true);
        learner.name = String::new();
        let mut members: Vec<ObservedMember> = (1..=3).map(|i| member(i, true, false)).collect();
        members.push(learner);
        let observed = Observed {
            workload: running(3),
            members: Some(Ok(ClusterView {
                cluster_id: Some(1),
                leader: Some(1),
                members,
                cluster_ids: vec![("main-1".into(), 1)],
            })),
            ..Observed::default()
        };
        let s = compute(&cluster(3), &names(), &observed, Timestamp::UNIX_EPOCH);
        let degraded = s.conditions.iter().find(|c| c.type_ == DEGRADED).unwrap();
        assert_eq!(degraded.message, "unhealthy members: 4 (not started)");
    }

    /// A full backend is an alarm, reported as itself; the cluster keeps its quorum.
    #[test]
    fn alarms_are_reported_as_themselves_not_as_lost_quorum() {
        let mut view = ClusterView {
            cluster_id: Some(1),
            leader: Some(1),
            members: (1..=3).map(|i| member(i, true, false)).collect(),
            cluster_ids: (1..=3).map(|i| (format!("main-{i}"), 1)).collect(),
        };
        for m in &mut view.members {
            // Every member lists the cluster's alarms.
            m.alarms = vec!["memberID:2 alarm:NOSPACE".to_string()];
        }
        let observed = Observed {
            workload: running(3),
            members: Some(Ok(view)),
            ..Observed::default()
        };
        let s = compute(&cluster(3), &names(), &observed, Timestamp::UNIX_EPOCH);
        let get = |t: &str| s.conditions.iter().find(|c| c.type_ == t).unwrap();
        assert_eq!(get(AVAILABLE).status, "True");
        assert_eq!(get(DEGRADED).reason, "AlarmNoSpace");
        assert!(
            get(DEGRADED)
                .message
                .starts_with("alarm NOSPACE on main-2; "),
            "{}",
            get(DEGRADED).message
        );
    }

    fn running(replicas: i32) -> WorkloadState {
        WorkloadState {
            exists: true,
            observed: true,
            replicas,
            ready_replicas: replicas,
            updated_replicas: replicas,
            revisions_match: true,
        }
    }

    fn get<'a>(s: &'a EtcdClusterStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn learners_do_not_count_toward_quorum() {
        let now = Timestamp::from_second(1_000).unwrap();
        let view = ClusterView {
            cluster_id: Some(1),
            leader: Some(0),
            members: vec![
                member(0, true, false),
                member(1, false, false),
                member(2, false, false),
                member(3, true, true),
            ],
            cluster_ids: vec![("main-0".into(), 1)],
        };
        let observed = Observed {
            workload: running(3),
            members: Some(Ok(view)),
            version: "0.1.0".into(),
            ..Observed::default()
        };
        let s = compute(&cluster(3), &names(), &observed, now);
        assert_eq!(get(&s, AVAILABLE).reason, "QuorumLost");
        assert_eq!(get(&s, AVAILABLE).status, "False");
        assert_eq!(s.members[3].role, MemberRole::Learner);
        assert_eq!(s.members[0].role, MemberRole::Leader);
        assert_eq!(s.members[1].role, MemberRole::Unknown);
        assert_eq!(s.observed_generation, Some(3));
    }

    /// Three healthy members whose `Status` answers carry `ids` as cluster IDs.
    fn answering(ids: [u64; 3]) -> Observed {
        Observed {
            workload: running(3),
            members: Some(Ok(ClusterView {
                cluster_id: Some(ids[0]),
                leader: Some(0),
                members: (0..3).map(|i| member(i, true, false)).collect(),
                cluster_ids: (0..3).map(|i| (format!("main-{i}"), ids[i])).collect(),
            })),
            version: "0.1.0".into(),
            ..Observed::default()
        }
    }

    #[test]
    fn members_of_different_clusters_are_never_healthy() {
        let now = Timestamp::from_second(1_000).unwrap();
        // (cluster IDs answered, Available, its reason, Degraded, its reason)
        let table = [
            ([7, 7, 7], "True", "QuorumHealthy", "False", "AsExpected"),
            (
                [7, 7, 9],
                "False",
                CLUSTER_ID_MISMATCH,
                "True",
                CLUSTER_ID_MISMATCH,
            ),
            (
                [7, 9, 0xa],
                "False",
                CLUSTER_ID_MISMATCH,
                "True",
                CLUSTER_ID_MISMATCH,
            ),
        ];
        for (ids, available, a_reason, degraded, d_reason) in table {
            let s = compute(&cluster(3), &names(), &answering(ids), now);
            assert_eq!(get(&s, AVAILABLE).status, available, "{ids:?}");
            assert_eq!(get(&s, AVAILABLE).reason, a_reason, "{ids:?}");
            assert_eq!(get(&s, DEGRADED).status, degraded, "{ids:?}");
            assert_eq!(get(&s, DEGRADED).reason, d_reason, "{ids:?}");
            assert_eq!(s.cluster_id.is_some(), available == "True", "{ids:?}");
        }
        let s = compute(&cluster(3), &names(), &answering([7, 7, 9]), now);
        assert!(
            get(&s, DEGRADED).message.starts_with(
                "members answer with different cluster IDs: 7 (main-0, main-1), 9 (main-2)."
            ),
            "{}",
            get(&s, DEGRADED).message
        );
    }

    #[test]
    fn transition_times_survive_unchanged_conditions() {
        let t1 = Timestamp::from_second(1_000).unwrap();
        let t2 = Timestamp::from_second(2_000).unwrap();
        let observed = Observed {
            workload: running(1),
            members: Some(Ok(ClusterView {
                cluster_id: Some(1),
                leader: Some(0),
                members: vec![member(0, true, false)],
                cluster_ids: vec![("main-0".into(), 1)],
            })),
            version: "0.1.0".into(),
            ..Observed::default()
        };
        let mut c = cluster(1);
        let first = compute(&c, &names(), &observed, t1);
        c.status = Some(first.clone());
        let second = compute(&c, &names(), &observed, t2);
        assert_eq!(first, second);
        assert!(transitions(Some(&first), &second).is_empty());
        assert_eq!(get(&second, AVAILABLE).last_transition_time.0, t1);
    }

    #[test]
    fn requeue_never_sleeps_past_renewal() {
        let now = Timestamp::from_second(1_000).unwrap();
        let mut s = EtcdClusterStatus {
            conditions: vec![
                Condition {
                    type_: AVAILABLE.into(),
                    status: "True".into(),
                    reason: "QuorumHealthy".into(),
                    message: String::new(),
                    observed_generation: None,
                    last_transition_time: Time(now),
                },
                Condition {
                    type_: PROGRESSING.into(),
                    status: "False".into(),
                    reason: "Reconciled".into(),
                    message: String::new(),
                    observed_generation: None,
                    last_transition_time: Time(now),
                },
            ],
            ..EtcdClusterStatus::default()
        };
        assert_eq!(requeue_after(&s, now).as_secs(), 300);
        s.certificates = Some(CertificateStatus {
            renewal_time: Some(Time(Timestamp::from_second(1_060).unwrap())),
            ..CertificateStatus::default()
        });
        assert_eq!(requeue_after(&s, now).as_secs(), 60);
        s.conditions[1].status = "True".into();
        assert_eq!(requeue_after(&s, now).as_secs(), 10);
    }

    /// GitOps conditions on a table of situations: `Ready` only when serving with nothing
    /// under way or wrong, `Reconciling` with `Progressing`, `Stalled` on a blocking
    /// problem or a step without progress past the deadline.
    #[test]
    fn ready_reconciling_and_stalled_follow_the_work() {
        let healthy = || ClusterView {
            cluster_id: Some(1),
            leader: Some(1),
            members: (1..=3).map(|i| member(i, true, false)).collect(),
            cluster_ids: (1..=3).map(|i| (format!("main-{i}"), 1)).collect(),
        };
        let at = |secs| Timestamp::from_second(secs).unwrap();
        let settled = Observed {
            workload: running(3),
            members: Some(Ok(healthy())),
            ..Observed::default()
        };
        let s = compute(&cluster(3), &names(), &settled, at(0));
        let state = |s: &EtcdClusterStatus, t| {
            let c = get(s, t);
            (c.status.clone(), c.reason.clone())
        };
        assert_eq!(state(&s, READY), ("True".into(), "Ready".into()));
        assert_eq!(state(&s, RECONCILING).0, "False");
        assert_eq!(state(&s, STALLED).0, "False");
        assert!(s
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(3)));

        // A step under way: not Ready, Reconciling; the deadline counts from the step.
        let step = |message: &str| Observed {
            operation: Some(("ScalingUp".into(), message.into())),
            ..settled.clone()
        };
        let mut c = cluster(3);
        let started = compute(&c, &names(), &step("adding main-3 as a learner"), at(0));
        assert_eq!(state(&started, READY), ("False".into(), "ScalingUp".into()));
        assert_eq!(
            state(&started, RECONCILING),
            ("True".into(), "ScalingUp".into())
        );
        c.status = Some(started);
        let deadline = PROGRESS_DEADLINE.as_secs() as i64;
        let next_step = compute(&c, &names(), &step("promoting main-3"), at(deadline - 1));
        c.status = Some(next_step.clone());
        let still = compute(
            &c,
            &names(),
            &step("promoting main-3"),
            at(2 * deadline - 2),
        );
        assert_eq!(
            state(&still, STALLED).0,
            "False",
            "the new step has its own clock"
        );
        let stuck = compute(&c, &names(), &step("promoting main-3"), at(2 * deadline));
        assert_eq!(
            state(&stuck, STALLED),
            ("True".into(), "ProgressDeadlineExceeded".into())
        );
        assert!(get(&stuck, STALLED)
            .message
            .ends_with("minutes: promoting main-3"));
        assert!(transitions(Some(&next_step), &stuck)
            .iter()
            .any(|t| t.condition == STALLED && t.warning));

        // A blocking problem stalls at once, with its own reason.
        let blocked = Observed {
            problems: vec![Problem {
                reason: "CertificateAuthorityInvalid".into(),
                message: "bad CA".into(),
                blocking: true,
            }],
            ..settled.clone()
        };
        let s = compute(&cluster(3), &names(), &blocked, at(0));
        assert_eq!(
            state(&s, STALLED),
            ("True".into(), "CertificateAuthorityInvalid".into())
        );
        assert_eq!(state(&s, READY).0, "False");

        // A member down: serving, nothing under way, but not Ready.
        let mut one_down = healthy();
        one_down.members[2].healthy = false;
        let degraded = Observed {
            members: Some(Ok(one_down)),
            ..settled
        };
        let s = compute(&cluster(3), &names(), &degraded, at(0));
        assert_eq!(
            state(&s, READY),
            ("False".into(), "MembersUnhealthy".into())
        );
        assert_eq!(state(&s, STALLED).0, "False");
    }
}
