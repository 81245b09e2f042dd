//! The reconcile loop: kube-runtime's `Controller` over `EtcdCluster` and the objects it
//! owns. Everything here talks to Kubernetes or to the members; what to do is decided by
//! the pure functions in [`crate::render`], [`crate::tls`], [`crate::pki`] and
//! [`crate::status`].
//!
//! One reconcile: ensure the finalizer; make sure there is a CA (create the operator's
//! once, or read the user's, never replace either); issue or renew certificates into their
//! Secrets; server-side apply the Services, the PodDisruptionBudget and the StatefulSet with
//! owner references; grow volumes; ask the members for membership, leader and health; write
//! status and conditions; publish Events for what changed; requeue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use time::OffsetDateTime;

mod backups;
pub mod etcd_backup;

use backups::RestoreGate;
use k8s_openapi::api::batch::v1::{CronJob, Job};

use crate::crd::{CertificateStatus, EtcdCluster};
use crate::error::Error;
use crate::lifecycle::{self, Step};
use crate::member_identity;
use crate::members::{MemberStatusSource, Target};
use crate::membership::{self, Outcome};
use crate::metrics::Metrics;
use crate::names::{ClusterNames, FIELD_MANAGER, MANAGED_BY};
use crate::pki::{self, Ca, CertInfo};
use crate::render::{self, Live, RenderContext};
use crate::status::{self, Observed, Problem, WorkloadState};
use crate::tls::{self, StoredSecrets};

/// Finalizer on every `EtcdCluster` the operator has acted on.
pub const FINALIZER: &str = "ballast.dev/cleanup";

/// A clock, so tests can pin time.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Shared state of the controller.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// How member status is gathered.
    pub members: Arc<dyn MemberStatusSource>,
    /// Operator settings that shape rendering.
    pub render: RenderContext,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Time source.
    pub clock: Clock,
    /// Consecutive failures per cluster, for error backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context with the system clock.
    pub fn new(
        client: Client,
        members: Arc<dyn MemberStatusSource>,
        render: RenderContext,
        metrics: Arc<Metrics>,
        reporter: Reporter,
    ) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            members,
            render,
            metrics,
            clock: Arc::new(Timestamp::now),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the controller until `shutdown` resolves: over every namespace when `namespaces` is
/// empty, else one controller per listed namespace (so the operator needs rights in those
/// namespaces only).
pub async fn run(
    ctx: Arc<Context>,
    namespaces: &[String],
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let shutdown = shutdown.shared();
    if namespaces.is_empty() {
        run_scoped(ctx, None, shutdown).await;
        return;
    }
    futures::future::join_all(
        namespaces
            .iter()
            .map(|ns| run_scoped(ctx.clone(), Some(ns.as_str()), shutdown.clone())),
    )
    .await;
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn run_scoped(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    futures::join!(
        run_clusters(ctx.clone(), namespace, shutdown.clone()),
        etcd_backup::run(ctx, namespace, shutdown),
    );
}

async fn run_clusters(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));
    Controller::new(
        scoped::<EtcdCluster>(&client, namespace),
        watcher::Config::default().any_semantic(),
    )
    .owns(scoped::<StatefulSet>(&client, namespace), owned.clone())
    .owns(scoped::<Service>(&client, namespace), owned.clone())
    .owns(scoped::<Secret>(&client, namespace), owned.clone())
    .owns(
        scoped::<PodDisruptionBudget>(&client, namespace),
        owned.clone(),
    )
    .owns(scoped::<CronJob>(&client, namespace), owned.clone())
    // The restore check is owned by the cluster; the CronJob's runs are owned by the
    // CronJob, and name their cluster in a label.
    .watches(
        scoped::<Job>(&client, namespace),
        watcher::Config::default().labels(&format!(
            "app.kubernetes.io/component={}",
            crate::backup::job::COMPONENT
        )),
        |job| {
            let cluster = job.labels().get(crate::backup::job::CLUSTER_LABEL)?.clone();
            Some(
                kube::runtime::reflector::ObjectRef::<EtcdCluster>::new(&cluster)
                    .within(&job.namespace()?),
            )
        },
    )
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, ctx)
    .for_each(|result| async move {
        match result {
            Ok((obj, _)) => tracing::debug!(cluster = %obj, "reconciled"),
            Err(e) => tracing::warn!(error = %e, "reconcile failed"),
        }
    })
    .await;
}

fn key(cluster: &EtcdCluster) -> String {
    format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    )
}

/// Reconciles one cluster (kube-runtime calls this). One span per reconcile, so every log
/// line of it (membership steps, Jobs, status) can be followed by cluster.
#[tracing::instrument(
    name = "reconcile",
    skip_all,
    fields(cluster = %key(&cluster), generation = cluster.metadata.generation.unwrap_or_default())
)]
pub async fn reconcile(cluster: Arc<EtcdCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = cluster
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<EtcdCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let key = key(&cluster);
    let result = finalizer(&api, FINALIZER, cluster, |event| async {
        match event {
            FinalizerEvent::Apply(c) => apply(c, ctx.clone()).await,
            FinalizerEvent::Cleanup(c) => cleanup(c, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    let outcome = match &result {
        Ok(_) => {
            ctx.failures().remove(&key);
            "ok"
        }
        Err(e) => e.metric_label(),
    };
    ctx.metrics.record(outcome, started.elapsed().as_secs_f64());
    result
}

/// Backoff after `failures` consecutive failed reconciles: 5s doubling to 5 minutes.
pub fn error_backoff(failures: u32) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << failures.saturating_sub(1).min(6));
    Duration::from_secs(secs.min(300))
}

/// What kube-runtime does after a failed reconcile.
pub fn error_policy(cluster: Arc<EtcdCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = {
        let mut map = ctx.failures();
        let n = map.entry(key(&cluster)).or_insert(0);
        *n += 1;
        *n
    };
    let wait = error_backoff(failures);
    tracing::warn!(cluster = %key(&cluster), %error, failures, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

/// An Event to publish about the cluster.
struct Note {
    warning: bool,
    reason: String,
    note: String,
    /// Events with the same reason, action and related object are counted as one series
    /// (their later notes are dropped), so transitions of different conditions carry the
    /// condition as their action, and lifecycle steps the member's pod as related object.
    action: String,
    pod: Option<String>,
}

impl Note {
    fn new(warning: bool, reason: impl Into<String>, note: String) -> Self {
        Note {
            warning,
            reason: reason.into(),
            note,
            action: "Reconcile".to_string(),
            pod: None,
        }
    }
}

async fn publish(ctx: &Context, cluster: &EtcdCluster, n: Note) {
    let event = Event {
        type_: if n.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: n.reason.clone(),
        note: Some(n.note),
        action: n.action,
        secondary: n
            .pod
            .map(|name| k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some("v1".to_string()),
                kind: Some("Pod".to_string()),
                name: Some(name),
                namespace: cluster.namespace(),
                ..Default::default()
            }),
    };
    let reason = n.reason;
    // An Event that cannot be written must not fail the reconcile that did the work.
    if let Err(e) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
        tracing::warn!(error = %e, %reason, "publishing an event");
    }
}

/// Create, not apply: if another writer got there first, the create fails and the next
/// reconcile reads theirs instead of overwriting it.
fn create_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

async fn server_side_apply<K>(api: &Api<K>, obj: &K) -> Result<K, Error>
where
    K: Resource + Clone + Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingMetadata("name"))?;
    Ok(api
        .patch(&name, &apply_params(), &Patch::Apply(obj))
        .await?)
}

fn to_offset(ts: Timestamp) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::from_unix_timestamp(ts.as_second())
        .map_err(|e| Error::Parse(format!("clock: {e}")))
}

struct PkiOutcome {
    certificates: Option<CertificateStatus>,
    target: Option<(String, String, String)>,
    /// The operator's CA, to sign certificates for the keys members make.
    ca: Option<Ca>,
}

impl PkiOutcome {
    fn none() -> Self {
        PkiOutcome {
            certificates: None,
            target: None,
            ca: None,
        }
    }
}

/// Problems with a user's Secrets become conditions, not reconcile errors: retrying fast
/// will not fix them, the user must.
fn user_problem(e: &Error) -> Option<Problem> {
    match e {
        Error::UserSecret { .. }
        | Error::NotACa
        | Error::KeyMismatch
        | Error::UnsupportedKey(_) => Some(Problem {
            reason: "CertificateAuthorityInvalid".to_string(),
            message: e.to_string(),
            blocking: true,
        }),
        _ => None,
    }
}

async fn read_secret(api: &Api<Secret>, name: &str) -> Result<Option<tls::SecretText>, Error> {
    Ok(api.get_opt(name).await?.map(|s| tls::secret_text(&s)))
}

async fn ensure_pki(
    cluster: &EtcdCluster,
    names: &ClusterNames,
    legacy_members: Option<i32>,
    ctx: &Context,
    problems: &mut Vec<Problem>,
    notes: &mut Vec<Note>,
) -> Result<PkiOutcome, Error> {
    let spec = &cluster.spec;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let now = (ctx.clock)();

    if let Some(existing) = &spec.tls.existing {
        let name = &existing.operator_client_secret_name;
        let client = read_secret(&secrets, name)
            .await?
            .ok_or_else(|| Error::UserSecret {
                name: name.clone(),
                problem: "does not exist".to_string(),
            })?;
        let get = |k: &str| {
            client.get(k).cloned().ok_or_else(|| Error::UserSecret {
                name: name.clone(),
                problem: format!("has no {k}"),
            })
        };
        let (ca, cert, key) = (get("ca.crt")?, get("tls.crt")?, get("tls.key")?);
        let server = read_secret(&secrets, &existing.server_secret_name).await?;
        let leaf = server
            .as_ref()
            .and_then(|s| s.get("tls.crt"))
            .and_then(|c| CertInfo::from_pem(c).ok())
            .map(|i| i.not_after);
        let certificates = CertificateStatus {
            ca_not_after: CertInfo::from_pem(&ca)
                .ok()
                .and_then(|i| Timestamp::from_second(i.not_after).ok())
                .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
            leaf_not_after: leaf
                .and_then(|t| Timestamp::from_second(t).ok())
                .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
            renewal_time: None,
        };
        return Ok(PkiOutcome {
            certificates: Some(certificates),
            target: Some((ca, cert, key)),
            ca: None,
        });
    }

    let ca: Ca = match &spec.tls.ca_secret_name {
        Some(name) => {
            let data = read_secret(&secrets, name)
                .await?
                .ok_or_else(|| Error::UserSecret {
                    name: name.clone(),
                    problem: "does not exist".to_string(),
                })?;
            tls::ca_from_secret(name, &data)?
        }
        None => match read_secret(&secrets, &names.ca_secret()).await? {
            // Present: use it as it is, whatever it holds. Replacing a CA would cut every
            // client that trusts it off the cluster.
            Some(data) => tls::ca_from_secret(&names.ca_secret(), &data)?,
            None => {
                let pem = pki::generate_ca(to_offset(now)?)?;
                let owner = render::owner_reference(cluster)?;
                let secret = tls::secret(
                    names,
                    &owner,
                    names.ca_secret(),
                    "Opaque",
                    tls::SecretText::from([
                        ("ca.crt".to_string(), pem.cert.clone()),
                        ("ca.key".to_string(), pem.key.clone()),
                    ]),
                );
                let params = create_params();
                secrets.create(&params, &secret).await?;
                notes.push(Note::new(
                    false,
                    "CertificateAuthorityCreated".to_string(),
                    format!("created CA in Secret {}", names.ca_secret()),
                ));
                Ca::from_pem(&pem.cert, &pem.key)?
            }
        },
    };

    let renew_before: Duration = spec.tls.renew_before.into();
    let ca_left = ca.not_after() - now.as_second();
    if ca_left <= 0 {
        problems.push(Problem {
            reason: "CertificateAuthorityExpired".to_string(),
            message: "the CA has expired; members reject each other and clients. Provide a new CA (tls.caSecretName) and restart the members".to_string(),
            blocking: false,
        });
    } else if ca_left < renew_before.as_secs() as i64 {
        problems.push(Problem {
            reason: "CertificateAuthorityExpiringSoon".to_string(),
            message: format!(
                "the CA expires in {} days; the operator never replaces a CA by itself",
                ca_left / 86_400
            ),
            blocking: false,
        });
    }

    let stored = StoredSecrets {
        server: read_secret(&secrets, &names.server_secret()).await?,
        peer: read_secret(&secrets, &names.peer_secret()).await?,
        healthcheck: read_secret(&secrets, &names.healthcheck_client_secret()).await?,
        apiserver: read_secret(&secrets, &names.apiserver_client_secret()).await?,
        operator: read_secret(&secrets, &names.operator_client_secret()).await?,
    };
    let owner = render::owner_reference(cluster)?;
    let plan = tls::plan(
        names,
        spec,
        legacy_members,
        &ca,
        &stored,
        &owner,
        to_offset(now)?,
    )?;
    for secret in &plan.apply {
        server_side_apply(&secrets, secret).await?;
    }
    for name in &plan.delete {
        secrets.delete(name, &Default::default()).await?;
        notes.push(Note::new(
            false,
            "SecretDeleted",
            format!("deleted Secret {name}: no member mounts it any more; each member holds only its own key"),
        ));
    }
    if !plan.issued.is_empty() {
        ctx.metrics
            .certificates_issued
            .inc_by(plan.issued.len() as u64);
        notes.push(issued_note(&plan.issued));
    }
    Ok(PkiOutcome {
        certificates: Some(plan.certificates),
        target: Some((
            ca.cert_pem().to_string(),
            plan.operator_client.cert,
            plan.operator_client.key,
        )),
        ca: Some(ca),
    })
}

fn issued_note(issued: &[tls::IssuedNote]) -> Note {
    let list: Vec<String> = issued
        .iter()
        .map(|n| format!("{} ({})", n.what, n.reason))
        .collect();
    Note::new(
        false,
        "CertificatesIssued".to_string(),
        format!("issued {}", list.join(", ")),
    )
}

/// How many members' keys the Secrets of earlier versions must still hold: `None` once no
/// pod mounts them and the live StatefulSet's template (which a recreated pod would get
/// until the new template is applied) does not either.
fn legacy_members(
    names: &ClusterNames,
    pods: &[Pod],
    statefulset: Option<&StatefulSet>,
    member_slots: i32,
) -> Option<i32> {
    let legacy = [names.server_secret(), names.peer_secret()];
    let template = statefulset
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.template.spec.as_ref());
    pods.iter()
        .filter_map(|p| p.spec.as_ref())
        .chain(template)
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.secret.as_ref()?.secret_name.as_ref())
        .any(|name| legacy.contains(name))
        .then_some(member_slots)
}

/// The StatefulSet's progress as the status logic sees it.
pub fn workload_state(sts: Option<&StatefulSet>) -> WorkloadState {
    let Some(sts) = sts else {
        return WorkloadState::default();
    };
    let status = sts.status.clone().unwrap_or_default();
    WorkloadState {
        exists: true,
        observed: status.observed_generation.unwrap_or(0) >= sts.metadata.generation.unwrap_or(0),
        replicas: status.replicas,
        ready_replicas: status.ready_replicas.unwrap_or(0),
        updated_replicas: status.updated_replicas.unwrap_or(0),
        // With `OnDelete` the StatefulSet controller never moves `currentRevision` on, so
        // every pod being on the update revision is what says a rollout is done.
        revisions_match: (status.current_revision.is_some()
            && status.current_revision == status.update_revision)
            || (status.update_revision.is_some()
                && status.updated_replicas == Some(status.replicas)),
    }
}

/// Claims whose storage request is below `desired`: they are grown in place, since claim
/// templates of a StatefulSet cannot change.
pub fn claims_to_grow(
    desired: &str,
    claims: &[PersistentVolumeClaim],
) -> Result<Vec<String>, Error> {
    let want = crate::quantity::to_bytes(desired)?;
    let mut out = Vec::new();
    for claim in claims {
        let current = claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| crate::quantity::to_bytes(&q.0))
            .transpose()?;
        if current.is_some_and(|c| c < want) {
            out.push(claim.name_any());
        }
    }
    Ok(out)
}

async fn apply(cluster: Arc<EtcdCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let names = render::cluster_names(&cluster)?;
    let client = ctx.client.clone();
    let ns = names.namespace.clone();
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let mut problems = Vec::new();
    let mut notes: Vec<Note> = Vec::new();

    let existing = sts_api.get_opt(&names.statefulset()).await?;
    let mut live = Live::from_statefulset(existing.as_ref());
    // Pods beyond spec.replicas keep their certificates until they are gone.
    let member_slots = cluster.spec.replicas.max(live.pods.unwrap_or(0));
    // The backup Jobs and their pods, for everything below that follows them.
    let seen_jobs = backups::Seen::list(&client, &cluster, &names, existing.is_none()).await?;
    // A restored cluster's members wait until its backup has been checked.
    let (gate, restored_from) = if existing.is_none() {
        backups::restore_gate(&client, &cluster, &names, &ctx.render, &seen_jobs).await?
    } else {
        // Created: the members keep the backup they were created from.
        let source = backups::restore_source(&client, &cluster, &names)
            .await?
            .ok();
        (RestoreGate::Open, source)
    };
    live.restore_source = restored_from.clone();
    if let RestoreGate::Failed(message) = &gate {
        problems.push(Problem {
            reason: "RestoreFailed".to_string(),
            message: message.clone(),
            blocking: true,
        });
    }

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod_list = pods
        .list(&ListParams::default().labels(&names.selector_string()))
        .await?
        .items;
    let pki = if problems.iter().any(|p| p.blocking) {
        PkiOutcome::none()
    } else {
        match ensure_pki(
            &cluster,
            &names,
            legacy_members(&names, &pod_list, existing.as_ref(), member_slots),
            &ctx,
            &mut problems,
            &mut notes,
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(e) => match user_problem(&e) {
                Some(p) => {
                    problems.push(p);
                    PkiOutcome::none()
                }
                None => return Err(e),
            },
        }
    };

    // Ask the members before deciding anything about them.
    let target = pki.target.as_ref().map(|(ca, cert, key)| Target {
        endpoints: names
            .members(member_slots)
            .into_iter()
            .map(|m| {
                let url = names.member_client_url(&m);
                (m, url)
            })
            .collect(),
        ca_pem: ca.clone(),
        cert_pem: cert.clone(),
        key_pem: key.clone(),
    });
    let members = match (&target, live.pods.unwrap_or(0) > 0) {
        (Some(target), true) => Some(ctx.members.observe(target).await.map_err(|e| e.to_string())),
        _ => None,
    };

    // The next member lifecycle step, decided from what was just observed; never while
    // a blocking problem stands or the members are more than one cluster.
    let view = members.as_ref().and_then(|m| m.as_ref().ok());
    let (mut step, state) = match (view, existing.as_ref()) {
        (Some(view), Some(statefulset))
            if !problems.iter().any(|p| p.blocking)
                && status::cluster_id_mismatch(view).is_none() =>
        {
            let state = membership::read_state(&client, &names).await?;
            let facts = membership::facts(
                &client,
                ctx.members.as_ref(),
                &cluster,
                &names,
                view,
                statefulset,
                &state,
                (ctx.clock)(),
            )
            .await?;
            let step = lifecycle::next_step(&facts);
            tracing::info!(cluster = %key(&cluster), ?step, "member lifecycle");
            (Some(step), state)
        }
        _ => (None, membership::StateData::default()),
    };
    if let Some(Step::SetPods(_, n)) = &step {
        live.pods = Some(*n);
    }
    live.voters = view.map(membership::voters).filter(|v| *v > 0);
    let mut operation = step.as_ref().and_then(|s| membership::progress(s, &names));
    problems.extend(step.as_ref().and_then(membership::problem));

    if let RestoreGate::Checking(message) = &gate {
        operation = Some(("Restoring".to_string(), message.clone()));
    }
    // A rollback decides the member pods while it stops, restores and starts them; the
    // lifecycle waits for it (and it waits for an operation under way).
    let rollback = match &existing {
        Some(_) => {
            // Pods that exist, or that the StatefulSet may still make: no claim is
            // restored until both are none.
            let pods = (pod_list.len() as i32).max(
                existing
                    .as_ref()
                    .and_then(|s| s.spec.as_ref())
                    .and_then(|s| s.replicas)
                    .unwrap_or(0),
            );
            backups::rollback(
                &client,
                &cluster,
                &names,
                &ctx.render,
                pods,
                view.is_some_and(membership::has_quorum),
                operation.is_some(),
                (ctx.clock)(),
                &seen_jobs,
            )
            .await?
        }
        None => None,
    };
    if let Some(rb) = &rollback {
        if rb.step.holds_members(rb.stopped) {
            step = None;
        }
        if let Some(n) = rb.step.pods(rb.members, rb.stopped) {
            live.pods = Some(n);
        }
        if let Some(op) = &rb.operation {
            operation = Some(op.clone());
        }
        problems.extend(rb.problem.clone());
        if let Some((warning, reason, note)) = &rb.news {
            notes.push(Note::new(*warning, *reason, note.clone()));
        }
    }
    let mut sts = existing.clone();
    if !problems.iter().any(|p| p.blocking) && gate == RestoreGate::Open {
        let rendered = render::render(&cluster, &ctx.render, &live)?;
        let services: Api<Service> = Api::namespaced(client.clone(), &ns);
        server_side_apply(&services, &rendered.peer_service).await?;
        server_side_apply(&services, &rendered.client_service).await?;
        let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
        server_side_apply(&pdbs, &rendered.pdb).await?;
        sts = Some(server_side_apply(&sts_api, &rendered.statefulset).await?);

        if let Some(template) = &live.claim_template_size {
            if crate::quantity::to_bytes(template)?
                < crate::quantity::to_bytes(&cluster.spec.storage.size)?
            {
                let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
                let claims = pvcs
                    .list(&ListParams::default().labels(&names.selector_string()))
                    .await?;
                for claim in claims_to_grow(&cluster.spec.storage.size, &claims.items)? {
                    let patch = serde_json::json!({
                        "spec": {"resources": {"requests": {"storage": cluster.spec.storage.size}}}
                    });
                    pvcs.patch(&claim, &PatchParams::default(), &Patch::Merge(&patch))
                        .await?;
                    notes.push(Note::new(
                        false,
                        "VolumeExpansionRequested".to_string(),
                        format!("asked to grow {claim} to {}", cluster.spec.storage.size),
                    ));
                }
            }
        }
    }

    // Members that make their own key get their certificates signed (and renewed).
    let mut certificates = pki.certificates;
    let mut members_waiting = false;
    if let (Some(ca), false) = (&pki.ca, problems.iter().any(|p| p.blocking)) {
        let signing = member_identity::Signing {
            ca,
            now: to_offset((ctx.clock)())?,
            validity: cluster.spec.tls.validity.into(),
            renew_before: cluster.spec.tls.renew_before.into(),
        };
        let synced =
            member_identity::sync(&client, ctx.members.as_ref(), &names, &pod_list, signing)
                .await?;
        for (pod, issued) in synced.issued {
            ctx.metrics.certificates_issued.inc_by(issued.len() as u64);
            notes.push(Note {
                pod: Some(pod),
                ..issued_note(&issued)
            });
        }
        if let (Some(c), Some(member_end)) = (certificates.as_mut(), synced.earliest) {
            let renew_before = Duration::from(cluster.spec.tls.renew_before).as_secs() as i64;
            let earliest = c
                .leaf_not_after
                .as_ref()
                .map_or(member_end, |t| t.0.as_second().min(member_end));
            c.leaf_not_after = Timestamp::from_second(earliest).ok().map(Time);
            c.renewal_time = Timestamp::from_second(earliest - renew_before)
                .ok()
                .map(Time);
        }
        members_waiting = !synced.waiting.is_empty();
    }

    if let (Some(step), Some(target), Some(view)) = (&step, &target, view) {
        let quorum = membership::has_quorum(view);
        membership::sync_state(&client, &cluster, &names, &state, view.cluster_id, quorum).await?;
        match membership::carry_out(
            &client,
            ctx.members.as_ref(),
            &cluster,
            (ctx.clock)(),
            &names,
            target,
            view,
            step,
        )
        .await
        {
            Ok(Outcome::Done(reason, note)) => notes.push(Note {
                pod: step.ordinal().map(|o| names.member(o)),
                ..Note::new(false, reason, note)
            }),
            Ok(Outcome::NotYet(why)) => {
                if let Some((_, message)) = operation.as_mut() {
                    *message = why;
                }
            }
            Ok(Outcome::Nothing) => {}
            Err(e) => problems.push(Problem {
                reason: "MembershipChangeFailed".to_string(),
                message: format!("{step:?}: {e}"),
                blocking: false,
            }),
        }
    }
    let workload = workload_state(sts.as_ref());

    let now = (ctx.clock)();
    let hold_schedules = rollback.as_ref().is_some_and(|r| {
        !matches!(
            r.step,
            crate::backup::rollback::Step::Nothing | crate::backup::rollback::Step::Done
        )
    });
    // Backups start once the cluster exists; their Jobs' outcomes become status and Events.
    let backup = match &sts {
        Some(_) => {
            backups::scheduled(
                &client,
                &cluster,
                &names,
                &ctx.render,
                now,
                hold_schedules,
                &seen_jobs,
            )
            .await?
        }
        None => None,
    };
    if let Some(b) = &backup {
        for (warning, reason, note) in &b.news {
            notes.push(Note::new(*warning, *reason, note.clone()));
        }
    }
    let (defrag, defrag_news) = match &sts {
        Some(_) => {
            backups::defrag(
                &client,
                &cluster,
                &names,
                &ctx.render,
                hold_schedules,
                &seen_jobs,
            )
            .await?
        }
        None => (None, None),
    };
    if let Some((warning, reason, note)) = defrag_news {
        notes.push(Note::new(warning, reason, note));
    }
    ctx.metrics.record_backups(
        crate::metrics::ClusterLabels {
            namespace: ns.clone(),
            etcd_cluster: names.name.clone(),
        },
        match (&backup, &cluster.spec.backup) {
            (Some(b), Some(spec)) => crate::backup::schedule::period(&spec.schedule, now)
                .ok()
                .map(|p| {
                    let last = b
                        .status
                        .last_successful
                        .as_ref()
                        .and_then(|r| r.time.as_ref())
                        .map(|t| t.0.as_second());
                    (last, p.as_secs())
                }),
            _ => None,
        },
    );
    let observed = Observed {
        workload,
        members,
        certificates,
        problems,
        version: render::version(&cluster.spec, &ctx.render),
        operation: operation.clone(),
        paused: membership::paused(&cluster),
        backup,
        rollback: rollback.map(|r| r.status),
        defrag,
        // Recorded as soon as it is known (see backups::restore_gate).
        restored_from,
    };
    let new_status = status::compute(&cluster, &names, &observed, now);
    if cluster.status.as_ref() != Some(&new_status) {
        let api: Api<EtcdCluster> = Api::namespaced(client.clone(), &ns);
        let patch = serde_json::json!({
            "apiVersion": EtcdCluster::api_version(&()),
            "kind": EtcdCluster::kind(&()),
            "status": new_status,
        });
        api.patch_status(&names.name, &apply_params(), &Patch::Apply(&patch))
            .await?;
    }

    for t in status::transitions(cluster.status.as_ref(), &new_status) {
        notes.push(Note {
            action: t.condition.clone(),
            ..Note::new(t.warning, t.reason, t.note)
        });
    }
    for note in notes {
        publish(&ctx, &cluster, note).await;
    }
    // An operation under way is followed closely: each step waits on the one before.
    let wait = if operation.is_some() || members_waiting {
        Duration::from_secs(3)
    } else if cluster.spec.backup.is_some() {
        // A stale backup is noticed without any Job changing.
        status::requeue_after(&new_status, now).min(Duration::from_secs(60))
    } else {
        status::requeue_after(&new_status, now)
    };
    Ok(Action::requeue(wait))
}

/// Deletion: owned objects go with the cluster through their owner references, and the
/// volumes stay (the StatefulSet retains its claims), so what is left is the operator's
/// own bookkeeping and telling the user where the data is.
async fn cleanup(cluster: Arc<EtcdCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.failures().remove(&key(&cluster));
    let names = render::cluster_names(&cluster)?;
    ctx.metrics.record_backups(
        crate::metrics::ClusterLabels {
            namespace: names.namespace.clone(),
            etcd_cluster: names.name.clone(),
        },
        None,
    );
    publish(
        &ctx,
        &cluster,
        Note::new(
            false,
            "Deleting",
            format!(
                "deleting {}; its PersistentVolumeClaims ({}) are kept",
                names.name,
                render::claim_names(&names, cluster.spec.replicas).join(", ")
            ),
        ),
    )
    .await;
    Ok(Action::await_change())
}
