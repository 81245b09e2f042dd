//! What the backup Jobs say, as status: the last success, the last failure, whether backups
//! are failing or stale, and which outcomes are new (for Events). Pure: the controller
//! gathers [`JobOutcome`]s from the Jobs and their pods.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

use super::job::CONTAINER;
use crate::crd::{BackupRecord, BackupStatus, DefragStatus};

/// Condition type: `True` while the last backup failed or the last success is too old.
pub const BACKUP_FAILING: &str = "BackupFailing";

/// How one Job ended, or that it has not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobOutcome {
    /// The Job's name.
    pub job: String,
    /// `None` while it runs.
    pub succeeded: Option<bool>,
    /// When it ended.
    pub finished: Option<Timestamp>,
    /// The backup container's termination message: `ballast backup`'s JSON result, or
    /// its error.
    pub message: Option<String>,
}

/// What `ballast backup save` prints on success (the fields the status shows).
#[derive(Deserialize, Debug, Default)]
struct Saved {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    revision: Option<i64>,
    #[serde(default)]
    size: Option<i64>,
}

/// The outcome of `job`, from its conditions and its pods' termination messages.
pub fn outcome(job: &Job, pods: &[Pod]) -> JobOutcome {
    let name = job.metadata.name.clone().unwrap_or_default();
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let ended = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
            .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
    };
    let (succeeded, finished) = match (ended("Complete"), ended("Failed")) {
        (Some(at), _) => (Some(true), at),
        (None, Some(at)) => (Some(false), at),
        (None, None) => (None, None),
    };
    let finished = finished.or_else(|| {
        job.status
            .as_ref()
            .and_then(|s| s.completion_time.as_ref())
            .map(|t| t.0)
    });
    // The newest pod of the Job that ended says why.
    let message = pods
        .iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("job-name"))
                .is_some_and(|j| *j == name)
        })
        .filter_map(|p| {
            let status = p.status.as_ref()?;
            let container = status
                .container_statuses
                .as_ref()?
                .iter()
                .find(|c| c.name == CONTAINER)?;
            let terminated = container.state.as_ref()?.terminated.as_ref()?;
            Some((
                terminated.finished_at.as_ref().map(|t| t.0),
                terminated.message.clone()?,
            ))
        })
        .max_by_key(|(at, _)| *at)
        .map(|(_, m)| m.trim().to_string());
    // No pod said why (deadline, eviction, pod gone): the Job's own condition does.
    let message = message.or_else(|| {
        conditions
            .iter()
            .find(|c| c.type_ == "Failed" && c.status == "True")
            .map(|c| {
                format!(
                    "{}: {}",
                    c.reason.as_deref().unwrap_or("Failed"),
                    c.message.as_deref().unwrap_or("the Job failed")
                )
            })
    });
    JobOutcome {
        job: name,
        succeeded,
        finished,
        message,
    }
}

/// Status, condition and news of the scheduled backups.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    /// `status.backup`.
    pub status: BackupStatus,
    /// `BackupFailing`: (status, reason, message).
    pub failing: (bool, String, String),
    /// New outcomes: (warning, reason, note).
    pub news: Vec<(bool, &'static str, String)>,
}

/// The record of a finished Job.
pub fn record(o: &JobOutcome, location: &str) -> BackupRecord {
    let time = o.finished.map(Time);
    if o.succeeded == Some(true) {
        let saved: Saved = o
            .message
            .as_deref()
            .and_then(|m| m.lines().rev().find_map(|l| serde_json::from_str(l).ok()))
            .unwrap_or_default();
        let location = saved.location.or_else(|| {
            saved
                .name
                .as_ref()
                .map(|n| format!("{}/{n}", location.trim_end_matches('/')))
        });
        BackupRecord {
            time,
            job: Some(o.job.clone()),
            name: saved.name,
            location,
            revision: saved.revision,
            size: saved.size,
            message: None,
        }
    } else {
        BackupRecord {
            time,
            job: Some(o.job.clone()),
            message: Some(
                o.message
                    .clone()
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "the backup job failed without a message".to_string()),
            ),
            ..BackupRecord::default()
        }
    }
}

/// The status given the Jobs seen now and the status before: records survive the Jobs
/// that Kubernetes cleans up. Backups are failing when the newest ended Job failed, stale
/// when no backup succeeded for two periods of the schedule (counted from `since`, when
/// backups were set up, while none has succeeded yet).
pub fn assess(
    jobs: &[JobOutcome],
    previous: Option<&BackupStatus>,
    location: &str,
    period: Result<std::time::Duration, String>,
    since: Timestamp,
    now: Timestamp,
) -> Assessment {
    let newest = |ok: bool| {
        jobs.iter()
            .filter(|j| j.succeeded == Some(ok))
            .max_by_key(|j| j.finished)
    };
    let time_of = |r: &Option<BackupRecord>| {
        r.as_ref()
            .and_then(|r| r.time.as_ref())
            .map(|t| t.0.as_second())
    };
    let mut status = previous.cloned().unwrap_or_default();
    let mut news = Vec::new();
    if let Some(ok) = newest(true) {
        let rec = record(ok, location);
        let is_new = time_of(&status.last_successful) < rec.time.as_ref().map(|t| t.0.as_second());
        if is_new {
            news.push((
                false,
                "BackupSucceeded",
                format!(
                    "backup {} stored at {} (revision {}, {} bytes) by job {}",
                    rec.name.as_deref().unwrap_or("?"),
                    rec.location.as_deref().unwrap_or(location),
                    rec.revision.map_or("?".to_string(), |r| r.to_string()),
                    rec.size.map_or("?".to_string(), |s| s.to_string()),
                    ok.job
                ),
            ));
            status.last_successful = Some(rec);
        }
    }
    if let Some(failed) = newest(false) {
        let rec = record(failed, location);
        let is_new = time_of(&status.last_failed) < rec.time.as_ref().map(|t| t.0.as_second());
        if is_new {
            news.push((
                true,
                "BackupFailed",
                format!(
                    "backup job {} failed: {}",
                    failed.job,
                    rec.message.as_deref().unwrap_or_default()
                ),
            ));
            status.last_failed = Some(rec);
        }
    }

    let success = time_of(&status.last_successful);
    let failure = time_of(&status.last_failed);
    let failing = match period {
        Err(e) => (true, "InvalidSchedule".to_string(), e),
        Ok(_) if failure.is_some() && failure > success => (
            true,
            "BackupFailed".to_string(),
            status
                .last_failed
                .as_ref()
                .and_then(|f| f.message.clone())
                .unwrap_or_default(),
        ),
        Ok(period) => {
            let reference = success.unwrap_or(since.as_second());
            let age = now.as_second() - reference;
            let allowed = 2 * period.as_secs() as i64;
            if age > allowed {
                let what = match success {
                    Some(_) => "the last successful backup".to_string(),
                    None => "backups were set up and none has succeeded; the first".to_string(),
                };
                (
                    true,
                    "BackupStale".to_string(),
                    format!(
                        "{what} is {} old, more than twice the schedule's period ({}s): check the CronJob's Jobs",
                        human(age),
                        period.as_secs()
                    ),
                )
            } else {
                (
                    false,
                    "BackupsSucceeding".to_string(),
                    match &status.last_successful {
                        Some(r) => format!(
                            "last backup {} at {}",
                            r.name.as_deref().unwrap_or("?"),
                            r.time.as_ref().map(|t| t.0.to_string()).unwrap_or_default()
                        ),
                        None => "waiting for the first scheduled backup".to_string(),
                    },
                )
            }
        }
    };
    Assessment {
        status,
        failing,
        news,
    }
}

/// The last scheduled defragmentation from its Jobs (the newest that ended), and an Event
/// when it is one not reported before: (warning, reason, note).
pub fn defrag_status(
    jobs: &[JobOutcome],
    previous: Option<&DefragStatus>,
) -> (Option<DefragStatus>, Option<(bool, &'static str, String)>) {
    let newest = jobs
        .iter()
        .filter(|j| j.succeeded.is_some())
        .max_by_key(|j| j.finished);
    let Some(run) = newest else {
        return (previous.cloned(), None);
    };
    if previous.is_some_and(|p| p.job.as_deref() == Some(run.job.as_str())) {
        return (previous.cloned(), None);
    }
    let ok = run.succeeded == Some(true);
    let message: Option<String> = run
        .message
        .as_ref()
        .map(|m| m.chars().take(MESSAGE_LIMIT).collect());
    let status = DefragStatus {
        last_run: run.finished.map(Time),
        job: Some(run.job.clone()),
        succeeded: ok,
        message: message.clone(),
    };
    let note = if ok {
        (
            false,
            "Defragmented",
            format!(
                "defragmentation job {}: {}",
                run.job,
                message.unwrap_or_default()
            ),
        )
    } else {
        (
            true,
            "DefragFailed",
            format!(
                "defragmentation job {} failed: {}",
                run.job,
                message.unwrap_or_default()
            ),
        )
    };
    (Some(status), Some(note))
}

/// Longest termination message kept in status (Kubernetes keeps at most 4 KiB).
const MESSAGE_LIMIT: usize = 1024;

fn human(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests;
