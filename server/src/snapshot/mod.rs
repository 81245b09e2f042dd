//! Snapshot files in etcd's format: what `Maintenance.Snapshot` streams (and
//! `etcdctl snapshot save` writes), and the offline `ballast snapshot`
//! commands that read them.
//!
//! An etcd snapshot is the member's backend database, a bbolt file in
//! etcd's bucket layout ([`layout`]), followed by the SHA-256 of those
//! bytes. bbolt files are whole pages, so `size % 512 == 32` tells a
//! snapshot with its hash from a bare database file; etcdctl relies on it.
//! Ballast writes the bbolt file itself from its redb tables ([`export`])
//! and reads snapshots from Ballast or etcd alike ([`restore`], [`status`]).

mod auth;
pub mod bbolt;
pub mod export;
pub mod identity;
pub mod layout;
pub mod restore;
pub mod status;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const HASH_LEN: u64 = 32;
/// Bytes per stream message; etcd sends 32 KiB.
const CHUNK: usize = 64 * 1024;

/// Streams a snapshot database, chunk by chunk, then its SHA-256, calling
/// `emit(chunk, remaining)`. As in etcd, `remaining` counts database bytes
/// still to come, so the last data chunk and the hash both carry 0.
pub fn stream(mut db: File, mut emit: impl FnMut(Vec<u8>, u64) -> Result<()>) -> Result<()> {
    let size = db
        .metadata()
        .map_err(|e| Error::io("stat snapshot database", e))?
        .len();
    db.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("seek snapshot database", e))?;
    let mut hasher = Sha256::new();
    let mut left = size;
    while left > 0 {
        let mut buf = vec![0u8; CHUNK.min(left as usize)];
        db.read_exact(&mut buf)
            .map_err(|e| Error::io("read snapshot database", e))?;
        left -= buf.len() as u64;
        hasher.update(&buf);
        emit(buf, left)?;
    }
    emit(hasher.finalize().to_vec(), 0)
}

/// What the end of a snapshot file says about its integrity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trailer {
    /// The SHA-256 is present and matches.
    Verified,
    /// Present but not checked (`--skip-hash-check`).
    Unchecked,
    /// A bare database, as copied from a data dir.
    Absent,
}

/// Checks the trailing SHA-256 of a snapshot file (unless `skip`).
pub fn check_trailer(path: &Path, skip: bool) -> Result<Trailer> {
    let mut f = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let len = f
        .metadata()
        .map_err(|e| Error::io(format!("stat {}", path.display()), e))?
        .len();
    match len % 512 {
        0 => return Ok(Trailer::Absent),
        32 => {}
        _ if skip => return Ok(Trailer::Absent),
        _ => {
            return Err(Error::Other(format!(
                "snapshot {} is truncated or has trailing bytes: {len} bytes is neither a whole \
                 database (a multiple of 512) nor one followed by its SHA-256 (32 more)",
                path.display()
            )))
        }
    }
    if skip {
        return Ok(Trailer::Unchecked);
    }
    let mut hasher = Sha256::new();
    std::io::copy(&mut (&mut f).take(len - HASH_LEN), &mut hasher)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    let mut want = [0u8; HASH_LEN as usize];
    f.read_exact(&mut want)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    if hasher.finalize().as_slice() != want {
        return Err(Error::Other(format!(
            "snapshot {} is corrupt: its SHA-256 does not match (damaged or truncated file)",
            path.display()
        )));
    }
    Ok(Trailer::Verified)
}

/// Opens the bbolt database of a snapshot file; errors name the file.
pub fn open_db(path: &Path) -> Result<bbolt::Reader> {
    bbolt::Reader::open(path).map_err(|e| named(path, e))
}

/// Prefixes an error with the snapshot's path.
pub fn named(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Other(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
