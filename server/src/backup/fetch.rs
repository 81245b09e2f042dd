//! Fetching a backup to a local snapshot file, for `ballast snapshot restore` (by hand, or
//! by the sidecar rebuilding a cluster).
//!
//! A restore from a damaged backup would silently bring back damaged data, so nothing is
//! left at the output path unless the stored bytes match the SHA-256 in the metadata and
//! the result ends with a valid etcd SHA-256 trailer. The object is streamed (and
//! decompressed) to the file as it arrives; the file writes are small and sequential, so
//! they are done in place rather than on a blocking thread.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use flate2::write::GzDecoder;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::location::Location;
use super::metadata::{self, Compression, Metadata};
use super::save::hex;
use crate::error::{Error, Result};
use crate::snapshot::{check_trailer, Trailer};

/// Downloads backup `name` (relative to `location`, with or without its prefix) to
/// `output`, decompressing it, and verifies it. On any failure `output` is removed.
pub async fn fetch(location: &Location, name: &str, output: &Path) -> Result<Metadata> {
    let name = relative_name(location, name);
    let meta = metadata::get(location, &name).await?;
    let result = download(location, &meta, output).await;
    if result.is_err() {
        let _ = std::fs::remove_file(output);
    }
    result.map(|()| meta)
}

/// `name` without the location's prefix, if it was given with it.
pub(super) fn relative_name(location: &Location, name: &str) -> String {
    let name = name.trim_start_matches('/');
    let prefix = location.prefix().as_ref();
    match name.strip_prefix(prefix) {
        Some(rest) if !prefix.is_empty() && rest.starts_with('/') => rest[1..].to_string(),
        _ => name.to_string(),
    }
}

/// Where the bytes go: straight to the file, or through a gzip decoder.
enum Sink {
    Plain(File),
    Gzip(Box<GzDecoder<File>>),
}

impl Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(f) => f.write_all(bytes),
            Sink::Gzip(g) => g.write_all(bytes),
        }
    }

    fn finish(self) -> std::io::Result<()> {
        let file = match self {
            Sink::Plain(f) => f,
            Sink::Gzip(g) => g.finish()?,
        };
        file.sync_all()
    }
}

async fn download(location: &Location, meta: &Metadata, output: &Path) -> Result<()> {
    let name = &meta.name;
    let corrupt =
        |why: String| Error::Backup(format!("backup {name} in {location} is corrupt: {why}"));
    let file = File::create(output)
        .map_err(|e| Error::io(format!("cannot create {}", output.display()), e))?;
    let mut sink = match meta.compression {
        Compression::None => Sink::Plain(file),
        Compression::Gzip => Sink::Gzip(Box::new(GzDecoder::new(file))),
    };
    let mut stream = location
        .store()
        .get(&location.object(name))
        .await
        .map_err(|e| match e {
            object_store::Error::NotFound { .. } => Error::Backup(format!(
                "backup {name} in {location} has metadata but no snapshot object; it cannot \
                 be restored"
            )),
            e => location.explain(&format!("cannot download backup {name} from"), e),
        })?
        .into_stream();
    let mut sha256 = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| location.explain(&format!("cannot download backup {name} from"), e))?;
        sha256.update(&chunk);
        size += chunk.len() as u64;
        sink.write(&chunk).map_err(|e| match meta.compression {
            Compression::Gzip if e.kind() != std::io::ErrorKind::StorageFull => {
                corrupt(format!("it does not decompress: {e}"))
            }
            _ => Error::io(format!("cannot write {}", output.display()), e),
        })?;
    }
    let computed = hex(&sha256.finalize());
    if computed != meta.sha256 {
        return Err(corrupt(format!(
            "its SHA-256 {computed} does not match its metadata ({}; {size} bytes stored, \
             {} expected)",
            meta.sha256, meta.size
        )));
    }
    sink.finish().map_err(|e| match meta.compression {
        Compression::Gzip => corrupt(format!("it does not decompress: {e}")),
        Compression::None => Error::io(format!("cannot write {}", output.display()), e),
    })?;
    match check_trailer(output, false) {
        Ok(Trailer::Verified) => Ok(()),
        Ok(_) => Err(corrupt(
            "it is not an etcd snapshot with a SHA-256 trailer".into(),
        )),
        Err(e) => Err(corrupt(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_may_carry_the_prefix() {
        let l = Location::parse("s3://b/backups/prod").expect("parse");
        assert_eq!(relative_name(&l, "backups/prod/x.db"), "x.db");
        assert_eq!(relative_name(&l, "x.db"), "x.db");
        let root = Location::parse("s3://b").expect("parse");
        assert_eq!(relative_name(&root, "x.db"), "x.db");
    }
}
