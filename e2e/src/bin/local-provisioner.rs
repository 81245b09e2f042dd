//! `local-provisioner`: the test cluster's dynamic volume provisioner.
//!
//! Hand-written because neither ready-made choice works here: rancher's
//! local-path-provisioner makes directories through a helper pod that needs a
//! shell image, and kube-controller-manager's built-in hostPath provisioner
//! makes them root-owned with mode 0750, which the operator's non-root members
//! cannot write (hostPath volumes get no `fsGroup`).
//!
//! It runs on the host of the cluster's only node, beside the kubelet. Claims
//! the PV controller hands to it (annotation
//! `volume.kubernetes.io/storage-provisioner`) get a directory under ROOT and a
//! hostPath PersistentVolume bound to them; volumes it made that are Released
//! are deleted with their directory, as reclaim policy `Delete` promises.
//!
//! Usage: `local-provisioner ROOT` with `KUBECONFIG` set.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::Client;

/// The name StorageClasses give to ask for this provisioner.
const PROVISIONER: &str = "ballast.dev/local";
const HANDED_TO: &str = "volume.kubernetes.io/storage-provisioner";
const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .context("usage: local-provisioner ROOT")?;
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let client = Client::try_default()
        .await
        .context("connecting to the API server (KUBECONFIG)")?;
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let volumes: Api<PersistentVolume> = Api::all(client);
    loop {
        if let Err(e) = pass(&claims, &volumes, &root).await {
            eprintln!("local-provisioner: {e:#}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One look at every claim and volume; each step is decided from what is
/// listed, so a restarted provisioner picks up where it was.
async fn pass(
    claims: &Api<PersistentVolumeClaim>,
    volumes: &Api<PersistentVolume>,
    root: &Path,
) -> anyhow::Result<()> {
    for claim in claims.list(&ListParams::default()).await? {
        if let Some(volume) = volume_for(&claim, root) {
            let name = volume.metadata.name.clone().unwrap_or_default();
            let dir = root.join(&name);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            // The pod's user is not known here; the directory is the volume's only content.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
            match volumes.create(&PostParams::default(), &volume).await {
                Ok(_) => eprintln!("local-provisioner: made {name} at {}", dir.display()),
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    for volume in volumes.list(&ListParams::default()).await? {
        let ours = annotation(&volume.metadata, PROVISIONED_BY) == Some(PROVISIONER);
        let released = volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
        let delete = volume
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            == Some("Delete");
        if ours && released && delete {
            let name = volume.metadata.name.clone().unwrap_or_default();
            match std::fs::remove_dir_all(root.join(&name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {name}")),
            }
            volumes.delete(&name, &DeleteParams::default()).await?;
            eprintln!("local-provisioner: deleted {name}");
        }
    }
    Ok(())
}

/// The volume to make for `claim`, when it waits for this provisioner.
fn volume_for(claim: &PersistentVolumeClaim, root: &Path) -> Option<PersistentVolume> {
    let pending = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending");
    let handed = annotation(&claim.metadata, HANDED_TO) == Some(PROVISIONER);
    let spec = claim.spec.as_ref()?;
    if !pending || !handed || spec.volume_name.is_some() {
        return None;
    }
    let uid = claim.metadata.uid.clone()?;
    let name = format!("pvc-{uid}");
    let size = spec
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?
        .clone();
    Some(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            annotations: Some(BTreeMap::from([(
                PROVISIONED_BY.to_string(),
                PROVISIONER.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([("storage".to_string(), size)])),
            access_modes: spec.access_modes.clone(),
            volume_mode: spec.volume_mode.clone(),
            storage_class_name: spec.storage_class_name.clone(),
            persistent_volume_reclaim_policy: Some("Delete".to_string()),
            host_path: Some(HostPathVolumeSource {
                path: root.join(&name).display().to_string(),
                type_: Some("Directory".to_string()),
            }),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".to_string()),
                kind: Some("PersistentVolumeClaim".to_string()),
                namespace: claim.metadata.namespace.clone(),
                name: claim.metadata.name.clone(),
                uid: Some(uid),
                ..ObjectReference::default()
            }),
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    })
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}
