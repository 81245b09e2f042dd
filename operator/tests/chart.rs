//! The Helm chart (`charts/ballast`) with the real `helm` (built from its Go module by
//! `e2e/kube/helm.sh`): it lints strictly, what it renders passes `kubernetes-validate
//! --strict` on the oldest and newest supported Kubernetes, the optional pieces render as
//! documented, and values with mistakes are refused by the schema with a message that
//! names the value. Installing it on a real cluster is in `e2e/tests/kube_operator.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_yaml_ng::Value;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/ballast");

/// The helm binary, built once per test process if the cache lacks it.
fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/kube/helm.sh");
        let out = Command::new("bash")
            .arg(script)
            .output()
            .expect("bash runs e2e/kube/helm.sh");
        assert!(
            out.status.success(),
            "building helm failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// `helm args...`: (succeeded, stdout + stderr).
fn run_helm(args: &[&str]) -> (bool, String) {
    let out = Command::new(helm()).args(args).output().expect("helm runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn values_file(dir: &Path, name: &str, yaml: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write values");
    path.to_string_lossy().into_owned()
}

/// Every value set: the optional objects, namespaced RBAC, a cluster.
const EVERYTHING: &str = r#"
replicaCount: 3
watchNamespaces: [team-a, team-b]
logLevel: debug
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: control-plane, effect: NoSchedule}]
podAnnotations: {example.com/scrape: "false"}
priorityClassName: system-cluster-critical
monitoring:
  podMonitor: {enabled: true, labels: {release: prom}}
  prometheusRule: {enabled: true}
  dashboard: {enabled: true}
cluster:
  create: true
  name: control-plane
  spec: {replicas: 5, version: "0.1.0"}
"#;

/// `helm template` of the chart with `values`, as documents.
fn render(dir: &Path, values: Option<&str>) -> Vec<Value> {
    let mut args = vec![
        "template",
        "ballast-operator",
        CHART,
        "-n",
        "ballast-system",
    ];
    let file;
    if let Some(v) = values {
        file = values_file(dir, "values.yaml", v);
        args.extend(["-f", &file]);
    }
    let (ok, out) = run_helm(&args);
    assert!(ok, "helm template:\n{out}");
    serde_yaml_ng::Deserializer::from_str(&out)
        .map(|d| Value::deserialize(d).expect("YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

use serde::Deserialize;

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

fn find<'a>(docs: &'a [Value], k: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == k).collect()
}

/// Validates the documents Kubernetes has schemas for (custom resources are checked by
/// their own tests) with kubernetes-validate in strict mode.
fn validate(dir: &Path, docs: &[Value]) {
    let builtin: Vec<&Value> = docs
        .iter()
        .filter(|d| {
            let group = d["apiVersion"].as_str().unwrap_or_default();
            !group.starts_with("ballast.dev/") && !group.starts_with("monitoring.coreos.com/")
        })
        .collect();
    let mut files = Vec::new();
    for (i, doc) in builtin.iter().enumerate() {
        let path = dir.join(format!("doc-{i}.yaml"));
        std::fs::write(&path, serde_yaml_ng::to_string(doc).expect("YAML")).expect("write");
        files.push(path.to_string_lossy().into_owned());
    }
    for version in common::KUBERNETES_VERSIONS {
        let (ok, text) = common::kubernetes_validate(&files, version);
        assert!(ok, "kubernetes-validate {version}:\n{text}");
        assert!(!text.contains("ERROR") && !text.contains("WARN"), "{text}");
    }
}

#[test]
fn the_chart_lints_strictly_with_default_and_full_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, out) = run_helm(&["lint", "--strict", CHART]);
    assert!(ok, "helm lint --strict:\n{out}");
    let all = values_file(dir.path(), "all.yaml", EVERYTHING);
    let (ok, out) = run_helm(&["lint", "--strict", CHART, "-f", &all]);
    assert!(ok, "helm lint --strict with every value:\n{out}");
}

#[test]
fn default_values_install_the_operator_with_cluster_wide_rights() {
    let dir = tempfile::tempdir().expect("tempdir");
    let docs = render(dir.path(), None);
    validate(dir.path(), &docs);
    let mut kinds: Vec<&str> = docs.iter().map(kind).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    let deployment = find(&docs, "Deployment")[0];
    assert_eq!(deployment["metadata"]["name"], "ballast-operator");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "ballast-operator:0.1.0");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let env: Vec<(String, String)> = container["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?.into(), e["value"].as_str()?.into())))
        .collect();
    assert!(env.contains(&("BALLAST_LEASE_NAME".into(), "ballast-operator".into())));
    assert!(env.contains(&("RUST_LOG".into(), "info,kube=warn".into())));
    assert!(!env.iter().any(|(k, _)| k == "BALLAST_WATCH_NAMESPACES"));
    // The Secrets rule carries delete (old shared member Secrets are removed).
    let rules = &find(&docs, "ClusterRole")[0]["rules"];
    assert!(rules.as_sequence().expect("rules").iter().any(|r| {
        r["resources"][0] == "secrets"
            && r["verbs"]
                .as_sequence()
                .is_some_and(|v| v.contains(&Value::from("delete")))
    }));
    // The CRD comes from crds/ (installed by Helm before the templates), not a template.
    assert!(find(&docs, "CustomResourceDefinition").is_empty());
}

#[test]
fn every_option_renders_as_documented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let docs = render(dir.path(), Some(EVERYTHING));
    validate(dir.path(), &docs);
    // Rights only in the watched namespaces (plus the Lease in the release namespace).
    assert!(find(&docs, "ClusterRole").is_empty());
    let roles: Vec<String> = find(&docs, "Role")
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["metadata"]["namespace"].as_str().unwrap_or_default(),
                r["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            "team-a/ballast-operator",
            "team-b/ballast-operator",
            "ballast-system/ballast-operator-leader-election"
        ]
    );
    let deployment = find(&docs, "Deployment")[0];
    let env =
        serde_yaml_ng::to_string(&deployment["spec"]["template"]["spec"]["containers"][0]["env"])
            .expect("env");
    assert!(env.contains("value: team-a,team-b"), "{env}");
    assert!(env.contains("value: debug,kube=warn"), "{env}");

    // The members' monitoring: the rules are files/alerts.yaml as is.
    let rule = find(&docs, "PrometheusRule")[0];
    let alerts: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(format!("{CHART}/files/alerts.yaml")).expect("alerts.yaml"),
    )
    .expect("alerts YAML");
    assert_eq!(rule["spec"]["groups"], alerts["groups"]);
    let monitor = find(&docs, "PodMonitor")[0];
    assert_eq!(monitor["metadata"]["labels"]["release"], "prom");
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"],
        serde_yaml_ng::from_str::<Value>("[team-a, team-b]").expect("list")
    );
    let dashboard = find(&docs, "ConfigMap")[0];
    let json = dashboard["data"]["ballast-etcd.json"]
        .as_str()
        .expect("dashboard");
    let ours: serde_json::Value = serde_json::from_str(json).expect("dashboard JSON");
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{CHART}/files/dashboard.json")).expect("dashboard"),
    )
    .expect("dashboard file");
    assert_eq!(ours, file);

    // The EtcdCluster is the spec given, kept by `helm uninstall`.
    let cluster = find(&docs, "EtcdCluster")[0];
    assert_eq!(cluster["metadata"]["name"], "control-plane");
    assert_eq!(
        cluster["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    let typed: ballast_operator::crd::EtcdCluster =
        serde_yaml_ng::from_value(cluster.clone()).expect("an EtcdCluster");
    assert_eq!(typed.spec.replicas, 5);
}

#[test]
fn values_with_mistakes_are_refused_by_the_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (values, names) in [
        ("replicaCount: two\n", "replicaCount"),
        ("replicas: 3\n", "replicas"),
        ("image: {pullPolicy: Sometimes}\n", "pullPolicy"),
        ("watchNamespaces: [Team_A]\n", "watchNamespaces"),
        ("monitoring: {podMonitor: {interval: often}}\n", "interval"),
        ("cluster: {create: true, name: Main}\n", "name"),
    ] {
        let file = values_file(dir.path(), "bad.yaml", values);
        let (ok, out) = run_helm(&["template", "x", CHART, "-f", &file]);
        assert!(!ok, "{values:?} was accepted:\n{out}");
        assert!(
            out.contains("values don't meet the specifications of the schema"),
            "{values:?}: {out}"
        );
        assert!(
            out.contains(names),
            "{values:?} does not name {names}: {out}"
        );
    }
}

/// The Argo CD health check shipped with the chart, run by Lua 5.1 (Argo CD's gopher-lua
/// speaks 5.1) on EtcdClusters in the states the operator reports.
#[test]
fn the_argocd_health_check_reads_the_conditions() {
    let script = format!("{CHART}/argocd/health.lua");
    let cond = |t: &str, s: &str| format!(r#"{{type="{t}", status="{s}", message="{t} is {s}"}}"#);
    let obj = |generation: i64, observed: Option<i64>, conditions: &[String]| {
        let observed = observed.map_or("nil".to_string(), |o| o.to_string());
        format!(
            "{{metadata={{generation={generation}}}, status={{observedGeneration={observed}, conditions={{{}}}}}}}",
            conditions.join(",")
        )
    };
    let cases = [
        ("{metadata={generation=1}}".to_string(), "Progressing"),
        (obj(2, Some(1), &[cond("Ready", "True")]), "Progressing"),
        (
            obj(
                1,
                Some(1),
                &[cond("Ready", "True"), cond("Stalled", "False")],
            ),
            "Healthy",
        ),
        (
            obj(
                1,
                Some(1),
                &[cond("Ready", "False"), cond("Stalled", "True")],
            ),
            "Degraded",
        ),
        (
            obj(
                1,
                Some(1),
                &[
                    cond("Ready", "False"),
                    cond("Degraded", "True"),
                    cond("Reconciling", "False"),
                ],
            ),
            "Degraded",
        ),
        (
            obj(
                1,
                Some(1),
                &[
                    cond("Ready", "False"),
                    cond("Degraded", "True"),
                    cond("Reconciling", "True"),
                ],
            ),
            "Progressing",
        ),
    ];
    for (object, want) in cases {
        let program = format!(
            "obj = {object}\nlocal hs = dofile({script:?})\nio.write(hs.status, '|', tostring(hs.message))"
        );
        let out = Command::new("lua5.1")
            .args(["-e", &program])
            .output()
            .expect("lua5.1 runs (scripts/test.sh installs Debian's lua5.1)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{object}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(text.split('|').next(), Some(want), "{object} -> {text}");
    }
}
