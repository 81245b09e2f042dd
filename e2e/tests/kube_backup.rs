//! Backups and restore on a real Kubernetes: an S3-compatible store (moto's server, a real
//! process on the node's address, which pods reach), a cluster with a one-minute backup
//! schedule and retention, an on-demand `EtcdBackup` that works and one pointed at a wrong
//! bucket, a new cluster restored from a backup (three members, one snapshot, a new cluster
//! ID, revisions bumped), and a corrupt backup refused before any member exists.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ballast_e2e::kube::KubeCluster;
use serde_json::Value;

const BUCKET: &str = "backups";

/// moto's S3 server on the node's address; killed on drop.
struct S3 {
    child: Child,
    endpoint: String,
}

impl S3 {
    fn start(ip: &str) -> S3 {
        let port = std::net::TcpListener::bind((ip, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port on the node's address")
            .port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", ip, "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto's server (pip install 'moto[server]'; scripts/test.sh does)");
        let s3 = S3 {
            child,
            endpoint: format!("http://{ip}:{port}"),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect((ip, port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto does not listen"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        s3.python(&format!("s3.create_bucket(Bucket='{BUCKET}')"));
        s3
    }

    /// Runs `code` with `s3`, a boto3 client of this server (an independent S3 client).
    fn python(&self, code: &str) -> String {
        let script = format!(
            "import boto3, json, sys\n\
             s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test')\n{code}\n",
            self.endpoint
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Keys under `prefix`, sorted.
    fn keys(&self, prefix: &str) -> Vec<String> {
        let out = self.python(&format!(
            "r = s3.list_objects_v2(Bucket='{BUCKET}', Prefix='{prefix}')\n\
             print(json.dumps(sorted(o['Key'] for o in r.get('Contents', []))))"
        ));
        serde_json::from_str(out.trim()).expect("key list")
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cluster_manifest(name: &str, s3: &S3, extra: &str) -> String {
    format!(
        r#"
apiVersion: ballast.dev/v1alpha1
kind: EtcdCluster
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: {replicas}
  storage: {{size: 1Gi}}
{extra}
"#,
        replicas = if extra.contains("restore:") { 3 } else { 1 },
        extra = extra.replace("ENDPOINT", &s3.endpoint),
    )
}

fn client_pod(cluster: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: client-{cluster}, namespace: default}}
spec:
  securityContext: {{runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}}
  containers:
    - name: tools
      image: ballast.local/e2e-tools:1
      imagePullPolicy: Never
      volumeMounts: [{{name: cert, mountPath: /etc/etcd-client, readOnly: true}}]
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {{drop: ["ALL"]}}
  volumes:
    - name: cert
      secret: {{secretName: {cluster}-apiserver-etcd-client}}
"#
    )
}

fn etcdctl(kube: &KubeCluster, cluster: &str, args: &[&str]) -> Result<String, ballast_e2e::Error> {
    let pod = format!("client-{cluster}");
    let endpoint = format!("https://{cluster}.default.svc:2379");
    let mut all = vec![
        "exec",
        &pod,
        "--",
        "etcdctl",
        "--endpoints",
        &endpoint,
        "--cacert=/etc/etcd-client/ca.crt",
        "--cert=/etc/etcd-client/tls.crt",
        "--key=/etc/etcd-client/tls.key",
    ];
    all.extend_from_slice(args);
    kube.kubectl(&all)
}

/// A JSON merge patch of EtcdCluster src.
fn patch_src(kube: &KubeCluster, patch: &str) -> Result<String, ballast_e2e::Error> {
    kube.kubectl(&["patch", "etcdcluster", "src", "--type=merge", "-p", patch])
}

fn jsonpath(kube: &KubeCluster, kind: &str, name: &str, path: &str) -> String {
    kube.kubectl(&["get", kind, name, "-o", &format!("jsonpath={path}")])
        .unwrap_or_default()
}

fn wait_for(
    kube: &KubeCluster,
    kind: &str,
    name: &str,
    path: &str,
    within: Duration,
    want: impl Fn(&str) -> bool,
) -> String {
    kube.wait_kubectl(
        &["get", kind, name, "-o", &format!("jsonpath={path}")],
        within,
        want,
    )
    .unwrap_or_else(|e| panic!("{kind}/{name} {path}: {e}"))
}

/// Waits until `cluster` is Available and its `replicas` member pods are ready.
fn wait_serving(kube: &KubeCluster, cluster: &str, replicas: &str, within: Duration) {
    wait_for(
        kube,
        "etcdcluster",
        cluster,
        &condition("Available"),
        within,
        |s| s == "True",
    );
    wait_for(
        kube,
        "etcdcluster",
        cluster,
        "{.status.readyReplicas}",
        within,
        |n| n == replicas,
    );
}

fn condition(type_: &str) -> String {
    format!(r#"{{.status.conditions[?(@.type=="{type_}")].status}}"#)
}

/// `(key, value, create_revision, mod_revision, version)` of a key, base64 as etcdctl prints.
type Kv = (String, String, i64, i64, i64);

/// The [`Kv`]s of the keys under `/data/`, and
/// the header's revision, from `etcdctl get -w json` (at `rev` when given).
fn kvs(kube: &KubeCluster, cluster: &str, rev: Option<i64>) -> (Vec<Kv>, i64) {
    let rev_flag = rev.map(|r| format!("--rev={r}"));
    let mut args = vec!["get", "/data/", "--prefix", "-w", "json"];
    if let Some(r) = &rev_flag {
        args.push(r);
    }
    let out = etcdctl(kube, cluster, &args).expect("get -w json");
    let doc: Value = serde_json::from_str(&out).expect("json");
    let list = doc["kvs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|kv| {
                    (
                        kv["key"].as_str().unwrap_or_default().to_string(),
                        kv["value"].as_str().unwrap_or_default().to_string(),
                        kv["create_revision"].as_i64().unwrap_or_default(),
                        kv["mod_revision"].as_i64().unwrap_or_default(),
                        kv["version"].as_i64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (list, doc["header"]["revision"].as_i64().unwrap_or_default())
}

#[test]
fn backups_to_s3_and_restore_on_kubernetes() {
    let kube = KubeCluster::up(&[]).expect("scripts/kube-up.sh");
    kube.install_operator()
        .expect("helm install of the operator");
    let s3 = S3::start(&kube.node_ip().expect("node address"));
    kube.kubectl(&[
        "create",
        "secret",
        "generic",
        "s3-creds",
        "--from-literal=AWS_ACCESS_KEY_ID=test",
        "--from-literal=AWS_SECRET_ACCESS_KEY=test",
    ])
    .expect("credentials Secret");

    // A one-member cluster with data and a backup every minute, keeping one.
    let store =
        "store: {s3: {bucket: backups, endpoint: ENDPOINT, credentialsSecretName: s3-creds}}";
    let src = cluster_manifest(
        "src",
        &s3,
        &format!(
            "  backup:\n    schedule: '* * * * *'\n    keepLast: 1\n    {store}\n  maintenance:\n    defrag: {{schedule: '* * * * *'}}"
        ),
    );
    kube.kubectl_with_input(&["apply", "-f", "-"], Some(&src))
        .expect("EtcdCluster src");
    wait_serving(&kube, "src", "1", Duration::from_secs(240));
    kube.kubectl_with_input(&["apply", "-f", "-"], Some(&client_pod("src")))
        .expect("client pod");
    kube.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/client-src",
        "--timeout=120s",
    ])
    .expect("client pod ready");
    for i in 0..20 {
        etcdctl(
            &kube,
            "src",
            &["put", &format!("/data/{i:02}"), &format!("value {i}")],
        )
        .expect("put");
    }
    etcdctl(&kube, "src", &["put", "/data/05", "changed"]).expect("overwrite");
    etcdctl(&kube, "src", &["del", "/data/07"]).expect("delete");

    kube.phase("source cluster serving with data");
    scheduled_backups_appear_with_metadata_and_retention(&kube, &s3);
    kube.phase("scheduled backups");
    let (name, revision) = an_on_demand_backup_succeeds_and_a_wrong_bucket_fails(&kube);
    kube.phase("on-demand backups");
    // What the backup holds, as the source served it at the backup's revision.
    let (at_backup, _) = kvs(&kube, "src", Some(revision));
    assert!(!at_backup.is_empty());
    // Later writes are not in that backup.
    etcdctl(&kube, "src", &["put", "/data/later", "after the backup"]).expect("put");
    a_new_cluster_is_restored_from_the_backup(&kube, &s3, &name, revision, &at_backup);
    kube.phase("new cluster restored");
    a_corrupt_backup_is_refused_before_any_member_starts(&kube, &s3, &name);
    kube.phase("corrupt backup refused");
    the_source_is_rolled_back_in_place(&kube, &name, &at_backup);
    kube.phase("source rolled back in place");
    defragmentation_runs_on_its_schedule(&kube);
    kube.phase("scheduled defragmentation");
    a_backup_on_a_volume_restores_a_new_cluster(&kube);
    kube.phase("backup on a volume restored");
}

fn scheduled_backups_appear_with_metadata_and_retention(kube: &KubeCluster, s3: &S3) {
    // Two runs succeeded, the newest after the writes: retention kept that one only.
    let start = Instant::now();
    loop {
        let succeeded = kube
            .kubectl(&[
                "get",
                "jobs",
                "-l",
                "ballast.dev/cluster=src",
                "-o",
                "jsonpath={.items[*].status.succeeded}",
            ])
            .unwrap_or_default();
        let revision: i64 = jsonpath(
            kube,
            "etcdcluster",
            "src",
            "{.status.backup.lastSuccessful.revision}",
        )
        .parse()
        .unwrap_or(0);
        if succeeded.split_whitespace().filter(|s| *s == "1").count() >= 2 && revision >= 22 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "two scheduled backups, one after the writes, did not succeed in 5 minutes: {}",
            kube.kubectl(&[
                "get",
                "jobs,pods",
                "-l",
                "ballast.dev/cluster=src",
                "-o",
                "wide"
            ])
            .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    // Suspended, so that no run is half-way while the store is listed.
    patch_src(kube, r#"{"spec":{"backup":{"suspend":true}}}"#).expect("suspend the schedule");
    wait_for(
        kube,
        "cronjob",
        "src-backup",
        "{.spec.suspend} {.status.active}",
        Duration::from_secs(120),
        |s| s.trim() == "true",
    );
    let events = kube
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=EtcdCluster,involvedObject.name=src,reason=BackupSucceeded",
            "-o",
            "name",
        ])
        .unwrap_or_default();
    assert!(!events.trim().is_empty(), "an Event for each success");
    let keys = s3.keys("default/src/");
    let snapshots: Vec<&String> = keys.iter().filter(|k| !k.ends_with(".json")).collect();
    assert_eq!(
        snapshots.len(),
        1,
        "keepLast 1 leaves one snapshot: {keys:?}"
    );
    let meta_key = keys
        .iter()
        .find(|k| k.ends_with(".json"))
        .unwrap_or_else(|| panic!("a metadata object beside the snapshot: {keys:?}"));
    let meta: Value = serde_json::from_str(&s3.python(&format!(
        "print(s3.get_object(Bucket='{BUCKET}', Key='{meta_key}')['Body'].read().decode())"
    )))
    .expect("metadata JSON");
    let size = s3.python(&format!(
        "print(s3.head_object(Bucket='{BUCKET}', Key='{}')['ContentLength'])",
        snapshots[0]
    ));
    assert_eq!(
        meta["size"].as_i64().map(|s| s.to_string()),
        Some(size.trim().to_string()),
        "{meta}"
    );
    assert!(meta["revision"].as_i64().unwrap_or(0) >= 22, "{meta}");
    assert!(
        meta["clusterId"].as_str().is_some_and(|s| !s.is_empty()),
        "{meta}"
    );
    assert_eq!(meta["sha256"].as_str().map(str::len), Some(64), "{meta}");
    // Status names the backup, and says backups are not failing.
    let last = jsonpath(
        kube,
        "etcdcluster",
        "src",
        "{.status.backup.lastSuccessful.location}",
    );
    assert!(last.starts_with("s3://backups/default/src/"), "{last}");
    assert_eq!(
        jsonpath(kube, "etcdcluster", "src", &condition("BackupFailing")),
        "False"
    );

    // The leading operator exports what the stale-backup alert reads, with the cluster's
    // labels (scraped through the API server's pod proxy).
    let leader = kube.operator_leader().expect("leader Lease");
    let metrics = kube
        .kubectl(&[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/ballast-system/pods/{leader}:8080/proxy/metrics"),
        ])
        .expect("operator metrics");
    for metric in [
        "ballast_operator_backup_last_success_timestamp_seconds",
        "ballast_operator_backup_period_seconds",
    ] {
        let line = format!(r#"{metric}{{namespace="default",etcd_cluster="src"}} "#);
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
    let period =
        r#"ballast_operator_backup_period_seconds{namespace="default",etcd_cluster="src"} 60"#;
    assert!(metrics.contains(period), "{period} in:\n{metrics}");
}

/// Returns the on-demand backup's name and revision.
/// Applies EtcdBackup `name` of cluster src (with `store`, a YAML flow mapping, if any) and
/// waits for its phase to be `phase`.
fn take_backup(kube: &KubeCluster, name: &str, store: Option<&str>, phase: &str) {
    let store = store.map(|s| format!(", store: {s}")).unwrap_or_default();
    let manifest = format!(
        "apiVersion: ballast.dev/v1alpha1\nkind: EtcdBackup\n\
         metadata: {{name: {name}, namespace: default}}\nspec: {{clusterName: src{store}}}\n"
    );
    kube.kubectl_with_input(&["apply", "-f", "-"], Some(&manifest))
        .unwrap_or_else(|e| panic!("EtcdBackup {name}: {e}"));
    wait_for(
        kube,
        "etcdbackup",
        name,
        "{.status.phase}",
        Duration::from_secs(180),
        |p| p == phase,
    );
}

fn an_on_demand_backup_succeeds_and_a_wrong_bucket_fails(kube: &KubeCluster) -> (String, i64) {
    take_backup(kube, "now", None, "Succeeded");
    let name = jsonpath(kube, "etcdbackup", "now", "{.status.name}");
    let revision: i64 = jsonpath(kube, "etcdbackup", "now", "{.status.revision}")
        .parse()
        .expect("a revision in status");
    assert!(!name.is_empty());

    let endpoint = jsonpath(
        kube,
        "etcdcluster",
        "src",
        "{.spec.backup.store.s3.endpoint}",
    );
    let wrong = format!(
        "{{s3: {{bucket: no-such-bucket, endpoint: '{endpoint}', credentialsSecretName: s3-creds}}}}"
    );
    take_backup(kube, "wrong-bucket", Some(&wrong), "Failed");
    let why = jsonpath(kube, "etcdbackup", "wrong-bucket", "{.status.message}");
    assert!(
        why.contains("no-such-bucket"),
        "the failure names the bucket: {why}"
    );
    (name, revision)
}

fn a_new_cluster_is_restored_from_the_backup(
    kube: &KubeCluster,
    s3: &S3,
    name: &str,
    revision: i64,
    before: &[Kv],
) {
    let restored = cluster_manifest(
        "restored",
        s3,
        // By the EtcdBackup that took it: its name and its cluster's store.
        "  restore:\n    etcdBackup: now\n    bumpRevision: 1000",
    );
    kube.kubectl_with_input(&["apply", "-f", "-"], Some(&restored))
        .expect("EtcdCluster restored");
    wait_serving(kube, "restored", "3", Duration::from_secs(300));
    assert_eq!(
        jsonpath(
            kube,
            "etcdcluster",
            "restored",
            "{.status.restoredFrom.backup}"
        ),
        name,
        "status records the backup it was created from"
    );
    kube.kubectl_with_input(&["apply", "-f", "-"], Some(&client_pod("restored")))
        .expect("client pod");
    kube.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/client-restored",
        "--timeout=120s",
    ])
    .expect("client pod ready");

    // Exactly the keys, values and revisions the source had at the backup's revision.
    let (after, header) = kvs(kube, "restored", None);
    assert_eq!(
        after, before,
        "the restored cluster holds the backup's data"
    );
    assert!(
        !after.iter().any(|kv| kv.0.ends_with("later")),
        "later writes are not restored"
    );
    // The bump: revisions moved on by 1000, older ones compacted.
    assert_eq!(header, revision + 1000, "revision bumped by 1000");
    let old = etcdctl(
        kube,
        "restored",
        &["get", "/data/00", &format!("--rev={revision}")],
    );
    assert!(
        old.as_ref().err().is_some_and(|e| e
            .to_string()
            .contains("required revision has been compacted")),
        "{old:?}"
    );
    // A new cluster: its own ID.
    let src_id = jsonpath(kube, "etcdcluster", "src", "{.status.clusterId}");
    let new_id = jsonpath(kube, "etcdcluster", "restored", "{.status.clusterId}");
    assert!(
        !new_id.is_empty() && new_id != src_id,
        "{src_id} vs {new_id}"
    );
    // Writable.
    etcdctl(kube, "restored", &["put", "/data/new", "yes"]).expect("write to the restored cluster");
    // The check held the backup against retention while the members restored it; the
    // schedule's retention (keep one) never deletes an on-demand backup.
    let keys = s3.keys("default/src/");
    assert!(
        keys.iter()
            .any(|k| k.starts_with(&format!("default/src/{name}.holds/default-restored-"))),
        "{keys:?}"
    );
    assert!(keys.contains(&format!("default/src/{name}")), "{keys:?}");
}

fn a_corrupt_backup_is_refused_before_any_member_starts(kube: &KubeCluster, s3: &S3, name: &str) {
    // A copy of the backup with one byte flipped in the middle, metadata as it was.
    let key = format!("default/src/{name}");
    s3.python(&format!(
        "body = bytearray(s3.get_object(Bucket='{BUCKET}', Key='{key}')['Body'].read())\n\
         body[len(body) // 2] ^= 0xff\n\
         s3.put_object(Bucket='{BUCKET}', Key='corrupt/{name}', Body=bytes(body))\n\
         meta = s3.get_object(Bucket='{BUCKET}', Key='{key}.json')['Body'].read()\n\
         s3.put_object(Bucket='{BUCKET}', Key='corrupt/{name}.json', Body=meta)"
    ));
    let bad = cluster_manifest(
        "bad",
        s3,
        &format!(
            "  restore:\n    store: {{s3: {{bucket: backups, prefix: corrupt, endpoint: ENDPOINT, credentialsSecretName: s3-creds}}}}\n    backup: {name}"
        ),
    );
    kube.kubectl_with_input(&["apply", "-f", "-"], Some(&bad))
        .expect("EtcdCluster bad");
    wait_for(
        kube,
        "etcdcluster",
        "bad",
        "{.status.conditions[?(@.type==\"Degraded\")].reason}",
        Duration::from_secs(180),
        |r| r == "RestoreFailed",
    );
    let message = jsonpath(
        kube,
        "etcdcluster",
        "bad",
        r#"{.status.conditions[?(@.type=="Degraded")].message}"#,
    );
    assert!(
        message.contains("corrupt") || message.contains("SHA-256"),
        "{message}"
    );
    assert!(
        kube.kubectl(&["get", "statefulset", "bad"]).is_err(),
        "no member may exist for a corrupt backup"
    );
    let events = kube
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=bad,reason=RestoreFailed",
            "-o",
            "name",
        ])
        .unwrap_or_default();
    assert!(!events.trim().is_empty(), "an Event says so");
}

/// The source cluster, which has a write made after the backup, is rolled back to it in
/// place once asked with its name as confirmation: every member is stopped, restored and
/// started as a new cluster; the later write is gone, the backup's data is there, and the
/// status says since when clients can write.
fn the_source_is_rolled_back_in_place(kube: &KubeCluster, name: &str, at_backup: &[Kv]) {
    assert_eq!(
        etcdctl(kube, "src", &["get", "/data/later", "--print-value-only"]).expect("get"),
        "after the backup\n"
    );
    let old_id = jsonpath(kube, "etcdcluster", "src", "{.status.clusterId}");
    let unconfirmed = patch_src(
        kube,
        &format!(r#"{{"spec":{{"rollback":{{"backup":"{name}","confirm":"other"}}}}}}"#),
    );
    assert!(
        unconfirmed
            .as_ref()
            .err()
            .is_some_and(|e| e.to_string().contains("must repeat the cluster's name")),
        "{unconfirmed:?}"
    );
    // First to a backup that has the later write, changed to `name` while the members are
    // stopped for it: they stay stopped and end with `name`'s data only.
    take_backup(kube, "later", None, "Succeeded");
    let later = jsonpath(kube, "etcdbackup", "later", "{.status.name}");
    let rollback_to = |backup: &str| {
        patch_src(
            kube,
            &format!(r#"{{"spec":{{"rollback":{{"backup":"{backup}","confirm":"src"}}}}}}"#),
        )
        .unwrap_or_else(|e| panic!("ask for the rollback to {backup}: {e}"))
    };
    rollback_to(&later);
    wait_for(
        kube,
        "etcdcluster",
        "src",
        "{.status.rollback.phase}",
        Duration::from_secs(180),
        |p| p == "Stopping" || p == "Restoring",
    );
    rollback_to(name);
    wait_for(
        kube,
        "etcdcluster",
        "src",
        "{.status.rollback.phase}",
        Duration::from_secs(300),
        |p| p == "Succeeded",
    );
    assert!(!jsonpath(
        kube,
        "etcdcluster",
        "src",
        "{.status.rollback.writableSince}"
    )
    .is_empty());
    assert!(!jsonpath(kube, "etcdcluster", "src", "{.status.rollback.stoppedAt}").is_empty());
    // The restarted member is behind the client Service once ready.
    wait_serving(kube, "src", "1", Duration::from_secs(120));
    kube.wait_kubectl(
        &[
            "exec",
            "client-src",
            "--",
            "etcdctl",
            "--endpoints",
            "https://src.default.svc:2379",
            "--cacert=/etc/etcd-client/ca.crt",
            "--cert=/etc/etcd-client/tls.crt",
            "--key=/etc/etcd-client/tls.key",
            "endpoint",
            "health",
        ],
        Duration::from_secs(60),
        // etcdctl 3.4 prints the healthy line on stderr; its exit status says it.
        |_| true,
    )
    .expect("the client Service reaches the restored member");
    let (now, _) = kvs(kube, "src", None);
    assert_eq!(now, at_backup, "the cluster serves the backup's data");
    wait_for(
        kube,
        "etcdcluster",
        "src",
        "{.status.clusterId}",
        Duration::from_secs(60),
        |id| !id.is_empty() && id != old_id,
    );
    etcdctl(kube, "src", &["put", "/data/after-rollback", "yes"]).expect("writable again");
    for reason in ["RollbackStarted", "RollbackChanged", "RolledBack"] {
        let events = kube
            .kubectl(&[
                "get",
                "events",
                "--field-selector",
                &format!("involvedObject.name=src,reason={reason}"),
                "-o",
                "name",
            ])
            .unwrap_or_default();
        assert!(!events.trim().is_empty(), "an Event {reason}");
    }
}

/// The one-minute defragmentation schedule of the source has run: status says what
/// `ballast defrag` did to its member.
fn defragmentation_runs_on_its_schedule(kube: &KubeCluster) {
    // A run while the members were stopped by the rollback found none to defragment; the
    // next one did.
    let seen = wait_for(
        kube,
        "etcdcluster",
        "src",
        "{.status.defrag.succeeded} {.status.defrag.message}",
        Duration::from_secs(150),
        |s| s.starts_with("true ") && s.contains(r#""name":"src-0""#),
    );
    let message = seen.trim_start_matches("true ");
    let report: Value = serde_json::from_str(message).expect("ballast defrag's JSON line");
    assert_eq!(report["members"][0]["name"], "src-0", "{report}");
    assert!(report["members"][0]["after"].as_i64().is_some(), "{report}");
}

/// An on-demand backup to a PersistentVolumeClaim, and a new cluster restored from it: the
/// operator makes the member's claim and restores it with a Job before the member starts.
fn a_backup_on_a_volume_restores_a_new_cluster(kube: &KubeCluster) {
    let claim = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: backups, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"#;
    kube.kubectl_with_input(&["apply", "-f", "-"], Some(claim))
        .expect("backup claim");
    take_backup(
        kube,
        "to-volume",
        Some("{volume: {claimName: backups}}"),
        "Succeeded",
    );
    let name = jsonpath(kube, "etcdbackup", "to-volume", "{.status.name}");
    let location = jsonpath(kube, "etcdbackup", "to-volume", "{.status.location}");
    assert!(
        location.starts_with("/var/lib/ballast-backups/default/src/"),
        "{location}"
    );
    let (source, _) = kvs(kube, "src", None);

    let manifest = r#"
apiVersion: ballast.dev/v1alpha1
kind: EtcdCluster
metadata: {name: from-volume, namespace: default}
spec:
  replicas: 1
  storage: {size: 1Gi}
  restore: {etcdBackup: to-volume}
"#;
    kube.kubectl_with_input(&["apply", "-f", "-"], Some(manifest))
        .expect("EtcdCluster from-volume");
    wait_serving(kube, "from-volume", "1", Duration::from_secs(300));
    assert_eq!(
        jsonpath(
            kube,
            "etcdcluster",
            "from-volume",
            "{.status.restoredFrom.backup}"
        ),
        name
    );
    kube.kubectl_with_input(&["apply", "-f", "-"], Some(&client_pod("from-volume")))
        .expect("client pod");
    kube.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/client-from-volume",
        "--timeout=120s",
    ])
    .expect("client pod ready");
    let (restored, _) = kvs(kube, "from-volume", None);
    assert_eq!(
        restored, source,
        "the volume's backup holds the source's data"
    );
    etcdctl(kube, "from-volume", &["put", "/data/new", "yes"]).expect("writable");
}
