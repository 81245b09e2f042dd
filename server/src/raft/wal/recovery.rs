//! Replaying a WAL directory at startup.
//!
//! Rules, in the order they are applied:
//! - The log starts at the newest segment whose first record is a snapshot
//!   mark (older segments are leftovers of an interrupted `mark_snapshot` and
//!   are superseded), or else at segment 0. Anything else means segments were
//!   lost.
//! - Segment sequence numbers must then be consecutive, and each segment's
//!   name must say it continues the log exactly where the previous one ended.
//! - Every segment but the last was fsynced before the next one was created,
//!   so any bad record in it is corruption.
//! - The last segment may end in zeros: space reserved for appends, not yet
//!   written. Its records end where the zeros begin.
//! - In the last segment, a bad record after which no intact record follows
//!   is a write interrupted by a crash (a torn tail): it is cut off. So is one
//!   whose damage includes a whole zeroed sector (a block that never reached
//!   the disk; see `format::has_zero_sector`). A bad record followed by intact
//!   ones otherwise is corruption.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use raft::eraftpb::{Entry, HardState};

use super::format::{self, Decoded, Frame, HEADER_LEN};
use super::log_index::{Loc, LogIndex};
use super::segment::{self, io_err, Segment};
use super::{Recovered, Result, SnapshotMark, WalError};

/// Everything `Wal::open` needs to continue the log.
#[derive(Debug)]
pub(super) struct Replayed {
    pub(super) recovered: Recovered,
    pub(super) index: LogIndex,
    /// Live segments, oldest first; the last one is appended to.
    pub(super) segments: Vec<Segment>,
    /// Valid length of the last segment (after cutting a torn tail).
    pub(super) tail_len: u64,
    /// Segments superseded by a later snapshot mark, to be deleted.
    pub(super) obsolete: Vec<Segment>,
}

/// Replays the log in `dir`, cutting a torn tail off the last segment.
pub(super) fn replay(dir: &Path) -> Result<Replayed> {
    let listing = segment::list(dir)?;
    if listing.segments.is_empty() {
        return Err(WalError::NotFound(dir.to_path_buf()));
    }
    for tmp in &listing.temp {
        tracing::info!(file = %tmp.display(), "removing segment left unfinished by an interrupted snapshot mark");
        fs::remove_file(tmp).map_err(io_err(tmp))?;
    }

    let mut segments = listing.segments;
    let mut start = None;
    for (i, seg) in segments.iter().enumerate().rev() {
        if starts_with_mark(&seg.path)? {
            start = Some(i);
            break;
        }
    }
    let live = segments.split_off(start.unwrap_or(0));
    let obsolete = segments;
    let Some(first) = live.first() else {
        return Err(WalError::NotFound(dir.to_path_buf()));
    };
    if start.is_none() && first.seq != 0 {
        return Err(WalError::Corrupt {
            file: first.path.clone(),
            offset: 0,
            reason: format!(
                "the oldest segment has sequence number {} and does not start with a \
                 snapshot mark, so the segments before it are missing",
                first.seq
            ),
        });
    }
    if let Some(w) = live.windows(2).find(|w| w[1].seq != w[0].seq + 1) {
        return Err(WalError::Corrupt {
            file: w[1].path.clone(),
            offset: 0,
            reason: format!(
                "segment sequence jumps from {} to {}: the segment file(s) in between are missing",
                w[0].seq, w[1].seq
            ),
        });
    }

    let mut st = State::default();
    let mut tail_len = 0;
    for (i, seg) in live.iter().enumerate() {
        let is_last = i + 1 == live.len();
        let (buf, file_len) = read_segment(&seg.path, is_last)?;
        let valid = st.replay_segment(seg, &buf, is_last)?;
        if (valid as u64) < file_len {
            let f = OpenOptions::new()
                .write(true)
                .open(&seg.path)
                .map_err(io_err(&seg.path))?;
            f.set_len(valid as u64)
                .and_then(|()| f.sync_all())
                .map_err(io_err(&seg.path))?;
        }
        tail_len = valid as u64;
    }
    Ok(Replayed {
        recovered: Recovered {
            hard_state: st.hard_state,
            snapshot: st.snapshot,
            entries: st.entries,
        },
        index: st.index,
        segments: live,
        tail_len,
        obsolete,
    })
}

/// The bytes of a segment that replay needs, and the file's length.
///
/// The last segment is preallocated (64 MiB by default) and mostly zeros; reading all of it
/// held that much memory at every start, most of an idle member's peak RSS. So it is read a
/// chunk at a time while its records check out (length and checksum), and when only zeros
/// follow the last intact record, only the records are kept. Any other tail (a torn or
/// damaged record, garbage) makes it read whole, since telling a torn tail from damage
/// inside the log looks at what follows the bad record.
pub(super) fn read_segment(path: &Path, is_last: bool) -> Result<(Vec<u8>, u64)> {
    if !is_last {
        let buf = fs::read(path).map_err(io_err(path))?;
        let len = buf.len() as u64;
        return Ok((buf, len));
    }
    let f = File::open(path).map_err(io_err(path))?;
    let file_len = f.metadata().map_err(io_err(path))?.len();
    let mut buf = Vec::new();
    // Extends `buf` with the file's bytes up to `upto` (at most the file's end).
    let read_to = |buf: &mut Vec<u8>, upto: u64| -> Result<()> {
        let from = buf.len();
        buf.resize(upto.min(file_len) as usize, 0);
        f.read_exact_at(&mut buf[from..], from as u64)
            .map_err(io_err(path))
    };
    let mut records_end = 0;
    loop {
        // Read on until the next record is all in memory (or the file ends).
        let needed = match format::claimed_len(&buf, records_end) {
            Some(0) => break,
            Some(len) => records_end + HEADER_LEN + len,
            None => records_end + HEADER_LEN,
        };
        if needed > buf.len() {
            if buf.len() as u64 == file_len {
                break;
            }
            let upto = needed.max(buf.len() + READ_CHUNK) as u64;
            read_to(&mut buf, upto)?;
            continue;
        }
        match format::frame_at(&buf, records_end) {
            Frame::Good { end, .. } => records_end = end,
            Frame::Bad(_) => break,
        }
    }
    let zeros_follow = buf[records_end..].iter().all(|&b| b == 0)
        && zeros_from(&f, buf.len() as u64, file_len).map_err(io_err(path))?;
    if zeros_follow {
        buf.truncate(records_end);
    } else {
        read_to(&mut buf, file_len)?;
    }
    Ok((buf, file_len))
}

/// How much of the segment is read at a time while its records are checked.
const READ_CHUNK: usize = 1 << 20;

/// Whether every byte of `f` in `from..to` is zero, read through a small buffer.
fn zeros_from(f: &File, from: u64, to: u64) -> std::io::Result<bool> {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut at = from;
    while at < to {
        let n = chunk.len().min((to - at) as usize);
        f.read_exact_at(&mut chunk[..n], at)?;
        if chunk[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// Whether the first record of the file is an intact snapshot mark.
fn starts_with_mark(path: &Path) -> Result<bool> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let size = f.metadata().map_err(io_err(path))?.len();
    let mut header = [0u8; HEADER_LEN];
    if size < HEADER_LEN as u64 {
        return Ok(false);
    }
    f.read_exact(&mut header).map_err(io_err(path))?;
    let len = u64::from(u32::from_le_bytes([
        header[0], header[1], header[2], header[3],
    ]));
    if len == 0 || HEADER_LEN as u64 + len > size {
        return Ok(false);
    }
    let mut buf = header.to_vec();
    buf.resize(HEADER_LEN + len as usize, 0);
    f.read_exact(&mut buf[HEADER_LEN..]).map_err(io_err(path))?;
    Ok(match format::frame_at(&buf, 0) {
        Frame::Good { body, .. } => matches!(format::decode(body), Ok(Decoded::SnapshotMark(_))),
        Frame::Bad(_) => false,
    })
}

#[derive(Debug, Default)]
struct State {
    hard_state: HardState,
    snapshot: Option<SnapshotMark>,
    entries: Vec<Entry>,
    index: LogIndex,
}

impl State {
    /// Applies the segment's records; returns the length of its valid prefix
    /// (shorter than `buf` only for a torn tail of the last segment).
    fn replay_segment(&mut self, seg: &Segment, buf: &[u8], is_last: bool) -> Result<usize> {
        let corrupt = |offset: usize, reason: String| WalError::Corrupt {
            file: seg.path.clone(),
            offset: offset as u64,
            reason,
        };
        let mut off = 0;
        let mut name_checked = false;
        while off < buf.len() {
            let (body, end) = match format::frame_at(buf, off) {
                Frame::Good { body, end } => (body, end),
                Frame::Bad(reason) => {
                    if !name_checked {
                        self.check_name(seg, self.index.last_index() + 1)?;
                    }
                    // The space reserved past the last record (see `preallocate`).
                    if is_last && buf[off..].iter().all(|&b| b == 0) {
                        return Ok(off);
                    }
                    return self.bad_record(seg, buf, off, reason, is_last);
                }
            };
            let rec = format::decode(body)
                .map_err(|r| corrupt(off, format!("record has a valid checksum but {r}")))?;
            if !name_checked {
                name_checked = true;
                let expected = match &rec {
                    // A mark at the last possible index leaves no room for a log after it.
                    Decoded::SnapshotMark(m) => m.index.checked_add(1).ok_or_else(|| {
                        corrupt(
                            off,
                            format!("snapshot mark at index {} is out of range", m.index),
                        )
                    })?,
                    _ => self.index.last_index() + 1,
                };
                self.check_name(seg, expected)?;
            }
            self.apply(rec, seg.seq, off as u64)
                .map_err(|r| corrupt(off, r))?;
            off = end;
        }
        if !name_checked {
            self.check_name(seg, self.index.last_index() + 1)?;
        }
        Ok(off)
    }

    /// Decides whether a bad record at `off` is a torn tail (returns the
    /// length to cut the file to) or corruption.
    fn bad_record(
        &self,
        seg: &Segment,
        buf: &[u8],
        off: usize,
        reason: String,
        is_last: bool,
    ) -> Result<usize> {
        let corrupt = |reason: String| WalError::Corrupt {
            file: seg.path.clone(),
            offset: off as u64,
            reason,
        };
        if !is_last {
            return Err(corrupt(format!(
                "{reason}; this segment was fully synced before a newer one was started, \
                 so this is not an interrupted write"
            )));
        }
        let hole = match format::find_intact_after(buf, off + 1) {
            None => false,
            Some(next) if format::has_zero_sector(buf, off, next) => true,
            Some(next) => {
                return Err(corrupt(format!(
                    "{reason}, but an intact record follows at offset {next}, so this is \
                     damage inside the log rather than a write interrupted at its end"
                )));
            }
        };
        tracing::warn!(
            file = %seg.path.display(),
            offset = off,
            bytes_cut = buf.len() - off,
            hole,
            "WAL: cutting {} bytes off the end of {} at offset {off} ({reason}): \
             a write interrupted by a crash or power loss{}; nothing that was synced is lost",
            buf.len() - off,
            seg.path.display(),
            if hole {
                ", including data written after a block that never reached the disk"
            } else {
                ""
            },
        );
        Ok(off)
    }

    fn check_name(&self, seg: &Segment, expected: u64) -> Result<()> {
        if seg.first_index == expected {
            return Ok(());
        }
        Err(WalError::Corrupt {
            file: seg.path.clone(),
            offset: 0,
            reason: format!(
                "the segment's name says it continues the log at index {}, but the log \
                 before it continues at index {expected}: data in an earlier segment is missing",
                seg.first_index
            ),
        })
    }

    fn apply(&mut self, rec: Decoded, seq: u64, offset: u64) -> std::result::Result<(), String> {
        match rec {
            Decoded::Entry(e) => {
                self.index.check_next(e.index)?;
                let keep = self.index.push(
                    e.index,
                    Loc {
                        term: e.term,
                        seq,
                        offset,
                    },
                );
                self.entries.truncate(keep);
                self.entries.push(e);
            }
            Decoded::HardState(hs) => self.hard_state = hs,
            Decoded::SnapshotMark(m) => {
                if m.index == u64::MAX {
                    return Err(format!(
                        "snapshot mark at index {} is out of range",
                        m.index
                    ));
                }
                if let Some(prev) = &self.snapshot {
                    if m.index < prev.index {
                        return Err(format!(
                            "snapshot mark at index {} is older than the earlier mark at index {}",
                            m.index, prev.index
                        ));
                    }
                }
                self.index = LogIndex::new(m.index, m.term);
                self.entries.clear();
                self.snapshot = Some(m);
            }
        }
        Ok(())
    }
}
