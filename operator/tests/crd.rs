//! The committed CRD matches the Rust types, and the schema's CEL rules accept and refuse
//! what they should, with their messages. The rules are evaluated client-side with kube's
//! CEL validator (the same rule text the API server runs).

use ballast_operator::crd::{EtcdCluster, EtcdClusterSpec};
use kube::core::cel::{validate_cel, validate_cel_update};

const CRD_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds");
/// The Helm chart's copy (Helm installs what is in a chart's `crds/` directory).
const CHART_CRD_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/ballast/crds");

#[test]
fn committed_crds_are_up_to_date() {
    for (file, generated) in ballast_operator::crd::crd_files().unwrap() {
        for dir in [CRD_DIR, CHART_CRD_DIR] {
            let path = format!("{dir}/{file}");
            if std::env::var_os("BALLAST_UPDATE_CRDS").is_some() {
                std::fs::write(&path, &generated).unwrap();
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == generated,
                "{path} is stale: run `BALLAST_UPDATE_CRDS=1 cargo test -p ballast-operator --test crd`"
            );
        }
    }
}

fn spec(yaml: &str) -> EtcdClusterSpec {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn cluster(name: &str, yaml: &str) -> EtcdCluster {
    let mut c = EtcdCluster::new(name, spec(yaml));
    c.metadata.namespace = Some("db".into());
    c
}

fn errors(c: &EtcdCluster) -> String {
    match validate_cel(c) {
        Ok(()) => String::new(),
        Err(e) => e.to_string(),
    }
}

fn update_errors(new: &EtcdCluster, old: &EtcdCluster) -> String {
    match validate_cel_update(new, old) {
        Ok(()) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_and_a_full_spec_are_valid() {
    assert_eq!(errors(&cluster("main", "{}")), "");
    let full = cluster(
        "main",
        r#"
replicas: 5
version: "0.1.0"
storage: { size: 20Gi, storageClassName: fast }
tls: { caSecretName: my-ca, validity: 2160h, renewBefore: 360h }
options:
  quotaBackendBytes: 8Gi
  autoCompaction: { mode: periodic, retention: 1h }
  snapshotCount: 5000
  heartbeatInterval: 200
  electionTimeout: 2000
pod:
  antiAffinity: Required
  priorityClassName: system-cluster-critical
"#,
    );
    assert_eq!(errors(&full), "");
    assert_eq!(update_errors(&full, &full), "");
}

#[test]
fn replicas_must_be_between_one_and_seven_but_may_be_even() {
    for bad in [0, 8, -1] {
        let e = errors(&cluster("main", &format!("replicas: {bad}")));
        assert!(e.contains("replicas must be between 1 and 7"), "{bad}: {e}");
    }
    assert_eq!(errors(&cluster("main", "replicas: 4")), "");
    assert_eq!(errors(&cluster("main", "replicas: 7")), "");
}

#[test]
fn replicas_may_change_within_bounds() {
    let old = cluster("main", "replicas: 3");
    for new in [5, 1, 4, 7] {
        assert_eq!(
            update_errors(&cluster("main", &format!("replicas: {new}")), &old),
            "",
            "{new}"
        );
    }
    let e = update_errors(&cluster("main", "replicas: 9"), &old);
    assert!(e.contains("replicas must be between 1 and 7"), "{e}");
}

#[test]
fn storage_can_grow_but_not_shrink_or_change_class() {
    let old = cluster("main", "storage: { size: 8Gi, storageClassName: fast }");
    let grown = cluster("main", "storage: { size: 16Gi, storageClassName: fast }");
    assert_eq!(update_errors(&grown, &old), "");
    let shrunk = cluster("main", "storage: { size: 4Gi, storageClassName: fast }");
    let e = update_errors(&shrunk, &old);
    assert!(
        e.contains("storage.size cannot shrink from 8Gi to 4Gi"),
        "{e}"
    );
    let reclassed = cluster("main", "storage: { size: 8Gi, storageClassName: slow }");
    assert!(update_errors(&reclassed, &old).contains("storageClassName cannot change"));
    // Equal sizes written differently are not a shrink.
    let same = cluster("main", "storage: { size: 8192Mi, storageClassName: fast }");
    assert_eq!(update_errors(&same, &old), "");
    assert!(errors(&cluster("main", "storage: { size: 0 }")).contains("positive quantity"));
}

#[test]
fn tls_rules() {
    let e = errors(&cluster(
        "main",
        "tls: { caSecretName: a, existing: { serverSecretName: s, peerSecretName: p, operatorClientSecretName: c } }",
    ));
    assert!(e.contains("set either tls.caSecretName"), "{e}");
    let e = errors(&cluster(
        "main",
        "tls: { validity: 720h, renewBefore: 720h }",
    ));
    assert!(e.contains("renewBefore must be shorter"), "{e}");
    let e = errors(&cluster("main", "tls: { validity: 30m, renewBefore: 1m }"));
    assert!(e.contains("at least 1h"), "{e}");
}

#[test]
fn cluster_domain_and_tls_mode_are_fixed_after_creation() {
    let old = cluster("main", "{}");
    let e = update_errors(&cluster("main", "clusterDomain: other.example"), &old);
    assert!(
        e.contains("clusterDomain cannot change after creation"),
        "{e}"
    );
    let e = update_errors(&cluster("main", "tls: { caSecretName: mine }"), &old);
    assert!(e.contains("the TLS mode"), "{e}");
    let mine = cluster("main", "tls: { caSecretName: mine }");
    let e = update_errors(&cluster("main", "tls: { caSecretName: theirs }"), &mine);
    assert!(e.contains("the TLS mode"), "{e}");
    // Other TLS settings may change.
    let e = update_errors(
        &cluster("main", "tls: { caSecretName: mine, validity: 4380h }"),
        &mine,
    );
    assert_eq!(e, "");
}

#[test]
fn automatic_recovery_waits_at_least_a_minute() {
    let e = errors(&cluster(
        "main",
        "recovery: { quorumLoss: Automatic, after: 10s }",
    ));
    assert!(e.contains("recovery.after must be at least 1m"), "{e}");
    assert_eq!(
        errors(&cluster(
            "main",
            "recovery: { quorumLoss: Automatic, after: 5m }"
        )),
        ""
    );
}

#[test]
fn option_rules() {
    let e = errors(&cluster(
        "main",
        "options: { heartbeatInterval: 500, electionTimeout: 1000 }",
    ));
    assert!(e.contains("at least 5 times"), "{e}");
    let e = errors(&cluster(
        "main",
        "storage: { size: 2Gi }\noptions: { quotaBackendBytes: 4Gi }",
    ));
    assert!(
        e.contains("quotaBackendBytes must be smaller than storage.size"),
        "{e}"
    );
    let e = errors(&cluster(
        "main",
        "options: { autoCompaction: { mode: revision, retention: 1h } }",
    ));
    assert!(e.contains("number of revisions"), "{e}");
    assert_eq!(
        errors(&cluster(
            "main",
            "options: { autoCompaction: { mode: revision, retention: \"1000\" } }"
        )),
        ""
    );
}

#[test]
fn name_must_fit_derived_names() {
    let long = "a".repeat(53);
    assert!(errors(&cluster(&long, "{}")).contains("at most 52 characters"));
    assert!(errors(&cluster("9lives", "{}")).contains("starting with a letter"));
    assert_eq!(errors(&cluster(&"a".repeat(52), "{}")), "");
}

#[test]
fn restore_only_at_creation() {
    let old = cluster("main", "{}");
    let new = cluster(
        "main",
        "restore: { store: { s3: { bucket: snaps, prefix: db/old } }, backup: 20261203T140000Z-r12.db }",
    );
    assert!(update_errors(&new, &old)
        .contains("restore can only be set when the EtcdCluster is created"));
    assert_eq!(errors(&new), "");
}

#[test]
fn a_rollback_must_name_the_cluster() {
    let wrong = cluster("main", "rollback: { backup: a.db, confirm: other }");
    assert!(
        errors(&wrong).contains("must repeat the cluster's name"),
        "{}",
        errors(&wrong)
    );
    assert_eq!(
        errors(&cluster(
            "main",
            "rollback: { backup: a.db, confirm: main }"
        )),
        ""
    );
}

#[test]
fn a_restore_names_one_backup() {
    let by_ref = cluster("main", "restore: { etcdBackup: nightly }");
    assert_eq!(errors(&by_ref), "");
    let both = cluster(
        "main",
        "restore: { etcdBackup: nightly, backup: a.db, store: { s3: { bucket: abc } } }",
    );
    assert!(
        errors(&both).contains("either by store and backup, or by etcdBackup"),
        "{}",
        errors(&both)
    );
    let neither = cluster("main", "restore: { bumpRevision: 5 }");
    assert!(
        errors(&neither).contains("either by store and backup"),
        "{}",
        errors(&neither)
    );
    let no_prefix = cluster(
        "main",
        "restore: { backup: a.db, store: { s3: { bucket: abc } } }",
    );
    assert!(
        errors(&no_prefix).contains("prefix is required"),
        "{}",
        errors(&no_prefix)
    );
    let no_store = cluster("main", "restore: { backup: a.db }");
    assert!(
        errors(&no_store).contains("restore.backup needs restore.store"),
        "{}",
        errors(&no_store)
    );
}

#[test]
fn backup_and_restore_stores_are_checked() {
    let volume = cluster(
        "main",
        "restore: { store: { volume: { claimName: snaps } }, backup: a.db }",
    );
    assert!(
        errors(&volume).contains("restore.store.volume.path is required"),
        "{}",
        errors(&volume)
    );
    let volume_path = cluster(
        "main",
        "restore: { store: { volume: { claimName: snaps, path: db/old } }, backup: a.db }",
    );
    assert_eq!(errors(&volume_path), "");
    let both = cluster(
        "main",
        "backup: { schedule: '* * * * *', store: { s3: { bucket: abc }, volume: { claimName: x } } }",
    );
    assert!(errors(&both).contains("exactly one"), "{}", errors(&both));
    let neither = cluster("main", "backup: { schedule: '* * * * *', store: {} }");
    assert!(
        errors(&neither).contains("exactly one"),
        "{}",
        errors(&neither)
    );
    let cron = cluster(
        "main",
        "backup: { schedule: 'every hour', store: { s3: { bucket: abc } } }",
    );
    assert!(errors(&cron).contains("five fields"), "{}", errors(&cron));
    let good = cluster(
        "main",
        "backup: { schedule: '*/5 * * * *', keepLast: 3, maxAge: 168h, compression: Gzip, store: { s3: { bucket: abc, endpoint: 'http://minio:9000' } } }",
    );
    assert_eq!(errors(&good), "");
    let endpoint = cluster(
        "main",
        "backup: { schedule: '* * * * *', store: { s3: { bucket: abc, endpoint: 'minio:9000' } } }",
    );
    assert!(
        errors(&endpoint).contains("http:// or https://"),
        "{}",
        errors(&endpoint)
    );
}

#[test]
fn example_is_a_valid_cluster() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/etcdcluster.yaml"
    ))
    .unwrap();
    let raw: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    let parsed: EtcdCluster = serde_json::from_value(raw.clone()).unwrap();
    assert_eq!(errors(&parsed), "");
    // Every field in the example exists in the types (serde would drop unknown ones).
    let back = serde_json::to_value(&parsed).unwrap();
    assert_subset(&raw["spec"], &back["spec"], "spec");
}

fn assert_subset(small: &serde_json::Value, big: &serde_json::Value, path: &str) {
    match (small, big) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in a {
                let sub = format!("{path}.{k}");
                let Some(bv) = b.get(k) else {
                    panic!("{sub} is not a field of EtcdCluster");
                };
                assert_subset(v, bv, &sub);
            }
        }
        (serde_json::Value::Array(a), serde_json::Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_subset(x, y, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}
