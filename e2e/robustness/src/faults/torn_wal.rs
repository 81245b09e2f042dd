//! A torn WAL tail: what a crash leaves when the last write reached the file only in part.
//!
//! Ballast's WAL (server/src/raft/wal) is a directory of segments `<seq>-<index>.wal`, each
//! a run of records `[u32 len][u32 crc32][body]`, the newest one preallocated with zeros
//! past its last record. Everything up to the last fsync is acknowledged; a write after it
//! may be on disk in part. So the tear here goes after the last complete record: a prefix
//! of a record (a copy of the last one, cut short) or bytes of garbage, sometimes with the
//! file cut right after them, as on a file system that does not preallocate. Synced
//! records are never touched: losing those is a disk that lies, not a crash.

use std::path::{Path, PathBuf};

use rand::Rng;

use crate::Error;

/// What was done to which file, for the run's report.
#[derive(Debug, Clone)]
pub struct Tear {
    pub file: PathBuf,
    /// Where the records ended.
    pub records_end: u64,
    pub description: String,
}

/// Tears the tail of the newest segment in `wal_dir` (the member must be down).
pub fn tear(wal_dir: &Path, rng: &mut impl Rng) -> Result<Tear, Error> {
    let file = newest_segment(wal_dir)?;
    let mut buf =
        std::fs::read(&file).map_err(|e| Error::io(format!("reading {}", file.display()), e))?;
    let (end, last) = records_end(&buf);
    let last_len = end - last;
    let torn: Vec<u8> = if last_len > 1 && rng.random_bool(0.6) {
        // The last record written again, interrupted part-way.
        let keep = rng.random_range(1..last_len);
        buf[last..last + keep].to_vec()
    } else {
        (0..rng.random_range(1..=600))
            .map(|_| rng.random_range(1..=255u8))
            .collect()
    };
    let what = if torn.len() < last_len && torn[..] == buf[last..last + torn.len()] {
        format!(
            "{} bytes of a copy of the last record ({last_len} bytes)",
            torn.len()
        )
    } else {
        format!("{} bytes of garbage", torn.len())
    };
    let torn_end = end + torn.len();
    if buf.len() < torn_end {
        buf.resize(torn_end, 0);
    }
    buf[end..torn_end].copy_from_slice(&torn);
    let cut = rng.random_bool(0.5);
    if cut {
        buf.truncate(torn_end);
    }
    std::fs::write(&file, &buf).map_err(|e| Error::io(format!("writing {}", file.display()), e))?;
    Ok(Tear {
        description: format!(
            "{}: {what} after the records ending at byte {end}{}",
            file.file_name().unwrap_or_default().to_string_lossy(),
            if cut { ", file cut after them" } else { "" }
        ),
        file,
        records_end: end as u64,
    })
}

fn newest_segment(dir: &Path) -> Result<PathBuf, Error> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segments.sort();
    segments
        .pop()
        .ok_or_else(|| Error::Setup(format!("no WAL segment in {}", dir.display())))
}

/// The offset where the complete records end (where the preallocated zeros begin) and
/// where the last of them starts. Framing only; checksums are the server's business.
fn records_end(buf: &[u8]) -> (usize, usize) {
    let (mut off, mut last) = (0, 0);
    while let Some(header) = buf.get(off..off + 4) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let end = off + 8 + len;
        if len == 0 || end > buf.len() {
            break;
        }
        last = off;
        off = end;
    }
    (off, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn record(body: &[u8]) -> Vec<u8> {
        let mut r = (body.len() as u32).to_le_bytes().to_vec();
        r.extend_from_slice(&[7, 7, 7, 7]);
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn records_end_stops_at_the_zeros() {
        let mut buf = record(b"abc");
        buf.extend(record(b"defgh"));
        let end = buf.len();
        buf.resize(4096, 0);
        assert_eq!(records_end(&buf), (end, 11));
    }

    #[test]
    fn tear_writes_only_after_the_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut buf = record(b"first record");
        buf.extend(record(b"second record"));
        let records = buf.clone();
        buf.resize(8192, 0);
        let path = dir.path().join("0000000000000000-0000000000000001.wal");
        std::fs::write(&path, &buf).expect("write");
        for seed in 0..20 {
            std::fs::write(&path, &buf).expect("write");
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let tear = tear(dir.path(), &mut rng).expect("tear");
            let after = std::fs::read(&path).expect("read");
            assert_eq!(tear.records_end as usize, records.len());
            assert_eq!(&after[..records.len()], &records[..], "seed {seed}");
            assert!(
                after[records.len()..].iter().any(|&b| b != 0),
                "seed {seed}: nothing torn"
            );
        }
    }
}
