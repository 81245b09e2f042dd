//! The pods that run `ballast backup`: the CronJob of `spec.backup`, the Job of an
//! `EtcdBackup`, and the Job that fetches and verifies a backup before a cluster is
//! restored from it. Pure functions of the spec, as [`crate::render`] is.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, EnvVar, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec,
    ResourceRequirements, SecretEnvSource, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::{client_secret, location, VOLUME_MOUNT};
use crate::crd::{BackupStore, Compression, EtcdClusterSpec};
use crate::names::{ClusterNames, MANAGED_BY};
use crate::render::{
    container_security, empty_dir, image, mount, pod_security, quantities, secret_volume,
    RenderContext, DATA_DIR, DATA_MOUNT,
};

/// Label naming the cluster a backup object belongs to (the member selector labels are
/// not used: backup pods must never count as members).
pub const CLUSTER_LABEL: &str = "ballast.dev/cluster";
/// `app.kubernetes.io/component` of every backup object.
pub const COMPONENT: &str = "backup";
/// The container that runs `ballast backup`; its termination message is the result.
pub const CONTAINER: &str = "backup";
const CLIENT_DIR: &str = "/etc/ballast/client";

/// Labels of backup objects of `names`' cluster.
pub fn labels(names: &ClusterNames) -> BTreeMap<String, String> {
    BTreeMap::from([
        (CLUSTER_LABEL.to_string(), names.name.clone()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            MANAGED_BY.to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            COMPONENT.to_string(),
        ),
    ])
}

/// The selector of `names`' backup objects.
pub fn selector(names: &ClusterNames) -> String {
    format!(
        "{CLUSTER_LABEL}={},app.kubernetes.io/component={COMPONENT}",
        names.name
    )
}

/// Name of the CronJob of `spec.backup`.
pub fn cron_job_name(names: &ClusterNames) -> String {
    format!("{}-backup", names.name)
}

/// Name of the Job that checks the backup of `spec.restore`.
pub fn restore_check_name(names: &ClusterNames) -> String {
    format!("{}-restore-check", names.name)
}

/// What a backup pod is asked to do.
pub enum Task<'a> {
    /// `ballast backup save` into `store`, then retention.
    Save {
        /// Where to.
        store: &'a BackupStore,
        /// `--compress`.
        compression: Compression,
        /// `--keep-last`.
        keep_last: Option<i32>,
        /// `--max-age`.
        max_age: Option<std::time::Duration>,
        /// `--on-demand`: an `EtcdBackup`'s, which no schedule's retention deletes.
        on_demand: bool,
    },
    /// `ballast backup fetch` of `backup` from `store` into scratch space: checks that the
    /// backup exists and that its checksums hold, before any member restores it.
    Check {
        /// Where from.
        store: &'a BackupStore,
        /// The backup's name in the store.
        backup: &'a str,
        /// `--hold`: who restores from it. The hold keeps any schedule's retention (this
        /// cluster's or another's sharing the prefix) from deleting the backup while the
        /// members restore it.
        holder: String,
    },
    /// `ballast backup restore-member` on a stopped member's claim: its data replaced by
    /// `backup` as member `member` of a new cluster (a rollback).
    RestoreMember {
        /// Where from.
        store: &'a BackupStore,
        /// The backup's name in the store.
        backup: &'a str,
        /// The member's PersistentVolumeClaim.
        claim: String,
        /// The member's name.
        member: String,
        /// Every member of the new cluster, `name=peer-url,...`.
        initial_cluster: String,
        /// The new cluster's token.
        token: String,
        /// This member's peer URL.
        peer_url: String,
        /// `--bump-revision`.
        bump_revision: Option<i64>,
    },
    /// `ballast defrag`: every member, one at a time, the leader last; nothing while the
    /// cluster is unhealthy.
    Defrag,
}

impl Task<'_> {
    fn store(&self) -> Option<&BackupStore> {
        match self {
            Task::Save { store, .. }
            | Task::Check { store, .. }
            | Task::RestoreMember { store, .. } => Some(store),
            Task::Defrag => None,
        }
    }

    /// Whether it talks to the members (with the operator's client certificate).
    fn dials_members(&self) -> bool {
        matches!(self, Task::Save { .. } | Task::Defrag)
    }

    /// Attempts before the Job fails. A save or a defragmentation runs once: what it
    /// reports is one attempt (a retry would hide a flaky store behind a success, and the
    /// next scheduled run is the retry). A check or a member restore is safe to repeat
    /// (`restore-member` does nothing a second time) and blocks a restore or a rollback
    /// until it succeeds, so a passing fault (a node drained, a store hiccup) gets retries.
    fn attempts(&self) -> i32 {
        match self {
            Task::Save { .. } | Task::Defrag => 1,
            Task::Check { .. } | Task::RestoreMember { .. } => 3,
        }
    }
}

/// Whether a claim with these access modes can be mounted on several nodes at once
/// (ReadWriteMany or ReadOnlyMany): restore Jobs of several members then run together.
pub fn shared_access(modes: &[String]) -> bool {
    modes
        .iter()
        .any(|m| m == "ReadWriteMany" || m == "ReadOnlyMany")
}

/// `--endpoints` and the client certificate flags of a command that dials the members.
fn member_flags(names: &ClusterNames, spec: &EtcdClusterSpec) -> [String; 4] {
    let endpoints: Vec<String> = names
        .members(spec.replicas)
        .iter()
        .map(|m| names.member_client_url(m))
        .collect();
    [
        format!("--endpoints={}", endpoints.join(",")),
        format!("--cacert={CLIENT_DIR}/ca.crt"),
        format!("--cert={CLIENT_DIR}/tls.crt"),
        format!("--key={CLIENT_DIR}/tls.key"),
    ]
}

/// The pod that carries out `task` for the cluster of `names`.
pub fn pod(
    names: &ClusterNames,
    spec: &EtcdClusterSpec,
    ctx: &RenderContext,
    task: &Task,
) -> PodTemplateSpec {
    let store = task.store();
    let at = store.map(|s| location(names, s)).unwrap_or_default();
    let mut command: Vec<String> = vec!["ballast".into(), "backup".into()];
    match task {
        Task::Defrag => {
            command = vec!["ballast".into(), "defrag".into()];
            command.extend(member_flags(names, spec));
        }
        Task::Save {
            compression,
            keep_last,
            max_age,
            on_demand,
            ..
        } => {
            command.push("save".to_string());
            command.extend(member_flags(names, spec));
            command.extend([
                format!("--to={at}"),
                format!("--compress={}", compression.flag()),
            ]);
            if let Some(n) = keep_last {
                command.push(format!("--keep-last={n}"));
            }
            if let Some(age) = max_age {
                command.push(format!("--max-age={}s", age.as_secs()));
            }
            if *on_demand {
                command.push("--on-demand".to_string());
            }
        }
        Task::Check { backup, holder, .. } => command.extend([
            "fetch".to_string(),
            format!("--from={at}"),
            format!("--name={backup}"),
            "--output=/tmp/backup.db".to_string(),
            format!("--hold={holder}"),
            // Long enough for a restore whose pods wait, or a rollback left failed, to be
            // looked at; it lapses by itself.
            "--hold-for=168h".to_string(),
        ]),
        Task::RestoreMember {
            backup,
            member,
            initial_cluster,
            token,
            peer_url,
            bump_revision,
            ..
        } => {
            command.extend([
                "restore-member".to_string(),
                format!("--from={at}"),
                format!("--name={backup}"),
                format!("--data-dir={DATA_DIR}"),
                format!("--member={member}"),
                format!("--initial-cluster={initial_cluster}"),
                format!("--initial-cluster-token={token}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
            ]);
            if let Some(n) = bump_revision {
                command.push(format!("--bump-revision={n}"));
            }
        }
    }

    let (env, env_from) = store.map(s3_env).unwrap_or_default();
    // Scratch space: a checked backup is written here, then dropped with the pod.
    let mut volumes = vec![empty_dir_unbounded("tmp")];
    let mut mounts = vec![mount("tmp", "/tmp", false)];
    if task.dials_members() {
        volumes.push(secret_volume("client", &client_secret(names, spec)));
        mounts.push(mount("client", CLIENT_DIR, true));
    }
    if let Task::RestoreMember { claim, .. } = task {
        volumes.push(Volume {
            name: "data".to_string(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: Some(false),
            }),
            ..Volume::default()
        });
        mounts.push(mount("data", DATA_MOUNT, false));
    }
    if let Some(volume) = store.and_then(|s| s.volume.as_ref()) {
        volumes.push(Volume {
            name: "backups".to_string(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: volume.claim_name.clone(),
                read_only: Some(!matches!(task, Task::Save { .. })),
            }),
            ..Volume::default()
        });
        mounts.push(mount(
            "backups",
            VOLUME_MOUNT,
            !matches!(task, Task::Save { .. }),
        ));
    }

    let container = Container {
        name: CONTAINER.to_string(),
        image: Some(image(spec, ctx)),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        command: Some(command),
        env: (!env.is_empty()).then_some(env),
        env_from: (!env_from.is_empty()).then_some(env_from),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "50m"), ("memory", "64Mi")])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(container_security()),
        volume_mounts: Some(mounts),
        // `ballast backup` writes its JSON result (or its error) there; a crash before it
        // could leaves the last log lines instead.
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Container::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(names)),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            restart_policy: Some("Never".to_string()),
            volumes: Some(volumes),
            image_pull_secrets: spec.image_pull_secrets.clone(),
            node_selector: spec.pod.node_selector.clone(),
            tolerations: spec.pod.tolerations.clone(),
            security_context: Some(pod_security()),
            enable_service_links: Some(false),
            automount_service_account_token: Some(false),
            ..PodSpec::default()
        }),
    }
}

/// The environment through which `ballast backup` reaches an S3 store: its settings as
/// the variables the AWS SDKs read, and the credentials Secret's keys as they are.
pub fn s3_env(store: &BackupStore) -> (Vec<EnvVar>, Vec<EnvFromSource>) {
    let (mut env, mut env_from) = (Vec::new(), Vec::new());
    let Some(s3) = &store.s3 else {
        return (env, env_from);
    };
    let var = |name: &str, value: &str| EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..EnvVar::default()
    };
    env.push(var(
        "AWS_REGION",
        s3.region.as_deref().unwrap_or("us-east-1"),
    ));
    if let Some(endpoint) = &s3.endpoint {
        env.push(var("AWS_ENDPOINT", endpoint));
        if endpoint.starts_with("http://") {
            env.push(var("AWS_ALLOW_HTTP", "true"));
        }
    }
    if let Some(secret) = &s3.credentials_secret_name {
        env_from.push(EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret.clone(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        });
    }
    (env, env_from)
}

fn empty_dir_unbounded(name: &str) -> Volume {
    let mut v = empty_dir(name, false, "1Mi");
    if let Some(e) = v.empty_dir.as_mut() {
        e.size_limit = None;
    }
    v
}

fn meta(names: &ClusterNames, name: String, owner: &OwnerReference) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(labels(names)),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// `attempts` runs at most ([`Task::attempts`]), within an hour in all. A retry starts only
/// once the failed pod is gone (`podReplacementPolicy: Failed`): two restores must never
/// write one claim, even while a pod of a lost node is still terminating.
fn job_spec(template: PodTemplateSpec, attempts: i32) -> JobSpec {
    JobSpec {
        backoff_limit: Some(attempts - 1),
        pod_replacement_policy: (attempts > 1).then(|| "Failed".to_string()),
        active_deadline_seconds: Some(3600),
        template,
        ..JobSpec::default()
    }
}

/// The CronJob of `spec.backup` (`None` without one).
pub fn cron_job(
    names: &ClusterNames,
    owner: &OwnerReference,
    spec: &EtcdClusterSpec,
    ctx: &RenderContext,
) -> Option<CronJob> {
    let backup = spec.backup.as_ref()?;
    let task = Task::Save {
        store: &backup.store,
        compression: backup.compression,
        keep_last: backup.keep_last,
        max_age: backup.max_age.map(Into::into),
        on_demand: false,
    };
    let template = pod(names, spec, ctx, &task);
    Some(scheduled(
        names,
        owner,
        cron_job_name(names),
        &backup.schedule,
        backup.suspend,
        template,
    ))
}

/// Name of the CronJob of `spec.maintenance.defrag`.
pub fn defrag_cron_job_name(names: &ClusterNames) -> String {
    format!("{}-defrag", names.name)
}

/// The CronJob of `spec.maintenance.defrag` (`None` without one).
pub fn defrag_cron_job(
    names: &ClusterNames,
    owner: &OwnerReference,
    spec: &EtcdClusterSpec,
    ctx: &RenderContext,
) -> Option<CronJob> {
    let defrag = spec.maintenance.as_ref()?.defrag.as_ref()?;
    let template = pod(names, spec, ctx, &Task::Defrag);
    Some(scheduled(
        names,
        owner,
        defrag_cron_job_name(names),
        &defrag.schedule,
        defrag.suspend,
        template,
    ))
}

fn scheduled(
    names: &ClusterNames,
    owner: &OwnerReference,
    name: String,
    schedule: &str,
    suspend: bool,
    template: PodTemplateSpec,
) -> CronJob {
    CronJob {
        metadata: meta(names, name, owner),
        spec: Some(CronJobSpec {
            schedule: schedule.to_string(),
            time_zone: Some("Etc/UTC".to_string()),
            // Two runs at once only load the members twice.
            concurrency_policy: Some("Forbid".to_string()),
            suspend: Some(suspend),
            // A run missed by more than this (operator or control plane down) is skipped:
            // the next one comes on schedule.
            starting_deadline_seconds: Some(300),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(names)),
                    ..ObjectMeta::default()
                }),
                spec: Some(job_spec(template, 1)),
            },
        }),
        status: None,
    }
}

/// A Job named `name` that carries out `task` once, owned by `owner`.
pub fn job(
    names: &ClusterNames,
    owner: &OwnerReference,
    name: String,
    spec: &EtcdClusterSpec,
    ctx: &RenderContext,
    task: &Task,
) -> Job {
    Job {
        metadata: meta(names, name, owner),
        spec: Some(job_spec(pod(names, spec, ctx, task), task.attempts())),
        status: None,
    }
}
