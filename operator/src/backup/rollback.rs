//! Rolling an existing cluster back to a backup (`spec.rollback`), decided step by step from
//! what is observed: the check Job, the member pods, one restore Job per member and whether
//! the cluster answers. Pure, so each situation is a row in the tests.
//!
//! The order keeps every step safe to repeat after a crash: check the backup while the
//! cluster still runs (a bad backup stops nothing); stop every member (no member may serve
//! old and new data side by side); restore every member's volume with one Job each (the
//! Job keeps the old data beside the new and does nothing a second time, see
//! `ballast backup restore-member`); start them all; done once they form the new cluster.
//! Progress needs no memory: a Job that exists for this backup says its step was reached.
//!
//! Changing `spec.rollback.backup` mid-way is allowed and safe: the earlier backup's Jobs
//! are deleted and waited for until gone (no two restores ever write one claim), and members
//! already stopped stay stopped through the new backup's check and restore, since their
//! claims may hold a mix of the earlier backup and the old data.

use crate::crd::{RollbackPhase, RollbackSpec, RollbackStatus};

/// A Job as the rollback sees it (only Jobs made for the requested backup count).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Not there.
    Absent,
    /// Running.
    Running,
    /// Ended well.
    Succeeded,
    /// Ended badly, with the container's message.
    Failed(String),
    /// A Job of an earlier rollback (another backup) still there, being deleted.
    Leaving,
}

/// What is observed, for [`next`].
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    /// `spec.rollback`.
    pub spec: Option<&'a RollbackSpec>,
    /// `status.rollback` as last written.
    pub status: Option<&'a RollbackStatus>,
    /// The check Job of this backup.
    pub check: JobState,
    /// The restore Job of each member, by ordinal.
    pub restores: Vec<JobState>,
    /// Member pods that exist.
    pub pods: i32,
    /// `spec.replicas`.
    pub replicas: i32,
    /// A quorum of members answers.
    pub available: bool,
    /// A member lifecycle operation (scaling, replacement, rolling update) is under way.
    pub busy: bool,
    /// The members were stopped for a rollback that has not ended, this one or one to
    /// another backup ([`stopped_for`]): they stay stopped until a rollback starts them.
    pub stopped: bool,
    /// The backup's volume can be mounted by one node at a time (not ReadWriteMany or
    /// ReadOnlyMany), so the members are restored one after another.
    pub one_at_a_time: bool,
}

/// Whether `status` says the members were stopped for a rollback that has not ended.
pub fn stopped_for(status: Option<&RollbackStatus>) -> bool {
    status.is_some_and(|s| {
        s.stopped_at.is_some() && s.writable_since.is_none() && s.phase != RollbackPhase::Succeeded
    })
}

/// The next thing to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// No rollback asked, or this one is done.
    Nothing,
    /// Wait, e.g. for the running operation to finish.
    Wait(RollbackPhase, String),
    /// Create the check Job.
    Check,
    /// The rollback cannot go on; the members stay as they are (running, or stopped).
    Failed(RollbackPhase, String),
    /// Stop every member (StatefulSet to 0 pods).
    Stop,
    /// Create the restore Jobs of these ordinals.
    Restore(Vec<i32>),
    /// Start every member again.
    Start,
    /// The members answer as the new cluster.
    Done,
}

impl Step {
    /// Whether the lifecycle must keep its hands off the members (they are being stopped,
    /// restored or started on purpose). `stopped`: as [`Facts::stopped`].
    pub fn holds_members(&self, stopped: bool) -> bool {
        (stopped && !matches!(self, Step::Nothing | Step::Done))
            || matches!(
                self,
                Step::Stop
                    | Step::Restore(_)
                    | Step::Start
                    | Step::Failed(RollbackPhase::Restoring, _)
                    | Step::Wait(
                        RollbackPhase::Stopping
                            | RollbackPhase::Restoring
                            | RollbackPhase::Starting,
                        _
                    )
            )
    }

    /// The member pods the StatefulSet should have during this step, if the rollback
    /// decides it. Members stopped for a rollback stay stopped until one starts them.
    pub fn pods(&self, replicas: i32, stopped: bool) -> Option<i32> {
        match self {
            Step::Start | Step::Wait(RollbackPhase::Starting, _) => Some(replicas),
            Step::Nothing | Step::Done => None,
            _ if stopped => Some(0),
            Step::Stop | Step::Restore(_) => Some(0),
            Step::Failed(RollbackPhase::Restoring, _) => Some(0),
            Step::Wait(RollbackPhase::Stopping | RollbackPhase::Restoring, _) => Some(0),
            _ => None,
        }
    }

    /// The phase status reports for this step.
    pub fn phase(&self) -> Option<RollbackPhase> {
        Some(match self {
            Step::Nothing => return None,
            Step::Wait(p, _) | Step::Failed(p, _) => *p,
            Step::Check => RollbackPhase::Checking,
            Step::Stop => RollbackPhase::Stopping,
            Step::Restore(_) => RollbackPhase::Restoring,
            Step::Start => RollbackPhase::Starting,
            Step::Done => RollbackPhase::Succeeded,
        })
    }
}

/// The next step of the rollback `facts.spec` asks for.
pub fn next(facts: &Facts) -> Step {
    let Some(spec) = facts.spec else {
        return Step::Nothing;
    };
    let same = facts.status.filter(|s| s.backup == spec.backup);
    if same.is_some_and(|s| s.phase == RollbackPhase::Succeeded) {
        return Step::Nothing;
    }
    // An earlier rollback's Jobs go first: two restores must never write one claim.
    if facts.check == JobState::Leaving || facts.restores.contains(&JobState::Leaving) {
        let phase = if facts.stopped {
            RollbackPhase::Restoring
        } else {
            RollbackPhase::Checking
        };
        return Step::Wait(
            phase,
            "waiting for the Jobs of the earlier rollback (another backup) to be gone".into(),
        );
    }
    let restores_started = facts.restores.iter().any(|r| *r != JobState::Absent);
    let all_restored =
        !facts.restores.is_empty() && facts.restores.iter().all(|r| *r == JobState::Succeeded);

    // Once every member is restored, only starting them is left.
    if all_restored {
        return if facts.pods < facts.replicas || !facts.available {
            if facts.pods < facts.replicas {
                Step::Start
            } else {
                Step::Wait(
                    RollbackPhase::Starting,
                    "waiting for the restored members to form the new cluster".into(),
                )
            }
        } else {
            Step::Done
        };
    }
    if restores_started {
        if let Some((ordinal, why)) = facts
            .restores
            .iter()
            .enumerate()
            .find_map(|(i, r)| match r {
                JobState::Failed(why) => Some((i, why.clone())),
                _ => None,
            })
        {
            return Step::Failed(
                RollbackPhase::Restoring,
                format!(
                    "restoring member {ordinal} failed: {why}. Every member stays stopped; their \
                     data is unchanged or kept beside the new as data.before-restore. Delete the \
                     failed Job to try again, or set spec.rollback.backup to another backup"
                ),
            );
        }
        if facts.pods > 0 {
            return Step::Wait(
                RollbackPhase::Stopping,
                format!("waiting for {} member pods to stop", facts.pods),
            );
        }
        let missing: Vec<i32> = facts
            .restores
            .iter()
            .enumerate()
            .filter(|(_, r)| **r == JobState::Absent)
            .map(|(i, _)| i as i32)
            .collect();
        let running = facts.restores.contains(&JobState::Running);
        return match missing.first() {
            Some(first) if facts.one_at_a_time && !running => Step::Restore(vec![*first]),
            Some(_) if !facts.one_at_a_time => Step::Restore(missing),
            _ => Step::Wait(
                RollbackPhase::Restoring,
                "restoring every member's data from the backup".into(),
            ),
        };
    }

    match &facts.check {
        JobState::Absent => Step::Check,
        JobState::Running | JobState::Leaving => Step::Wait(
            RollbackPhase::Checking,
            if facts.stopped {
                format!(
                    "checking backup {}; the members stay stopped meanwhile",
                    spec.backup
                )
            } else {
                format!("checking backup {} before stopping anything", spec.backup)
            },
        ),
        JobState::Failed(why) if facts.stopped => Step::Failed(
            RollbackPhase::Restoring,
            format!(
                "backup {} cannot be used: {why}. The members stay stopped: they were stopped \
                 for an earlier rollback and their data may be partly restored. Set \
                 spec.rollback.backup to a good backup to finish",
                spec.backup
            ),
        ),
        JobState::Failed(why) => Step::Failed(
            RollbackPhase::Checking,
            format!(
                "backup {} cannot be used: {why}. Nothing was stopped; the cluster runs as before",
                spec.backup
            ),
        ),
        JobState::Succeeded if facts.busy => Step::Wait(
            RollbackPhase::Checking,
            "waiting for the member operation under way to finish".into(),
        ),
        JobState::Succeeded if facts.pods > 0 => Step::Stop,
        JobState::Succeeded if facts.one_at_a_time => Step::Restore(vec![0]),
        JobState::Succeeded => Step::Restore((0..facts.replicas).collect()),
    }
}

#[cfg(test)]
mod tests;
