//! The durable Raft log (write-ahead log).
//!
//! Raft entries and the hard state must be on disk before a write is
//! acknowledged. raft-rs's `MemStorage` keeps the in-memory copy; this WAL is
//! the on-disk truth it is rebuilt from at startup (the applied state machine
//! lives separately in redb, and the driver replays the recovered entries
//! after its applied index).
//!
//! # Layout
//!
//! A directory of segment files `<seq:016x>-<first_index:016x>.wal`, where
//! `seq` numbers the segments consecutively and `first_index` is the index
//! the log was expected to continue at when the segment was created. Each
//! segment is a sequence of records `[u32 len LE][u32 crc32 LE][u8 type]
//! [payload]` (see `format`): raft entries, hard states, and snapshot marks
//! saying that everything up to an index is held by the state machine, so
//! the log restarts after it.
//!
//! # Durability
//!
//! [`Wal::append`] only buffers; [`Wal::sync`] makes everything appended so
//! far durable with one `fdatasync`, so many client requests share one disk
//! flush (the driver appends a whole `Ready` and then syncs once). Full
//! segments are synced before the next one is started, so only the newest
//! segment can ever hold an interrupted write, which recovery cuts off.

mod compact;
mod format;
mod log_index;
mod recovery;
mod segment;
#[cfg(test)]
mod tests;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use raft::eraftpb::{ConfState, Entry, HardState};

use format::Record;
use log_index::{Loc, LogIndex};
use segment::{io_err, preallocate, sync_dir, Segment};

/// Default size after which a new segment file is started. Bounds how much
/// must be re-read at startup per file and lets snapshot marks free space in
/// whole files.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 * 1024 * 1024;

/// Write buffer in front of the current segment: records are encoded into
/// it and reach the OS in large writes.
const WRITE_BUFFER: usize = 256 * 1024;

/// Capacity of the encoding buffer kept between records; a buffer grown
/// past this by one huge entry is released rather than held forever.
const SCRATCH_KEEP: usize = 1024 * 1024;

/// Errors from the WAL. Every variant carries enough context for an
/// operator to act on it without reading the code.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The operating system failed an operation on this path.
    #[error("WAL I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The log on disk is damaged somewhere other than an interrupted final
    /// write, so data that may have been acknowledged is unreadable.
    #[error(
        "WAL file {file} is corrupt at byte offset {offset}: {reason}. The Raft log of \
         this member cannot be trusted, and starting from it could lose or invent \
         acknowledged writes. Restore this member's data directory from a snapshot, or \
         remove the member from the cluster and re-add it with an empty data directory \
         so that it catches up from the other members"
    )]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    /// `create` found an existing log; creating over it would discard it.
    #[error(
        "a WAL already exists in {0}; open it instead, or remove the directory to \
         start this member from scratch"
    )]
    AlreadyExists(PathBuf),
    /// `open` found no log to recover.
    #[error("no WAL found in {0}; a new member's log must be created first")]
    NotFound(PathBuf),
    /// The caller asked for something that would break the log's invariants
    /// (a bug in the caller); nothing was written.
    #[error("invalid WAL operation: {0}")]
    InvalidArgument(String),
    /// An earlier write or sync failed. After a failed fsync the kernel may
    /// have dropped the unsynced data, so no later write can be trusted to be
    /// durable; the process must restart and recover from what is on disk.
    #[error(
        "the WAL refused the operation because an earlier write or sync failed; \
         restart the server to recover from the log on disk"
    )]
    Poisoned,
}

/// Result type of WAL operations.
pub type Result<T, E = WalError> = std::result::Result<T, E>;

/// Record that everything up to `index` is held by the state machine (or a
/// snapshot), so the log may start after it. Stored at the start of a
/// segment by [`Wal::mark_snapshot`]; recovery reports the latest one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotMark {
    /// Last log index covered.
    pub index: u64,
    /// Term of the entry at `index`.
    pub term: u64,
    /// Membership as of `index`, needed to restart raft without the entries.
    pub conf_state: ConfState,
}

/// What [`Wal::open`] recovered: the state raft must restart from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recovered {
    /// Latest hard state written (default if none ever was).
    pub hard_state: HardState,
    /// Latest snapshot mark, if any.
    pub snapshot: Option<SnapshotMark>,
    /// The log after the snapshot mark (or from index 1), contiguous and in
    /// order, with conflicting tails already resolved in favour of the later
    /// writes.
    pub entries: Vec<Entry>,
}

/// Tuning knobs; the defaults suit production.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// A new segment is started before a record when the current one has
    /// reached this many bytes. Small values are useful in tests.
    pub segment_size: u64,
    /// Reserve each segment's `segment_size` bytes up front (see `segment::preallocate`).
    /// Off in tests that damage files at the end of their records.
    pub preallocate: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
            preallocate: true,
        }
    }
}

/// An open write-ahead log; appends go to its newest segment.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    /// Live segments before the current one, oldest first; all fully synced.
    older: Vec<Segment>,
    /// The segment being appended to.
    current: Segment,
    file: BufWriter<File>,
    /// Bytes in the current segment, including those still buffered.
    seg_len: u64,
    index: LogIndex,
    snapshot: Option<SnapshotMark>,
    hard_state: HardState,
    /// Reused encoding buffer.
    scratch: Vec<u8>,
    /// Data was written since the last sync.
    dirty: bool,
    /// A segment was created since the directory was last synced.
    dir_dirty: bool,
    poisoned: bool,
}

impl Wal {
    /// Whether `dir` holds a WAL, i.e. whether this member has state to
    /// recover (use [`Wal::open`]) or is new (use [`Wal::create`]).
    pub fn exists(dir: impl AsRef<Path>) -> bool {
        segment::any_segment(dir.as_ref())
    }

    /// Creates the log of a new member in `dir` (created if missing).
    /// Refuses to overwrite an existing log, which would lose its state.
    pub fn create(dir: impl AsRef<Path>) -> Result<Wal> {
        Self::create_with(dir, WalOptions::default())
    }

    /// [`Wal::create`] with explicit options.
    pub fn create_with(dir: impl AsRef<Path>, opts: WalOptions) -> Result<Wal> {
        let dir = dir.as_ref();
        if Self::exists(dir) {
            return Err(WalError::AlreadyExists(dir.to_path_buf()));
        }
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        // Leftovers of a half-built segment could collide with future names.
        for tmp in segment::list(dir)?.temp {
            fs::remove_file(&tmp).map_err(io_err(&tmp))?;
        }
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        let seg = Segment::new(dir, 0, 1);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&seg.path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => WalError::AlreadyExists(dir.to_path_buf()),
                _ => io_err(&seg.path)(e),
            })?;
        if opts.preallocate {
            preallocate(&file, &seg.path, opts.segment_size)?;
        }
        file.sync_all().map_err(io_err(&seg.path))?;
        sync_dir(dir)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            opts,
            older: Vec::new(),
            current: seg,
            file: BufWriter::with_capacity(WRITE_BUFFER, file),
            seg_len: 0,
            index: LogIndex::default(),
            snapshot: None,
            hard_state: HardState::default(),
            scratch: Vec::new(),
            dirty: false,
            dir_dirty: false,
            poisoned: false,
        })
    }

    /// Opens the existing log in `dir` and returns what it holds.
    ///
    /// A write interrupted by a crash at the end of the newest segment is cut
    /// off (with a warning) so appends continue cleanly; any other damage is
    /// [`WalError::Corrupt`], because silently dropping it could lose
    /// acknowledged writes.
    pub fn open(dir: impl AsRef<Path>) -> Result<(Wal, Recovered)> {
        Self::open_with(dir, WalOptions::default())
    }

    /// [`Wal::open`] with explicit options.
    pub fn open_with(dir: impl AsRef<Path>, opts: WalOptions) -> Result<(Wal, Recovered)> {
        let dir = dir.as_ref();
        let replayed = recovery::replay(dir)?;
        if !replayed.obsolete.is_empty() {
            // A snapshot mark was made durable but the segments it supersedes
            // were not all deleted before a crash: finish the job.
            // Failing only costs disk space: later opens ignore them too.
            for seg in &replayed.obsolete {
                tracing::info!(file = %seg.path.display(), "removing WAL segment superseded by a snapshot mark");
                if let Err(e) = fs::remove_file(&seg.path) {
                    tracing::warn!(file = %seg.path.display(), error = %e, "could not delete superseded WAL segment");
                }
            }
            sync_dir(dir)?;
        }
        let mut older = replayed.segments;
        let Some(current) = older.pop() else {
            return Err(WalError::NotFound(dir.to_path_buf()));
        };
        // Recovery cut the file to its records; reserve the segment again and continue
        // after them.
        let mut file = OpenOptions::new()
            .write(true)
            .open(&current.path)
            .map_err(io_err(&current.path))?;
        if opts.preallocate {
            preallocate(&file, &current.path, opts.segment_size)?;
            file.sync_all().map_err(io_err(&current.path))?;
        }
        file.seek(SeekFrom::Start(replayed.tail_len))
            .map_err(io_err(&current.path))?;
        let recovered = replayed.recovered;
        let wal = Wal {
            dir: dir.to_path_buf(),
            opts,
            file: BufWriter::with_capacity(WRITE_BUFFER, file),
            older,
            current,
            seg_len: replayed.tail_len,
            index: replayed.index,
            snapshot: recovered.snapshot.clone(),
            hard_state: recovered.hard_state.clone(),
            scratch: Vec::new(),
            dirty: false,
            dir_dirty: false,
            poisoned: false,
        };
        Ok((wal, recovered))
    }

    /// The directory holding the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Index of the last entry in the log (the snapshot mark's index if no
    /// entries follow it, 0 for an empty log).
    pub fn last_index(&self) -> u64 {
        self.index.last_index()
    }

    /// The latest snapshot mark, if any.
    pub fn snapshot(&self) -> Option<&SnapshotMark> {
        self.snapshot.as_ref()
    }

    /// The latest hard state appended (or recovered).
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// Appends `entries` (a contiguous run, as in a raft `Ready`) and then
    /// the hard state, buffered: nothing is durable until [`Wal::sync`].
    ///
    /// An entry at an index already in the log replaces it and everything
    /// after it, as raft requires on a conflict. Entries may not leave a gap
    /// or rewrite what a snapshot mark covers; that is rejected with
    /// [`WalError::InvalidArgument`] before anything is written. Entries come
    /// before the hard state so a torn write can never leave a commit index
    /// pointing past the surviving log.
    pub fn append(&mut self, entries: &[Entry], hard_state: Option<&HardState>) -> Result<()> {
        self.check_usable()?;
        if let Some(first) = entries.first() {
            self.index
                .check_next(first.index)
                .map_err(WalError::InvalidArgument)?;
        }
        if let Some(w) = entries.windows(2).find(|w| w[1].index != w[0].index + 1) {
            return Err(WalError::InvalidArgument(format!(
                "entries to append are not contiguous: {} is followed by {}",
                w[0].index, w[1].index
            )));
        }
        if let Some(e) = entries.iter().find(|e| !Record::Entry(e).fits()) {
            return Err(WalError::InvalidArgument(format!(
                "entry {} is too large for a WAL record ({} bytes of data)",
                e.index,
                e.data.len() + e.context.len()
            )));
        }
        let res = self.append_inner(entries, hard_state);
        self.poison_on_err(res)
    }

    fn append_inner(&mut self, entries: &[Entry], hard_state: Option<&HardState>) -> Result<()> {
        for e in entries {
            let (seq, offset) = self.write_record(Record::Entry(e))?;
            self.index.push(
                e.index,
                Loc {
                    term: e.term,
                    seq,
                    offset,
                },
            );
        }
        if let Some(hs) = hard_state.filter(|&hs| *hs != self.hard_state) {
            self.write_record(Record::HardState(hs))?;
            self.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Makes everything appended so far durable: flushes the buffer,
    /// `fdatasync`s the current segment, and syncs the directory if a segment
    /// was created. Cheap when nothing was appended since the last sync.
    pub fn sync(&mut self) -> Result<()> {
        self.check_usable()?;
        let res = self.sync_inner();
        self.poison_on_err(res)
    }

    fn sync_inner(&mut self) -> Result<()> {
        if self.dirty {
            let path = &self.current.path;
            self.file.flush().map_err(io_err(path))?;
            self.file.get_ref().sync_data().map_err(io_err(path))?;
            self.dirty = false;
        }
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Records that the state machine durably holds everything up to
    /// `mark.index`, and drops the log up to there to free disk space.
    ///
    /// Writes a new segment starting with the mark and the current hard
    /// state, followed by the logged entries after `mark.index` (which the
    /// state machine does not hold yet), syncs it, and then deletes all older
    /// segments. The new segment is built under a temporary name and renamed
    /// into place once durable, so a crash at any point recovers either the
    /// old log or the new one.
    ///
    /// If the log does not contain the entry at `mark.index` with
    /// `mark.term` (a snapshot received from the leader that replaces this
    /// member's log, as raft's `restore` does), no entries are kept: they
    /// would not be consistent with the snapshot.
    ///
    /// A mark at the current mark's index and term is a no-op; an older one
    /// is rejected with [`WalError::InvalidArgument`].
    pub fn mark_snapshot(&mut self, mark: SnapshotMark) -> Result<()> {
        self.check_usable()?;
        if let Some(cur) = &self.snapshot {
            if mark.index < cur.index || (mark.index == cur.index && mark.term != cur.term) {
                return Err(WalError::InvalidArgument(format!(
                    "snapshot mark at index {} term {} does not advance the current mark at \
                     index {} term {}",
                    mark.index, mark.term, cur.index, cur.term
                )));
            }
            if mark.index == cur.index {
                return Ok(());
            }
        }
        if !Record::SnapshotMark(&mark).fits() {
            return Err(WalError::InvalidArgument(
                "snapshot mark's configuration is too large for a WAL record".to_owned(),
            ));
        }
        // The entries to keep are copied from the current segments, and those
        // are deleted below only because the new segment supersedes them, so
        // they must be fully on disk first (a non-final segment may never be
        // torn).
        let res = self.sync_inner();
        self.poison_on_err(res)?;

        let keep: Vec<(u64, Loc)> = if self.index.term_at(mark.index) == Some(mark.term) {
            self.index.after(mark.index).collect()
        } else {
            if self.index.len() > 0 {
                tracing::info!(
                    mark.index,
                    mark.term,
                    discarded = self.index.len(),
                    "snapshot mark does not match the logged entry at its index; \
                     discarding the log it replaces"
                );
            }
            Vec::new()
        };

        let seg = Segment::new(&self.dir, self.current.seq + 1, mark.index + 1);
        let (file, seg_len, index) = self.write_mark_segment(&seg, &mark, &keep)?;

        // From here on the new segment is the log: failing to switch to it
        // leaves this handle unable to continue safely.
        let res = self.switch_to_mark_segment(seg, file, seg_len, index, mark);
        self.poison_on_err(res)
    }

    /// Encodes and writes one record to the current segment, starting a new
    /// segment first if it is full. Returns where the record went.
    fn write_record(&mut self, rec: Record<'_>) -> Result<(u64, u64)> {
        if self.seg_len > 0 && self.seg_len >= self.opts.segment_size {
            self.rotate()?;
        }
        self.scratch.clear();
        let n = format::encode(&mut self.scratch, rec);
        let (seq, offset) = (self.current.seq, self.seg_len);
        self.file
            .write_all(&self.scratch)
            .map_err(io_err(&self.current.path))?;
        self.seg_len += n as u64;
        self.dirty = true;
        if self.scratch.capacity() > SCRATCH_KEEP {
            self.scratch = Vec::new();
        }
        Ok((seq, offset))
    }

    /// Starts the next segment. The full one is synced first: recovery treats
    /// any damage in a non-final segment as corruption, which is only sound if
    /// it can never hold an interrupted write.
    fn rotate(&mut self) -> Result<()> {
        let path = &self.current.path;
        self.file.flush().map_err(io_err(path))?;
        // Only the last segment may end in zeros. A segment is rotated once its records fill
        // the reservation, so this cut is a no-op today; it keeps recovery's rule true if
        // the two sizes ever differ.
        self.file
            .get_ref()
            .set_len(self.seg_len)
            .map_err(io_err(path))?;
        self.file.get_ref().sync_all().map_err(io_err(path))?;
        let seg = Segment::new(&self.dir, self.current.seq + 1, self.index.last_index() + 1);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&seg.path)
            .map_err(io_err(&seg.path))?;
        if self.opts.preallocate {
            preallocate(&file, &seg.path, self.opts.segment_size)?;
            file.sync_all().map_err(io_err(&seg.path))?;
        }
        self.file = BufWriter::with_capacity(WRITE_BUFFER, file);
        self.older.push(std::mem::replace(&mut self.current, seg));
        self.seg_len = 0;
        self.dir_dirty = true;
        Ok(())
    }

    fn check_usable(&self) -> Result<()> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        Ok(())
    }

    fn poison_on_err<T>(&mut self, res: Result<T>) -> Result<T> {
        if res.is_err() {
            self.poisoned = true;
        }
        res
    }
}
