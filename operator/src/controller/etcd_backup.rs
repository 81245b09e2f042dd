//! The `EtcdBackup` controller: one Job per object, its outcome as the object's status and
//! an Event. The phase only moves forward (Pending → Running → Succeeded or Failed), and a
//! finished object is left alone, so its status stays the record of that one attempt.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use super::{apply_params, create_params, scoped, Context};
use crate::backup::assess;
use crate::backup::job::{self, Task};
use crate::backup::{default_prefix, location, with_prefix};
use crate::crd::{BackupPhase, EtcdBackup, EtcdBackupStatus, EtcdCluster};
use crate::error::Error;
use crate::render;

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    Controller::new(
        scoped::<EtcdBackup>(&client, namespace),
        watcher::Config::default().any_semantic(),
    )
    .owns(
        scoped::<Job>(&client, namespace),
        watcher::Config::default()
            .labels(&format!("app.kubernetes.io/component={}", job::COMPONENT)),
    )
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, ctx)
    .for_each(|result| async move {
        if let Err(e) = result {
            tracing::warn!(error = %e, "EtcdBackup reconcile failed");
        }
    })
    .await;
}

fn error_policy(_: Arc<EtcdBackup>, _: &Error, _: Arc<Context>) -> Action {
    Action::requeue(std::time::Duration::from_secs(15))
}

/// Annotation on an `EtcdBackup`'s Job: the store it writes to, as JSON.
const STORE_ANNOTATION: &str = "ballast.dev/store";

/// The Job's name: one per `EtcdBackup`.
pub fn job_name(backup: &EtcdBackup) -> String {
    format!("etcdbackup-{}", backup.name_any())
}

#[tracing::instrument(skip_all, fields(backup = %backup.name_any()))]
async fn reconcile(backup: Arc<EtcdBackup>, ctx: Arc<Context>) -> Result<Action, Error> {
    let previous = backup.status.clone().unwrap_or_default();
    if matches!(previous.phase, BackupPhase::Succeeded | BackupPhase::Failed) {
        return Ok(Action::await_change());
    }
    let ns = backup
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let clusters: Api<EtcdCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let name = job_name(&backup);

    let status = match clusters.get_opt(&backup.spec.cluster_name).await? {
        None => EtcdBackupStatus {
            message: Some(format!(
                "EtcdCluster {} does not exist in namespace {ns}; waiting for it",
                backup.spec.cluster_name
            )),
            ..EtcdBackupStatus::default()
        },
        Some(cluster) => {
            let names = render::cluster_names(&cluster)?;
            let store = backup
                .spec
                .store
                .clone()
                .or_else(|| cluster.spec.backup.as_ref().map(|b| b.store.clone()));
            match store {
                None => EtcdBackupStatus {
                    phase: BackupPhase::Failed,
                    message: Some(format!(
                        "no store: set spec.store, or spec.backup.store of EtcdCluster {}",
                        names.name
                    )),
                    ..EtcdBackupStatus::default()
                },
                Some(store) => {
                    let store = with_prefix(&default_prefix(&names), store);
                    let at = location(&names, &store);
                    match jobs.get_opt(&name).await? {
                        None => {
                            let compression = backup
                                .spec
                                .compression
                                .or(cluster.spec.backup.as_ref().map(|b| b.compression))
                                .unwrap_or_default();
                            let owner = backup
                                .controller_owner_ref(&())
                                .ok_or(Error::MissingMetadata("uid"))?;
                            let task = Task::Save {
                                store: &store,
                                compression,
                                // One backup on demand never deletes others, and no
                                // schedule's retention deletes it.
                                keep_last: None,
                                max_age: None,
                                on_demand: true,
                            };
                            let mut new = job::job(
                                &names,
                                &owner,
                                name.clone(),
                                &cluster.spec,
                                &ctx.render,
                                &task,
                            );
                            // Where it writes, read back from the Job itself later (the
                            // cluster's store may change while it runs).
                            new.annotations_mut().insert(
                                STORE_ANNOTATION.to_string(),
                                serde_json::to_string(&store)?,
                            );
                            let params = create_params();
                            jobs.create(&params, &new).await?;
                            EtcdBackupStatus {
                                phase: BackupPhase::Running,
                                job: Some(name.clone()),
                                store: Some(store.clone()),
                                message: Some(format!("backing up to {at}")),
                                ..EtcdBackupStatus::default()
                            }
                        }
                        Some(found) => {
                            let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
                            let pods = pods
                                .list(&ListParams::default().labels(&format!("job-name={name}")))
                                .await?
                                .items;
                            let outcome = assess::outcome(&found, &pods);
                            let record = assess::record(&outcome, &at);
                            EtcdBackupStatus {
                                phase: match outcome.succeeded {
                                    None => BackupPhase::Running,
                                    Some(true) => BackupPhase::Succeeded,
                                    Some(false) => BackupPhase::Failed,
                                },
                                job: Some(name.clone()),
                                name: record.name,
                                location: record.location,
                                // Where the Job writes, as recorded on it.
                                store: found
                                    .annotations()
                                    .get(STORE_ANNOTATION)
                                    .and_then(|s| serde_json::from_str(s).ok())
                                    .or(previous.store.clone())
                                    .or(Some(store.clone())),
                                revision: record.revision,
                                size: record.size,
                                message: record
                                    .message
                                    .or_else(|| Some(format!("backing up to {at}")))
                                    .filter(|_| outcome.succeeded != Some(true)),
                                completion_time: record.time,
                            }
                        }
                    }
                }
            }
        }
    };

    if status != previous {
        let api: Api<EtcdBackup> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = serde_json::json!({
            "apiVersion": EtcdBackup::api_version(&()),
            "kind": EtcdBackup::kind(&()),
            "status": status,
        });
        api.patch_status(&backup.name_any(), &apply_params(), &Patch::Apply(&patch))
            .await?;
        if let Some(event) = finished_event(&status) {
            if let Err(e) = ctx.recorder.publish(&event, &backup.object_ref(&())).await {
                tracing::warn!(error = %e, "publishing an event");
            }
        }
    }
    Ok(match status.phase {
        BackupPhase::Succeeded | BackupPhase::Failed => Action::await_change(),
        // The Job's changes wake this up; the requeue covers a missed watch event.
        _ => Action::requeue(std::time::Duration::from_secs(30)),
    })
}

fn finished_event(status: &EtcdBackupStatus) -> Option<Event> {
    let (type_, reason, note) = match status.phase {
        BackupPhase::Succeeded => (
            EventType::Normal,
            "BackupSucceeded",
            format!(
                "backup {} stored at {} (revision {})",
                status.name.as_deref().unwrap_or("?"),
                status.location.as_deref().unwrap_or("?"),
                status.revision.unwrap_or_default()
            ),
        ),
        BackupPhase::Failed => (
            EventType::Warning,
            "BackupFailed",
            status.message.clone().unwrap_or_default(),
        ),
        _ => return None,
    };
    Some(Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: "Backup".to_string(),
        secondary: None,
    })
}
