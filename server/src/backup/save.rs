//! Taking a backup: stream `Maintenance.Snapshot` from a healthy member straight into a
//! multipart upload, so a database of any size passes through a few chunks of memory.
//!
//! The stored object is what `etcdctl snapshot save` writes (the database followed by the
//! SHA-256 trailer the member sends last), optionally gzip-compressed, so any etcd tool can
//! restore it once decompressed. The trailer is checked against the bytes received before
//! the upload is completed: a corrupt stream aborts the upload and leaves nothing behind.
//! The metadata object follows the completed upload, then retention runs.
//!
//! Names are `<UTC time>-r<revision>-<8 random hex digits>.db[.gz]`: they sort by time as
//! before, and two saves in the same second at the same revision (a schedule and an
//! on-demand backup, say) no longer write the same objects. The metadata is written only if
//! no object has its name yet (a conditional put), so a backup's metadata is never replaced.
//! A snapshot whose metadata cannot be written is deleted again (best effort): without
//! metadata no listing, fetch or retention would ever see it, and it would stay forever.

use std::io::Write;
use std::time::{Duration, SystemTime};

use ballast_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use ballast_proto::etcdserverpb::SnapshotRequest;
use flate2::write::GzEncoder;
use object_store::{PutMode, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

use super::holds::Hold;
use super::location::Location;
use super::member::{self, Endpoints, Member};
use super::metadata::{Compression, Metadata, SUFFIX};
use super::progress::Progress;
use super::retention::{self, Retention};
use super::trailer::Split;
use crate::error::{Error, Result};

/// Size of the parts uploaded; S3 wants at least 5 MiB per part but the last.
const PART: usize = 8 * 1024 * 1024;
/// Parts uploading at once; with the part being filled, bounds the memory used.
const PARTS_IN_FLIGHT: usize = 2;

/// What `save` is asked to do.
#[derive(Debug, Clone)]
pub struct SaveOptions {
    pub endpoints: Endpoints,
    pub compression: Compression,
    pub retention: Retention,
    /// Limit for connecting, for each answer, and for each snapshot chunk to arrive.
    pub timeout: Duration,
    /// Draw a progress line on stderr.
    pub progress: bool,
    /// Made outside the schedule: recorded in the metadata, so retention leaves it alone.
    pub on_demand: bool,
}

/// A finished backup and what retention removed.
#[derive(Debug, Clone)]
pub struct Saved {
    pub metadata: Metadata,
    /// Names of the backups deleted by retention.
    pub deleted: Vec<String>,
    /// Backups retention would have deleted but kept for their live holds.
    pub held: Vec<(String, Vec<Hold>)>,
}

/// Takes a snapshot of the cluster and stores it (with its metadata) in `location`, then
/// applies the retention rules.
pub async fn save(location: &Location, options: &SaveOptions) -> Result<Saved> {
    let member = member::pick(&options.endpoints, options.timeout).await?;
    let now = SystemTime::now();
    let created_at = humantime::format_rfc3339_millis(now).to_string();
    let name = backup_name(now, member.revision(), options.compression, rand::random());
    let stored = upload(location, &member, &name, options).await?;
    let metadata = Metadata {
        name: name.clone(),
        cluster_id: format!("{:x}", member.cluster_id()),
        member_id: format!("{:x}", member.id()),
        member_name: member.name.clone(),
        endpoint: member.endpoint.clone(),
        revision: member.revision(),
        size: stored.size,
        db_size: member.status.db_size,
        sha256: hex(&stored.sha256),
        compression: options.compression,
        created_at,
        etcd_version: member.status.version.clone(),
        ballast_version: env!("CARGO_PKG_VERSION").to_string(),
        on_demand: options.on_demand,
    };
    commit(location, &metadata).await?;
    let applied = retention::apply(location, &options.retention, &name, now).await?;
    Ok(Saved {
        metadata,
        deleted: applied.deleted,
        held: applied.held,
    })
}

/// `<time>-r<revision>-<tag>.db[.gz]`: sorts by time; `tag` (random) tells apart backups of
/// the same second and revision.
fn backup_name(t: SystemTime, revision: i64, compression: Compression, tag: u32) -> String {
    format!(
        "{}-r{revision}-{tag:08x}{}",
        object_time(t),
        compression.extension()
    )
}

/// Writes the metadata that makes the uploaded snapshot a backup. If that fails, the
/// snapshot is deleted (best effort) and the write's error returned.
async fn commit(location: &Location, metadata: &Metadata) -> Result<()> {
    let name = &metadata.name;
    let json = serde_json::to_vec_pretty(metadata)
        .map_err(|e| Error::Backup(format!("cannot encode the metadata of {name}: {e}")))?;
    let key = location.object(&format!("{name}{SUFFIX}"));
    let error = match put_new(location, &key, json.into()).await {
        Ok(()) => return Ok(()),
        Err(object_store::Error::AlreadyExists { .. }) => {
            // Ours, when a retried request had landed; otherwise the name is someone else's
            // and so, possibly, the snapshot object: leave both alone.
            if super::metadata::get(location, name).await.ok().as_ref() == Some(metadata) {
                return Ok(());
            }
            return Err(Error::Backup(format!(
                "backup {name} already exists in {location}: another save drew the same \
                 name; nothing was deleted, run the backup again"
            )));
        }
        Err(e) => location.explain(&format!("cannot write the metadata of {name} to"), e),
    };
    for object in [name.clone(), format!("{name}{SUFFIX}")] {
        match location.store().delete(&location.object(&object)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(
                "cannot delete {object} from {location} after its metadata failed ({e}); \
                 delete it by hand, no listing or retention will see it"
            ),
        }
    }
    Err(error)
}

/// Puts `payload` at `key` unless an object is there; stores that cannot put conditionally
/// (object_store says so) get a plain put: the name's random tag already makes it new.
async fn put_new(
    location: &Location,
    key: &object_store::path::Path,
    payload: PutPayload,
) -> object_store::Result<()> {
    let store = location.store();
    match store
        .put_opts(key, payload.clone(), PutMode::Create.into())
        .await
    {
        Err(object_store::Error::NotImplemented) => store.put(key, payload).await.map(drop),
        result => result.map(drop),
    }
}

/// `YYYYMMDDTHHMMSSZ` in UTC, for object names that sort by time.
fn object_time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect()
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored object's length and SHA-256.
struct Stored {
    size: u64,
    sha256: Vec<u8>,
}

/// Streams the snapshot of `member` into the object `name`; aborts the upload on any
/// failure so no partial object is left.
async fn upload(
    location: &Location,
    member: &Member,
    name: &str,
    options: &SaveOptions,
) -> Result<Stored> {
    let key = location.object(name);
    let multipart = location
        .store()
        .put_multipart(&key)
        .await
        .map_err(|e| location.explain("cannot upload to", e))?;
    let mut writer = Writer {
        upload: WriteMultipart::new_with_chunk_size(multipart, PART),
        gzip: (options.compression == Compression::Gzip)
            .then(|| GzEncoder::new(Vec::new(), flate2::Compression::default())),
        sha256: Sha256::new(),
        size: 0,
    };
    match stream(member, &mut writer, options).await {
        Ok(()) => {}
        Err(e) => {
            if let Err(abort) = writer.upload.abort().await {
                tracing::warn!("aborting the upload of {name} to {location}: {abort}");
            }
            return Err(e);
        }
    }
    if let Err(e) = writer.finish_compression().await {
        let _ = writer.upload.abort().await;
        return Err(e);
    }
    let Writer {
        upload,
        sha256,
        size,
        ..
    } = writer;
    upload
        .finish()
        .await
        .map_err(|e| location.explain("cannot upload to", e))?;
    Ok(Stored {
        size,
        sha256: sha256.finalize().to_vec(),
    })
}

/// The upload with what sits in front of it: compression and the stored bytes' hash.
struct Writer {
    upload: WriteMultipart,
    gzip: Option<GzEncoder<Vec<u8>>>,
    sha256: Sha256,
    size: u64,
}

impl Writer {
    /// Passes snapshot bytes on, compressed if asked.
    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.gzip {
            Some(gz) => {
                gz.write_all(bytes)
                    .map_err(|e| Error::io("compressing the snapshot", e))?;
                let out = std::mem::take(gz.get_mut());
                self.store(&out).await
            }
            None => self.store(bytes).await,
        }
    }

    async fn finish_compression(&mut self) -> Result<()> {
        if let Some(gz) = self.gzip.take() {
            let out = gz
                .finish()
                .map_err(|e| Error::io("compressing the snapshot", e))?;
            self.store(&out).await?;
        }
        Ok(())
    }

    /// Hashes and uploads stored bytes, waiting while too many parts are in flight.
    async fn store(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.upload
            .wait_for_capacity(PARTS_IN_FLIGHT)
            .await
            .map_err(|e| Error::Store {
                context: "uploading a part of the snapshot".into(),
                source: e,
            })?;
        self.sha256.update(bytes);
        self.size += bytes.len() as u64;
        self.upload.write(bytes);
        Ok(())
    }
}

/// Receives the snapshot, writing it through `writer`, and checks its trailer.
///
/// The member sends database chunks and then the SHA-256 of the database as its own last
/// message, so each message is held back until the next arrives: the one left at the end
/// is the trailer.
async fn stream(member: &Member, writer: &mut Writer, options: &SaveOptions) -> Result<()> {
    let who = &member.endpoint;
    let timeout = options.timeout;
    let failed = |what: String| Error::Backup(format!("snapshot from {who} failed: {what}"));
    let mut messages = tokio::time::timeout(
        timeout,
        MaintenanceClient::new(member.channel.clone()).snapshot(SnapshotRequest {}),
    )
    .await
    .map_err(|_| failed(format!("no answer within {timeout:?}")))?
    .map_err(|s| failed(s.message().to_string()))?
    .into_inner();
    let progress = Progress::new(options.progress);
    let mut split = Split::default();
    let mut received = 0u64;
    loop {
        let next = tokio::time::timeout(timeout, messages.message())
            .await
            .map_err(|_| failed(format!("no data for {timeout:?}")))?
            .map_err(|s| failed(s.message().to_string()))?;
        let Some(message) = next else { break };
        received += message.blob.len() as u64;
        progress.update(received, received + message.remaining_bytes);
        if let Some(db) = split.push(message.blob) {
            writer.write(&db).await?;
        }
    }
    progress.finish();
    let trailer = split.finish().map_err(|why| {
        Error::Backup(format!(
            "snapshot from {who} is corrupt: {why}; the upload was aborted, try again or \
             check the member"
        ))
    })?;
    writer.write(&trailer).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_times_sort_and_read_as_utc() {
        let t = humantime::parse_rfc3339("2026-01-02T03:04:05.678Z").expect("time");
        assert_eq!(object_time(t), "20260102T030405Z");
    }

    #[test]
    fn names_of_one_second_and_revision_differ_and_still_sort_by_time() {
        let t = humantime::parse_rfc3339("2026-12-03T14:00:00.100Z").expect("time");
        let later = humantime::parse_rfc3339("2026-12-03T14:00:01Z").expect("time");
        let a = backup_name(t, 12, Compression::None, 0xffff_ffff);
        let b = backup_name(t, 12, Compression::None, 0x1a2b);
        assert_eq!(a, "20261203T140000Z-r12-ffffffff.db");
        assert_eq!(b, "20261203T140000Z-r12-00001a2b.db");
        assert_eq!(
            backup_name(t, 12, Compression::Gzip, 7),
            "20261203T140000Z-r12-00000007.db.gz"
        );
        assert!(a < backup_name(later, 3, Compression::None, 0));
    }
}
