//! The controller's side of backups: the restore check that gates a new cluster's members,
//! and the CronJob of `spec.backup` with what its Jobs report. What to render and what the
//! outcomes mean is decided in [`crate::backup`].

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};

use super::server_side_apply;
use crate::backup::assess::{self, Assessment, JobOutcome};
use crate::backup::job::{self, Task};
use crate::backup::{location, schedule};
use crate::crd::EtcdCluster;
use crate::error::Error;
use crate::names::{ClusterNames, FIELD_MANAGER};
use crate::render::{self, RenderContext};

/// Whether the members of a cluster restored from a backup may be created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreGate {
    /// No restore, or the backup was checked.
    Open,
    /// The check runs: (Progressing reason, message).
    Checking(String),
    /// The backup is missing or corrupt: nothing is created.
    Failed(String),
}

/// Before a restored cluster's first member exists: one Job fetches the backup and checks
/// its checksums, so that a missing or corrupt backup stops the creation (a condition and
/// an Event) instead of leaving members that cannot start, or an empty cluster.
pub async fn restore_gate(
    client: &Client,
    cluster: &EtcdCluster,
    names: &ClusterNames,
    ctx: &RenderContext,
) -> Result<RestoreGate, Error> {
    let Some(restore) = &cluster.spec.restore else {
        return Ok(RestoreGate::Open);
    };
    let jobs: Api<Job> = Api::namespaced(client.clone(), &names.namespace);
    let name = job::restore_check_name(names);
    let at = format!("{}/{}", location(names, &restore.store), restore.backup);
    let Some(found) = jobs.get_opt(&name).await? else {
        let owner = render::owner_reference(cluster)?;
        let task = Task::Check {
            store: &restore.store,
            backup: &restore.backup,
        };
        let new = job::job(names, &owner, name, &cluster.spec, ctx, &task);
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PostParams::default()
        };
        jobs.create(&params, &new).await?;
        return Ok(RestoreGate::Checking(format!(
            "checking backup {at} before any member starts"
        )));
    };
    let pods = job_pods(client, names).await?;
    let outcome = assess::outcome(&found, &pods);
    Ok(match outcome.succeeded {
        None => RestoreGate::Checking(format!("checking backup {at} before any member starts")),
        Some(true) => RestoreGate::Open,
        Some(false) => RestoreGate::Failed(format!(
            "cannot restore from {at}: {}. Nothing was created; fix spec.restore by creating a new EtcdCluster (restore cannot change), or delete Job {} to check again",
            outcome
                .message
                .unwrap_or_else(|| "the check failed without a message".to_string()),
            found.name_any()
        )),
    })
}

async fn job_pods(client: &Client, names: &ClusterNames) -> Result<Vec<Pod>, Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &names.namespace);
    Ok(pods
        .list(&ListParams::default().labels(&job::selector(names)))
        .await?
        .items)
}

/// Keeps the CronJob of `spec.backup` (deletes it without one) and assesses its Jobs.
/// `None` when the cluster has no schedule.
pub async fn scheduled(
    client: &Client,
    cluster: &EtcdCluster,
    names: &ClusterNames,
    ctx: &RenderContext,
    now: Timestamp,
) -> Result<Option<Assessment>, Error> {
    let cron_jobs: Api<CronJob> = Api::namespaced(client.clone(), &names.namespace);
    let name = job::cron_job_name(names);
    let owner = render::owner_reference(cluster)?;
    let Some(wanted) = job::cron_job(names, &owner, &cluster.spec, ctx) else {
        if cron_jobs.get_opt(&name).await?.is_some() {
            cron_jobs.delete(&name, &Default::default()).await?;
        }
        return Ok(None);
    };
    let Some(backup) = &cluster.spec.backup else {
        return Ok(None);
    };
    let applied = server_side_apply(&cron_jobs, &wanted).await?;
    let since = applied
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);

    let jobs: Api<Job> = Api::namespaced(client.clone(), &names.namespace);
    let listed = jobs
        .list(&ListParams::default().labels(&job::selector(names)))
        .await?
        .items;
    let pods = job_pods(client, names).await?;
    // Only the CronJob's runs: an EtcdBackup or the restore check say nothing of the schedule.
    let outcomes: Vec<JobOutcome> = listed
        .iter()
        .filter(|j| {
            j.owner_references()
                .iter()
                .any(|o| o.kind == "CronJob" && o.name == name)
        })
        .map(|j| assess::outcome(j, &pods))
        .collect();
    let previous = cluster.status.as_ref().and_then(|s| s.backup.as_ref());
    Ok(Some(assess::assess(
        &outcomes,
        previous,
        &location(names, &backup.store),
        schedule::period(&backup.schedule, now),
        since,
        now,
    )))
}
