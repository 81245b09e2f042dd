//! The operator on a real Kubernetes (`scripts/kube-up.sh`), installed as a user installs
//! it: the CRD and `examples/operator.yaml` applied with kubectl, the operator running in
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

    // Install as the README says.
    kube.kubectl(&[
        "apply",
        "--server-side",
        "-f",
        &file("crds/etcdcluster.yaml"),
    ])
    .expect("CRD");
    kube.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/etcdclusters.ballast.dev",
        "--timeout=60s",
    ])
    .expect("CRD established");
    kube.kubectl(&["apply", "-f", &file("examples/operator.yaml")])
        .expect("operator manifests");
    kube.kubectl(&[
        "-n",
        "ballast-system",
        "rollout",
        "status",
        "deployment/ballast-operator",
        "--timeout=120s",
    ])
    .expect("operator Deployment available");
    // One of its two replicas leads through the Lease.
    let holder = kube
        .wait_kubectl(
            &[
                "-n",
                "ballast-system",
                "get",
                "lease",
                "ballast-operator",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
            Duration::from_secs(60),
            |out| !out.is_empty(),
        )
        .expect("leader Lease");
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

    kube.kubectl(&["apply", "-f", &file("examples/etcdcluster.yaml")])
        .expect("EtcdCluster");
    kube.wait_kubectl(
        &[
            "get",
            "etcdcluster",
            "main",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Available")].status}"#,
        ],
        Duration::from_secs(240),
        |out| out == "True",
    )
    .expect("the EtcdCluster becomes Available");
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
    let etcdctl = |endpoint: &str, args: &[&str]| {
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
    };
    let service = "https://main.default.svc:2379";
    assert_eq!(
        etcdctl(service, &["put", "/registry/ballast/greeting", "hello"]).expect("put"),
        "OK\n"
    );
    assert_eq!(
        etcdctl(
            service,
            &["get", "/registry/ballast/greeting", "--print-value-only"]
        )
        .expect("get"),
        "hello\n"
    );
    // The simple format goes to stderr; JSON to stdout.
    let health =
        etcdctl(service, &["endpoint", "health", "--cluster", "-w", "json"]).expect("health");
    assert_eq!(health.matches(r#""health":true"#).count(), 3, "{health}");
    let members = etcdctl(service, &["member", "list"]).expect("member list");
    for i in 0..3 {
        assert!(
            members.contains(&format!(
                ", started, main-{i}, https://main-{i}.main-peer.default.svc.cluster.local:2380, https://main-{i}.main-peer.default.svc.cluster.local:2379, false"
            )),
            "{members}"
        );
    }

    the_pod_network_reaches_nothing_outside_the_cluster(&kube);

    // A member whose pod is deleted comes back on its claim, with its data, under the same name.
    kube.kubectl(&["delete", "pod", "main-1", "--wait=true"])
        .expect("delete a member's pod");
    kube.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/main-1",
        "--timeout=180s",
    ])
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
    let members_after = etcdctl(service, &["member", "list"]).expect("member list");
    assert_eq!(
        members_after, members,
        "membership unchanged by a pod restart"
    );

    size_changes_are_refused_until_members_can_be_added_safely(&kube);
    a_member_whose_data_is_lost_is_not_started_empty(&kube);
}

/// Scaling is refused at admission, through the scale subresource too, until the operator
/// can add and remove members (a new pod would otherwise start a second cluster).
fn size_changes_are_refused_until_members_can_be_added_safely(kube: &KubeCluster) {
    let err = kube
        .kubectl(&["scale", "etcdcluster/main", "--replicas=5"])
        .expect_err("scaling is refused");
    assert!(
        err.to_string()
            .contains("replicas cannot change after creation yet"),
        "{err}"
    );
    let err = kube
        .kubectl(&[
            "patch",
            "etcdcluster",
            "main",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":1}}"#,
        ])
        .expect_err("shrinking is refused");
    assert!(
        err.to_string()
            .contains("replicas cannot change after creation yet"),
        "{err}"
    );
}

/// A member whose claim is gone comes back on an empty volume: its sidecar finds that the
/// running cluster knows it as started and keeps the server from starting empty (which
/// would make it forget its votes), saying what to do; the others keep quorum.
fn a_member_whose_data_is_lost_is_not_started_empty(kube: &KubeCluster) {
    kube.kubectl(&["delete", "pvc", "data-main-2", "--wait=false"])
        .expect("delete the claim");
    kube.kubectl(&["delete", "pod", "main-2", "--wait=true"])
        .expect("delete the pod");
    kube.wait_kubectl(
        &["logs", "main-2", "-c", "sidecar"],
        Duration::from_secs(180),
        |log| {
            log.contains(
                "not starting the member: member main-2 has no data, but the running cluster",
            )
        },
    )
    .expect("the sidecar refuses to start an empty member the cluster knows");
    let server = kube
        .kubectl(&[
            "get",
            "pod",
            "main-2",
            "-o",
            r#"jsonpath={.status.containerStatuses[?(@.name=="etcd")].state}"#,
        ])
        .expect("pod state");
    assert!(!server.contains("running"), "the server started: {server}");
    kube.wait_kubectl(
        &[
            "get",
            "etcdcluster",
            "main",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Available")].status}/{.status.conditions[?(@.type=="Degraded")].message}"#,
        ],
        Duration::from_secs(60),
        |out| out == "True/unhealthy members: main-2",
    )
    .expect("two of three members keep the cluster available; status names the third");
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
