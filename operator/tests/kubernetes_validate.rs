//! Every object the operator renders, its Secrets, the CRD and the install manifest pass the real
//! `kubernetes-validate` (PyPI) in strict mode (unknown fields are errors) against the
//! oldest and the newest Kubernetes this operator supports. `scripts/test.sh` installs the
//! tool with pip when it is missing.

mod common;

use std::path::Path;

use ballast_operator::backup::job;
use ballast_operator::pki::{self, Ca};
use ballast_operator::render::{self, Live, RenderContext};
use ballast_operator::tls::{self, StoredSecrets};
use serde::Serialize;

const VERSIONS: [&str; 2] = common::KUBERNETES_VERSIONS;

fn validate(files: &[String], version: &str) -> (bool, String) {
    common::kubernetes_validate(files, version)
}

fn write_yaml<T: Serialize>(dir: &Path, name: &str, obj: &T) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_yaml_ng::to_string(obj).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn rendered_objects_and_crd_pass_strict_schema_validation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ctx = RenderContext::default();
    let mut files = vec![
        concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/etcdcluster.yaml").to_string(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/etcdbackup.yaml").to_string(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/operator.yaml").to_string(),
    ];
    for (label, c) in common::fixtures() {
        let r = render::render(&c, &ctx, &Live::default()).unwrap();
        files.push(write_yaml(d, &format!("{label}-sts.yaml"), &r.statefulset));
        files.push(write_yaml(
            d,
            &format!("{label}-peer.yaml"),
            &r.peer_service,
        ));
        files.push(write_yaml(
            d,
            &format!("{label}-client.yaml"),
            &r.client_service,
        ));
        files.push(write_yaml(d, &format!("{label}-pdb.yaml"), &r.pdb));
        let names = render::cluster_names(&c).unwrap();
        let owner = render::owner_reference(&c).unwrap();
        if let Some(cron) = job::cron_job(&names, &owner, &c.spec, &ctx) {
            files.push(write_yaml(d, &format!("{label}-backup.yaml"), &cron));
        }
        if let Some(cron) = job::defrag_cron_job(&names, &owner, &c.spec, &ctx) {
            files.push(write_yaml(d, &format!("{label}-defrag.yaml"), &cron));
        }
        if let Some(restore) = c
            .spec
            .restore
            .as_ref()
            .and_then(ballast_operator::backup::named_source)
        {
            let check = job::job(
                &names,
                &owner,
                job::restore_check_name(&names),
                &c.spec,
                &ctx,
                &job::Task::Check {
                    store: &restore.store,
                    backup: &restore.backup,
                    holder: "ns-restored-0123abcd".to_string(),
                },
            );
            files.push(write_yaml(
                d,
                &format!("{label}-restore-check.yaml"),
                &check,
            ));
        }
    }
    let c = &common::fixtures()[0].1;
    let names = render::cluster_names(c).unwrap();
    let owner = render::owner_reference(c).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let ca_pem = pki::generate_ca(now).unwrap();
    let ca = Ca::from_pem(&ca_pem.cert, &ca_pem.key).unwrap();
    let plan = tls::plan(
        &names,
        &c.spec,
        // The shared member Secrets of earlier versions too.
        Some(0),
        &ca,
        &StoredSecrets::default(),
        &owner,
        now,
    )
    .unwrap();
    for (i, secret) in plan.apply.iter().enumerate() {
        files.push(write_yaml(d, &format!("secret-{i}.yaml"), secret));
    }
    for version in VERSIONS {
        let (ok, out) = validate(&files, version);
        assert!(ok, "kubernetes-validate {version}:\n{out}");
        assert!(!out.contains("ERROR") && !out.contains("WARN"), "{out}");
    }
}

#[test]
fn strict_validation_catches_mistakes() {
    // The check above can fail: an unknown field in a rendered object is refused.
    let dir = tempfile::tempdir().unwrap();
    let c = &common::fixtures()[0].1;
    let r = render::render(c, &RenderContext::default(), &Live::default()).unwrap();
    let mut value = serde_json::to_value(&r.statefulset).unwrap();
    value["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = serde_json::json!({});
    let file = write_yaml(dir.path(), "bad.yaml", &value);
    let (ok, out) = validate(&[file], VERSIONS[1]);
    assert!(!ok, "a misspelt field passed:\n{out}");
}
