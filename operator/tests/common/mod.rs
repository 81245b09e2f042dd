//! Clusters used by several tests.
#![allow(dead_code)]

use ballast_operator::crd::EtcdCluster;

/// A cluster as the API server would hand it to the operator: namespaced, with a UID and a
/// generation, spec from YAML (defaults filled by serde as the schema defaults would).
pub fn cluster(name: &str, spec_yaml: &str) -> EtcdCluster {
    let mut c = EtcdCluster::new(name, serde_yaml_ng::from_str(spec_yaml).unwrap());
    c.metadata.namespace = Some("db".into());
    c.metadata.uid = Some("6f1c2a9e-0000-4000-8000-000000000001".into());
    c.metadata.generation = Some(1);
    c
}

/// The fixtures rendered by snapshot and schema tests: `(label, cluster)`.
pub fn fixtures() -> Vec<(&'static str, EtcdCluster)> {
    vec![
        ("three", cluster("main", "{}")),
        (
            "single_custom",
            cluster(
                "solo",
                r#"
replicas: 1
version: "0.2.0"
imagePullPolicy: IfNotPresent
imagePullSecrets: [{ name: regcred }]
storage: { size: 20Gi, storageClassName: fast }
resources:
  requests: { cpu: 500m, memory: 1Gi }
  limits: { memory: 2Gi }
tls: { caSecretName: corp-ca }
options:
  quotaBackendBytes: 8Gi
  autoCompaction: { mode: revision, retention: "1000" }
  snapshotCount: 5000
  heartbeatInterval: 250
  electionTimeout: 2500
clusterDomain: k8s.example
pod:
  antiAffinity: Required
  tolerations:
  - { key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule }
  nodeSelector: { disk: ssd }
  priorityClassName: etcd-critical
  labels: { team: platform }
  annotations: { prometheus.io/scrape: "true" }
"#,
            ),
        ),
        (
            "existing_certs",
            cluster(
                "ext",
                r#"
replicas: 4
image: registry.example/mirror/ballast:1.2.3
tls:
  existing: { serverSecretName: ext-server-tls, peerSecretName: ext-peer-tls, operatorClientSecretName: ext-client-tls }
"#,
            ),
        ),
        (
            "backup_restore",
            cluster(
                "copy",
                r#"
backup:
  schedule: "0 */6 * * *"
  keepLast: 7
  maxAge: 168h
  compression: Gzip
  store: { volume: { claimName: etcd-backups } }
restore:
  store: { s3: { bucket: backups, prefix: db/main, endpoint: "http://minio.storage:9000", credentialsSecretName: s3-creds } }
  backup: 20261203T140000Z-r12.db
  bumpRevision: 1000000
maintenance:
  defrag: { schedule: "0 3 * * 0" }
"#,
            ),
        ),
    ]
}

/// Oldest and newest Kubernetes versions objects are validated against (k8s-openapi is
/// built for the oldest).
pub const KUBERNETES_VERSIONS: [&str; 2] = ["1.33.0", "1.37.0"];

/// Runs the real `kubernetes-validate` (PyPI) in strict mode (unknown fields are errors) on
/// `files` for Kubernetes `version`: (succeeded, its output).
pub fn kubernetes_validate(files: &[String], version: &str) -> (bool, String) {
    let out = std::process::Command::new("python3")
        .args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "--kubernetes-version",
            version,
        ])
        .args(files)
        .output()
        .expect("python3 must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("No module named kubernetes_validate"),
        "kubernetes-validate is missing: python3 -m pip install kubernetes-validate (scripts/test.sh does it)"
    );
    (out.status.success(), text)
}
