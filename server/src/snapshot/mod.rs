//! Snapshot files: what `Maintenance.Snapshot` streams (and `etcdctl
//! snapshot save` writes), and the offline `ballast snapshot` commands.
//!
//! Layout: `BLSTSNP1`, the database length (u64 big-endian), a consistent
//! copy of the redb database, zero padding to a multiple of 512 bytes, and
//! the SHA-256 of everything before it. The padding and trailing hash are
//! what etcdctl checks (size % 512 == 32).

pub mod restore;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub const MAGIC: &[u8; 8] = b"BLSTSNP1";
const HEADER_LEN: u64 = 16;
const HASH_LEN: u64 = 32;
const CHUNK: usize = 64 * 1024;

fn padding(db_len: u64) -> u64 {
    (512 - (HEADER_LEN + db_len) % 512) % 512
}

/// Total size of the snapshot stream for a database of `db_len` bytes.
pub fn stream_len(db_len: u64) -> u64 {
    HEADER_LEN + db_len + padding(db_len) + HASH_LEN
}

/// Produces the snapshot stream from a database copy, chunk by chunk,
/// calling `emit(chunk, remaining_after_chunk)`.
pub fn stream(mut db: File, mut emit: impl FnMut(Vec<u8>, u64) -> Result<()>) -> Result<()> {
    let db_len = db
        .metadata()
        .map_err(|e| Error::io("stat snapshot copy", e))?
        .len();
    let total = stream_len(db_len);
    let mut sent = 0u64;
    let mut hasher = Sha256::new();
    let mut send = |chunk: Vec<u8>, hasher: &mut Sha256, hash: bool| -> Result<()> {
        if hash {
            hasher.update(&chunk);
        }
        sent += chunk.len() as u64;
        emit(chunk, total - sent)
    };
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&db_len.to_be_bytes());
    send(header, &mut hasher, true)?;
    let mut left = db_len;
    while left > 0 {
        let mut buf = vec![0u8; CHUNK.min(left as usize)];
        db.read_exact(&mut buf)
            .map_err(|e| Error::io("read snapshot copy", e))?;
        left -= buf.len() as u64;
        send(buf, &mut hasher, true)?;
    }
    let pad = vec![0u8; padding(db_len) as usize];
    hasher.update(&pad);
    let mut tail = pad;
    tail.extend_from_slice(&hasher.clone().finalize());
    send(tail, &mut hasher, false)
}

/// Checks a snapshot file and copies its database to `dest`.
pub fn extract(file: &Path, dest: &Path, skip_hash_check: bool) -> Result<()> {
    let mut f = File::open(file).map_err(|e| Error::io(format!("open {}", file.display()), e))?;
    let len = f
        .metadata()
        .map_err(|e| Error::io("stat snapshot", e))?
        .len();
    let bad = |why: &str| {
        Error::Other(format!(
            "{} is not a Ballast snapshot: {why}",
            file.display()
        ))
    };
    if len < HEADER_LEN + HASH_LEN || len % 512 != HASH_LEN {
        return Err(bad(
            "its size is not that of a snapshot (truncated download?)",
        ));
    }
    let mut header = [0u8; 16];
    f.read_exact(&mut header)
        .map_err(|e| Error::io("read snapshot", e))?;
    if &header[..8] != MAGIC {
        return Err(bad("wrong magic bytes"));
    }
    let db_len = u64::from_be_bytes(header[8..16].try_into().map_err(|_| bad("bad header"))?);
    if stream_len(db_len) != len {
        return Err(bad(
            "the recorded database length does not match the file size",
        ));
    }
    if !skip_hash_check {
        f.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("seek snapshot", e))?;
        let mut hasher = Sha256::new();
        let mut body = (&mut f).take(len - HASH_LEN);
        std::io::copy(&mut body, &mut hasher).map_err(|e| Error::io("read snapshot", e))?;
        let mut want = [0u8; 32];
        f.read_exact(&mut want)
            .map_err(|e| Error::io("read snapshot hash", e))?;
        if hasher.finalize().as_slice() != want {
            return Err(Error::Other(format!(
                "snapshot {} is corrupt: SHA-256 mismatch (use --skip-hash-check only if the file was copied from a data directory)",
                file.display()
            )));
        }
    }
    f.seek(SeekFrom::Start(HEADER_LEN))
        .map_err(|e| Error::io("seek snapshot", e))?;
    let mut out =
        File::create(dest).map_err(|e| Error::io(format!("create {}", dest.display()), e))?;
    std::io::copy(&mut (&mut f).take(db_len), &mut out)
        .map_err(|e| Error::io("write database", e))?;
    out.flush().map_err(|e| Error::io("write database", e))?;
    out.sync_all().map_err(|e| Error::io("sync database", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_round_trips_and_has_etcdctl_shape() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("db");
        std::fs::write(&db, vec![7u8; 100_000]).expect("write");
        let mut out = Vec::new();
        let mut last_remaining = u64::MAX;
        stream(File::open(&db).expect("open"), |c, rem| {
            out.extend_from_slice(&c);
            last_remaining = rem;
            Ok(())
        })
        .expect("stream");
        assert_eq!(last_remaining, 0);
        assert_eq!(out.len() % 512, 32);
        let snap = dir.path().join("snap");
        std::fs::write(&snap, &out).expect("write");
        let back = dir.path().join("back");
        extract(&snap, &back, false).expect("extract");
        assert_eq!(std::fs::read(&back).expect("read"), vec![7u8; 100_000]);
        // One flipped byte is caught.
        out[20] ^= 1;
        std::fs::write(&snap, &out).expect("write");
        assert!(extract(&snap, &back, false).is_err());
    }
}
