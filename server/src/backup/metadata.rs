//! The metadata object written next to each snapshot object (`<snapshot>.json`).
//!
//! It is written only after the snapshot upload completed, so its presence is what makes a
//! backup complete: listing, fetching and retention look at metadata objects and ignore
//! anything else (an aborted upload, an operator's notes). It also carries what a restore
//! needs to know without downloading the snapshot: the cluster, the revision, and the
//! SHA-256 of the stored bytes, which `fetch` checks, and whether the backup was made on
//! demand, which retention needs to leave it alone (see [`super::retention`]).
//!
//! Only objects directly under the location count: holds (`<name>.holds/<holder>.json`, see
//! [`super::holds`]) live one level down, so a listing made with a delimiter sees their
//! folders as common prefixes, never as metadata, and [`scan`] reports those folders so that
//! their holds are read without a second listing.

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::holds::HOLDS;
use super::location::Location;
use crate::error::{Error, Result};

/// Suffix of metadata objects, appended to the snapshot object's name.
pub const SUFFIX: &str = ".json";

/// One backup, as its metadata object describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The snapshot object's name relative to the location (`20260102T030405Z-r42.db`).
    pub name: String,
    /// Hex, as etcdctl prints it.
    pub cluster_id: String,
    pub member_id: String,
    pub member_name: String,
    /// The client URL the snapshot was taken from.
    pub endpoint: String,
    /// The member's revision when the snapshot was taken.
    pub revision: i64,
    /// Bytes of the stored object (after compression).
    pub size: u64,
    /// The member's database size as its `Status` reported it.
    pub db_size: i64,
    /// SHA-256 of the stored object, hex.
    pub sha256: String,
    pub compression: Compression,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The etcd version the member reports.
    pub etcd_version: String,
    /// The version of the `ballast` that made the backup.
    pub ballast_version: String,
    /// Made outside the schedule (`save --on-demand`): retention never deletes it and does
    /// not count it. Metadata written before this field existed reads as `false`.
    #[serde(default)]
    pub on_demand: bool,
}

/// How the snapshot object is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
}

impl Compression {
    /// The snapshot object's name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => ".db",
            Compression::Gzip => ".db.gz",
        }
    }
}

impl Metadata {
    /// When the backup was made; `None` if `created_at` is not RFC 3339.
    pub fn created(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.created_at).ok()
    }
}

/// What a location holds: its complete backups and the names with a holds folder.
#[derive(Debug, Default)]
pub struct Listing {
    /// Every complete backup, newest first.
    pub backups: Vec<Metadata>,
    /// Names `X` with a `X.holds/` folder, whether or not backup `X` still exists.
    pub hold_folders: BTreeSet<String>,
}

/// Every complete backup under `location`, newest first.
pub async fn list(location: &Location) -> Result<Vec<Metadata>> {
    Ok(scan(location).await?.backups)
}

/// Every complete backup under `location` (newest first) and the names with holds.
pub async fn scan(location: &Location) -> Result<Listing> {
    // Only the objects directly under the prefix: backups are never nested, and a
    // recursive listing of a directory location could walk a whole file system.
    let (objects, folders) = match location
        .store()
        .list_with_delimiter(Some(location.prefix()))
        .await
    {
        Ok(listing) => (listing.objects, listing.common_prefixes),
        // A directory no backup was written to yet holds no backups.
        Err(object_store::Error::NotFound { .. }) if location.bucket().is_none() => {
            (Vec::new(), Vec::new())
        }
        Err(e) => return Err(location.explain("cannot list backups in", e)),
    };
    let hold_folders = folders
        .iter()
        .filter_map(|folder| location.relative(folder))
        .filter_map(|name| name.strip_suffix(HOLDS).map(str::to_string))
        .collect();
    let mut backups = Vec::new();
    for object in objects {
        let Some(name) = location.relative(&object.location) else {
            continue;
        };
        if !name.ends_with(SUFFIX) {
            continue;
        }
        match read(location, &name).await {
            Ok(m) if name.strip_suffix(SUFFIX) == Some(m.name.as_str()) => backups.push(m),
            Ok(m) => tracing::warn!(
                "ignoring {name} in {location}: it describes {}, not its neighbour",
                m.name
            ),
            // Someone else's JSON file, or one deleted meanwhile: not a backup of ours.
            Err(e) => tracing::warn!("ignoring {name} in {location}: {e}"),
        }
    }
    sort_newest_first(&mut backups);
    Ok(Listing {
        backups,
        hold_folders,
    })
}

/// Reads and parses the metadata object `name` (with its `.json` suffix).
async fn read(location: &Location, name: &str) -> Result<Metadata> {
    let bytes = location
        .store()
        .get(&location.object(name))
        .await
        .map_err(|e| location.explain(&format!("cannot read {name} in"), e))?
        .bytes()
        .await
        .map_err(|e| location.explain(&format!("cannot read {name} in"), e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Backup(format!("{name} in {location} is not backup metadata: {e}")))
}

/// The metadata of backup `name` (the snapshot object's name), or "not found".
pub async fn get(location: &Location, name: &str) -> Result<Metadata> {
    let key = location.object(&format!("{name}{SUFFIX}"));
    match location.store().head(&key).await {
        Ok(_) => read(location, &format!("{name}{SUFFIX}")).await,
        Err(object_store::Error::NotFound { .. }) => Err(Error::Backup(format!(
            "backup {name} not found in {location} (see `ballast backup list --from {location}`)"
        ))),
        Err(e) => Err(location.explain(&format!("cannot read backup {name} in"), e)),
    }
}

/// Newest first: by creation time, then by name (which starts with the time).
pub fn sort_newest_first(backups: &mut [Metadata]) {
    backups.sort_by(|a, b| {
        b.created()
            .cmp(&a.created())
            .then_with(|| b.name.cmp(&a.name))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_without_on_demand_reads_as_scheduled() {
        let old = r#"{"name":"20260102T030405Z-r42.db","clusterId":"1","memberId":"2",
            "memberName":"m","endpoint":"http://m:2379","revision":42,"size":1,"dbSize":1,
            "sha256":"","compression":"none","createdAt":"2026-01-02T03:04:05.000Z",
            "etcdVersion":"3.5.17","ballastVersion":"0.1.0"}"#;
        let meta: Metadata = serde_json::from_str(old).expect("old metadata");
        assert!(!meta.on_demand);
        let written = serde_json::to_value(Metadata {
            on_demand: true,
            ..meta
        })
        .expect("encode");
        assert_eq!(written["onDemand"], true);
    }
}
