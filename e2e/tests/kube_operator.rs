//! The operator on a real Kubernetes (`scripts/kube-up.sh`), installed as a user installs
//! it: `helm install` of `charts/ballast` (CRD, RBAC, Deployment), the operator running in
//! the cluster from its image with in-cluster config, its own RBAC and leader election;
//! `examples/etcdcluster.yaml` applied, pods made by the StatefulSet controller and started
//! by the kubelet on claims from the default StorageClass, and real etcdctl in a pod using
//! the generated client certificate through the client Service and cluster DNS.

use std::time::Duration;

use ballast_e2e::kube::KubeCluster;

/// A pod with real etcdctl and the `apiserver-etcd-client` certificate, as a user would run one.
const CLIENT_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: etcd-client
  namespace: default
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
  containers:
    - name: tools
      image: ballast.local/e2e-tools:1
      imagePullPolicy: Never
      volumeMounts: [{name: cert, mountPath: /etc/etcd-client, readOnly: true}]
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: ["ALL"]}
  volumes:
    - name: cert
      secret: {secretName: main-apiserver-etcd-client}
"#;

#[test]
fn operator_runs_an_etcd_cluster_on_kubernetes() {
    let kube = KubeCluster::up(&[]).expect("scripts/kube-up.sh");
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let file = |f: &str| format!("{repo}/{f}");

    // Install as the README says: one helm install (the CRDs come from the chart's crds/).
    kube.install_operator()
        .expect("helm install of the operator");
    // One of its two replicas leads through the Lease.
    let holder = kube.operator_leader().expect("leader Lease");
    let operator_pods = kube
        .kubectl(&[
            "-n",
            "ballast-system",
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/name=ballast-operator",
            "-o",
            "name",
        ])
        .expect("operator pods");
    assert!(
        operator_pods.contains(&format!("pod/{holder}\n")),
        "the Lease is held by {holder}, not one of {operator_pods}"
    );

    kube.phase("operator installed");
    kube.kubectl(&["apply", "-f", &file("examples/etcdcluster.yaml")])
        .expect("EtcdCluster");
    wait_condition_true(&kube, "Available", Duration::from_secs(240));
    // Available comes from the members' answers; READY counts pods the kubelet found ready.
    kube.wait_kubectl(
        &[
            "get",
            "etcdcluster",
            "main",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ],
        Duration::from_secs(120),
        |out| out == "3",
    )
    .expect("every member pod ready");
    let table = kube
        .kubectl(&["get", "etcdclusters"])
        .expect("get etcdclusters");
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..3], ["main", "3", "3"], "{table}");
    assert!(row[3].starts_with("main-"), "leader column: {table}");

    // The StatefulSet controller made the pods, each on its own bound claim.
    let owners = kube
        .kubectl(&[
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/instance=main",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}:{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}{"\n"}{end}"#,
        ])
        .expect("pods");
    assert_eq!(
        owners,
        "main-0:StatefulSet/main\nmain-1:StatefulSet/main\nmain-2:StatefulSet/main\n"
    );
    let claims = kube
        .kubectl(&[
            "get",
            "pvc",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}={.status.phase}{"\n"}{end}"#,
        ])
        .expect("claims");
    assert_eq!(
        claims,
        "data-main-0=Bound\ndata-main-1=Bound\ndata-main-2=Bound\n"
    );

    kube.phase("cluster of 3 available");
    // Real etcdctl in a pod, through the client Service and cluster DNS.
    kube.kubectl_with_input(&["apply", "-f", "-"], Some(CLIENT_POD))
        .expect("client pod");
    kube.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/etcd-client",
        "--timeout=120s",
    ])
    .expect("client pod ready");
    let etcdctl = |endpoint: &str, args: &[&str]| etcdctl(&kube, endpoint, args);
    assert_eq!(
        etcdctl(SERVICE, &["put", "/registry/ballast/greeting", "hello"]).expect("put"),
        "OK\n"
    );
    assert_eq!(
        etcdctl(
            SERVICE,
            &["get", "/registry/ballast/greeting", "--print-value-only"]
        )
        .expect("get"),
        "hello\n"
    );
    // The simple format goes to stderr; JSON to stdout.
    let health =
        etcdctl(SERVICE, &["endpoint", "health", "--cluster", "-w", "json"]).expect("health");
    assert_eq!(health.matches(r#""health":true"#).count(), 3, "{health}");
    let members = etcdctl(SERVICE, &["member", "list"]).expect("member list");
    for i in 0..3 {
        assert!(
            members.contains(&format!(
                ", started, main-{i}, https://main-{i}.main-peer.default.svc.cluster.local:2380, https://main-{i}.main-peer.default.svc.cluster.local:2379, false"
            )),
            "{members}"
        );
    }

    kube.phase("etcdctl through the Service");
    applying_the_same_manifest_again_changes_nothing(&kube, &file("examples/etcdcluster.yaml"));
    kube.phase("same manifest again");
    the_pod_network_reaches_nothing_outside_the_cluster(&kube);
    the_peer_port_admits_only_peer_certificates(&kube);
    each_member_holds_only_its_own_key(&kube);
    kube.phase("network and certificates");

    // A member whose pod is deleted comes back on its claim, with its data, under the same name.
    kube.kubectl(&["delete", "pod", "main-1", "--wait=true"])
        .expect("delete a member's pod");
    // `kubectl wait` fails at once on a pod that does not exist yet, and the StatefulSet
    // controller recreates it a moment after the old one is gone: poll until it is Ready.
    kube.wait_kubectl(
        &[
            "get",
            "pod",
            "main-1",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
        Duration::from_secs(180),
        |ready| ready == "True",
    )
    .expect("member pod back");
    let member_1 = "https://main-1.main-peer.default.svc.cluster.local:2379";
    let value = etcdctl(
        member_1,
        &[
            "get",
            "/registry/ballast/greeting",
            "--print-value-only",
            "--consistency=s",
        ],
    )
    .expect("serializable read from the restarted member");
    assert_eq!(value, "hello\n");
    let members_after = etcdctl(SERVICE, &["member", "list"]).expect("member list");
    assert_eq!(
        members_after, members,
        "membership unchanged by a pod restart"
    );

    kube.phase("pod deleted and back");
    a_member_whose_data_is_lost_is_replaced(&kube);
    kube.phase("lost data replaced");
    a_member_whose_data_is_corrupt_is_replaced(&kube);
    kube.phase("corrupt data replaced");
    a_version_change_rolls_one_member_at_a_time_the_leader_last(&kube);
    kube.phase("version rolled");
    a_lost_quorum_is_reported_then_recovered_when_asked(&kube);
    kube.phase("lost quorum recovered");
    scaling_goes_through_learners_and_cleans_up_after_itself(&kube);
    kube.phase("scaled 3-5-3");
    helm_upgrade_rolls_the_operator_and_uninstall_leaves_the_clusters(&kube);
    kube.phase("helm upgrade and uninstall");
}

/// `helm upgrade` with a changed value rolls the operator's Deployment; `helm uninstall`
/// removes the operator and leaves the CRD, the EtcdCluster, its members and their data.
fn helm_upgrade_rolls_the_operator_and_uninstall_leaves_the_clusters(kube: &KubeCluster) {
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/ballast");
    let generation = |k: &KubeCluster| {
        k.kubectl(&[
            "-n",
            "ballast-system",
            "get",
            "deployment",
            "ballast-operator",
            "-o",
            "jsonpath={.metadata.generation}",
        ])
        .expect("deployment")
    };
    let before = generation(kube);
    kube.helm(&[
        "upgrade",
        "ballast-operator",
        chart,
        "-n",
        "ballast-system",
        "--reuse-values",
        "--set",
        "logLevel=debug",
    ])
    .expect("helm upgrade");
    assert_ne!(generation(kube), before, "the Deployment changed");
    kube.kubectl(&[
        "-n",
        "ballast-system",
        "rollout",
        "status",
        "deployment/ballast-operator",
        "--timeout=180s",
    ])
    .expect("the operator rolled");
    // The old pods go after the new ones are available: await them gone.
    kube.wait_kubectl(
        &[
            "-n",
            "ballast-system",
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/name=ballast-operator",
            "-o",
            r#"jsonpath={range .items[*]}{.spec.containers[0].env[?(@.name=="RUST_LOG")].value}{"\n"}{end}"#,
        ],
        Duration::from_secs(120),
        |env| !env.is_empty() && env.lines().all(|l| l == "debug,kube=warn"),
    )
    .expect("only operator pods with the new values run");

    let claims_before = claims(kube);
    kube.helm(&[
        "uninstall",
        "ballast-operator",
        "-n",
        "ballast-system",
        "--wait",
    ])
    .expect("helm uninstall");
    let left = kube
        .kubectl(&["-n", "ballast-system", "get", "deployments", "-o", "name"])
        .expect("list deployments");
    assert_eq!(left.trim(), "", "operator gone");
    kube.kubectl(&["get", "crd", "etcdclusters.ballast.dev"])
        .expect("the CRD stays");
    kube.kubectl(&["get", "etcdcluster", "main"])
        .expect("the EtcdCluster stays");
    assert_eq!(claims(kube), claims_before, "the volumes stay");
    assert_eq!(
        etcdctl(kube, SERVICE, &["put", "/e2e/after-uninstall", "yes"]).expect("put"),
        "OK\n",
        "the members keep serving without the operator"
    );
}

/// The writer in the client pod: numbered puts one after another through the client
/// Service, each reported as `ok N` or `fail N <error>`, until the key `/e2e/stop` exists.
const WRITER: &str = r#"
export ETCDCTL_API=3 ETCDCTL_ENDPOINTS=https://main.default.svc:2379 \
  ETCDCTL_CACERT=/etc/etcd-client/ca.crt ETCDCTL_CERT=/etc/etcd-client/tls.crt \
  ETCDCTL_KEY=/etc/etcd-client/tls.key
i=0
while :; do
  i=$((i+1))
  if out=$(etcdctl put /e2e/roll/$i v$i 2>&1); then echo "ok $i"; else echo "fail $i $out" | tr '\n' ' '; echo; fi
  if [ $((i % 10)) = 0 ] && [ -n "$(etcdctl get /e2e/stop --print-value-only 2>/dev/null)" ]; then break; fi
done
echo done
"#;

/// Errors a client may see while leadership changes hands (etcd's own texts), and while
/// the member its connection went to restarts (the client then goes to another). The last
/// is etcdctl giving up after its 5 s command timeout, shorter than the server's own 7 s
/// (as etcd's): a proposal lost with a leader that stopped, or a connection to a pod that
/// just vanished. Its outcome is unknown, so it counts neither as acknowledged nor as lost.
const LEADER_CHANGE_ERRORS: [&str; 7] = [
    "etcdserver: leader changed",
    "etcdserver: no leader",
    "etcdserver: request timed out",
    "etcdserver: server stopped",
    "transport is closing",
    "error reading from server: EOF",
    "context deadline exceeded",
];

/// `spec.version` changes under continuous writes: the operator restarts one member at a
/// time onto the new image (the StatefulSet is `OnDelete`), waits for it to be healthy and
/// ready, and restarts the leader last, after moving leadership to an updated member. No
/// acknowledged write is lost and the writer sees only leader-change errors.
fn a_version_change_rolls_one_member_at_a_time_the_leader_last(kube: &KubeCluster) {
    // The "new version" is the same binary under a new tag, enough for a new template.
    let ctr = |args: &[&str]| {
        let out = std::process::Command::new("ctr")
            .args([
                "--address",
                "/run/ballast-kube/containerd.sock",
                "-n",
                "k8s.io",
            ])
            .args(args)
            .output()
            .expect("ctr runs");
        assert!(
            out.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ctr(&[
        "images",
        "tag",
        "--force",
        "docker.io/library/ballast:0.1.0",
        "docker.io/library/ballast:0.1.1",
    ]);
    let leader_before = kube
        .kubectl(&[
            "get",
            "etcdcluster",
            "main",
            "-o",
            "jsonpath={.status.leader}",
        ])
        .expect("leader");
    let restarts_before = event_notes(kube, "MemberRestarted").len();

    let mut writer = kube
        .kubectl_command(&["exec", "etcd-client", "--", "busybox", "sh", "-c", WRITER])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("writer starts");
    let stdout = writer.stdout.take().expect("writer output");
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    // Writes are flowing before the change.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while etcdctl(kube, SERVICE, &["get", "/e2e/roll/3", "--print-value-only"]).unwrap_or_default()
        != "v3\n"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer does not write"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    kube.kubectl(&[
        "patch",
        "etcdcluster",
        "main",
        "--type=merge",
        "-p",
        r#"{"spec":{"version":"0.1.1"}}"#,
    ])
    .expect("version change");
    kube.wait_kubectl(
        &[
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/instance=main",
            "-o",
            r#"jsonpath={range .items[*]}{.spec.containers[0].image}{" "}{end}"#,
        ],
        Duration::from_secs(600),
        |out| out.matches("ballast:0.1.1").count() == 3,
    )
    .expect("every member runs the new image");
    wait_settled(kube, 3, Duration::from_secs(300));
    kube.wait_kubectl(
        &[
            "get",
            "etcdcluster",
            "main",
            "-o",
            "jsonpath={.status.version}",
        ],
        Duration::from_secs(60),
        |v| v == "0.1.1",
    )
    .expect("status reports the new version");

    etcdctl(kube, SERVICE, &["put", "/e2e/stop", "yes"]).expect("stop the writer");
    let status = writer.wait().expect("writer ends");
    let lines = reader.join().expect("writer output");
    assert!(
        status.success() && lines.last().map(String::as_str) == Some("done"),
        "{lines:?}"
    );

    // Every member restarted once, the leader last.
    let restarts = event_notes(kube, "MemberRestarted");
    let restarts = &restarts[restarts_before..];
    assert_eq!(restarts.len(), 3, "{restarts:?}");
    assert!(
        restarts[2].contains(&format!("restarted {leader_before} ")),
        "leader {leader_before} last: {restarts:?}"
    );
    for m in ["main-0", "main-1", "main-2"] {
        assert_eq!(
            restarts
                .iter()
                .filter(|r| r.contains(&format!("restarted {m} ")))
                .count(),
            1,
            "{restarts:?}"
        );
    }

    // No acknowledged write lost; only leader-change errors.
    let acknowledged: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("ok ")?.parse().ok())
        .collect();
    let failures: Vec<&String> = lines.iter().filter(|l| l.starts_with("fail ")).collect();
    let stored = etcdctl(
        kube,
        SERVICE,
        &["get", "/e2e/roll/", "--prefix", "--keys-only"],
    )
    .expect("keys");
    let stored: std::collections::HashSet<u64> = stored
        .lines()
        .filter_map(|k| k.strip_prefix("/e2e/roll/")?.parse().ok())
        .collect();
    let lost: Vec<&u64> = acknowledged
        .iter()
        .filter(|i| !stored.contains(i))
        .collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    for f in &failures {
        assert!(
            LEADER_CHANGE_ERRORS.iter().any(|e| f.contains(e)),
            "unexpected error: {f}"
        );
    }
    eprintln!(
        "rolling update: {} writes acknowledged, {} failed ({:?}), none lost",
        acknowledged.len(),
        failures.len(),
        failures
    );
}

/// Two of three members lose their volumes: the survivor has no quorum. The operator says
/// so (Degraded `QuorumLost`, an Event) with what to do, and changes nothing; once asked
/// (`ballast.dev/recover-quorum=true`), it restarts the survivor with
/// `--force-new-cluster` and adds the other two back as learners on empty data. The data
/// the survivor had is all there.
fn a_lost_quorum_is_reported_then_recovered_when_asked(kube: &KubeCluster) {
    etcdctl(kube, SERVICE, &["put", "/e2e/before-loss", "kept"]).expect("put");
    wait_settled(kube, 3, Duration::from_secs(120));
    let before = wait_for_voters(kube, 3, Duration::from_secs(60));
    for m in ["main-1", "main-2"] {
        kube.kubectl(&["delete", "pvc", &format!("data-{m}"), "--wait=false"])
            .expect("delete the claim");
    }
    kube.kubectl(&["delete", "pod", "main-1", "main-2", "--wait=true"])
        .expect("delete the pods");
    let degraded = kube
        .wait_kubectl(
            &["get", "etcdcluster", "main", "-o",
              r#"jsonpath={.status.conditions[?(@.type=="Degraded")].reason}: {.status.conditions[?(@.type=="Degraded")].message}"#],
            Duration::from_secs(180),
            |out| out.starts_with("QuorumLost: ") && out.contains("recover from main-0"),
        )
        .expect("the loss is reported with what to do");
    assert!(
        degraded.contains("ballast.dev/recover-quorum=true"),
        "{degraded}"
    );
    assert!(
        event_notes(kube, "QuorumLost")
            .iter()
            .any(|n| n.contains("recover from main-0")),
        "an Event says it too"
    );
    // Nothing was changed meanwhile: the survivor still lists the three members. (Without
    // a quorum it is not ready, so the Service has no endpoint; ask it directly.)
    let members_now = member_list_at(
        kube,
        "https://main-0.main-peer.default.svc.cluster.local:2379",
    );
    assert_eq!(members_now.len(), 3, "{members_now:?}");

    kube.kubectl(&[
        "annotate",
        "etcdcluster/main",
        "ballast.dev/recover-quorum=true",
    ])
    .expect("ask for the recovery");
    wait_for_voters_where(kube, 3, Duration::from_secs(400), |list| {
        ["main-1", "main-2"].iter().all(|m| {
            let old = before.iter().find(|(n, _, _)| n == m).map(|x| x.1);
            list.iter().any(|(n, id, _)| n == m && Some(*id) != old)
        })
    });
    wait_settled(kube, 3, Duration::from_secs(300));
    for i in 0..3 {
        let value = etcdctl(
            kube,
            &format!("https://main-{i}.main-peer.default.svc.cluster.local:2379"),
            &[
                "get",
                "/e2e/before-loss",
                "--print-value-only",
                "--consistency=s",
            ],
        )
        .expect("read");
        assert_eq!(value, "kept\n", "main-{i}");
    }
    let log = kube
        .kubectl(&["logs", "main-0", "-c", "sidecar"])
        .expect("sidecar log");
    assert!(log.contains(r#""decision":"force-new-cluster""#), "{log}");
    let annotations = kube
        .kubectl(&[
            "get",
            "etcdcluster",
            "main",
            "-o",
            "jsonpath={.metadata.annotations}",
        ])
        .expect("annotations");
    assert!(
        !annotations.contains("recover-quorum"),
        "the request is one-shot: {annotations}"
    );
    kube.wait_kubectl(
        &["get", "configmap", "main-state", "-o", "jsonpath={.data}"],
        Duration::from_secs(60),
        |data| data.contains("cluster-id") && !data.contains("recovery-request"),
    )
    .expect("the recovery request is removed once quorum is back; the cluster ID stays");
}

/// Notes of the operator's Events with this reason, oldest first.
fn event_notes(kube: &KubeCluster, reason: &str) -> Vec<String> {
    kube.kubectl(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.kind=EtcdCluster,involvedObject.name=main,reason={reason}"),
        "--sort-by=.metadata.creationTimestamp",
        "-o",
        r#"jsonpath={range .items[*]}{.message}{"\n"}{end}"#,
    ])
    .expect("events")
    .lines()
    .map(str::to_string)
    .collect()
}

/// A client certificate from the cluster's CA (kube-apiserver's) is refused on the peer
/// port: members require the name only the operator's peer certificates carry.
fn the_peer_port_admits_only_peer_certificates(kube: &KubeCluster) {
    let peer_port = "https://main-0.main-peer.default.svc.cluster.local:2380";
    let refused = etcdctl(
        kube,
        peer_port,
        &["--dial-timeout=3s", "endpoint", "status"],
    );
    assert!(
        refused.is_err(),
        "the peer port answered a client: {refused:?}"
    );
    kube.wait_kubectl(
        &["logs", "main-0", "-c", "etcd"],
        Duration::from_secs(30),
        |log| {
            log.lines().any(|l| {
                l.contains("rejected connection")
                    && l.contains("client certificate authentication failed")
            })
        },
    )
    .expect("main-0 refused the client certificate on its peer port");
}

/// Waits until condition `type_` of the EtcdCluster `main` is True.
fn wait_condition_true(kube: &KubeCluster, type_: &str, within: Duration) {
    let path = format!(r#"jsonpath={{.status.conditions[?(@.type=="{type_}")].status}}"#);
    kube.wait_kubectl(
        &["get", "etcdcluster", "main", "-o", &path],
        within,
        |out| out == "True",
    )
    .unwrap_or_else(|e| panic!("the EtcdCluster becomes {type_}: {e}"));
}

/// GitOps: once the operator has settled, the manifest the user applied shows no
/// difference (`kubectl diff`), and applying it again server-side changes nothing (the
/// operator writes only status, its finalizer and documented annotations; defaults are in
/// the schema). `Ready` is True with `observedGeneration` current on every condition.
fn applying_the_same_manifest_again_changes_nothing(kube: &KubeCluster, manifest: &str) {
    let get = |path: &str| {
        kube.kubectl(&[
            "get",
            "etcdcluster",
            "main",
            "-o",
            &format!("jsonpath={path}"),
        ])
        .expect("get etcdcluster")
    };
    wait_condition_true(kube, "Ready", Duration::from_secs(120));
    let generation = get("{.metadata.generation}");
    let observed = get("{range .status.conditions[*]}{.observedGeneration}{\" \"}{end}");
    assert!(
        observed.split_whitespace().all(|g| g == generation),
        "every condition observed generation {generation}: {observed}"
    );
    let diff = kube.kubectl(&["diff", "-f", manifest]);
    assert_eq!(diff.as_deref().ok(), Some(""), "kubectl diff: {diff:?}");
    let spec_before = get("{.spec}");
    kube.kubectl(&["apply", "--server-side", "-f", manifest])
        .expect("server-side apply");
    assert_eq!(
        get("{.metadata.generation}"),
        generation,
        "the spec did not change"
    );
    assert_eq!(get("{.spec}"), spec_before);
    let diff = kube.kubectl(&["diff", "--server-side", "-f", manifest]);
    assert_eq!(
        diff.as_deref().ok(),
        Some(""),
        "kubectl diff --server-side: {diff:?}"
    );
}

/// No Secret holds a member's key and the pods mount none: each member made its own key,
/// and the operator signed certificates for it (an Event says so), which the member serves
/// clients with under its own name.
fn each_member_holds_only_its_own_key(kube: &KubeCluster) {
    for secret in ["main-server-tls", "main-peer-tls"] {
        let got = kube.kubectl(&["get", "secret", secret]);
        assert!(got.is_err(), "{secret} exists: {got:?}");
    }
    let mounted = kube
        .kubectl(&[
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/instance=main",
            "-o",
            r#"jsonpath={range .items[*].spec.volumes[*]}{.secret.secretName}{"\n"}{end}"#,
        ])
        .expect("pod volumes");
    let secrets: std::collections::BTreeSet<&str> =
        mounted.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        secrets.into_iter().collect::<Vec<_>>(),
        ["main-healthcheck-client"],
        "{mounted}"
    );
    let issued = event_notes(kube, "CertificatesIssued").join("\n");
    for i in 0..3 {
        assert!(
            issued.contains(&format!("server certificate of main-{i}")),
            "{issued}"
        );
    }
    // main-2 serves clients with a certificate for its name, from the cluster's CA.
    let status = etcdctl(
        kube,
        "https://main-2.main-peer.default.svc.cluster.local:2379",
        &["endpoint", "status", "-w", "json"],
    )
    .expect("main-2 answers over TLS");
    assert!(status.contains("\"leader\""), "{status}");
}

/// The client Service, as applications reach the cluster.
const SERVICE: &str = "https://main.default.svc:2379";

/// Real etcdctl in the client pod.
fn etcdctl(
    kube: &KubeCluster,
    endpoint: &str,
    args: &[&str],
) -> Result<String, ballast_e2e::Error> {
    let mut all = vec![
        "exec",
        "etcd-client",
        "--",
        "etcdctl",
        "--endpoints",
        endpoint,
        "--cacert=/etc/etcd-client/ca.crt",
        "--cert=/etc/etcd-client/tls.crt",
        "--key=/etc/etcd-client/tls.key",
    ];
    all.extend_from_slice(args);
    kube.kubectl(&all)
}

/// `(name, id, learner)` of every member, from `etcdctl member list -w json`.
fn member_list(kube: &KubeCluster) -> Vec<(String, u64, bool)> {
    member_list_at(kube, SERVICE)
}

/// [`member_list`] as one member sees it (the Service only reaches ready members).
fn member_list_at(kube: &KubeCluster, endpoint: &str) -> Vec<(String, u64, bool)> {
    let out = etcdctl(kube, endpoint, &["member", "list", "-w", "json"]).unwrap_or_default();
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    doc["members"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .map(|m| {
                    (
                        m["name"].as_str().unwrap_or_default().to_string(),
                        m["ID"].as_u64().unwrap_or_default(),
                        m["isLearner"] == true,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the cluster lists exactly `main-0..main-{n-1}`, all started voters.
fn wait_for_voters(kube: &KubeCluster, n: usize, within: Duration) -> Vec<(String, u64, bool)> {
    wait_for_voters_where(kube, n, within, |_| true)
}

/// [`wait_for_voters`], with a further condition on the list.
fn wait_for_voters_where(
    kube: &KubeCluster,
    n: usize,
    within: Duration,
    accept: impl Fn(&[(String, u64, bool)]) -> bool,
) -> Vec<(String, u64, bool)> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let list = member_list(kube);
        let mut names: Vec<&str> = list.iter().map(|(n, _, _)| n.as_str()).collect();
        names.sort();
        let want: Vec<String> = (0..n).map(|i| format!("main-{i}")).collect();
        if names == want && list.iter().all(|(_, _, learner)| !learner) && accept(&list) {
            return list;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "members after {within:?}: {list:?}; status: {}",
            kube.kubectl(&["get", "etcdcluster", "main", "-o", "jsonpath={.status}"])
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Waits until the operator reports the cluster settled: Available, nothing in progress,
/// `n` ready members.
fn wait_settled(kube: &KubeCluster, n: usize, within: Duration) {
    kube.wait_kubectl(
        &[
            "get",
            "etcdcluster",
            "main",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Available")].status}/{.status.conditions[?(@.type=="Progressing")].status}/{.status.readyReplicas}"#,
        ],
        within,
        |out| out == format!("True/False/{n}"),
    )
    .expect("the cluster settles");
}

fn claims(kube: &KubeCluster) -> String {
    kube.kubectl(&[
        "get",
        "pvc",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name}{" "}{end}"#,
    ])
    .expect("claims")
}

/// Reasons of the Events the operator published about the cluster, oldest first.
fn event_reasons(kube: &KubeCluster) -> Vec<String> {
    kube.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=EtcdCluster,involvedObject.name=main",
        "--sort-by=.metadata.creationTimestamp",
        "-o",
        r#"jsonpath={range .items[*]}{.reason}{"\n"}{end}"#,
    ])
    .expect("events")
    .lines()
    .map(str::to_string)
    .collect()
}

/// A member whose claim is gone comes back on an empty volume. Its sidecar finds that the
/// running cluster knows it as started and keeps the server from starting empty (which
/// would make it forget its votes); the operator reads that, removes the member and adds
/// it back as a learner under the same name, and promotes it once it has caught up.
fn a_member_whose_data_is_lost_is_replaced(kube: &KubeCluster) {
    let before = wait_for_voters(kube, 3, Duration::from_secs(60));
    let old_id = before.iter().find(|(n, _, _)| n == "main-2").map(|m| m.1);
    kube.kubectl(&["delete", "pvc", "data-main-2", "--wait=false"])
        .expect("delete the claim");
    kube.kubectl(&["delete", "pod", "main-2", "--wait=true"])
        .expect("delete the pod");
    // Replaced: main-2 is a started voter again, under a new member ID.
    wait_for_voters_where(kube, 3, Duration::from_secs(300), |list| {
        list.iter()
            .any(|(n, id, _)| n == "main-2" && Some(*id) != old_id)
    });
    wait_settled(kube, 3, Duration::from_secs(180));
    let log = kube
        .kubectl(&["logs", "main-2", "-c", "sidecar"])
        .expect("sidecar log");
    assert!(log.contains(r#""decision":"join""#), "{log}");
    let value = etcdctl(
        kube,
        "https://main-2.main-peer.default.svc.cluster.local:2379",
        &[
            "get",
            "/registry/ballast/greeting",
            "--print-value-only",
            "--consistency=s",
        ],
    )
    .expect("read from the replaced member");
    assert_eq!(value, "hello\n", "the replaced member has the data");
    let reasons = event_reasons(kube);
    for reason in ["MemberRemoved", "MemberAdded", "MemberPromoted"] {
        assert!(reasons.iter().any(|r| r == reason), "{reason}: {reasons:?}");
    }
}

/// A member's write-ahead log damaged on its volume: its server refuses to start from it
/// (`is corrupt at byte offset`), which the kubelet keeps as the termination message; the
/// operator removes the member, renews its claim and adds it back as a learner.
fn a_member_whose_data_is_corrupt_is_replaced(kube: &KubeCluster) {
    let before = wait_for_voters(kube, 3, Duration::from_secs(60));
    let old_id = before.iter().find(|(n, _, _)| n == "main-1").map(|m| m.1);
    let volume = kube
        .kubectl(&[
            "get",
            "pvc",
            "data-main-1",
            "-o",
            "jsonpath={.spec.volumeName}",
        ])
        .expect("volume name");
    let path = kube
        .kubectl(&["get", "pv", &volume, "-o", "jsonpath={.spec.hostPath.path}"])
        .expect("volume path");
    let wal_dir = std::path::Path::new(&path).join("data/member/wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", wal_dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segments.sort();
    let first = segments.first().expect("a WAL segment");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(first)
            .expect("open WAL");
        f.seek(SeekFrom::Start(300)).expect("seek");
        f.write_all(&[0xAB; 64]).expect("damage");
        f.sync_all().expect("sync");
    }
    kube.kubectl(&["delete", "pod", "main-1", "--wait=true"])
        .expect("restart the member");
    wait_for_voters_where(kube, 3, Duration::from_secs(300), |list| {
        list.iter()
            .any(|(n, id, _)| n == "main-1" && Some(*id) != old_id)
    });
    wait_settled(kube, 3, Duration::from_secs(180));
    let value = etcdctl(
        kube,
        "https://main-1.main-peer.default.svc.cluster.local:2379",
        &[
            "get",
            "/registry/ballast/greeting",
            "--print-value-only",
            "--consistency=s",
        ],
    )
    .expect("read from the replaced member");
    assert_eq!(value, "hello\n");
    assert!(
        event_notes(kube, "VolumeDeleted")
            .iter()
            .any(|n| n.contains("main-1")),
        "the corrupt volume was renewed"
    );
}

/// `kubectl scale` 3 -> 5 -> 3 -> 5. Members join as learners and are promoted; going
/// down removes the highest ordinals and their claims; during the second scale-up the
/// operator's pods are killed at random moments and it still completes. Data written
/// before stays readable from every member.
fn scaling_goes_through_learners_and_cleans_up_after_itself(kube: &KubeCluster) {
    kube.kubectl(&["scale", "etcdcluster/main", "--replicas=5"])
        .expect("scale up");
    wait_for_voters(kube, 5, Duration::from_secs(400));
    wait_settled(kube, 5, Duration::from_secs(180));
    assert_eq!(
        claims(kube),
        "data-main-0 data-main-1 data-main-2 data-main-3 data-main-4 "
    );
    let pdb = kube
        .kubectl(&["get", "pdb", "main", "-o", "jsonpath={.spec.minAvailable}"])
        .expect("pdb");
    assert_eq!(pdb, "3", "the budget follows the 5 voters");

    kube.kubectl(&["scale", "etcdcluster/main", "--replicas=3"])
        .expect("scale down");
    wait_for_voters(kube, 3, Duration::from_secs(300));
    wait_settled(kube, 3, Duration::from_secs(180));
    kube.wait_kubectl(&["get", "pvc", "-o", "name"], Duration::from_secs(120), |out| {
        out == "persistentvolumeclaim/data-main-0\npersistentvolumeclaim/data-main-1\npersistentvolumeclaim/data-main-2\n"
    })
    .expect("the claims of the removed members are gone");

    // Again, with the operator killed at random moments while it works.
    kube.kubectl(&["scale", "etcdcluster/main", "--replicas=5"])
        .expect("scale up again");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let done = done.clone();
        let kubeconfig = kube.kubeconfig().to_string();
        std::thread::spawn(move || {
            let mut kills = 0;
            let mut seed = std::process::id() as u64;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                // xorshift: a different rhythm every run, 2 to 12 s apart.
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                std::thread::sleep(Duration::from_millis(2000 + seed % 10_000));
                let killed = std::process::Command::new("kubectl")
                    .args([
                        "--kubeconfig",
                        &kubeconfig,
                        "-n",
                        "ballast-system",
                        "delete",
                        "pods",
                        "-l",
                        "app.kubernetes.io/name=ballast-operator",
                        "--grace-period=0",
                        "--force",
                        "--wait=false",
                    ])
                    .output()
                    .is_ok_and(|o| o.status.success());
                kills += usize::from(killed);
            }
            kills
        })
    };
    wait_for_voters(kube, 5, Duration::from_secs(600));
    done.store(true, std::sync::atomic::Ordering::Release);
    let kills = killer.join().expect("killer thread");
    assert!(kills > 0, "the operator was never killed");
    wait_settled(kube, 5, Duration::from_secs(300));
    for i in 0..5 {
        let value = etcdctl(
            kube,
            &format!("https://main-{i}.main-peer.default.svc.cluster.local:2379"),
            &[
                "get",
                "/registry/ballast/greeting",
                "--print-value-only",
                "--consistency=s",
            ],
        )
        .expect("read from every member");
        assert_eq!(value, "hello\n", "main-{i}");
    }
    eprintln!("scale-up completed through {kills} operator kills");
}

/// How the test cluster keeps its traffic on this machine: pods have routes to the
/// cluster's own ranges only, the node drops forwarded pod traffic to anything else, and
/// cluster DNS answers the cluster domain and forwards nowhere. (Nothing is sent to an
/// outside address to check it.)
fn the_pod_network_reaches_nothing_outside_the_cluster(kube: &KubeCluster) {
    let busybox = |args: &[&str]| {
        let mut all = vec!["exec", "etcd-client", "--", "busybox"];
        all.extend_from_slice(args);
        kube.kubectl(&all)
    };
    let routes = busybox(&["ip", "route"]).expect("ip route");
    let mut destinations: Vec<&str> = routes
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    destinations.sort_unstable();
    assert_eq!(
        destinations,
        [
            "10.251.0.0/24",
            "10.252.0.0/16",
            "10.252.0.0/24",
            "10.253.0.0/16"
        ],
        "{routes}"
    );

    let service_ip = kube
        .kubectl(&["get", "service", "main", "-o", "jsonpath={.spec.clusterIP}"])
        .expect("client Service");
    let answer = busybox(&["nslookup", "main.default.svc.cluster.local"]).expect("cluster name");
    assert!(answer.contains(&service_ip), "{answer}");
    let outside = busybox(&["nslookup", "example.com"]);
    assert!(
        outside.is_err(),
        "cluster DNS answered a name outside the cluster: {outside:?}"
    );

    let fence = std::process::Command::new("iptables")
        .args(["-S", "BALLAST-KUBE-EGRESS"])
        .output()
        .expect("iptables");
    let fence = String::from_utf8_lossy(&fence.stdout);
    assert!(
        fence.trim_end().ends_with("-A BALLAST-KUBE-EGRESS -j DROP"),
        "{fence}"
    );
    let forward = std::process::Command::new("iptables")
        .args(["-S", "FORWARD"])
        .output()
        .expect("iptables");
    assert!(
        String::from_utf8_lossy(&forward.stdout)
            .contains("-A FORWARD -s 10.252.0.0/16 -j BALLAST-KUBE-EGRESS"),
        "pod traffic is not sent through the fence"
    );
}
