//! The controller's side of backups: the restore check that gates a new cluster's members,
//! and the CronJob of `spec.backup` with what its Jobs report. What to render and what the
//! outcomes mean is decided in [`crate::backup`].

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use super::{create_params, server_side_apply};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::backup::assess::{self, Assessment, JobOutcome};
use crate::backup::job::{self, Task};
use crate::backup::rollback::{self, JobState};
use crate::backup::{holder, location, schedule};
use crate::crd::{
    BackupPhase, DefragStatus, EtcdBackup, EtcdCluster, RestoreSource, RollbackPhase,
    RollbackStatus,
};
use crate::error::Error;
use crate::names::ClusterNames;
use crate::render::{self, RenderContext};
use crate::status::Problem;

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
#[tracing::instrument(name = "restore_gate", skip_all)]
pub async fn restore_gate(
    client: &Client,
    cluster: &EtcdCluster,
    names: &ClusterNames,
    ctx: &RenderContext,
    seen: &Seen,
) -> Result<(RestoreGate, Option<RestoreSource>), Error> {
    if cluster.spec.restore.is_none() {
        return Ok((RestoreGate::Open, None));
    }
    let source = match restore_source(client, cluster, names).await? {
        Ok(source) => source,
        Err(gate) => return Ok((gate, None)),
    };
    record_source(client, cluster, names, &source).await?;
    if let Some(why) = foreign_claims(client, cluster, names).await? {
        return Ok((RestoreGate::Failed(why), Some(source)));
    }
    let mut gate = check(client, cluster, names, ctx, &source, seen).await?;
    if gate == RestoreGate::Open {
        gate = restore_claims(client, cluster, names, ctx, &source, seen).await?;
    }
    Ok((gate, Some(source)))
}

/// Annotation on the claims a restore makes: the UID of the `EtcdCluster` they were made
/// for. A claim without it (or with another UID) holds data this cluster did not restore,
/// e.g. of an earlier cluster of the same name whose claims were retained.
pub const CLAIM_OWNER_ANNOTATION: &str = "ballast.dev/restored-for";

/// Why the members' claims cannot be restored into: one exists that this cluster did not
/// make. A member would start from that data instead of the backup (the restore happens
/// only into an empty data dir), so it is never used, and never overwritten either.
async fn foreign_claims(
    client: &Client,
    cluster: &EtcdCluster,
    names: &ClusterNames,
) -> Result<Option<String>, Error> {
    let uid = cluster.uid().ok_or(Error::MissingMetadata("uid"))?;
    let born = cluster.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &names.namespace);
    let mut foreign = Vec::new();
    for ordinal in 0..cluster.spec.replicas {
        let claim = format!("data-{}", names.member(ordinal));
        if let Some(found) = claims.get_opt(&claim).await? {
            // Ours: marked by the restore, or made since this EtcdCluster exists (by its
            // StatefulSet, e.g. before the StatefulSet was deleted and is now re-made).
            let marked = found.annotations().get(CLAIM_OWNER_ANNOTATION) == Some(&uid);
            let made = found.metadata.creation_timestamp.as_ref().map(|t| t.0);
            let since = matches!((made, born), (Some(m), Some(b)) if m >= b);
            if !marked && !since {
                foreign.push(claim);
            }
        }
    }
    Ok((!foreign.is_empty()).then(|| {
        format!(
            "cannot restore: claims {} are older than this EtcdCluster and hold data of an \
             earlier cluster named {}. Nothing was created or changed. If that data is not \
             needed, delete the claims (the restore then goes on); else restore under another \
             name",
            foreign.join(", "),
            names.name
        )
    }))
}

/// Creates `job`. `Some` says why it cannot be: a Job of that name exists that this
/// cluster does not own (an earlier cluster of the same name, or another object, left it);
/// it is reported rather than retried blindly.
async fn create_job(jobs: &Api<Job>, job: &Job) -> Result<Option<String>, Error> {
    match jobs.create(&create_params(), job).await {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Some(format!(
            "Job {} exists and does not belong to this EtcdCluster (an earlier cluster of the \
             same name, or another object, left it): delete it to go on",
            job.name_any()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Writes `status.restoredFrom` as soon as the backup is known, before any member exists:
/// a member created from it must never find it resolved differently later (an
/// `EtcdBackup` deleted or changed meanwhile), even after a crash right after creating it.
async fn record_source(
    client: &Client,
    cluster: &EtcdCluster,
    names: &ClusterNames,
    source: &RestoreSource,
) -> Result<(), Error> {
    let recorded = cluster
        .status
        .as_ref()
        .and_then(|s| s.restored_from.as_ref());
    if recorded == Some(source) {
        return Ok(());
    }
    let api: Api<EtcdCluster> = Api::namespaced(client.clone(), &names.namespace);
    let patch = serde_json::json!({ "status": { "restoredFrom": source } });
    api.patch_status(
        &names.name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// The members' claims are made as the StatefulSet would name them (it adopts them),
/// marked as this cluster's ([`CLAIM_OWNER_ANNOTATION`]). From a volume, each is then
/// restored by a Job (`ballast backup restore-member`) before any member starts, and the
/// members start from their data like any restart; from S3, each founding member's sidecar
/// restores into its empty claim.
async fn restore_claims(
    client: &Client,
    cluster: &EtcdCluster,
    names: &ClusterNames,
    ctx: &RenderContext,
    source: &RestoreSource,
    seen: &Seen,
) -> Result<RestoreGate, Error> {
    let replicas = cluster.spec.replicas;
    let rendered = render::render(cluster, ctx, &render::Live::default())?;
    let template = rendered
        .statefulset
        .spec
        .and_then(|s| s.volume_claim_templates)
        .and_then(|t| t.into_iter().next())
        .ok_or(Error::MissingMetadata("volumeClaimTemplates"))?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &names.namespace);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &names.namespace);
    let params = create_params();
    let owner = render::owner_reference(cluster)?;
    let uid = cluster.uid().ok_or(Error::MissingMetadata("uid"))?;
    let one_at_a_time = match &source.store.volume {
        Some(volume) => one_node_at_a_time(client, names, &volume.claim_name).await?,
        None => false,
    };
    let mut waiting = Vec::new();
    for ordinal in 0..replicas {
        let member = names.member(ordinal);
        let claim = format!("data-{member}");
        if claims.get_opt(&claim).await?.is_none() {
            let mut new = template.clone();
            new.metadata.name = Some(claim.clone());
            new.metadata.namespace = Some(names.namespace.clone());
            new.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(CLAIM_OWNER_ANNOTATION.to_string(), uid.clone());
            claims.create(&params, &new).await?;
        }
        if source.store.volume.is_none() {
            continue;
        }
        let job_name = format!("{}-restore-{ordinal}", names.name);
        let Some(found) = seen.job(&job_name) else {
            if seen.pods_remain(&job_name) {
                // A deleted Job's pod may still write this claim.
                waiting.push(member);
                continue;
            }
            // A volume one node mounts at a time: one restore after another.
            if one_at_a_time && !waiting.is_empty() {
                waiting.push(member);
                continue;
            }
            let task = Task::RestoreMember {
                store: &source.store,
                backup: &source.backup,
                claim,
                member: member.clone(),
                initial_cluster: names.initial_cluster(replicas),
                token: names.initial_cluster_token(),
                peer_url: names.member_peer_url(&member),
                bump_revision: cluster.spec.restore.as_ref().and_then(|r| r.bump_revision),
            };
            let new = job::job(names, &owner, job_name, &cluster.spec, ctx, &task);
            if let Some(taken) = create_job(&jobs, &new).await? {
                return Ok(RestoreGate::Failed(taken));
            }
            waiting.push(member);
            continue;
        };
        let outcome = seen.outcome(found);
        match outcome.succeeded {
            Some(true) => {}
            None => waiting.push(member),
            Some(false) => {
                return Ok(RestoreGate::Failed(format!(
                    "restoring {member}'s claim from backup {} failed: {}. No member was started; delete Job {} to try again",
                    source.backup,
                    outcome.message.unwrap_or_default(),
                    found.name_any()
                )))
            }
        }
    }
    Ok(if waiting.is_empty() {
        RestoreGate::Open
    } else {
        RestoreGate::Checking(format!(
            "restoring backup {} onto the claims of {}",
            source.backup,
            waiting.join(", ")
        ))
    })
}

/// The backup `spec.restore` names: as recorded at creation, as named, or as an
/// `EtcdBackup` took it. `Err` is the gate while it cannot be known.
pub async fn restore_source(
    client: &Client,
    cluster: &EtcdCluster,
    names: &ClusterNames,
) -> Result<Result<RestoreSource, RestoreGate>, Error> {
    let Some(restore) = &cluster.spec.restore else {
        return Ok(Err(RestoreGate::Open));
    };
    if let Some(recorded) = cluster
        .status
        .as_ref()
        .and_then(|s| s.restored_from.clone())
    {
        return Ok(Ok(recorded));
    }
    if let Some(named) = crate::backup::named_source(restore) {
        return Ok(Ok(named));
    }
    let Some(eb_name) = &restore.etcd_backup else {
        return Ok(Err(RestoreGate::Failed(
            "spec.restore names no backup".into(),
        )));
    };
    let ebs: Api<EtcdBackup> = Api::namespaced(client.clone(), &names.namespace);
    let found = ebs.get_opt(eb_name).await?;
    let cluster_store = match &found {
        Some(eb) if eb.spec.store.is_none() => {
            let clusters: Api<EtcdCluster> = Api::namespaced(client.clone(), &names.namespace);
            clusters
                .get_opt(&eb.spec.cluster_name)
                .await?
                .and_then(|c| c.spec.backup.map(|b| b.store))
        }
        _ => None,
    };
    Ok(
        crate::backup::etcd_backup_source(eb_name, found.as_ref(), cluster_store.as_ref()).map_err(
            |why| match found
                .as_ref()
                .and_then(|f| f.status.as_ref())
                .map(|s| s.phase)
            {
                // Still running (or not started): wait for it.
                None | Some(BackupPhase::Pending | BackupPhase::Running) if found.is_some() => {
                    RestoreGate::Checking(format!("waiting: {why}"))
                }
                _ => RestoreGate::Failed(format!("cannot restore: {why}")),
            },
        ),
    )
}

async fn check(
    client: &Client,
    cluster: &EtcdCluster,
    names: &ClusterNames,
    ctx: &RenderContext,
    source: &RestoreSource,
    seen: &Seen,
) -> Result<RestoreGate, Error> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), &names.namespace);
    let name = job::restore_check_name(names);
    let at = format!("{}/{}", location(names, &source.store), source.backup);
    let Some(found) = seen.job(&name) else {
        let owner = render::owner_reference(cluster)?;
        let task = Task::Check {
            store: &source.store,
            backup: &source.backup,
            holder: holder(names, &cluster.uid().unwrap_or_default()),
        };
        let new = job::job(names, &owner, name, &cluster.spec, ctx, &task);
        if let Some(taken) = create_job(&jobs, &new).await? {
            return Ok(RestoreGate::Failed(taken));
        }
        return Ok(RestoreGate::Checking(format!(
            "checking backup {at} before any member starts"
        )));
    };
    let outcome = seen.outcome(found);
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

/// The cluster's backup Jobs and their pods, listed once per reconcile: the schedule, the
/// defragmentation, a restore and a rollback all read them.
#[derive(Default)]
pub struct Seen {
    jobs: Vec<Job>,
    pods: Vec<Pod>,
    /// The cluster's UID: a Job is this cluster's only if it owns it. Names alone are not
    /// trusted (an earlier cluster of the same name, or an `EtcdBackup` whose Job name
    /// happens to match, may have left one).
    uid: String,
}

impl Seen {
    /// Lists them, only for a cluster that has Jobs to follow (every other reconcile pays
    /// nothing).
    /// `creating`: the StatefulSet does not exist yet (a restore is followed only then).
    pub async fn list(
        client: &Client,
        cluster: &EtcdCluster,
        names: &ClusterNames,
        creating: bool,
    ) -> Result<Seen, Error> {
        let spec = &cluster.spec;
        let wanted = spec.backup.is_some()
            || (creating && spec.restore.is_some())
            || spec.rollback.is_some()
            || spec
                .maintenance
                .as_ref()
                .is_some_and(|m| m.defrag.is_some());
        if !wanted {
            return Ok(Seen::default());
        }
        let selector = ListParams::default().labels(&job::selector(names));
        let jobs: Api<Job> = Api::namespaced(client.clone(), &names.namespace);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &names.namespace);
        Ok(Seen {
            jobs: jobs.list(&selector).await?.items,
            pods: pods.list(&selector).await?.items,
            uid: cluster.uid().unwrap_or_default(),
        })
    }

    /// Whether a pod of Job `name` still runs (or terminates): a Job deleted without waiting
    /// for its pods may leave one writing a claim.
    fn pods_remain(&self, name: &str) -> bool {
        self.pods.iter().any(|p| {
            p.labels().get("job-name").map(String::as_str) == Some(name)
                && !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
        })
    }

    /// The Job `name` this cluster owns.
    fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| {
            j.name_any() == name && j.owner_references().iter().any(|o| o.uid == self.uid)
        })
    }

    fn outcome(&self, job: &Job) -> JobOutcome {
        assess::outcome(job, &self.pods)
    }
}

/// `cron` suspended while `hold` (a rollback runs: no backup of half-stopped members, and
/// no retention that could delete the backup being restored).
fn held(mut cron: CronJob, hold: bool) -> CronJob {
    if let (true, Some(spec)) = (hold, cron.spec.as_mut()) {
        spec.suspend = Some(true);
    }
    cron
}

/// Runs of `name`, a CronJob of this cluster.
fn runs_of(seen: &Seen, name: &str) -> Vec<JobOutcome> {
    seen.jobs
        .iter()
        .filter(|j| {
            j.owner_references()
                .iter()
                .any(|o| o.kind == "CronJob" && o.name == name)
        })
        .map(|j| seen.outcome(j))
        .collect()
}

/// Keeps the CronJob of `spec.maintenance.defrag` (deletes it without one) and reports its
/// last run: the status, and an Event for a run not reported before.
pub async fn defrag(
    client: &Client,
    cluster: &EtcdCluster,
    names: &ClusterNames,
    ctx: &RenderContext,
    hold: bool,
    seen: &Seen,
) -> Result<(Option<DefragStatus>, Option<(bool, &'static str, String)>), Error> {
    let cron_jobs: Api<CronJob> = Api::namespaced(client.clone(), &names.namespace);
    let name = job::defrag_cron_job_name(names);
    let owner = render::owner_reference(cluster)?;
    let previous = cluster.status.as_ref().and_then(|s| s.defrag.as_ref());
    let Some(wanted) = job::defrag_cron_job(names, &owner, &cluster.spec, ctx) else {
        if cron_jobs.get_opt(&name).await?.is_some() {
            cron_jobs.delete(&name, &Default::default()).await?;
        }
        return Ok((previous.cloned(), None));
    };
    server_side_apply(&cron_jobs, &held(wanted, hold)).await?;
    let runs = runs_of(seen, &name);
    Ok(assess::defrag_status(&runs, previous))
}

/// Keeps the CronJob of `spec.backup` (deletes it without one) and assesses its Jobs.
/// `None` when the cluster has no schedule.
pub async fn scheduled(
    client: &Client,
    cluster: &EtcdCluster,
    names: &ClusterNames,
    ctx: &RenderContext,
    now: Timestamp,
    hold: bool,
    seen: &Seen,
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
    let applied = server_side_apply(&cron_jobs, &held(wanted, hold)).await?;
    let since = applied
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);

    // Only the CronJob's runs: an EtcdBackup or the restore check say nothing of the schedule.
    let outcomes = runs_of(seen, &name);
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

/// A rollback's step this reconcile, and what to report of it.
pub struct Rollback {
    /// What the rollback does now.
    pub step: rollback::Step,
    /// Members it restores and starts.
    pub members: i32,
    /// The members were stopped for a rollback that has not ended: they stay stopped
    /// until one starts them ([`rollback::Facts::stopped`]).
    pub stopped: bool,
    /// `status.rollback`.
    pub status: RollbackStatus,
    /// `Progressing` while it runs.
    pub operation: Option<(String, String)>,
    /// A failure, as `Degraded` (blocking once members are stopped).
    pub problem: Option<Problem>,
    /// An Event when the phase changes: (warning, reason, note).
    pub news: Option<(bool, &'static str, String)>,
}

/// `spec.rollback` removed while the members are stopped for it: they stay stopped (some
/// claims may hold the backup, others the old data, and starting them would mix the two),
/// and the user hears why and what to do.
fn abandoned(previous: &RollbackStatus) -> Option<Rollback> {
    // Starting: every claim holds the backup already, so the members may go on starting.
    if !rollback::stopped_for(Some(previous)) || previous.phase == RollbackPhase::Starting {
        return None;
    }
    let message = format!(
        "spec.rollback was removed while the members were stopped for the rollback to {}: they stay stopped, since their claims may hold the backup or the old data. Put spec.rollback back (that backup, or another good one) to finish it",
        previous.backup
    );
    // The phase stays as it was, so this holds until the rollback is asked for again.
    let news = (previous.message.as_deref() != Some(message.as_str())).then(|| {
        (
            true,
            "RollbackAbandoned",
            format!(
                "rollback to {} abandoned while the members were stopped",
                previous.backup
            ),
        )
    });
    Some(Rollback {
        members: previous.members.unwrap_or(0),
        stopped: true,
        step: rollback::Step::Failed(RollbackPhase::Restoring, message.clone()),
        status: RollbackStatus {
            message: Some(message.clone()),
            ..previous.clone()
        },
        operation: None,
        problem: Some(Problem {
            reason: "RollbackAbandoned".into(),
            message,
            blocking: true,
        }),
        news,
    })
}

/// Annotation on rollback Jobs naming the backup they are for: a Job for another backup is
/// an earlier rollback's, deleted before this one makes its own.
const BACKUP_ANNOTATION: &str = "ballast.dev/backup";

fn rollback_check_name(names: &ClusterNames) -> String {
    format!("{}-rollback-check", names.name)
}

fn rollback_member_job(names: &ClusterNames, ordinal: i32) -> String {
    format!("{}-rollback-{ordinal}", names.name)
}

/// Job `name` of the rollback to `backup`. An earlier rollback's Job (another backup) is
/// deleted in the foreground, so it stays visible (Leaving) until its pods are gone: its
/// restore may still be writing a claim.
async fn rollback_job(
    jobs: &Api<Job>,
    seen: &Seen,
    name: &str,
    backup: &str,
) -> Result<JobState, Error> {
    let Some(job) = seen.job(name) else {
        return Ok(if seen.pods_remain(name) {
            JobState::Leaving
        } else {
            JobState::Absent
        });
    };
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(JobState::Leaving);
    }
    if job.annotations().get(BACKUP_ANNOTATION).map(String::as_str) != Some(backup) {
        if job.metadata.deletion_timestamp.is_none() {
            jobs.delete(name, &kube::api::DeleteParams::foreground())
                .await?;
        }
        return Ok(JobState::Leaving);
    }
    let outcome = seen.outcome(job);
    Ok(match outcome.succeeded {
        None => JobState::Running,
        Some(true) => JobState::Succeeded,
        Some(false) => JobState::Failed(
            outcome
                .message
                .unwrap_or_else(|| "the Job failed without a message".into()),
        ),
    })
}

/// Whether the backup claim `name` can be mounted on one node at a time only (not
/// ReadWriteMany or ReadOnlyMany): then members are restored one after another, since each
/// restore Job may run on another node. A claim not found counts as one node at a time.
async fn one_node_at_a_time(
    client: &Client,
    names: &ClusterNames,
    name: &str,
) -> Result<bool, Error> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &names.namespace);
    let modes = claims
        .get_opt(name)
        .await?
        .and_then(|c| c.spec)
        .and_then(|s| s.access_modes)
        .unwrap_or_default();
    Ok(!job::shared_access(&modes))
}

/// The new cluster's token: from the backup's name, so every member (and every retry)
/// restores into the same new cluster, and a second rollback gets yet another ID.
pub fn rollback_token(names: &ClusterNames, backup: &str) -> String {
    format!("{}-rollback-{backup}", names.initial_cluster_token())
}

/// Observes the rollback's Jobs, decides its next step ([`rollback::next`]) and creates the
/// Jobs that step needs. `None` without `spec.rollback` and with nothing to report.
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(name = "rollback", skip_all)]
pub async fn rollback(
    client: &Client,
    cluster: &EtcdCluster,
    names: &ClusterNames,
    ctx: &RenderContext,
    pods: i32,
    available: bool,
    busy: bool,
    now: Timestamp,
    seen: &Seen,
) -> Result<Option<Rollback>, Error> {
    let previous = cluster.status.as_ref().and_then(|s| s.rollback.as_ref());
    let Some(spec) = &cluster.spec.rollback else {
        return Ok(previous.and_then(abandoned));
    };
    let store = spec
        .store
        .clone()
        .or_else(|| cluster.spec.backup.as_ref().map(|b| b.store.clone()));
    let Some(store) = store else {
        // Members stopped for a rollback stay stopped, and the record of it stays.
        let stopped = rollback::stopped_for(previous);
        let held = previous.filter(|_| stopped);
        return Ok(Some(Rollback {
            members: held
                .and_then(|p| p.members)
                .unwrap_or(cluster.spec.replicas),
            stopped,
            step: rollback::Step::Failed(RollbackPhase::Checking, String::new()),
            status: RollbackStatus {
                backup: spec.backup.clone(),
                phase: RollbackPhase::Failed,
                message: Some("no store: set spec.rollback.store or spec.backup.store".into()),
                members: held.and_then(|p| p.members),
                stopped_at: held.and_then(|p| p.stopped_at.clone()),
                writable_since: None,
            },
            operation: None,
            problem: Some(Problem {
                reason: "RollbackFailed".into(),
                message: "spec.rollback names no store and spec.backup has none".into(),
                blocking: stopped,
            }),
            news: None,
        }));
    };

    let jobs: Api<Job> = Api::namespaced(client.clone(), &names.namespace);
    let check = rollback_job(&jobs, seen, &rollback_check_name(names), &spec.backup).await?;
    let mut restores = Vec::new();
    let same = previous.filter(|p| p.backup == spec.backup);
    // Members stopped for this rollback, or for one to another backup that this one
    // replaces: they stay stopped, and their number stays pinned, until they are started.
    let stopped = rollback::stopped_for(previous);
    let members = previous
        .filter(|_| stopped)
        .and_then(|p| p.members)
        .unwrap_or(cluster.spec.replicas);
    for ordinal in 0..members {
        let name = rollback_member_job(names, ordinal);
        restores.push(rollback_job(&jobs, seen, &name, &spec.backup).await?);
    }
    let facts = rollback::Facts {
        spec: Some(spec),
        status: previous,
        check,
        restores,
        pods,
        replicas: members,
        available,
        busy,
        stopped,
        // Asked only while there is something to restore (a done rollback may stay in the
        // spec for good, and this is a request per reconcile).
        one_at_a_time: match (&store.volume, same.map(|p| p.phase)) {
            (_, Some(RollbackPhase::Succeeded)) | (None, _) => false,
            (Some(volume), _) => one_node_at_a_time(client, names, &volume.claim_name).await?,
        },
    };
    let step = rollback::next(&facts);
    tracing::info!(cluster = %names.name, ?step, "rollback");

    let owner = render::owner_reference(cluster)?;
    let create = |name: String, task: Task| {
        let mut job = job::job(names, &owner, name, &cluster.spec, ctx, &task);
        job.metadata.annotations = Some(
            [(BACKUP_ANNOTATION.to_string(), spec.backup.clone())]
                .into_iter()
                .collect(),
        );
        job
    };
    let mut taken = None;
    match &step {
        rollback::Step::Check => {
            let task = Task::Check {
                store: &store,
                backup: &spec.backup,
                holder: holder(names, &cluster.uid().unwrap_or_default()),
            };
            taken = create_job(&jobs, &create(rollback_check_name(names), task)).await?;
        }
        rollback::Step::Restore(ordinals) => {
            for ordinal in ordinals {
                let member = names.member(*ordinal);
                let task = Task::RestoreMember {
                    store: &store,
                    backup: &spec.backup,
                    claim: format!("data-{member}"),
                    member: member.clone(),
                    initial_cluster: names.initial_cluster(members),
                    token: rollback_token(names, &spec.backup),
                    peer_url: names.member_peer_url(&member),
                    bump_revision: spec.bump_revision,
                };
                if let Some(t) =
                    create_job(&jobs, &create(rollback_member_job(names, *ordinal), task)).await?
                {
                    taken = Some(t);
                }
            }
        }
        _ => {}
    }

    // A Job name taken by something this cluster does not own: said, never worked around.
    let step = match taken {
        Some(t) => rollback::Step::Failed(step.phase().unwrap_or(RollbackPhase::Checking), t),
        None => step,
    };
    let phase = step.phase().unwrap_or(RollbackPhase::Succeeded);
    let (phase, message) = match &step {
        rollback::Step::Failed(_, m) => (RollbackPhase::Failed, Some(m.clone())),
        rollback::Step::Wait(_, m) => (phase, Some(m.clone())),
        rollback::Step::Nothing => {
            return Ok(previous.cloned().map(|status| Rollback {
                members,
                stopped,
                step: rollback::Step::Nothing,
                status,
                operation: None,
                problem: None,
                news: None,
            }))
        }
        _ => (phase, None),
    };
    let stopped_at = previous
        .filter(|_| stopped)
        .or(same)
        .and_then(|p| p.stopped_at.clone())
        .or_else(|| {
            matches!(
                phase,
                RollbackPhase::Stopping | RollbackPhase::Restoring | RollbackPhase::Starting
            )
            .then_some(Time(now))
        });
    let writable_since = (phase == RollbackPhase::Succeeded).then_some(Time(now));
    let status = RollbackStatus {
        backup: spec.backup.clone(),
        phase,
        message: message.clone(),
        members: stopped_at.is_some().then_some(members),
        stopped_at,
        writable_since,
    };
    let changed = same.map(|p| p.phase) != Some(phase);
    let news = match phase {
        _ if stopped && same.is_none() => Some((
            true,
            "RollbackChanged",
            format!(
                "rollback changed to backup {} while the members were stopped for backup {}: \
                 they stay stopped until the new backup is restored",
                spec.backup,
                previous.map(|p| p.backup.as_str()).unwrap_or_default()
            ),
        )),
        RollbackPhase::Stopping if changed => Some((
            true,
            "RollbackStarted",
            format!(
                "rolling back to backup {}: every member stops; writes since the backup are lost",
                spec.backup
            ),
        )),
        RollbackPhase::Succeeded if changed => Some((
            false,
            "RolledBack",
            format!(
                "rolled back to backup {}: the members serve it as a new cluster and accept writes",
                spec.backup
            ),
        )),
        RollbackPhase::Failed if changed => {
            Some((true, "RollbackFailed", message.clone().unwrap_or_default()))
        }
        _ => None,
    };
    let problem = match &step {
        rollback::Step::Failed(at, m) => Some(Problem {
            reason: "RollbackFailed".into(),
            message: m.clone(),
            // Once members are stopped, nothing else may touch them.
            blocking: *at == RollbackPhase::Restoring || stopped,
        }),
        _ => None,
    };
    let operation = match &step {
        rollback::Step::Failed(..) | rollback::Step::Done | rollback::Step::Nothing => None,
        _ => Some((
            "RollingBack".to_string(),
            message.unwrap_or_else(|| format!("{phase:?} (rolling back to {})", spec.backup)),
        )),
    };
    Ok(Some(Rollback {
        members,
        stopped,
        step,
        status,
        operation,
        problem,
        news,
    }))
}
