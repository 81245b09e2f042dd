//! Segment files: naming, directory listing and directory fsync.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::{Result, WalError};

const SUFFIX: &str = ".wal";

/// Suffix of a segment being built by `mark_snapshot`; it only becomes part
/// of the log once renamed, so leftovers are discarded.
pub(super) const TMP_SUFFIX: &str = ".wal.tmp";

/// One segment file of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Segment {
    /// Position in the sequence of segments; consecutive within a log.
    pub(super) seq: u64,
    /// Index the log was expected to continue at when the file was created.
    pub(super) first_index: u64,
    pub(super) path: PathBuf,
}

/// Reserves the first `len` bytes of a segment file. Appends then stay inside the file's
/// size, so the `fdatasync` after each write flushes the data without the inode update a
/// growing file needs (etcd preallocates its WAL files the same way). The unwritten rest
/// reads as zeros, which recovery takes as the end of the log. File systems without
/// `fallocate` just let the file grow.
pub(super) fn preallocate(file: &File, path: &Path, len: u64) -> Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => Ok(()),
        Err(e) => Err(io_err(path)(io::Error::from(e))),
    }
}

impl Segment {
    pub(super) fn new(dir: &Path, seq: u64, first_index: u64) -> Self {
        Segment {
            seq,
            first_index,
            path: dir.join(format!("{seq:016x}-{first_index:016x}{SUFFIX}")),
        }
    }

    /// Where the segment is built before being renamed into place.
    pub(super) fn tmp_path(&self) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(&TMP_SUFFIX[SUFFIX.len()..]);
        PathBuf::from(name)
    }
}

/// Parses `<seq:016x>-<first_index:016x>.wal`.
fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(SUFFIX)?;
    let (seq, first) = stem.split_once('-')?;
    let hex = |s: &str| {
        (s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u64::from_str_radix(s, 16).ok())
            .flatten()
    };
    Some((hex(seq)?, hex(first)?))
}

/// What a WAL directory contains.
#[derive(Debug, Default)]
pub(super) struct Listing {
    /// Segment files, sorted by sequence number.
    pub(super) segments: Vec<Segment>,
    /// Leftovers of an interrupted `mark_snapshot`.
    pub(super) temp: Vec<PathBuf>,
}

/// Lists the WAL files in `dir`. Two segments claiming the same sequence
/// number make the log ambiguous and are reported as corruption.
pub(super) fn list(dir: &Path) -> Result<Listing> {
    let mut listing = Listing::default();
    let entries = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(listing),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for dent in entries {
        let dent = dent.map_err(io_err(dir))?;
        let Some(name) = dent.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.ends_with(TMP_SUFFIX) {
            listing.temp.push(dent.path());
        } else if let Some((seq, first_index)) = parse_name(&name) {
            listing.segments.push(Segment {
                seq,
                first_index,
                path: dent.path(),
            });
        } else if name.ends_with(SUFFIX) {
            tracing::warn!(file = %dent.path().display(), "ignoring unrecognised file in the WAL directory");
        }
    }
    listing.segments.sort_by_key(|s| s.seq);
    if let Some(w) = listing.segments.windows(2).find(|w| w[0].seq == w[1].seq) {
        return Err(WalError::Corrupt {
            file: w[1].path.clone(),
            offset: 0,
            reason: format!(
                "segment sequence number {} is used by two files ({} and this one)",
                w[1].seq,
                w[0].path.display()
            ),
        });
    }
    Ok(listing)
}

/// Whether `dir` holds at least one segment file.
pub(super) fn any_segment(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|rd| {
        rd.filter_map(|d| d.ok())
            .any(|d| d.file_name().to_str().and_then(parse_name).is_some())
    })
}

/// Makes file creations, renames and deletions in `dir` durable: fsync of a
/// file covers its data, not the directory entry that names it.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Adapter attaching the path an I/O error happened on.
pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_lookalikes() {
        let seg = Segment::new(Path::new("/x"), 0x1f, 0x2a);
        let name = seg.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert_eq!(name, "000000000000001f-000000000000002a.wal");
        assert_eq!(parse_name(name), Some((0x1f, 0x2a)));
        assert_eq!(parse_name("1f-2a.wal"), None);
        assert_eq!(
            parse_name("000000000000001f-000000000000002a.wal.tmp"),
            None
        );
        assert_eq!(parse_name("000000000000001f_000000000000002a.wal"), None);
        assert_eq!(parse_name("+00000000000001f-000000000000002a.wal"), None);
    }
}
