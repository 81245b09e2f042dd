//! The file work behind [`Wal::mark_snapshot`]: building the segment that
//! replaces the log up to a snapshot mark, and switching over to it.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::format::{self, Decoded, Frame, Record, HEADER_LEN};
use super::log_index::{Loc, LogIndex};
use super::segment::{io_err, preallocate, sync_dir, Segment};
use super::{Result, SnapshotMark, Wal, WalError, SCRATCH_KEEP, WRITE_BUFFER};

impl Wal {
    /// Builds the new segment under a temporary name and renames it into
    /// place, returning it open for appending with its length and index.
    pub(super) fn write_mark_segment(
        &mut self,
        seg: &Segment,
        mark: &SnapshotMark,
        keep: &[(u64, Loc)],
    ) -> Result<(File, u64, LogIndex)> {
        let tmp = seg.tmp_path();
        let res = self
            .build_segment(&tmp, mark, keep)
            .and_then(|(file, len, index)| {
                fs::rename(&tmp, &seg.path).map_err(io_err(&seg.path))?;
                Ok((file, len, index))
            });
        if res.is_err() {
            // Nothing refers to the temporary file; recovery would delete it
            // too, but do not leave it behind.
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    fn build_segment(
        &mut self,
        tmp: &Path,
        mark: &SnapshotMark,
        keep: &[(u64, Loc)],
    ) -> Result<(File, u64, LogIndex)> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)
            .map_err(io_err(tmp))?;
        if self.opts.preallocate {
            preallocate(&file, tmp, self.opts.segment_size)?;
        }
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        let new_seq = self.current.seq + 1;
        let mut len = 0u64;
        let mut index = LogIndex::new(mark.index, mark.term);
        self.scratch.clear();
        format::encode(&mut self.scratch, Record::SnapshotMark(mark));
        format::encode(&mut self.scratch, Record::HardState(&self.hard_state));
        out.write_all(&self.scratch).map_err(io_err(tmp))?;
        len += self.scratch.len() as u64;

        let mut reader: Option<(u64, File, u64)> = None;
        for &(entry_index, loc) in keep {
            let src = self.segment_path(loc.seq)?;
            let (f, size) = match &mut reader {
                Some((seq, f, size)) if *seq == loc.seq => (f, *size),
                slot => {
                    let f = File::open(&src).map_err(io_err(&src))?;
                    let size = f.metadata().map_err(io_err(&src))?.len();
                    let (_, f, size) = slot.insert((loc.seq, f, size));
                    (f, *size)
                }
            };
            read_entry_record(f, size, &src, loc, entry_index, &mut self.scratch)?;
            out.write_all(&self.scratch).map_err(io_err(tmp))?;
            index.push(
                entry_index,
                Loc {
                    term: loc.term,
                    seq: new_seq,
                    offset: len,
                },
            );
            len += self.scratch.len() as u64;
        }
        if self.scratch.capacity() > SCRATCH_KEEP {
            self.scratch = Vec::new();
        }
        let file = out.into_inner().map_err(|e| io_err(tmp)(e.into_error()))?;
        file.sync_all().map_err(io_err(tmp))?;
        Ok((file, len, index))
    }

    pub(super) fn switch_to_mark_segment(
        &mut self,
        seg: Segment,
        file: File,
        seg_len: u64,
        index: LogIndex,
        mark: SnapshotMark,
    ) -> Result<()> {
        // The rename must be durable before anything is appended after it.
        sync_dir(&self.dir)?;
        let mut old = std::mem::take(&mut self.older);
        old.push(std::mem::replace(&mut self.current, seg));
        self.file = BufWriter::with_capacity(WRITE_BUFFER, file);
        self.seg_len = seg_len;
        self.index = index;
        self.snapshot = Some(mark);
        // Deleting superseded segments only frees space: if it fails they are
        // removed at the next open, which ignores them.
        for s in &old {
            if let Err(e) = fs::remove_file(&s.path) {
                tracing::warn!(file = %s.path.display(), error = %e, "could not delete WAL segment superseded by a snapshot mark");
            }
        }
        if let Err(e) = sync_dir(&self.dir) {
            tracing::warn!(error = %e, "could not sync the WAL directory after deleting old segments");
        }
        Ok(())
    }

    fn segment_path(&self, seq: u64) -> Result<PathBuf> {
        self.older
            .iter()
            .chain(std::iter::once(&self.current))
            .find(|s| s.seq == seq)
            .map(|s| s.path.clone())
            .ok_or_else(|| {
                WalError::InvalidArgument(format!("internal error: no live segment {seq}"))
            })
    }
}

/// Reads the framed entry record at `loc` into `out`, checking that it is
/// intact and is the entry expected there.
fn read_entry_record(
    f: &mut File,
    size: u64,
    path: &Path,
    loc: Loc,
    index: u64,
    out: &mut Vec<u8>,
) -> Result<()> {
    let corrupt = |reason: String| WalError::Corrupt {
        file: path.to_path_buf(),
        offset: loc.offset,
        reason,
    };
    out.clear();
    out.resize(HEADER_LEN, 0);
    f.seek(SeekFrom::Start(loc.offset))
        .and_then(|_| f.read_exact(out))
        .map_err(io_err(path))?;
    let len = u32::from_le_bytes([out[0], out[1], out[2], out[3]]);
    if loc.offset + (HEADER_LEN as u64) + u64::from(len) > size {
        return Err(corrupt(format!(
            "record of entry {index} claims {len} bytes, past the end of the file"
        )));
    }
    out.resize(HEADER_LEN + len as usize, 0);
    f.read_exact(&mut out[HEADER_LEN..]).map_err(io_err(path))?;
    match format::frame_at(out, 0) {
        Frame::Good { body, .. } => match format::decode(body) {
            Ok(Decoded::Entry(e)) if e.index == index && e.term == loc.term => Ok(()),
            Ok(_) => Err(corrupt(format!(
                "expected entry {index} (term {}) while compacting the log, found another record",
                loc.term
            ))),
            Err(r) => Err(corrupt(format!("record has a valid checksum but {r}"))),
        },
        Frame::Bad(r) => Err(corrupt(format!("{r} while re-reading entry {index}"))),
    }
}
