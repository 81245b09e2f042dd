//! A pod's volumes as directories on the machine.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{KeyToPath, PersistentVolumeClaim, PodSpec, Secret};

use crate::Error;

/// Where each of a pod's volumes lives, by volume name.
#[derive(Debug, Clone, Default)]
pub struct Volumes {
    paths: BTreeMap<String, PathBuf>,
}

impl Volumes {
    /// Materializes `spec`'s volumes for pod `pod`: Secrets and `emptyDir`s afresh under
    /// `pod_dir` (they live as long as the pod), claims of `claim_templates` under
    /// `claims_dir` as `<template>-<pod>` (kept across pod restarts, as a PVC is).
    /// `fs_group` owns everything the pod may write, as the kubelet arranges.
    pub fn prepare(
        pod: &str,
        spec: &PodSpec,
        claim_templates: &[PersistentVolumeClaim],
        secrets: &BTreeMap<String, Secret>,
        pod_dir: &Path,
        claims_dir: &Path,
    ) -> Result<Volumes, Error> {
        let fs_group = spec
            .security_context
            .as_ref()
            .and_then(|s| s.fs_group)
            .map(|g| u32::try_from(g).map_err(|_| Error::Spec(format!("fsGroup {g}"))))
            .transpose()?;
        let mut paths = BTreeMap::new();
        for volume in spec.volumes.iter().flatten() {
            let dir = pod_dir.join("volumes").join(&volume.name);
            if let Some(source) = &volume.secret {
                let name = source.secret_name.as_deref().unwrap_or_default();
                let secret = secrets.get(name).ok_or_else(|| {
                    Error::Spec(format!("volume {}: no Secret {name}", volume.name))
                })?;
                let mode = source.default_mode.unwrap_or(0o644) as u32;
                write_secret(&dir, secret, source.items.as_deref(), mode, fs_group)?;
            } else if volume.empty_dir.is_some() {
                fresh_dir(&dir)?;
                own(&dir, fs_group, 0o777)?;
            } else if volume
                .config_map
                .as_ref()
                .is_some_and(|c| c.optional == Some(true))
            {
                // There is no API server here, so an optional ConfigMap is an absent one:
                // the kubelet mounts an empty directory for it.
                fresh_dir(&dir)?;
                own(&dir, fs_group, 0o755)?;
            } else {
                return Err(Error::Spec(format!(
                    "volume {}: only secret, emptyDir and optional configMap volumes are supported",
                    volume.name
                )));
            }
            paths.insert(volume.name.clone(), dir);
        }
        for template in claim_templates {
            let name = template.metadata.name.clone().unwrap_or_default();
            let dir = claims_dir.join(format!("{name}-{pod}"));
            if !dir.exists() {
                mkdir(&dir)?;
                own(&dir, fs_group, 0o2770)?;
            }
            paths.insert(name, dir);
        }
        Ok(Volumes { paths })
    }

    /// The directory behind volume `name`.
    pub fn path(&self, name: &str) -> Option<&Path> {
        self.paths.get(name).map(PathBuf::as_path)
    }
}

/// Writes `secret`'s keys into `dir`: all of them, or only those `items` names, at the paths
/// and modes it gives (the kubelet's projection).
fn write_secret(
    dir: &Path,
    secret: &Secret,
    items: Option<&[KeyToPath]>,
    mode: u32,
    group: Option<u32>,
) -> Result<(), Error> {
    fresh_dir(dir)?;
    own(dir, group, 0o755)?;
    let data = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .chain(
            secret
                .string_data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes())),
        );
    for (key, bytes) in data {
        let (path, mode) = match items {
            None => (dir.join(&key), mode),
            Some(items) => match items.iter().find(|i| i.key == key) {
                Some(item) => (dir.join(&item.path), item.mode.map_or(mode, |m| m as u32)),
                None => continue,
            },
        };
        std::fs::write(&path, bytes)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        own(&path, group, mode)?;
    }
    Ok(())
}

fn fresh_dir(dir: &Path) -> Result<(), Error> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(|e| Error::io(format!("clearing {}", dir.display()), e))?;
    }
    mkdir(dir)
}

fn mkdir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

fn own(path: &Path, group: Option<u32>, mode: u32) -> Result<(), Error> {
    if let Some(g) = group {
        std::os::unix::fs::chown(path, Some(0), Some(g))
            .map_err(|e| Error::io(format!("chown {}", path.display()), e))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {}", path.display()), e))
}
