//! Member lifecycle: what to do next to bring the membership to `spec.replicas`, decided
//! purely from what was observed (the cluster's member list, the pods, the claims, and
//! what each pod's sidecar says about its start). Nothing is remembered between reconciles:
//! an operator that died between two steps finds the same facts and takes the same next
//! step, so every operation resumes where it stopped.
//!
//! One membership change at a time, each kept safe on its own:
//! - **Scale up**: the next member is added as a learner *before* its pod exists, so the
//!   pod's sidecar finds itself listed and joins (`initial-cluster-state: existing`); the
//!   learner is promoted once it has started and answers, then the next one is added.
//!   A learner does not vote, so adding one never changes the quorum.
//! - **Scale down**: the highest ordinal goes first; if it leads, leadership moves away
//!   first; it is removed from the cluster before its pod goes, and its claim is deleted
//!   after, so a later scale-up never starts a member on stale data.
//! - **Replacement**: a member whose sidecar reports that its data is gone (the cluster
//!   knows it as started, the volume is empty) is removed, and the scale-up path adds it
//!   back as a learner under the same name.
//!
//! - **Rolling update** (image, flags, resources: anything in the pod template): with the
//!   membership settled and every member healthy and ready, one pod at a time is
//!   restarted onto the new template through the eviction API (so the
//!   PodDisruptionBudget has its say), followers first and the leader last, after
//!   leadership has moved to a member already updated. The StatefulSet uses `OnDelete`,
//!   so the operator, not the StatefulSet controller, chooses the order.
//!
//! Every vote-changing step (promote, remove) first checks that the voters left healthy
//! after it still make a quorum of the voters there will be.

use crate::membership::RECOVER_ANNOTATION;
use crate::render::quorum;

/// One member as the cluster lists it, with the ordinal of the pod its peer URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Raft member ID.
    pub id: u64,
    /// Empty until the member has started.
    pub name: String,
    /// `None` when the peer URL is not one of this cluster's pods (added by hand).
    pub ordinal: Option<i32>,
    /// Non-voting.
    pub learner: bool,
    /// Answered `Status` and knows a leader.
    pub healthy: bool,
    /// Answered `Status` at all.
    pub answered: bool,
    /// Its applied Raft index, when it answered.
    pub applied_index: u64,
}

impl Member {
    fn started(&self) -> bool {
        !self.name.is_empty()
    }
}

/// What a pod's sidecar reports about the member's start (`/bootstrap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodStart {
    /// The sidecar let the server start.
    Started,
    /// The member's data dir is empty but the cluster knows it as started.
    RefusedDataLost,
    /// The cluster does not list the member (or no peer answers).
    RefusedNotMember,
    /// The server exits because its data dir is corrupt (from the container's last
    /// termination message).
    DataCorrupt,
    /// Not asked, no answer yet, or still preparing.
    Unknown,
}

/// A pod of the StatefulSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    /// From the pod's name.
    pub ordinal: i32,
    /// What its sidecar says.
    pub start: PodStart,
    /// Runs the StatefulSet's current template (its update revision).
    pub current: bool,
    /// The kubelet reports it ready.
    pub ready: bool,
}

/// Everything a decision is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// `spec.replicas`.
    pub desired: i32,
    /// The pause annotation is set: observe, never act.
    pub paused: bool,
    /// `spec.replaceLostMembers`.
    pub replace_lost: bool,
    /// The cluster's member list.
    pub members: Vec<Member>,
    /// The leader's ID, if any member knows one.
    pub leader: Option<u64>,
    /// `spec.replicas` of the StatefulSet as it is.
    pub pods_wanted: i32,
    /// Pods that exist.
    pub pods: Vec<Pod>,
    /// Ordinals that have a PersistentVolumeClaim.
    pub claims: Vec<i32>,
    /// How long the voters have been without a healthy quorum, if they are.
    pub quorum_lost_for: Option<std::time::Duration>,
    /// `spec.recovery`: recover by itself once quorum has been lost this long.
    pub recover_after: Option<std::time::Duration>,
    /// The `ballast.dev/recover-quorum=true` annotation asks for a recovery now.
    pub recovery_requested: bool,
    /// The ordinal a recovery request still in force names: a recovery under way keeps its
    /// member, even while that member restarts and does not answer.
    pub recovering: Option<i32>,
    /// The EtcdCluster's name, for messages that give commands.
    pub cluster: String,
}

/// Which operation a step belongs to (the `Progressing` reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Adding members up to `spec.replicas`.
    ScalingUp,
    /// Removing members down to `spec.replicas`.
    ScalingDown,
    /// Removing a member whose data is lost and adding it back.
    ReplacingMember,
    /// Restarting members onto a new pod template.
    RollingUpdate,
    /// Recovering from a lost quorum.
    RecoveringQuorum,
}

impl Operation {
    /// The condition reason.
    pub fn reason(self) -> &'static str {
        match self {
            Operation::ScalingUp => "ScalingUp",
            Operation::ScalingDown => "ScalingDown",
            Operation::ReplacingMember => "ReplacingMember",
            Operation::RollingUpdate => "RollingUpdate",
            Operation::RecoveringQuorum => "RecoveringQuorum",
        }
    }
}

/// The next thing to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Membership matches the spec.
    Steady,
    /// Nothing to do but wait for the cluster or a pod (the message says for what).
    Wait(Operation, String),
    /// Unsafe to go on; a person may have to act (reported as `Degraded`).
    Blocked(&'static str, String),
    /// The pause annotation holds the operator back.
    Paused,
    /// Make the StatefulSet run pods `0..n`.
    SetPods(Operation, i32),
    /// `MemberAdd` of the pod with this ordinal as a learner.
    AddLearner(Operation, i32),
    /// `MemberPromote`.
    Promote(Operation, u64, i32),
    /// `MoveLeader` to this member (away from one about to be removed).
    MoveLeader(Operation, u64),
    /// `MemberRemove`.
    Remove(Operation, u64, i32),
    /// Delete the claim (and the pod, if one runs on it) of this ordinal.
    DeleteVolume(Operation, i32),
    /// Evict the pod of this ordinal so that it comes back on the new template.
    Restart(Operation, i32),
    /// Restart the member of this ordinal with `--force-new-cluster`: it becomes the only
    /// member, with what it has applied, and the others are added back as learners.
    ForceNewCluster(Operation, i32),
}

impl Step {
    /// The ordinal of the member the step acts on, if it acts on one.
    pub fn ordinal(&self) -> Option<i32> {
        match self {
            Step::AddLearner(_, o)
            | Step::Promote(_, _, o)
            | Step::Remove(_, _, o)
            | Step::DeleteVolume(_, o)
            | Step::Restart(_, o)
            | Step::ForceNewCluster(_, o) => Some(*o),
            _ => None,
        }
    }

    /// The operation under way, for status.
    pub fn operation(&self) -> Option<Operation> {
        match self {
            Step::Wait(op, _)
            | Step::SetPods(op, _)
            | Step::AddLearner(op, _)
            | Step::Promote(op, _, _)
            | Step::MoveLeader(op, _)
            | Step::Remove(op, _, _)
            | Step::DeleteVolume(op, _)
            | Step::Restart(op, _)
            | Step::ForceNewCluster(op, _) => Some(*op),
            Step::Steady | Step::Blocked(..) | Step::Paused => None,
        }
    }
}

/// The next step for the cluster described by `facts`.
pub fn next_step(facts: &Facts) -> Step {
    if facts.paused {
        return Step::Paused;
    }
    if let Some(m) = facts.members.iter().find(|m| m.ordinal.is_none()) {
        return Step::Blocked(
            "ForeignMember",
            format!(
                "member {:x} ({}) has a peer URL that is not one of this cluster's pods; the \
                 operator changes no membership until it is removed (`etcdctl member remove \
                 {:x}`)",
                m.id,
                if m.started() { &m.name } else { "unstarted" },
                m.id
            ),
        );
    }
    if facts.members.is_empty() {
        return Step::Blocked(
            "NoMembers",
            "the cluster answered with an empty member list".to_string(),
        );
    }
    let ordinal = |m: &Member| m.ordinal.unwrap_or_default();
    let voters: Vec<&Member> = facts.members.iter().filter(|m| !m.learner).collect();
    let healthy_voters = voters.iter().filter(|m| m.healthy).count() as i32;
    let learners: Vec<&Member> = facts.members.iter().filter(|m| m.learner).collect();
    let pods_needed = facts
        .members
        .iter()
        .map(|m| ordinal(m) + 1)
        .max()
        .unwrap_or(0);
    let in_use = |o: i32| facts.members.iter().any(|m| ordinal(m) == o);
    let top_voter = voters.iter().map(|m| ordinal(m)).max().unwrap_or(0);
    let gap = (0..top_voter).any(|o| !voters.iter().any(|v| ordinal(v) == o));
    let operation = if facts.members.len() as i32 > facts.desired {
        Operation::ScalingDown
    } else if lost(facts).is_some() || gap {
        Operation::ReplacingMember
    } else {
        Operation::ScalingUp
    };

    // A pod for every member, including one just added as a learner.
    if facts.pods_wanted < pods_needed {
        return Step::SetPods(operation, pods_needed);
    }

    // Without a quorum nothing can change membership; recovering is losing writes, so it
    // happens only when asked for.
    let quorum_ok = facts.leader.is_some() && healthy_voters >= quorum(voters.len() as i32);
    if !quorum_ok {
        return quorum_lost(facts, &voters);
    }

    // Finish a learner before anything else.
    if let Some(learner) = learners.first() {
        let o = ordinal(learner);
        let data_gone = facts.pods.iter().any(|p| {
            p.ordinal == o && matches!(p.start, PodStart::RefusedDataLost | PodStart::DataCorrupt)
        });
        if data_gone {
            // It has no vote: removing it is always safe, and the scale-up path adds it again.
            return Step::Remove(operation, learner.id, o);
        }
        if o >= facts.desired {
            // Scaled down while it was joining: it has no vote, removing it is always safe.
            return Step::Remove(Operation::ScalingDown, learner.id, o);
        }
        if !learner.started() || !learner.healthy {
            return Step::Wait(
                operation,
                format!(
                    "member {} was added as a learner; waiting for it to start and catch up",
                    member_name(learner, o)
                ),
            );
        }
        // With a healthy quorum of n voters, n + 1 voters still have one: promoting is safe.
        return Step::Promote(operation, learner.id, o);
    }

    // A member that lost its data gets replaced, one at a time, while the others keep quorum.
    if let Some(m) = lost(facts) {
        let o = ordinal(m);
        if !facts.replace_lost {
            return Step::Blocked(
                "MemberDataLost",
                format!(
                    "member {} lost its data and replaceLostMembers is false: replace it by \
                     hand (member remove, then member add --learner)",
                    m.name
                ),
            );
        }
        // It is unhealthy: with a healthy quorum now, the rest keep one without it.
        return Step::Remove(Operation::ReplacingMember, m.id, o);
    }

    // The pod of a removed member goes right after it (not while a member is missing
    // below: that pod's place is about to be filled again).
    if facts.pods_wanted > pods_needed && facts.members.len() as i32 >= facts.desired {
        return Step::SetPods(Operation::ScalingDown, pods_needed);
    }

    // Scale down: highest ordinal first, never the last healthy quorum.
    if facts.members.len() as i32 > facts.desired {
        let Some(victim) = facts.members.iter().max_by_key(|m| ordinal(m)) else {
            return Step::Steady;
        };
        let left = voters.len() as i32 - 1;
        let healthy_left = voters
            .iter()
            .filter(|v| v.healthy && v.id != victim.id)
            .count() as i32;
        if healthy_left < quorum(left) {
            return Step::Blocked(
                "ScaleDownUnsafe",
                format!(
                    "removing {} would leave {healthy_left} healthy of {left} voters, short of \
                     a quorum; waiting for the unhealthy members",
                    member_name(victim, ordinal(victim))
                ),
            );
        }
        if facts.leader == Some(victim.id) {
            let successor = voters
                .iter()
                .filter(|v| v.healthy && v.id != victim.id)
                .min_by_key(|v| ordinal(v));
            return match successor {
                Some(s) => Step::MoveLeader(Operation::ScalingDown, s.id),
                None => Step::Blocked(
                    "ScaleDownUnsafe",
                    "no healthy member to take over leadership".to_string(),
                ),
            };
        }
        return Step::Remove(Operation::ScalingDown, victim.id, ordinal(victim));
    }

    // Claims beyond the members: the pod of a removed member is gone, its claim goes too.
    let pod = |o: i32| facts.pods.iter().find(|p| p.ordinal == o);
    if let Some(o) = facts
        .claims
        .iter()
        .copied()
        .find(|o| *o >= pods_needed.max(facts.desired) && pod(*o).is_none())
    {
        return Step::DeleteVolume(Operation::ScalingDown, o);
    }

    // Scale up (or fill the place of a removed member): the lowest free ordinal. Members
    // above `desired` with a free place below (a scale-down during a replacement) get
    // that place filled first; the scale-down then removes the highest.
    let misplaced = pods_needed > facts.desired && (0..facts.desired).any(|o| !in_use(o));
    if (facts.members.len() as i32) < facts.desired || misplaced {
        let Some(next) = (0..facts.desired).find(|o| !in_use(*o)) else {
            return Step::Steady;
        };
        let fresh = match pod(next).map(|p| p.start) {
            // No pod: a claim left from an earlier member would give it stale data.
            None => !facts.claims.contains(&next),
            // The sidecar found an empty data dir: the volume is fine to join with.
            Some(PodStart::RefusedDataLost | PodStart::RefusedNotMember) => true,
            // It runs a server from data of a member the cluster no longer has.
            Some(PodStart::Started | PodStart::DataCorrupt) => false,
            Some(PodStart::Unknown) => {
                return Step::Wait(
                    operation,
                    format!("waiting for the sidecar of the pod for ordinal {next} to answer"),
                )
            }
        };
        if !fresh {
            return Step::DeleteVolume(operation, next);
        }
        return Step::AddLearner(operation, next);
    }
    rolling_update(facts, &voters)
}

/// With the membership settled: the next pod to restart onto the new template.
fn rolling_update(facts: &Facts, voters: &[&Member]) -> Step {
    let op = Operation::RollingUpdate;
    let stale: Vec<&Pod> = facts.pods.iter().filter(|p| !p.current).collect();
    if stale.is_empty() {
        return Step::Steady;
    }
    // One at a time: the previous one must be back, healthy and ready, and so the rest.
    let unhealthy: Vec<String> = voters
        .iter()
        .filter(|v| !v.healthy)
        .map(|v| v.name.clone())
        .chain(
            facts
                .pods
                .iter()
                .filter(|p| !p.ready)
                .map(|p| format!("pod {}", p.ordinal)),
        )
        .collect();
    if !unhealthy.is_empty() {
        return Step::Wait(
            op,
            format!(
                "{} of {} pods to update; waiting for {} before the next restart",
                stale.len(),
                facts.pods.len(),
                unhealthy.join(", ")
            ),
        );
    }
    let leader = voters
        .iter()
        .find(|v| Some(v.id) == facts.leader)
        .and_then(|v| v.ordinal);
    if let Some(p) = stale
        .iter()
        .filter(|p| Some(p.ordinal) != leader)
        .max_by_key(|p| p.ordinal)
    {
        return Step::Restart(op, p.ordinal);
    }
    // Only the leader is left: hand leadership to an updated member first.
    let successor = voters
        .iter()
        .filter(|v| Some(v.id) != facts.leader)
        .filter(|v| {
            facts
                .pods
                .iter()
                .any(|p| Some(p.ordinal) == v.ordinal && p.current)
        })
        .min_by_key(|v| v.ordinal);
    match (successor, leader) {
        (Some(s), _) => Step::MoveLeader(op, s.id),
        // A single member has nobody to hand over to.
        (None, Some(o)) => Step::Restart(op, o),
        (None, None) => Step::Wait(op, "waiting for a leader".to_string()),
    }
}

/// The step for voters without a healthy quorum: recover from the member that applied
/// the most when allowed, otherwise say exactly what is wrong and what a person can do.
fn quorum_lost(facts: &Facts, voters: &[&Member]) -> Step {
    let gone: Vec<String> = voters
        .iter()
        .filter(|v| !v.answered)
        .map(|v| member_name(v, v.ordinal.unwrap_or_default()))
        .collect();
    let survivor = voters
        .iter()
        .filter(|v| v.answered)
        .max_by_key(|v| (v.applied_index, std::cmp::Reverse(v.ordinal)));
    if let Some(o) = facts.recovering {
        return Step::ForceNewCluster(Operation::RecoveringQuorum, o);
    }
    let lost_for = facts.quorum_lost_for.unwrap_or_default();
    let allowed = facts.recovery_requested || facts.recover_after.is_some_and(|a| lost_for >= a);
    if let (true, Some(s)) = (allowed, survivor) {
        return Step::ForceNewCluster(Operation::RecoveringQuorum, s.ordinal.unwrap_or_default());
    }
    let healthy = voters.iter().filter(|v| v.healthy).count();
    let mut message = format!(
        "{healthy} of {} voting members are healthy, {} are needed, for {}m; not answering: {}",
        voters.len(),
        quorum(voters.len() as i32),
        lost_for.as_secs() / 60,
        if gone.is_empty() {
            "none".to_string()
        } else {
            gone.join(", ")
        }
    );
    match survivor {
        Some(s) => message.push_str(&format!(
            ". If the missing members cannot come back, recover from {} (applied index {}), \
             losing what only the others had: `kubectl annotate etcdcluster/{} \
             {RECOVER_ANNOTATION}=true`, or set spec.recovery.quorumLoss: Automatic",
            s.name, s.applied_index, facts.cluster
        )),
        None => message.push_str(
            ". No member answers: bring a member back (its pod and volume), or restore from a \
             snapshot",
        ),
    }
    Step::Blocked("QuorumLost", message)
}

/// A voter that has started before, whose data dir is empty (its sidecar says so) or
/// corrupt (its server says so as it exits).
fn lost(facts: &Facts) -> Option<&Member> {
    facts.members.iter().find(|m| {
        !m.learner
            && !m.healthy
            && facts.pods.iter().any(|p| {
                Some(p.ordinal) == m.ordinal
                    && matches!(p.start, PodStart::RefusedDataLost | PodStart::DataCorrupt)
            })
    })
}

fn member_name(m: &Member, ordinal: i32) -> String {
    if m.started() {
        m.name.clone()
    } else {
        format!("{:x} (ordinal {ordinal})", m.id)
    }
}

#[cfg(test)]
mod tests;
