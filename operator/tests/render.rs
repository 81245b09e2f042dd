//! Rendering, pinned by snapshots (`operator/tests/snapshots/`, reviewed with
//! `cargo insta review` or regenerated with `INSTA_UPDATE=always`), plus the properties that
//! must hold whatever the snapshots say.

mod common;

use ballast_operator::render::{self, Live, RenderContext};
use common::{cluster, fixtures};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn ctx() -> RenderContext {
    RenderContext {
        image_repository: "ballast".into(),
        default_version: "0.1.0".into(),
    }
}

#[test]
fn snapshots() {
    for (label, c) in fixtures() {
        let r = render::render(&c, &ctx(), &Live::default()).unwrap();
        insta::assert_yaml_snapshot!(format!("{label}_statefulset"), r.statefulset);
        insta::assert_yaml_snapshot!(format!("{label}_peer_service"), r.peer_service);
        insta::assert_yaml_snapshot!(format!("{label}_client_service"), r.client_service);
        insta::assert_yaml_snapshot!(format!("{label}_pdb"), r.pdb);
        let names = render::cluster_names(&c).unwrap();
        let owner = render::owner_reference(&c).unwrap();
        if let Some(cron) = ballast_operator::backup::job::cron_job(&names, &owner, &c.spec, &ctx())
        {
            insta::assert_yaml_snapshot!(format!("{label}_backup_cronjob"), cron);
        }
        if let Some(cron) =
            ballast_operator::backup::job::defrag_cron_job(&names, &owner, &c.spec, &ctx())
        {
            insta::assert_yaml_snapshot!(format!("{label}_defrag_cronjob"), cron);
        }
    }
}

#[test]
fn rendering_is_deterministic() {
    for (_, c) in fixtures() {
        let a = render::render(&c, &ctx(), &Live::default()).unwrap();
        let b = render::render(&c, &ctx(), &Live::default()).unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn pdb_keeps_quorum() {
    for (replicas, min) in [(1, 0), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4)] {
        let c = cluster("main", &format!("replicas: {replicas}"));
        let r = render::render(&c, &ctx(), &Live::default()).unwrap();
        let spec = r.pdb.spec.unwrap();
        assert_eq!(
            spec.min_available,
            Some(IntOrString::Int(min)),
            "{replicas} members"
        );
    }
}

#[test]
fn statefulset_shape() {
    let c = cluster("main", "{}");
    let r = render::render(&c, &ctx(), &Live::default()).unwrap();
    let sts = r.statefulset.spec.unwrap();
    assert_eq!(sts.pod_management_policy.as_deref(), Some("Parallel"));
    assert_eq!(sts.service_name.as_deref(), Some("main-peer"));
    let owner = &r.statefulset.metadata.owner_references.unwrap()[0];
    assert_eq!(owner.kind, "EtcdCluster");
    assert_eq!(owner.controller, Some(true));
    let pod = sts.template.spec.unwrap();
    let server = &pod.containers[0];
    let cmd = server.command.clone().unwrap();
    assert_eq!(cmd[0], "ballast");
    for flag in [
        "--name=$(POD_NAME)",
        "--advertise-client-urls=https://$(POD_NAME).main-peer.db.svc.cluster.local:2379",
        "--cert-file=/var/lib/etcd/pki/server.crt",
        "--key-file=/var/lib/etcd/pki/member.key",
        "--trusted-ca-file=/etc/ballast/pki/ca/ca.crt",
        "--client-cert-auth=true",
        "--peer-client-cert-auth=true",
        "--listen-metrics-urls=http://0.0.0.0:2381",
    ] {
        assert!(cmd.iter().any(|a| a == flag), "missing {flag} in {cmd:?}");
    }
    // The sidecar holds the founding members; the server gets them from its file.
    let sidecar = pod.init_containers.clone().unwrap()[0]
        .command
        .clone()
        .unwrap();
    assert!(sidecar.contains(&"--identity-dir=/var/lib/etcd/pki".to_string()));
    // No Secret with member keys is mounted; `ca.crt` alone comes from the client Secret.
    let secrets: Vec<_> = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.secret.clone())
        .collect();
    assert!(
        secrets
            .iter()
            .all(|s| s.secret_name.as_deref() == Some("main-healthcheck-client")),
        "{secrets:?}"
    );
    assert!(sidecar.contains(&"--initial-cluster=main-0=https://main-0.main-peer.db.svc.cluster.local:2380,main-1=https://main-1.main-peer.db.svc.cluster.local:2380,main-2=https://main-2.main-peer.db.svc.cluster.local:2380".to_string()));
    let flag_names: Vec<&str> = cmd[3..]
        .iter()
        .map(|a| a.split('=').next().unwrap())
        .collect();
    let mut sorted = flag_names.clone();
    sorted.sort();
    assert_eq!(
        sorted, flag_names,
        "flags are sorted by name, as kubeadm writes them"
    );
    // $(POD_NAME) only expands when the container declares it.
    assert!(server
        .env
        .as_ref()
        .unwrap()
        .iter()
        .any(|e| e.name == "POD_NAME"));
    let sc = server.security_context.clone().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let probe = server.liveness_probe.clone().unwrap().http_get.unwrap();
    assert!(probe.path.unwrap().starts_with("/health"));
    assert_eq!(probe.port, IntOrString::Int(2381));
    assert!(server.resources.clone().unwrap().requests.is_some());
    let sidecar = &pod.init_containers.unwrap()[0];
    assert_eq!(
        sidecar.restart_policy.as_deref(),
        Some("Always"),
        "native sidecar"
    );
    assert_eq!(
        &sidecar.command.clone().unwrap()[..2],
        ["ballast", "sidecar"]
    );
    let anti = pod.affinity.unwrap().pod_anti_affinity.unwrap();
    assert!(anti
        .preferred_during_scheduling_ignored_during_execution
        .is_some());
    assert_eq!(pod.enable_service_links, Some(false));
    let claim = &sts.volume_claim_templates.unwrap()[0];
    assert_eq!(claim.metadata.name.as_deref(), Some("data"));

    let peer = r.peer_service.spec.unwrap();
    assert_eq!(peer.cluster_ip.as_deref(), Some("None"));
    assert_eq!(peer.publish_not_ready_addresses, Some(true));
}

#[test]
fn claim_template_keeps_its_live_size() {
    let c = cluster("main", "storage: { size: 16Gi }");
    let live = Live {
        claim_template_size: Some("8Gi".into()),
        ..Live::default()
    };
    let sts = render::render(&c, &ctx(), &live).unwrap().statefulset;
    let claim = &sts.spec.unwrap().volume_claim_templates.unwrap()[0];
    let size = &claim
        .spec
        .as_ref()
        .unwrap()
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap()["storage"];
    assert_eq!(size.0, "8Gi");
}

/// Scaling changes the StatefulSet's replicas and nothing in its pod template (which
/// would restart every member): the template keeps the members the cluster was created
/// with, and the membership of later members is decided by their sidecars at run time.
#[test]
fn scaling_leaves_the_pod_template_alone() {
    let three = cluster("main", "replicas: 3");
    let created = render::render(&three, &ctx(), &Live::default())
        .unwrap()
        .statefulset;
    let live = Live::from_statefulset(Some(&created));
    assert_eq!(live.pods, Some(3));
    let founding = live.founding_members.clone().unwrap();
    assert_eq!(founding.split(',').count(), 3, "{founding}");

    let five = cluster("main", "replicas: 5");
    let scaled = render::render(
        &five,
        &ctx(),
        &Live {
            pods: Some(4),
            voters: Some(4),
            ..live
        },
    )
    .unwrap();
    let spec = scaled.statefulset.spec.clone().unwrap();
    assert_eq!(spec.replicas, Some(4), "pods as the lifecycle decided");
    assert_eq!(spec.template, created.spec.clone().unwrap().template);
    // The budget follows the voters that exist: 4 voters need 3.
    let pdb = scaled.pdb.spec.unwrap();
    assert_eq!(
        pdb.min_available,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(3))
    );

    // The server takes its membership from the sidecar's file, never from the template.
    let server = &spec.template.spec.unwrap().containers[0];
    let cmd = server.command.clone().unwrap();
    assert_eq!(
        &cmd[..3],
        [
            "ballast",
            "member",
            "--membership-file=/run/ballast/member.yaml"
        ]
    );
    assert!(!cmd
        .iter()
        .any(|a| a.starts_with("--initial-cluster=") || a.starts_with("--initial-cluster-state=")));
}

#[test]
fn image_and_version() {
    let c = cluster("main", "version: 0.3.0");
    assert_eq!(render::image(&c.spec, &ctx()), "ballast:0.3.0");
    assert_eq!(render::version(&c.spec, &ctx()), "0.3.0");
    let c = cluster("main", "image: reg.example:5000/ballast:9.9.9");
    assert_eq!(
        render::image(&c.spec, &ctx()),
        "reg.example:5000/ballast:9.9.9"
    );
    assert_eq!(render::version(&c.spec, &ctx()), "9.9.9");
    let c = cluster("main", "{}");
    assert_eq!(render::image(&c.spec, &ctx()), "ballast:0.1.0");
}
