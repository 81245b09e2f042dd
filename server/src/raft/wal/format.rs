//! The on-disk record format: framing, checksums and payload encodings.
//!
//! A record is `[u32 len LE][u32 crc32 LE][u8 type][payload]`. `len` counts
//! the type byte plus the payload, and the CRC-32 (crc32fast) covers exactly
//! those same bytes, so a record can be validated without understanding it.
//! Payloads use a fixed explicit layout (little-endian integers, `u32`
//! length-prefixed byte strings) that we own, so the log never depends on a
//! protobuf codec version.

use raft::eraftpb::{ConfState, Entry, EntryType, HardState};

use super::SnapshotMark;

/// Bytes before the type byte: `len` and `crc`.
pub(super) const HEADER_LEN: usize = 8;

/// Granularity at which storage devices persist data. A whole aligned block
/// of zeros inside a damaged record is the signature of a write that never
/// reached the disk (see [`has_zero_sector`]).
const SECTOR: usize = 512;

/// Largest `len` a record may have: the field is a `u32`.
const MAX_BODY_LEN: usize = u32::MAX as usize;

const TAG_ENTRY: u8 = 1;
const TAG_HARD_STATE: u8 = 2;
const TAG_SNAPSHOT_MARK: u8 = 3;

/// A record to be written.
#[derive(Clone, Copy, Debug)]
pub(super) enum Record<'a> {
    Entry(&'a Entry),
    HardState(&'a HardState),
    SnapshotMark(&'a SnapshotMark),
}

/// A record read back from disk.
#[derive(Debug)]
pub(super) enum Decoded {
    Entry(Entry),
    HardState(HardState),
    SnapshotMark(SnapshotMark),
}

impl Record<'_> {
    /// Size of the type byte plus payload, computed without encoding, so
    /// oversized records are rejected before anything is written.
    pub(super) fn body_len(&self) -> usize {
        1 + match self {
            Record::Entry(e) => 4 + 8 + 8 + 4 + e.data.len() + 4 + e.context.len(),
            Record::HardState(_) => 24,
            Record::SnapshotMark(m) => {
                let cs = &m.conf_state;
                let ids = cs.voters.len()
                    + cs.learners.len()
                    + cs.voters_outgoing.len()
                    + cs.learners_next.len();
                8 + 8 + 4 * 4 + 8 * ids + 1
            }
        }
    }

    /// Whether the record fits the format's `u32` length field.
    pub(super) fn fits(&self) -> bool {
        self.body_len() <= MAX_BODY_LEN
    }
}

/// Appends the framed record to `out` and returns the number of bytes added.
/// The caller must have checked [`Record::fits`].
pub(super) fn encode(out: &mut Vec<u8>, rec: Record<'_>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    match rec {
        Record::Entry(e) => {
            out.push(TAG_ENTRY);
            out.extend_from_slice(&e.entry_type.to_le_bytes());
            out.extend_from_slice(&e.term.to_le_bytes());
            out.extend_from_slice(&e.index.to_le_bytes());
            put_bytes(out, &e.data);
            put_bytes(out, &e.context);
        }
        Record::HardState(hs) => {
            out.push(TAG_HARD_STATE);
            out.extend_from_slice(&hs.term.to_le_bytes());
            out.extend_from_slice(&hs.vote.to_le_bytes());
            out.extend_from_slice(&hs.commit.to_le_bytes());
        }
        Record::SnapshotMark(m) => {
            out.push(TAG_SNAPSHOT_MARK);
            out.extend_from_slice(&m.index.to_le_bytes());
            out.extend_from_slice(&m.term.to_le_bytes());
            let cs = &m.conf_state;
            for ids in [
                &cs.voters,
                &cs.learners,
                &cs.voters_outgoing,
                &cs.learners_next,
            ] {
                put_len(out, ids.len());
                for id in ids {
                    out.extend_from_slice(&id.to_le_bytes());
                }
            }
            out.push(u8::from(cs.auto_leave));
        }
    }
    let body = &out[start + HEADER_LEN..];
    debug_assert_eq!(body.len(), rec.body_len());
    let len = len_u32(body.len());
    let crc = crc32fast::hash(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    out.len() - start
}

fn len_u32(len: usize) -> u32 {
    // Callers check `Record::fits`, which bounds every length by u32::MAX.
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&len_u32(len).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Result of looking for a record at some offset of a segment.
#[derive(Debug)]
pub(super) enum Frame<'a> {
    /// Length and checksum are consistent. `body` is type byte + payload
    /// (possibly an unknown type: that is for [`decode`] to judge) and `end`
    /// is the offset just past the record.
    Good { body: &'a [u8], end: usize },
    /// No valid record here; the string says why.
    Bad(String),
}

/// Checks the record framing at `off` in `buf`.
pub(super) fn frame_at(buf: &[u8], off: usize) -> Frame<'_> {
    let rest = buf.get(off..).unwrap_or_default();
    let (Some(len), Some(crc)) = (read_u32(rest, 0), read_u32(rest, 4)) else {
        return Frame::Bad(format!(
            "only {} bytes remain, too few for a record header",
            rest.len()
        ));
    };
    let len = len as usize;
    if len == 0 {
        return Frame::Bad("record length is zero".to_owned());
    }
    let Some(body) = rest.get(HEADER_LEN..HEADER_LEN + len) else {
        return Frame::Bad(format!(
            "record claims {len} bytes but only {} remain in the file",
            rest.len() - HEADER_LEN
        ));
    };
    let actual = crc32fast::hash(body);
    if actual != crc {
        return Frame::Bad(format!(
            "checksum mismatch (stored {crc:08x}, computed {actual:08x})"
        ));
    }
    Frame::Good {
        body,
        end: off + HEADER_LEN + len,
    }
}

/// The body length claimed by the record header at `off`, once its length field is in
/// `buf` (recovery reads a segment in chunks and needs to know how far to read).
pub(super) fn claimed_len(buf: &[u8], off: usize) -> Option<usize> {
    read_u32(buf, off).map(|len| len as usize)
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at + 4)?;
    let mut arr = [0u8; 4];
    arr.copy_from_slice(bytes);
    Some(u32::from_le_bytes(arr))
}

/// Offset of the first intact record of a known type starting after `from`,
/// if any. Used to tell an interrupted write (nothing intact follows the
/// damage) from damage inside the log (intact records follow it).
pub(super) fn find_intact_after(buf: &[u8], from: usize) -> Option<usize> {
    // A record starts with its non-zero length, so none starts after the last non-zero
    // byte: a preallocated segment's zeros need not be searched.
    let last_nonzero = buf.iter().rposition(|&b| b != 0)?;
    let until = buf.len().saturating_sub(HEADER_LEN).min(last_nonzero + 1);
    (from..until).find(|&p| match frame_at(buf, p) {
        Frame::Good { body, .. } => matches!(
            body.first(),
            Some(&(TAG_ENTRY | TAG_HARD_STATE | TAG_SNAPSHOT_MARK))
        ),
        Frame::Bad(_) => false,
    })
}

/// Whether `buf[from..to]` contains a whole sector-aligned block of zeros.
///
/// When the machine loses power, the page cache may reach the disk out of
/// order: a later block can be persisted while an earlier one never is, and
/// the unwritten block reads back as zeros. Everything after such a hole was
/// written after it and cannot have been synced either (an fsync that had
/// completed would have persisted the hole too), so it is an interrupted
/// write, not damage to acknowledged data.
pub(super) fn has_zero_sector(buf: &[u8], from: usize, to: usize) -> bool {
    let to = to.min(buf.len());
    let mut start = from.div_ceil(SECTOR) * SECTOR;
    while start + SECTOR <= to {
        if buf[start..start + SECTOR].iter().all(|&b| b == 0) {
            return true;
        }
        start += SECTOR;
    }
    false
}

/// Decodes a record body (type byte + payload) whose checksum was verified.
pub(super) fn decode(body: &[u8]) -> Result<Decoded, String> {
    let (&tag, payload) = body
        .split_first()
        .ok_or_else(|| "empty record".to_owned())?;
    let mut r = Reader { buf: payload };
    let decoded = match tag {
        TAG_ENTRY => {
            let entry_type = r.i32()?;
            // raft-rs's `get_entry_type` panics on a type it does not know.
            if EntryType::from_i32(entry_type).is_none() {
                return Err(format!("unknown entry type {entry_type}"));
            }
            let mut e = Entry {
                entry_type,
                term: r.u64()?,
                index: r.u64()?,
                ..Entry::default()
            };
            e.data = r.bytes()?.to_vec();
            e.context = r.bytes()?.to_vec();
            Decoded::Entry(e)
        }
        TAG_HARD_STATE => Decoded::HardState(HardState {
            term: r.u64()?,
            vote: r.u64()?,
            commit: r.u64()?,
        }),
        TAG_SNAPSHOT_MARK => {
            let index = r.u64()?;
            let term = r.u64()?;
            let conf_state = ConfState {
                voters: r.ids()?,
                learners: r.ids()?,
                voters_outgoing: r.ids()?,
                learners_next: r.ids()?,
                auto_leave: r.bool()?,
            };
            Decoded::SnapshotMark(SnapshotMark {
                index,
                term,
                conf_state,
            })
        }
        other => return Err(format!("unknown record type {other}")),
    };
    if !r.buf.is_empty() {
        return Err(format!("{} unexpected trailing bytes", r.buf.len()));
    }
    Ok(decoded)
}

/// Bounds-checked little-endian reader over a payload.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err(format!(
                "payload truncated: needed {n} more bytes, found {}",
                self.buf.len()
            ));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut arr = [0u8; N];
        arr.copy_from_slice(self.take(N)?);
        Ok(arr)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }

    fn i32(&mut self) -> Result<i32, String> {
        self.array().map(i32::from_le_bytes)
    }

    fn len(&mut self) -> Result<usize, String> {
        self.array().map(|b| u32::from_le_bytes(b) as usize)
    }

    fn bool(&mut self) -> Result<bool, String> {
        match self.array::<1>()? {
            [0] => Ok(false),
            [1] => Ok(true),
            [b] => Err(format!("invalid boolean byte {b}")),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.len()?;
        self.take(n)
    }

    fn ids(&mut self) -> Result<Vec<u64>, String> {
        let n = self.len()?;
        // Bound the allocation by what the payload can actually hold.
        if n > self.buf.len() / 8 {
            return Err(format!(
                "id list of {n} entries exceeds the remaining payload"
            ));
        }
        (0..n).map(|_| self.u64()).collect()
    }
}
