//! The controller against a mocked Kubernetes API server, in kube-rs's documented testing
//! style (`tower_test::mock` behind a real `kube::Client`): no API server can run here.
//! The mock keeps objects in memory, applies patches the way the API server would for the
//! fields the operator uses, records every request, and can be told to fail. The etcd
//! members are represented by a fixed [`ClusterView`] behind the `MemberStatusSource` trait.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballast_operator::controller::{self, error_backoff, Context};
use ballast_operator::crd::EtcdCluster;
use ballast_operator::error::Error;
use ballast_operator::leader::LeaseLock;
use ballast_operator::member_identity;
use ballast_operator::members::{
    ClusterView, MemberStatusSource, MembershipChange, ObservedMember, Target,
};
use ballast_operator::metrics::Metrics;
use ballast_operator::render::{self, Live, RenderContext};
use futures::future::BoxFuture;
use http::{Request, Response, StatusCode};
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::Client;
use serde_json::{json, Value};

const CLUSTER_PATH: &str = "/apis/ballast.dev/v1alpha1/namespaces/db/etcdclusters/main";
const STS_PATH: &str = "/apis/apps/v1/namespaces/db/statefulsets/main";

/// One request the operator made.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

#[derive(Default)]
struct ApiState {
    objects: BTreeMap<String, Value>,
    seen: Vec<Seen>,
    /// `(method, path fragment, status code)`: requests to fail.
    fail: Vec<(String, String, u16)>,
    version: u64,
}

#[derive(Clone, Default)]
struct FakeApi(Arc<Mutex<ApiState>>);

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

impl FakeApi {
    fn put(&self, path: &str, obj: Value) {
        self.0.lock().unwrap().objects.insert(path.to_string(), obj);
    }

    fn get(&self, path: &str) -> Option<Value> {
        self.0.lock().unwrap().objects.get(path).cloned()
    }

    fn fail(&self, method: &str, fragment: &str, code: u16) {
        self.0
            .lock()
            .unwrap()
            .fail
            .push((method.into(), fragment.into(), code));
    }

    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().seen.clone()
    }

    fn clear_seen(&self) {
        self.0.lock().unwrap().seen.clear();
    }

    /// Answers one request as the API server would.
    fn answer(&self, seen: Seen) -> (u16, Value) {
        let mut st = self.0.lock().unwrap();
        st.seen.push(seen.clone());
        if let Some((_, _, code)) = st
            .fail
            .iter()
            .find(|(m, f, _)| *m == seen.method && seen.path.contains(f.as_str()))
        {
            return (
                *code,
                status_body(*code, "InternalError", "injected failure"),
            );
        }
        st.version += 1;
        let rv = st.version.to_string();
        let (path, subresource) = match seen.path.strip_suffix("/status") {
            Some(p) => (p.to_string(), true),
            None => (seen.path.clone(), false),
        };
        let is_object = {
            let segments = path.split('/').count();
            if path.starts_with("/api/") {
                segments == 7
            } else {
                segments == 8
            }
        };
        match seen.method.as_str() {
            "GET" if is_object => match st.objects.get(&path) {
                Some(o) => (200, o.clone()),
                None => (404, status_body(404, "NotFound", "not found")),
            },
            "GET" => {
                let prefix = format!("{path}/");
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                    .map(|(_, v)| v.clone())
                    .collect();
                (
                    200,
                    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": rv}, "items": items}),
                )
            }
            "POST" => {
                let name = seen.body["metadata"]["name"]
                    .as_str()
                    .unwrap_or("unnamed")
                    .to_string();
                let key = format!("{path}/{name}");
                if st.objects.contains_key(&key) {
                    return (409, status_body(409, "AlreadyExists", "already exists"));
                }
                let mut obj = seen.body.clone();
                obj["metadata"]["resourceVersion"] = json!(rv);
                st.objects.insert(key, obj.clone());
                (201, obj)
            }
            "PUT" => {
                let current = st.objects.get(&path).cloned();
                let sent_rv = seen.body["metadata"]["resourceVersion"].clone();
                match current {
                    Some(c) if c["metadata"]["resourceVersion"] != sent_rv => (
                        409,
                        status_body(409, "Conflict", "the object has been modified"),
                    ),
                    _ => {
                        let mut obj = seen.body.clone();
                        obj["metadata"]["resourceVersion"] = json!(rv);
                        st.objects.insert(path, obj.clone());
                        (200, obj)
                    }
                }
            }
            "PATCH" => {
                let current = st.objects.get(&path).cloned();
                let updated = match seen.content_type.as_str() {
                    "application/apply-patch+yaml" => {
                        let mut obj = current.clone().unwrap_or_else(|| seen.body.clone());
                        if subresource {
                            obj["status"] = seen.body["status"].clone();
                        } else {
                            let status = obj.get("status").cloned();
                            let meta = obj["metadata"].clone();
                            obj = seen.body.clone();
                            if let Some(s) = status {
                                obj["status"] = s;
                            }
                            for k in ["uid", "generation", "finalizers", "deletionTimestamp"] {
                                if let Some(v) = meta.get(k) {
                                    obj["metadata"][k] = v.clone();
                                }
                            }
                        }
                        obj
                    }
                    "application/merge-patch+json" => {
                        let Some(mut obj) = current else {
                            return (404, status_body(404, "NotFound", "not found"));
                        };
                        merge(&mut obj, &seen.body);
                        obj
                    }
                    "application/json-patch+json" => {
                        let Some(mut obj) = current else {
                            return (404, status_body(404, "NotFound", "not found"));
                        };
                        for op in seen.body.as_array().cloned().unwrap_or_default() {
                            let p = op["path"].as_str().unwrap_or_default();
                            let ptr = obj.pointer(p).cloned();
                            match op["op"].as_str().unwrap_or_default() {
                                "test" => {
                                    if ptr.unwrap_or(Value::Null) != op["value"] {
                                        return (422, status_body(422, "Invalid", "test failed"));
                                    }
                                }
                                "add" if p == "/metadata/finalizers" => {
                                    obj["metadata"]["finalizers"] = op["value"].clone();
                                }
                                "add" if p == "/metadata/finalizers/-" => {
                                    obj["metadata"]["finalizers"]
                                        .as_array_mut()
                                        .unwrap()
                                        .push(op["value"].clone());
                                }
                                "remove" => {
                                    let i: usize = p.rsplit('/').next().unwrap().parse().unwrap();
                                    obj["metadata"]["finalizers"]
                                        .as_array_mut()
                                        .unwrap()
                                        .remove(i);
                                }
                                other => panic!("unexpected json patch op {other} {p}"),
                            }
                        }
                        obj
                    }
                    other => panic!("unexpected patch type {other}"),
                };
                let mut updated = updated;
                updated["metadata"]["resourceVersion"] = json!(rv);
                st.objects.insert(path, updated.clone());
                (200, updated)
            }
            "DELETE" => match st.objects.remove(&path) {
                Some(o) => (200, o),
                None => (404, status_body(404, "NotFound", "not found")),
            },
            other => panic!("unexpected method {other}"),
        }
    }

    /// A kube client whose every request this fake answers.
    fn client(&self) -> (Client, tokio::task::JoinHandle<()>) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = self.clone();
        let task = tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().to_string();
                let path = request.uri().path().to_string();
                let query = request.uri().query().unwrap_or_default().to_string();
                let content_type = request
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let bytes = request.into_body().collect_bytes().await.unwrap();
                let body = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).unwrap()
                };
                let (code, reply) = api.answer(Seen {
                    method,
                    path,
                    query,
                    content_type,
                    body,
                });
                send.send_response(
                    Response::builder()
                        .status(StatusCode::from_u16(code).unwrap())
                        .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                        .unwrap(),
                );
            }
        });
        (Client::new(service, "db"), task)
    }
}

/// Members as a test wants them to answer.
#[derive(Default)]
struct FakeMembers {
    answer: Mutex<Option<Result<ClusterView, String>>>,
    asked: Mutex<Vec<Target>>,
    changes: Mutex<Vec<MembershipChange>>,
}

impl MemberStatusSource for FakeMembers {
    fn observe<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<ClusterView, Error>> {
        self.asked.lock().unwrap().push(target.clone());
        let answer = self.answer.lock().unwrap().clone();
        Box::pin(async move {
            match answer {
                Some(Ok(view)) => Ok(view),
                Some(Err(e)) => Err(Error::Members(e)),
                None => Err(Error::Members("no answer configured".into())),
            }
        })
    }

    fn change<'a>(
        &'a self,
        _target: &'a Target,
        change: &'a MembershipChange,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.changes.lock().unwrap().push(change.clone());
        Box::pin(async { Ok(()) })
    }

    fn sidecar_bootstrap<'a>(&'a self, _pod_ip: &'a str) -> BoxFuture<'a, Option<String>> {
        Box::pin(async { None })
    }

    fn sidecar_identity<'a>(
        &'a self,
        _pod_ip: &'a str,
    ) -> BoxFuture<'a, Option<member_identity::Report>> {
        Box::pin(async { None })
    }

    fn install_identity<'a>(
        &'a self,
        _pod_ip: &'a str,
        _grant: &'a member_identity::Grant,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
}

fn healthy_view(n: u64, unhealthy: &[u64]) -> ClusterView {
    ClusterView {
        cluster_id: Some(0xabcdef),
        leader: Some(0x101),
        members: (0..n)
            .map(|i| ObservedMember {
                id: 0x100 + i,
                name: format!("main-{i}"),
                learner: false,
                healthy: !unhealthy.contains(&i),
                answered: !unhealthy.contains(&i),
                alarms: Vec::new(),
                applied_index: 10,
                peer_urls: vec![format!(
                    "https://main-{i}.main-peer.db.svc.cluster.local:2380"
                )],
            })
            .collect(),
        cluster_ids: (0..n)
            .filter(|i| !unhealthy.contains(i))
            .map(|i| (format!("main-{i}"), 0xabcdef))
            .collect(),
    }
}

struct Harness {
    api: FakeApi,
    members: Arc<FakeMembers>,
    ctx: Arc<Context>,
    _task: tokio::task::JoinHandle<()>,
}

fn now() -> Timestamp {
    Timestamp::from_second(1_780_000_000).unwrap()
}

fn harness() -> Harness {
    let api = FakeApi::default();
    let (client, task) = api.client();
    let members = Arc::new(FakeMembers::default());
    let ctx = Context::new(
        client,
        members.clone(),
        RenderContext {
            image_repository: "ballast".into(),
            default_version: "0.1.0".into(),
        },
        Arc::new(Metrics::default()),
        Reporter {
            controller: "ballast-operator".into(),
            instance: Some("test".into()),
        },
    )
    .with_clock(Arc::new(now));
    Harness {
        api,
        members,
        ctx: Arc::new(ctx),
        _task: task,
    }
}

fn finalized(mut c: EtcdCluster) -> EtcdCluster {
    c.metadata.finalizers = Some(vec![controller::FINALIZER.to_string()]);
    c
}

impl Harness {
    /// Stores `c` as the API server would hold it and reconciles it.
    async fn reconcile(&self, c: &EtcdCluster) -> Result<Action, Error> {
        self.api.put(CLUSTER_PATH, serde_json::to_value(c).unwrap());
        controller::reconcile(Arc::new(c.clone()), self.ctx.clone()).await
    }

    /// The cluster as stored (with the status the operator wrote).
    fn stored_cluster(&self) -> EtcdCluster {
        serde_json::from_value(self.api.get(CLUSTER_PATH).unwrap()).unwrap()
    }

    fn requests(&self, method: &str, fragment: &str) -> Vec<Seen> {
        self.api
            .seen()
            .into_iter()
            .filter(|s| s.method == method && s.path.contains(fragment))
            .collect()
    }

    fn events(&self) -> Vec<(String, String, String)> {
        self.requests("POST", "/events")
            .into_iter()
            .map(|s| {
                (
                    s.body["type"].as_str().unwrap_or_default().to_string(),
                    s.body["reason"].as_str().unwrap_or_default().to_string(),
                    s.body["note"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Marks the StatefulSet as the StatefulSet controller would once `ready` pods run.
    fn set_sts_status(&self, replicas: i32, ready: i32) {
        let mut sts = self.api.get(STS_PATH).expect("statefulset applied");
        sts["metadata"]["generation"] = json!(1);
        sts["status"] = json!({
            "observedGeneration": 1, "replicas": replicas, "readyReplicas": ready,
            "updatedReplicas": replicas, "currentRevision": "main-1", "updateRevision": "main-1",
        });
        self.api.put(STS_PATH, sts);
    }
}

fn condition<'a>(
    c: &'a EtcdCluster,
    t: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    c.status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|x| x.type_ == t)
        .unwrap_or_else(|| panic!("no {t} condition"))
}

#[tokio::test]
async fn first_reconcile_only_adds_the_finalizer() {
    let h = harness();
    let action = h.reconcile(&common::cluster("main", "{}")).await.unwrap();
    assert_eq!(action, Action::await_change());
    let seen = h.api.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "PATCH");
    assert_eq!(seen[0].path, CLUSTER_PATH);
    assert_eq!(seen[0].content_type, "application/json-patch+json");
    assert_eq!(
        h.stored_cluster().metadata.finalizers,
        Some(vec![controller::FINALIZER.to_string()])
    );
}

#[tokio::test]
async fn create_applies_pki_services_pdb_and_statefulset_with_owner_references() {
    let h = harness();
    let c = finalized(common::cluster("main", "{}"));
    let action = h.reconcile(&c).await.unwrap();
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(10)),
        "progressing: look again soon"
    );

    // The CA is created (not applied), once.
    let created = h.requests("POST", "/secrets");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].body["metadata"]["name"], "main-ca");
    assert!(created[0].body["data"]["ca.key"].is_string());

    let applies: Vec<Seen> = h
        .api
        .seen()
        .into_iter()
        .filter(|s| s.content_type == "application/apply-patch+yaml")
        .collect();
    let applied: Vec<String> = applies
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s.body["kind"].as_str().unwrap_or("?"),
                s.body["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect();
    // Member keys are in no Secret: each member makes its own.
    for never in ["Secret main-server-tls", "Secret main-peer-tls"] {
        assert!(!applied.iter().any(|a| a == never), "{never} applied");
    }
    for want in [
        "Secret main-healthcheck-client",
        "Secret main-apiserver-etcd-client",
        "Secret main-operator-client",
        "Service main-peer",
        "Service main",
        "PodDisruptionBudget main",
        "StatefulSet main",
        "EtcdCluster ?",
    ] {
        assert!(
            applied.iter().any(|a| a == want),
            "{want} not applied: {applied:?}"
        );
    }
    for s in &applies {
        assert!(
            s.query.contains("fieldManager=ballast-operator") && s.query.contains("force=true"),
            "server-side apply with our field manager: {}",
            s.query
        );
        if s.path.ends_with("/status") {
            continue;
        }
        let owner = &s.body["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "EtcdCluster", "{}", s.path);
        assert_eq!(owner["uid"], "6f1c2a9e-0000-4000-8000-000000000001");
        assert_eq!(owner["controller"], true);
    }
    // What is applied is exactly what rendering produces.
    let sts = h.requests("PATCH", STS_PATH);
    let rendered = render::render(
        &c,
        &RenderContext {
            image_repository: "ballast".into(),
            default_version: "0.1.0".into(),
        },
        &Live::default(),
    )
    .unwrap();
    assert_eq!(
        sts[0].body,
        serde_json::to_value(&rendered.statefulset).unwrap()
    );

    let stored = h.stored_cluster();
    let status = stored.status.as_ref().unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        status.selector.as_deref(),
        Some("app.kubernetes.io/instance=main,app.kubernetes.io/name=ballast-etcd")
    );
    assert!(status.certificates.as_ref().unwrap().renewal_time.is_some());
    assert_eq!(condition(&stored, "Available").status, "False");
    assert_eq!(condition(&stored, "Available").reason, "Bootstrapping");
    assert_eq!(condition(&stored, "Progressing").reason, "Creating");
    assert_eq!(condition(&stored, "Degraded").status, "False");
    assert_eq!(condition(&stored, "ReplicaCountWarning").status, "False");
    assert!(
        h.members.asked.lock().unwrap().is_empty(),
        "no pod yet: members not asked"
    );

    let reasons: Vec<String> = h.events().into_iter().map(|e| e.1).collect();
    assert!(
        reasons.contains(&"CertificateAuthorityCreated".to_string()),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"CertificatesIssued".to_string()),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn status_comes_from_the_members_and_a_second_pass_writes_nothing_new() {
    let h = harness();
    let c = finalized(common::cluster("main", "{}"));
    h.reconcile(&c).await.unwrap();
    h.set_sts_status(3, 3);
    *h.members.answer.lock().unwrap() = Some(Ok(healthy_view(3, &[])));
    let c = h.stored_cluster();
    h.api.clear_seen();
    let action = h.reconcile(&c).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));

    // Idempotent: the CA and certificates are left alone.
    assert!(h.requests("POST", "/secrets").is_empty());
    assert!(h.requests("PATCH", "/secrets").is_empty());

    // The members were asked over TLS with the operator's client certificate.
    let asked = h.members.asked.lock().unwrap().clone();
    let target = asked.last().unwrap();
    assert_eq!(target.endpoints.len(), 3);
    assert_eq!(
        target.endpoints[0].1,
        "https://main-0.main-peer.db.svc.cluster.local:2379"
    );
    let client_secret = h
        .api
        .get("/api/v1/namespaces/db/secrets/main-operator-client")
        .unwrap();
    let stored_cert = String::from_utf8(k8s_openapi::ByteString::deserialize_from(
        &client_secret["data"]["tls.crt"],
    ))
    .unwrap();
    assert_eq!(target.cert_pem, stored_cert);

    let stored = h.stored_cluster();
    let status = stored.status.clone().unwrap();
    assert_eq!(status.leader.as_deref(), Some("main-1"));
    assert_eq!(status.cluster_id.as_deref(), Some("abcdef"));
    assert_eq!(status.ready_replicas, 3);
    assert_eq!(status.replicas, 3);
    assert_eq!(status.version.as_deref(), Some("0.1.0"));
    assert_eq!(status.members.len(), 3);
    assert_eq!(
        status.members[1].role,
        ballast_operator::crd::MemberRole::Leader
    );
    assert_eq!(status.members[0].id, "100");
    assert_eq!(condition(&stored, "Available").status, "True");
    assert_eq!(condition(&stored, "Progressing").status, "False");
    assert_eq!(condition(&stored, "Progressing").reason, "Reconciled");
    let events = h.events();
    assert!(
        events
            .iter()
            .any(|e| e.0 == "Normal" && e.1 == "QuorumHealthy"),
        "{events:?}"
    );

    // A third pass with nothing new writes no status.
    h.api.clear_seen();
    h.reconcile(&stored).await.unwrap();
    assert!(
        h.requests("PATCH", "/status").is_empty(),
        "unchanged status is not rewritten"
    );
    assert!(h.events().is_empty());
}

trait FromByteString {
    fn deserialize_from(v: &Value) -> Vec<u8>;
}

impl FromByteString for k8s_openapi::ByteString {
    fn deserialize_from(v: &Value) -> Vec<u8> {
        serde_json::from_value::<k8s_openapi::ByteString>(v.clone())
            .unwrap()
            .0
    }
}

#[tokio::test]
async fn unhealthy_and_unreachable_members_degrade_the_cluster() {
    let h = harness();
    let c = finalized(common::cluster("main", "{}"));
    h.reconcile(&c).await.unwrap();
    h.set_sts_status(3, 2);
    *h.members.answer.lock().unwrap() = Some(Ok(healthy_view(3, &[2])));
    let c = h.stored_cluster();
    h.api.clear_seen();
    h.reconcile(&c).await.unwrap();
    let stored = h.stored_cluster();
    assert_eq!(
        condition(&stored, "Available").status,
        "True",
        "2 of 3 is a quorum"
    );
    let degraded = condition(&stored, "Degraded");
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "MembersUnhealthy")
    );
    assert!(degraded.message.contains("main-2"));
    assert!(h
        .events()
        .iter()
        .any(|e| e.0 == "Warning" && e.1 == "MembersUnhealthy"));

    *h.members.answer.lock().unwrap() = Some(Err("connection refused".into()));
    h.reconcile(&stored).await.unwrap();
    let stored = h.stored_cluster();
    assert_eq!(condition(&stored, "Available").reason, "MembersUnreachable");
    assert_eq!(condition(&stored, "Degraded").reason, "MembersUnreachable");
    assert!(condition(&stored, "Degraded")
        .message
        .contains("connection refused"));
}

#[tokio::test]
async fn even_member_counts_are_warned_about() {
    let h = harness();
    h.reconcile(&finalized(common::cluster("main", "replicas: 4")))
        .await
        .unwrap();
    let stored = h.stored_cluster();
    let w = condition(&stored, "ReplicaCountWarning");
    assert_eq!(
        (w.status.as_str(), w.reason.as_str()),
        ("True", "EvenReplicaCount")
    );
    assert!(
        w.message.contains("4 members tolerate 1 failure"),
        "{}",
        w.message
    );
    assert!(h
        .events()
        .iter()
        .any(|e| e.0 == "Warning" && e.1 == "EvenReplicaCount"));
}

#[tokio::test]
async fn a_missing_user_ca_blocks_creation_and_says_why() {
    let h = harness();
    let c = finalized(common::cluster("main", "tls: { caSecretName: corp-ca }"));
    let action = h.reconcile(&c).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    assert!(h.requests("PATCH", "/statefulsets").is_empty());
    assert!(h.requests("PATCH", "/secrets").is_empty());
    assert!(
        h.requests("POST", "/secrets").is_empty(),
        "never creates a CA in place of the user's"
    );
    let stored = h.stored_cluster();
    let d = condition(&stored, "Degraded");
    assert_eq!(d.reason, "CertificateAuthorityInvalid");
    assert!(
        d.message.contains("corp-ca") && d.message.contains("does not exist"),
        "{}",
        d.message
    );
    assert_eq!(
        condition(&stored, "Progressing").reason,
        "CertificateAuthorityInvalid"
    );
    assert!(h
        .events()
        .iter()
        .any(|e| e.0 == "Warning" && e.1 == "CertificateAuthorityInvalid"));
}

#[tokio::test]
async fn an_existing_operator_ca_is_never_replaced() {
    let h = harness();
    h.reconcile(&finalized(common::cluster("main", "{}")))
        .await
        .unwrap();
    let ca_path = "/api/v1/namespaces/db/secrets/main-ca";
    let ca_before = h.api.get(ca_path).unwrap();
    // Even a broken CA Secret is reported, not regenerated.
    let mut broken = ca_before.clone();
    broken["data"]["ca.key"] = json!("");
    h.api.put(ca_path, broken);
    h.api.clear_seen();
    h.reconcile(&h.stored_cluster()).await.unwrap();
    assert!(h.requests("POST", "/secrets").is_empty());
    assert_eq!(
        condition(&h.stored_cluster(), "Degraded").reason,
        "CertificateAuthorityInvalid"
    );
    h.api.put(ca_path, ca_before.clone());
    h.reconcile(&h.stored_cluster()).await.unwrap();
    assert_eq!(h.api.get(ca_path).unwrap()["data"], ca_before["data"]);
}

#[tokio::test]
async fn scaling_up_adds_a_learner_before_any_pod_and_volumes_grow_in_place() {
    let h = harness();
    h.reconcile(&finalized(common::cluster("main", "{}")))
        .await
        .unwrap();
    h.set_sts_status(3, 3);
    for i in 0..3 {
        h.api.put(
            &format!("/api/v1/namespaces/db/persistentvolumeclaims/data-main-{i}"),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": format!("data-main-{i}"), "namespace": "db"},
                   "spec": {"resources": {"requests": {"storage": "8Gi"}}}}),
        );
    }
    let mut c = h.stored_cluster();
    c.spec.replicas = 5;
    c.spec.storage.size = "16Gi".into();
    c.metadata.generation = Some(2);
    *h.members.answer.lock().unwrap() = Some(Ok(healthy_view(3, &[])));
    h.api.clear_seen();
    h.reconcile(&c).await.unwrap();

    // No pod for the new member before the cluster has agreed to it: the first step is
    // adding main-3 as a learner, and the StatefulSet stays at 3.
    let sts = &h.requests("PATCH", STS_PATH)[0].body;
    assert_eq!(sts["spec"]["replicas"], 3);
    assert_eq!(
        *h.members.changes.lock().unwrap(),
        vec![MembershipChange::AddLearner {
            peer_url: "https://main-3.main-peer.db.svc.cluster.local:2380".into()
        }]
    );
    let progressing = condition(&h.stored_cluster(), "Progressing").clone();
    assert_eq!(progressing.status, "True");
    assert_eq!(progressing.reason, "ScalingUp");
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"], "8Gi",
        "claim templates are immutable: the live size is kept"
    );
    let grown = h.requests("PATCH", "/persistentvolumeclaims/");
    assert_eq!(grown.len(), 3);
    for g in &grown {
        assert_eq!(g.content_type, "application/merge-patch+json");
        assert_eq!(g.body["spec"]["resources"]["requests"]["storage"], "16Gi");
    }
    let stored = h.stored_cluster();
    assert_eq!(
        condition(&stored, "Progressing").message,
        "adding main-3 as a learner"
    );
    assert_eq!(stored.status.unwrap().observed_generation, Some(2));
}

#[tokio::test]
async fn api_errors_fail_the_reconcile_and_back_off() {
    let h = harness();
    h.api.fail("PATCH", "/statefulsets/", 500);
    let c = finalized(common::cluster("main", "{}"));
    let err = h.reconcile(&c).await.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(
        h.requests("PATCH", "/status").is_empty(),
        "no status from a half-done reconcile"
    );
    let arc = Arc::new(c.clone());
    assert_eq!(
        controller::error_policy(arc.clone(), &err, h.ctx.clone()),
        Action::requeue(Duration::from_secs(5))
    );
    assert_eq!(
        controller::error_policy(arc.clone(), &err, h.ctx.clone()),
        Action::requeue(Duration::from_secs(10))
    );
    assert_eq!(
        controller::error_policy(arc, &err, h.ctx.clone()),
        Action::requeue(Duration::from_secs(20))
    );
    assert_eq!(error_backoff(30), Duration::from_secs(300));
    let metrics = h.ctx.metrics.encode();
    assert!(
        metrics.contains("ballast_operator_reconciles_total{outcome=\"finalizer\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn deletion_runs_cleanup_then_removes_the_finalizer() {
    let h = harness();
    let mut c = finalized(common::cluster("main", "{}"));
    c.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
    let action = h.reconcile(&c).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert!(h
        .events()
        .iter()
        .any(|e| e.1 == "Deleting" && e.2.contains("data-main-0")));
    let patches = h.requests("PATCH", CLUSTER_PATH);
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].body[1]["op"], "remove");
    assert_eq!(h.stored_cluster().metadata.finalizers, Some(vec![]));
    assert!(h.requests("PATCH", "/statefulsets").is_empty());
}

const RESTORE: &str =
    "restore: { store: { s3: { bucket: snaps, prefix: db/old, endpoint: 'http://s3:9000' } }, backup: 20261203T140000Z-r12.db }";
const CHECK_JOB: &str = "/apis/batch/v1/namespaces/db/jobs/main-restore-check";

/// The check Job ended (`ok`), with its pod's termination message.
fn finish_check(h: &Harness, ok: bool, message: &str) {
    let mut job = h.api.get(CHECK_JOB).expect("the check Job exists");
    job["status"] = json!({"conditions": [{
        "type": if ok { "Complete" } else { "Failed" },
        "status": "True",
        "lastTransitionTime": "2026-12-03T14:00:00Z",
    }]});
    h.api.put(CHECK_JOB, job);
    h.api.put(
        "/api/v1/namespaces/db/pods/main-restore-check-x",
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "main-restore-check-x", "namespace": "db",
                         "labels": {"job-name": "main-restore-check"}},
            "status": {"containerStatuses": [{
                "name": "backup", "image": "ballast", "imageID": "", "ready": false,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": if ok { 0 } else { 1 }, "message": message,
                          "finishedAt": "2026-12-03T14:00:00Z"}}
            }]}
        }),
    );
}

#[tokio::test]
async fn a_restore_waits_for_its_backup_to_be_checked_and_a_bad_one_creates_nothing() {
    let h = harness();
    let c = finalized(common::cluster("main", RESTORE));
    h.reconcile(&c).await.unwrap();
    // The check runs `ballast backup fetch` of that backup; no member exists meanwhile.
    let job = h.api.get(CHECK_JOB).expect("a check Job");
    let command = job["spec"]["template"]["spec"]["containers"][0]["command"].to_string();
    assert!(command.contains("--from=s3://snaps/db/old"), "{command}");
    assert!(
        command.contains("--name=20261203T140000Z-r12.db"),
        "{command}"
    );
    assert!(h.requests("PATCH", "/statefulsets").is_empty());
    let stored = h.stored_cluster();
    assert_eq!(condition(&stored, "Progressing").reason, "Restoring");

    finish_check(
        &h,
        false,
        "backup 20261203T140000Z-r12.db is corrupt: its SHA-256 does not match",
    );
    h.reconcile(&stored).await.unwrap();
    assert!(h.requests("PATCH", "/statefulsets").is_empty());
    let stored = h.stored_cluster();
    let degraded = condition(&stored, "Degraded");
    assert_eq!(degraded.reason, "RestoreFailed");
    assert!(
        degraded.message.contains("is corrupt"),
        "{}",
        degraded.message
    );
    assert_eq!(condition(&stored, "Stalled").status, "True");
    assert!(h
        .events()
        .iter()
        .any(|e| e.0 == "Warning" && e.1 == "RestoreFailed"));
}

#[tokio::test]
async fn a_checked_backup_lets_the_members_start_with_the_restore_flags() {
    let h = harness();
    let c = finalized(common::cluster("main", RESTORE));
    h.reconcile(&c).await.unwrap();
    finish_check(&h, true, r#"{"name":"20261203T140000Z-r12.db"}"#);
    h.reconcile(&h.stored_cluster()).await.unwrap();
    let sts = &h.requests("PATCH", "/statefulsets")[0].body;
    let sidecar = &sts["spec"]["template"]["spec"]["initContainers"][0];
    let command = sidecar["command"].to_string();
    assert!(
        command.contains("--restore-from=s3://snaps/db/old"),
        "{command}"
    );
    assert!(
        command.contains("--restore-backup=20261203T140000Z-r12.db"),
        "{command}"
    );
    assert!(
        sidecar["env"].to_string().contains("AWS_ENDPOINT"),
        "{}",
        sidecar["env"]
    );
}

#[tokio::test]
async fn leader_lease_is_created_renewed_and_not_stolen() {
    let api = FakeApi::default();
    let (client, _task) = api.client();
    let path = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/ballast-operator";
    let a = LeaseLock::new(client.clone(), "ops", "ballast-operator", "pod-a");
    let b = LeaseLock::new(client, "ops", "ballast-operator", "pod-b");
    assert!(a.try_acquire_or_renew().await.unwrap(), "creates the Lease");
    assert_eq!(api.get(path).unwrap()["spec"]["holderIdentity"], "pod-a");
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "a fresh Lease is not taken"
    );
    assert!(a.try_acquire_or_renew().await.unwrap(), "the holder renews");
    assert_eq!(api.requests_for("PUT").len(), 1);
    // Expired: b takes over, and the transition is counted.
    let mut lease = api.get(path).unwrap();
    lease["spec"]["renewTime"] = json!("2020-01-01T00:00:00.000000Z");
    api.put(path, lease);
    assert!(b.try_acquire_or_renew().await.unwrap());
    let lease = api.get(path).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "pod-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    assert!(!a.try_acquire_or_renew().await.unwrap(), "a lost it");
    // A write conflict (someone else wrote in between) is a lost race, not an error.
    let mut stale = api.get(path).unwrap();
    stale["spec"]["renewTime"] = json!("2020-01-01T00:00:00.000000Z");
    api.put(path, stale);
    api.fail("PUT", "/leases/", 409);
    assert!(!a.try_acquire_or_renew().await.unwrap());
}

impl FakeApi {
    fn requests_for(&self, method: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == method)
            .collect()
    }
}

/// An `OnDelete` StatefulSet keeps its old `currentRevision` after every pod was replaced:
/// all pods on the update revision is a finished rollout all the same.
#[test]
fn a_rollout_is_done_when_every_pod_runs_the_update_revision() {
    let sts = |current: &str, update: &str, updated: i32| {
        serde_json::from_value::<k8s_openapi::api::apps::v1::StatefulSet>(json!({
            "metadata": {"name": "main", "generation": 2},
            "status": {"observedGeneration": 2, "replicas": 3, "readyReplicas": 3,
                       "updatedReplicas": updated, "currentRevision": current,
                       "updateRevision": update}
        }))
        .unwrap()
    };
    assert!(controller::workload_state(Some(&sts("a", "a", 3))).revisions_match);
    assert!(controller::workload_state(Some(&sts("a", "b", 3))).revisions_match);
    assert!(!controller::workload_state(Some(&sts("a", "b", 2))).revisions_match);
}

/// The pause annotation: the operator observes and reports, and changes no membership.
#[tokio::test]
async fn a_paused_cluster_is_observed_but_left_alone() {
    let h = harness();
    h.reconcile(&finalized(common::cluster("main", "{}")))
        .await
        .unwrap();
    h.set_sts_status(3, 3);
    let mut c = h.stored_cluster();
    c.spec.replicas = 5;
    c.metadata.generation = Some(2);
    c.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("ballast.dev/paused".into(), "true".into());
    *h.members.answer.lock().unwrap() = Some(Ok(healthy_view(3, &[])));
    h.reconcile(&c).await.unwrap();
    assert!(h.members.changes.lock().unwrap().is_empty());
    let progressing = condition(&h.stored_cluster(), "Progressing").clone();
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("False", "Paused")
    );
    // Unpaused, the same facts give the first step.
    c.metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove("ballast.dev/paused");
    h.reconcile(&c).await.unwrap();
    assert_eq!(h.members.changes.lock().unwrap().len(), 1);
}

/// An upgrade from a version that gave every pod all members' keys: the shared Secrets are
/// kept up while a pod still mounts them (members are rolled one at a time), and deleted
/// once none does.
#[tokio::test]
async fn shared_member_key_secrets_go_once_no_pod_mounts_them() {
    let h = harness();
    let c = finalized(common::cluster("main", "{}"));
    h.reconcile(&c).await.unwrap();
    let old_pod = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "db",
                            "labels": {"app.kubernetes.io/instance": "main"}},
               "spec": {"containers": [{"name": "etcd"}],
                        "volumes": [{"name": "server-tls", "secret": {"secretName": "main-server-tls"}}]}})
    };
    let pod_path = |name: &str| format!("/api/v1/namespaces/db/pods/{name}");
    h.api.put(&pod_path("main-0"), old_pod("main-0"));
    h.api.put(
        "/api/v1/namespaces/db/secrets/main-server-tls",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "main-server-tls", "namespace": "db"}, "data": {}}),
    );
    h.api.clear_seen();
    h.reconcile(&h.stored_cluster()).await.unwrap();
    let kept = h.requests("PATCH", "/secrets/main-server-tls");
    assert_eq!(
        kept.len(),
        1,
        "still mounted: kept up with every member's files"
    );
    assert!(kept[0].body["data"]["main-2.key"].is_string());
    assert!(h.requests("DELETE", "/secrets/").is_empty());

    // The last old pod is replaced by one whose member makes its own key.
    h.api.put(
        &pod_path("main-0"),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "main-0", "namespace": "db",
                            "labels": {"app.kubernetes.io/instance": "main"}},
               "spec": {"containers": [{"name": "etcd"}],
                        "volumes": [{"name": "ca", "secret": {"secretName": "main-healthcheck-client"}}]}}),
    );
    h.api.clear_seen();
    h.reconcile(&h.stored_cluster()).await.unwrap();
    let deleted: Vec<String> = h
        .requests("DELETE", "/secrets/")
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(
        deleted,
        [
            "/api/v1/namespaces/db/secrets/main-server-tls",
            "/api/v1/namespaces/db/secrets/main-peer-tls"
        ]
    );
    assert!(h
        .api
        .get("/api/v1/namespaces/db/secrets/main-server-tls")
        .is_none());
    // Nothing brings them back.
    h.api.clear_seen();
    h.reconcile(&h.stored_cluster()).await.unwrap();
    assert!(h.requests("PATCH", "/secrets/main-server-tls").is_empty());
}

/// Marks Job `name` as ended (`ok`), as the Job controller would.
fn end_job(h: &Harness, name: &str, ok: bool) {
    let path = format!("/apis/batch/v1/namespaces/db/jobs/{name}");
    let mut job = h
        .api
        .get(&path)
        .unwrap_or_else(|| panic!("Job {name} exists"));
    job["status"] = json!({"conditions": [{
        "type": if ok { "Complete" } else { "Failed" },
        "status": "True",
        "lastTransitionTime": "2026-12-03T14:00:00Z",
    }]});
    h.api.put(&path, job);
}

fn member_pods(h: &Harness, n: usize) {
    for i in 0..3 {
        let path = format!("/api/v1/namespaces/db/pods/main-{i}");
        if i < n {
            h.api.put(
                &path,
                json!({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": format!("main-{i}"), "namespace": "db",
                                    "labels": {"controller-revision-hash": "main-1"}},
                       "status": {"podIP": format!("10.0.0.{i}"),
                                  "conditions": [{"type": "Ready", "status": "True"}]}}),
            );
        } else {
            h.api.0.lock().unwrap().objects.remove(&path);
        }
    }
}

fn sts_replicas(h: &Harness) -> i64 {
    h.api.get(STS_PATH).expect("statefulset")["spec"]["replicas"]
        .as_i64()
        .expect("replicas")
}

/// Three members running and answering, with an hourly backup schedule to S3: where a
/// rollback starts.
async fn running_with_a_schedule() -> Harness {
    let h = harness();
    let c = finalized(common::cluster(
        "main",
        "backup: { schedule: '0 * * * *', store: { s3: { bucket: snaps } } }",
    ));
    h.reconcile(&c).await.unwrap();
    h.set_sts_status(3, 3);
    member_pods(&h, 3);
    *h.members.answer.lock().unwrap() = Some(Ok(healthy_view(3, &[])));
    h.reconcile(&h.stored_cluster()).await.unwrap();
    h
}

/// A rollback runs its steps as the Jobs and pods say: check while the members run, stop
/// them, restore each claim with a Job, start them, and done once they answer.
#[tokio::test]
async fn a_rollback_checks_stops_restores_and_starts_the_members() {
    let h = running_with_a_schedule().await;

    let mut c = h.stored_cluster();
    c.spec.rollback = Some(
        serde_yaml_ng::from_str(
            "{backup: 20261203T140000Z-r12.db, confirm: main, store: {s3: {bucket: snaps}}}",
        )
        .unwrap(),
    );
    h.reconcile(&c).await.unwrap();
    let check = h
        .api
        .get("/apis/batch/v1/namespaces/db/jobs/main-rollback-check")
        .expect("the backup is checked first");
    assert_eq!(
        check["metadata"]["annotations"]["ballast.dev/backup"],
        "20261203T140000Z-r12.db"
    );
    assert_eq!(sts_replicas(&h), 3, "nothing stops before the check");
    let stored = h.stored_cluster();
    assert_eq!(condition(&stored, "Progressing").reason, "RollingBack");

    end_job(&h, "main-rollback-check", true);
    h.reconcile(&h.stored_cluster()).await.unwrap();
    assert_eq!(
        sts_replicas(&h),
        0,
        "every member stops: {:?}",
        h.stored_cluster()
            .status
            .map(|s| (s.rollback, s.conditions))
    );
    assert!(h.events().iter().any(|e| e.1 == "RollbackStarted"));
    let suspended = |h: &Harness| {
        h.api
            .get("/apis/batch/v1/namespaces/db/cronjobs/main-backup")
            .expect("the backup CronJob")["spec"]["suspend"]
            .as_bool()
    };
    assert_eq!(
        suspended(&h),
        Some(true),
        "no backup or retention meanwhile"
    );

    member_pods(&h, 0);
    *h.members.answer.lock().unwrap() = Some(Err("no member answers".into()));

    // Taken back while the members are stopped: they stay stopped, and status says why.
    let mut without = h.stored_cluster();
    let asked = without.spec.rollback.take();
    h.reconcile(&without).await.unwrap();
    let stored = h.stored_cluster();
    assert_eq!(condition(&stored, "Degraded").reason, "RollbackAbandoned");
    assert_eq!(sts_replicas(&h), 0, "abandoned half-way, nobody starts");
    assert!(h.events().iter().any(|e| e.1 == "RollbackAbandoned"));
    let mut again = h.stored_cluster();
    again.spec.rollback = asked;
    // A scale asked for meanwhile waits: the rollback restores the members it stopped.
    again.spec.replicas = 5;
    h.api
        .put(CLUSTER_PATH, serde_json::to_value(&again).unwrap());

    h.reconcile(&h.stored_cluster()).await.unwrap();
    assert!(h
        .api
        .get("/apis/batch/v1/namespaces/db/jobs/main-rollback-3")
        .is_none());
    for i in 0..3 {
        let job = h
            .api
            .get(&format!(
                "/apis/batch/v1/namespaces/db/jobs/main-rollback-{i}"
            ))
            .unwrap_or_else(|| panic!("a restore Job for main-{i}"));
        let spec = &job["spec"]["template"]["spec"];
        assert!(spec["containers"][0]["command"]
            .to_string()
            .contains(&format!("--member=main-{i}")));
        assert_eq!(
            spec["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == "data")
                .unwrap()["persistentVolumeClaim"]["claimName"],
            format!("data-main-{i}")
        );
    }
    assert_eq!(sts_replicas(&h), 0, "stopped while restoring");

    for i in 0..3 {
        end_job(&h, &format!("main-rollback-{i}"), true);
    }
    h.reconcile(&h.stored_cluster()).await.unwrap();
    assert_eq!(
        sts_replicas(&h),
        3,
        "the restored members start, as many as were stopped"
    );
    let mut back = h.stored_cluster();
    back.spec.replicas = 3;
    h.api
        .put(CLUSTER_PATH, serde_json::to_value(&back).unwrap());
    assert_eq!(
        h.stored_cluster().status.unwrap().rollback.unwrap().phase,
        ballast_operator::crd::RollbackPhase::Starting
    );

    member_pods(&h, 3);
    *h.members.answer.lock().unwrap() = Some(Ok(healthy_view(3, &[])));
    h.reconcile(&h.stored_cluster()).await.unwrap();
    let done = h.stored_cluster().status.unwrap().rollback.unwrap();
    assert_eq!(done.phase, ballast_operator::crd::RollbackPhase::Succeeded);
    assert!(done.writable_since.is_some() && done.stopped_at.is_some());
    assert!(h.events().iter().any(|e| e.1 == "RolledBack"));
    assert_eq!(suspended(&h), Some(false), "backups again once done");

    // Done once: a later reconcile leaves the members alone.
    h.api.clear_seen();
    h.reconcile(&h.stored_cluster()).await.unwrap();
    assert!(h.requests("POST", "/jobs").is_empty());
    assert_eq!(sts_replicas(&h), 3);
}

/// The claim `backups` that volume backups are on, with access mode `mode`.
fn backup_claim(h: &Harness, mode: &str) {
    h.api.put(
        "/api/v1/namespaces/db/persistentvolumeclaims/backups",
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "backups", "namespace": "db"},
               "spec": {"accessModes": [mode]}}),
    );
}

/// From a volume: after the check, the members' claims are made and each restored by a Job;
/// the StatefulSet comes only then, and its members start from their data (no sidecar
/// restore flags).
#[tokio::test]
async fn a_restore_from_a_volume_restores_each_claim_before_the_members() {
    let h = harness();
    // Mountable on every node at once: every claim is restored together.
    backup_claim(&h, "ReadWriteMany");
    let c = finalized(common::cluster(
        "main",
        "restore: { store: { volume: { claimName: backups, path: db/old } }, backup: 20261203T140000Z-r12.db }",
    ));
    h.reconcile(&c).await.unwrap();
    end_job(&h, "main-restore-check", true);
    h.reconcile(&h.stored_cluster()).await.unwrap();
    assert!(h.requests("PATCH", "/statefulsets").is_empty());
    for i in 0..3 {
        assert!(
            h.api
                .get(&format!(
                    "/api/v1/namespaces/db/persistentvolumeclaims/data-main-{i}"
                ))
                .is_some(),
            "claim data-main-{i} made before the StatefulSet"
        );
        let job = h
            .api
            .get(&format!(
                "/apis/batch/v1/namespaces/db/jobs/main-restore-{i}"
            ))
            .unwrap_or_else(|| panic!("a restore Job for main-{i}"));
        let command = job["spec"]["template"]["spec"]["containers"][0]["command"].to_string();
        assert!(
            command.contains("--from=/var/lib/ballast-backups/db/old"),
            "{command}"
        );
    }
    assert_eq!(
        condition(&h.stored_cluster(), "Progressing").reason,
        "Restoring"
    );

    for i in 0..3 {
        end_job(&h, &format!("main-restore-{i}"), true);
    }
    h.reconcile(&h.stored_cluster()).await.unwrap();
    let sts = &h.requests("PATCH", "/statefulsets")[0].body;
    let sidecar = sts["spec"]["template"]["spec"]["initContainers"][0]["command"].to_string();
    assert!(!sidecar.contains("--restore-from"), "{sidecar}");
    assert_eq!(
        h.stored_cluster()
            .status
            .unwrap()
            .restored_from
            .map(|r| r.backup),
        Some("20261203T140000Z-r12.db".to_string())
    );
}

/// A Job as an earlier cluster or an earlier rollback left it: ended, maybe being deleted.
fn leftover_job(h: &Harness, name: &str, owner_uid: &str, backup: Option<&str>, deleting: bool) {
    let mut meta = json!({"name": name, "namespace": "db",
        "labels": {"ballast.dev/cluster": "main", "app.kubernetes.io/component": "backup",
                   "app.kubernetes.io/managed-by": "ballast-operator"},
        "ownerReferences": [{"apiVersion": "ballast.dev/v1alpha1", "kind": "EtcdCluster",
                             "name": "main", "uid": owner_uid, "controller": true}]});
    if let Some(b) = backup {
        meta["annotations"] = json!({"ballast.dev/backup": b});
    }
    if deleting {
        meta["deletionTimestamp"] = json!("2026-12-03T14:00:00Z");
    }
    h.api.put(
        &format!("/apis/batch/v1/namespaces/db/jobs/{name}"),
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": {"template": {}},
               "status": {"conditions": [{"type": "Complete", "status": "True",
                                          "lastTransitionTime": "2026-12-03T14:00:00Z"}]}}),
    );
}

/// `spec.rollback.backup` changed while the members are stopped and half restored: the
/// earlier backup's Jobs are deleted in the foreground and waited for, the members stay
/// stopped through the new backup's check and restore, and start only once every claim
/// holds the new backup.
#[tokio::test]
async fn a_rollback_changed_mid_way_keeps_the_members_stopped_and_never_overlaps_restores() {
    let h = running_with_a_schedule().await;
    let rollback_to = |backup: &str| -> Option<ballast_operator::crd::RollbackSpec> {
        Some(serde_yaml_ng::from_str(&format!("{{backup: {backup}, confirm: main}}")).unwrap())
    };
    let mut c = h.stored_cluster();
    c.spec.rollback = rollback_to("a.db");
    h.reconcile(&c).await.unwrap();
    end_job(&h, "main-rollback-check", true);
    h.reconcile(&h.stored_cluster()).await.unwrap();
    assert_eq!(sts_replicas(&h), 0);
    member_pods(&h, 0);
    *h.members.answer.lock().unwrap() = Some(Err("no member answers".into()));
    h.reconcile(&h.stored_cluster()).await.unwrap();
    end_job(&h, "main-rollback-0", true);

    // Changed to b.db while main-rollback-1 and -2 still restore a.db.
    let mut c = h.stored_cluster();
    c.spec.rollback = rollback_to("b.db");
    h.api.clear_seen();
    h.reconcile(&c).await.unwrap();
    let deleted: Vec<String> = h
        .requests("DELETE", "/jobs/")
        .iter()
        .map(|s| {
            assert_eq!(s.body["propagationPolicy"], "Foreground", "{:?}", s.body);
            s.path.rsplit('/').next().unwrap_or_default().to_string()
        })
        .collect();
    for name in [
        "main-rollback-check",
        "main-rollback-0",
        "main-rollback-1",
        "main-rollback-2",
    ] {
        assert!(deleted.contains(&name.to_string()), "{name}: {deleted:?}");
    }
    assert!(h.requests("POST", "/jobs").is_empty(), "nothing new yet");
    assert_eq!(sts_replicas(&h), 0, "the members stay stopped");
    assert!(h.events().iter().any(|e| e.1 == "RollbackChanged"));

    // A foreground deletion keeps the Job until its pod is gone: still waiting.
    let uid = "6f1c2a9e-0000-4000-8000-000000000001";
    leftover_job(&h, "main-rollback-1", uid, Some("a.db"), true);
    h.api.clear_seen();
    h.reconcile(&h.stored_cluster()).await.unwrap();
    assert!(
        h.requests("POST", "/jobs").is_empty(),
        "waits for the old Job"
    );
    assert_eq!(sts_replicas(&h), 0);
    let status = h.stored_cluster().status.unwrap().rollback.unwrap();
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("earlier rollback"),
        "{status:?}"
    );
    assert!(
        status.stopped_at.is_some(),
        "still stopped since the first rollback"
    );

    // Gone: the new backup is checked, the members still stopped, even if someone scaled
    // the StatefulSet up meanwhile.
    h.api
        .0
        .lock()
        .unwrap()
        .objects
        .remove("/apis/batch/v1/namespaces/db/jobs/main-rollback-1");
    let mut sts = h.api.get(STS_PATH).expect("statefulset");
    sts["spec"]["replicas"] = json!(3);
    h.api.put(STS_PATH, sts);
    h.reconcile(&h.stored_cluster()).await.unwrap();
    let check = h
        .api
        .get("/apis/batch/v1/namespaces/db/jobs/main-rollback-check")
        .expect("the new backup is checked");
    assert_eq!(
        check["metadata"]["annotations"]["ballast.dev/backup"],
        "b.db"
    );
    assert_eq!(
        sts_replicas(&h),
        0,
        "stopped while the new backup is checked"
    );

    end_job(&h, "main-rollback-check", true);
    h.reconcile(&h.stored_cluster()).await.unwrap();
    for i in 0..3 {
        let job = h
            .api
            .get(&format!(
                "/apis/batch/v1/namespaces/db/jobs/main-rollback-{i}"
            ))
            .unwrap_or_else(|| panic!("a restore Job of b.db for main-{i}"));
        assert_eq!(job["metadata"]["annotations"]["ballast.dev/backup"], "b.db");
    }
    assert_eq!(sts_replicas(&h), 0);
    for i in 0..3 {
        end_job(&h, &format!("main-rollback-{i}"), true);
    }
    h.reconcile(&h.stored_cluster()).await.unwrap();
    assert_eq!(sts_replicas(&h), 3, "started once every claim holds b.db");
}

/// A cluster re-created under the name of a deleted one finds its retained claims: a
/// restore never starts a member on them (it would serve the old data, not the backup) and
/// never writes over them, and a Job of the same name that another owner left is not
/// taken for this cluster's check.
#[tokio::test]
async fn a_restore_refuses_claims_and_jobs_it_did_not_make() {
    let h = harness();
    h.api.put(
        "/api/v1/namespaces/db/persistentvolumeclaims/data-main-1",
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "data-main-1", "namespace": "db"}}),
    );
    let c = finalized(common::cluster("main", RESTORE));
    h.reconcile(&c).await.unwrap();
    assert!(h.api.get(CHECK_JOB).is_none(), "nothing is checked or made");
    assert!(h.requests("PATCH", "/statefulsets").is_empty());
    let stored = h.stored_cluster();
    let degraded = condition(&stored, "Degraded");
    assert_eq!(degraded.reason, "RestoreFailed");
    assert!(
        degraded.message.contains("data-main-1") && degraded.message.contains("earlier cluster"),
        "{}",
        degraded.message
    );

    // The claim is deleted; a check Job with this name, owned by something else and
    // complete, is left over: it does not open the gate.
    h.api
        .0
        .lock()
        .unwrap()
        .objects
        .remove("/api/v1/namespaces/db/persistentvolumeclaims/data-main-1");
    leftover_job(&h, "main-restore-check", "another-uid", None, false);
    h.reconcile(&h.stored_cluster()).await.unwrap();
    assert!(h.requests("PATCH", "/statefulsets").is_empty());
    let stored = h.stored_cluster();
    let degraded = condition(&stored, "Degraded");
    assert!(
        degraded.message.contains("main-restore-check")
            && degraded.message.contains("does not belong"),
        "{}",
        degraded.message
    );
}

/// A claim made since the EtcdCluster exists is its own (its StatefulSet made it, e.g. one
/// deleted and now made again); one older than the cluster is an earlier cluster's.
#[tokio::test]
async fn claims_older_than_the_cluster_are_an_earlier_clusters() {
    let claim = |name: &str, made: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": name, "namespace": "db", "creationTimestamp": made}})
    };
    let mut c = finalized(common::cluster("main", RESTORE));
    c.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-12-03T12:00:00Z".parse().unwrap(),
    ));
    let h = harness();
    for i in 0..3 {
        let name = format!("data-main-{i}");
        h.api.put(
            &format!("/api/v1/namespaces/db/persistentvolumeclaims/{name}"),
            claim(&name, "2026-12-03T13:00:00Z"),
        );
    }
    h.reconcile(&c).await.unwrap();
    assert!(
        h.api.get(CHECK_JOB).is_some(),
        "its own claims: the check runs"
    );

    let h = harness();
    h.api.put(
        "/api/v1/namespaces/db/persistentvolumeclaims/data-main-2",
        claim("data-main-2", "2026-12-03T11:59:59Z"),
    );
    h.reconcile(&c).await.unwrap();
    assert!(h.api.get(CHECK_JOB).is_none(), "an earlier cluster's claim");
    assert_eq!(
        condition(&h.stored_cluster(), "Degraded").reason,
        "RestoreFailed"
    );
}

/// `status.restoredFrom` is written when the backup is resolved, before any member
/// exists: the `EtcdBackup` named may go away, and the members are still created from
/// the backup it named.
#[tokio::test]
async fn the_restore_source_is_recorded_before_the_members_exist() {
    let h = harness();
    h.api.put(
        "/apis/ballast.dev/v1alpha1/namespaces/db/etcdbackups/nightly",
        json!({"apiVersion": "ballast.dev/v1alpha1", "kind": "EtcdBackup",
               "metadata": {"name": "nightly", "namespace": "db"},
               "spec": {"clusterName": "old"},
               "status": {"phase": "Succeeded", "name": "20261203T140000Z-r12.db",
                          "store": {"s3": {"bucket": "snaps", "prefix": "db/old"}}}}),
    );
    let c = finalized(common::cluster("main", "restore: { etcdBackup: nightly }"));
    h.reconcile(&c).await.unwrap();
    let recorded = h.stored_cluster().status.unwrap().restored_from;
    assert_eq!(
        recorded.as_ref().map(|r| r.backup.as_str()),
        Some("20261203T140000Z-r12.db"),
        "recorded while the check runs"
    );
    assert!(h.requests("PATCH", "/statefulsets").is_empty());

    h.api
        .0
        .lock()
        .unwrap()
        .objects
        .remove("/apis/ballast.dev/v1alpha1/namespaces/db/etcdbackups/nightly");
    finish_check(&h, true, r#"{"name":"20261203T140000Z-r12.db"}"#);
    h.reconcile(&h.stored_cluster()).await.unwrap();
    let sts = &h.requests("PATCH", "/statefulsets")[0].body;
    let command = sts["spec"]["template"]["spec"]["initContainers"][0]["command"].to_string();
    assert!(
        command.contains("--restore-from=s3://snaps/db/old")
            && command.contains("--restore-backup=20261203T140000Z-r12.db"),
        "{command}"
    );
}

/// A backup claim that one node mounts at a time: the members' claims are restored one
/// after another.
#[tokio::test]
async fn a_restore_from_a_single_node_volume_restores_one_claim_at_a_time() {
    let h = harness();
    backup_claim(&h, "ReadWriteOnce");
    let c = finalized(common::cluster(
        "main",
        "restore: { store: { volume: { claimName: backups, path: db/old } }, backup: 20261203T140000Z-r12.db }",
    ));
    h.reconcile(&c).await.unwrap();
    end_job(&h, "main-restore-check", true);
    let job = |i: i32| {
        h.api.get(&format!(
            "/apis/batch/v1/namespaces/db/jobs/main-restore-{i}"
        ))
    };
    for i in 0..3 {
        h.reconcile(&h.stored_cluster()).await.unwrap();
        for later in i + 1..3 {
            assert!(job(later).is_none(), "main-restore-{later} waits for {i}");
        }
        let claim = h
            .api
            .get(&format!(
                "/api/v1/namespaces/db/persistentvolumeclaims/data-main-{i}"
            ))
            .expect("claim made");
        assert_eq!(
            claim["metadata"]["annotations"]["ballast.dev/restored-for"],
            "6f1c2a9e-0000-4000-8000-000000000001"
        );
        assert!(job(i).is_some());
        end_job(&h, &format!("main-restore-{i}"), true);
    }
    h.reconcile(&h.stored_cluster()).await.unwrap();
    assert!(!h.requests("PATCH", "/statefulsets").is_empty());
}
