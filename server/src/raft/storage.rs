//! The in-memory view of the Raft log that raft-rs reads through its
//! `Storage` trait. The WAL holds the same entries on disk; this copy is
//! rebuilt from it at startup.

use std::sync::Arc;

use parking_lot::RwLock;
use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};

#[derive(Default)]
struct Log {
    hard_state: HardState,
    /// Everything up to `snapshot.index` is folded into the state machine.
    snapshot: SnapshotMetadata,
    /// Entries after the snapshot, contiguous.
    entries: Vec<Entry>,
}

impl Log {
    fn first_index(&self) -> u64 {
        self.snapshot.index + 1
    }

    fn last_index(&self) -> u64 {
        self.entries.last().map_or(self.snapshot.index, |e| e.index)
    }
}

/// Produces a copy of the state machine for a follower that is too far
/// behind: the encoded database, the applied index it reflects, and the
/// configuration at that index.
pub type Snapshotter = Arc<dyn Fn() -> Result<(Vec<u8>, u64, ConfState), String> + Send + Sync>;

/// The snapshot for followers: copying the database takes long, so it is
/// built on a thread of its own while raft-rs hears "temporarily
/// unavailable" (and asks again with the next heartbeat).
#[derive(Default)]
enum Building {
    #[default]
    Idle,
    InProgress,
    Ready(Snapshot),
}

/// Shared between the Raft thread (writes) and raft-rs (reads).
#[derive(Clone, Default)]
pub struct LogStore {
    log: Arc<RwLock<Log>>,
    snapshotter: Option<Snapshotter>,
    building: Arc<parking_lot::Mutex<Building>>,
}

impl LogStore {
    pub fn new(hard_state: HardState, snapshot: SnapshotMetadata, entries: Vec<Entry>) -> LogStore {
        LogStore {
            log: Arc::new(RwLock::new(Log {
                hard_state,
                snapshot,
                entries,
            })),
            snapshotter: None,
            building: Arc::default(),
        }
    }

    pub fn with_snapshotter(mut self, s: Snapshotter) -> LogStore {
        self.snapshotter = Some(s);
        self
    }

    /// After installing a snapshot from the leader: the log restarts after it.
    pub fn apply_snapshot(&self, meta: SnapshotMetadata) {
        let mut log = self.log.write();
        log.hard_state.commit = log.hard_state.commit.max(meta.index);
        log.hard_state.term = log.hard_state.term.max(meta.term);
        log.entries.clear();
        log.snapshot = meta;
    }

    /// Appends entries, dropping any conflicting tail first.
    pub fn append(&self, ents: &[Entry]) {
        let Some(first) = ents.first() else { return };
        let mut log = self.log.write();
        let offset = log.first_index();
        let keep = first.index.saturating_sub(offset) as usize;
        log.entries.truncate(keep);
        log.entries.extend_from_slice(ents);
    }

    pub fn set_hard_state(&self, hs: HardState) {
        self.log.write().hard_state = hs;
    }

    pub fn set_commit(&self, commit: u64) {
        self.log.write().hard_state.commit = commit;
    }

    pub fn hard_state(&self) -> HardState {
        self.log.read().hard_state.clone()
    }

    pub fn conf_state(&self) -> ConfState {
        self.log
            .read()
            .snapshot
            .conf_state
            .clone()
            .unwrap_or_default()
    }

    pub fn set_conf_state(&self, cs: ConfState) {
        self.log.write().snapshot.conf_state = Some(cs);
    }

    /// Forgets entries up to and including `index`, which the state machine
    /// holds durably. Returns the term of `index`.
    pub fn compact(&self, index: u64) -> raft::Result<u64> {
        let mut log = self.log.write();
        if index <= log.snapshot.index {
            return Ok(log.snapshot.term);
        }
        if index > log.last_index() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let pos = (index - log.first_index()) as usize;
        let term = log.entries[pos].term;
        log.entries.drain(..=pos);
        log.snapshot.index = index;
        log.snapshot.term = term;
        Ok(term)
    }

    pub fn last_index_now(&self) -> u64 {
        self.log.read().last_index()
    }

    pub fn first_index_now(&self) -> u64 {
        self.log.read().first_index()
    }
}

impl raft::Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let log = self.log.read();
        Ok(RaftState {
            hard_state: log.hard_state.clone(),
            conf_state: log.snapshot.conf_state.clone().unwrap_or_default(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let log = self.log.read();
        if low < log.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > log.last_index() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let off = log.first_index();
        let mut ents: Vec<Entry> =
            log.entries[(low - off) as usize..(high - off) as usize].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let log = self.log.read();
        if idx == log.snapshot.index {
            return Ok(log.snapshot.term);
        }
        if idx < log.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > log.last_index() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(log.entries[(idx - log.first_index()) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.log.read().first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.log.read().last_index())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let unavailable = || raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable);
        let Some(make) = &self.snapshotter else {
            return Err(unavailable());
        };
        let mut building = self.building.lock();
        match std::mem::take(&mut *building) {
            Building::InProgress => {
                *building = Building::InProgress;
                return Err(unavailable());
            }
            // Usable if it covers what was asked and the log still goes on
            // from it; otherwise a newer one is built.
            Building::Ready(snap) => {
                let index = snap.metadata.as_ref().map_or(0, |m| m.index);
                if index >= request_index && index + 1 >= self.first_index_now() {
                    tracing::info!(
                        to = format!("{to:x}"),
                        index,
                        bytes = snap.data.len(),
                        "sending database snapshot to a follower"
                    );
                    return Ok(snap);
                }
            }
            Building::Idle => {}
        }
        *building = Building::InProgress;
        drop(building);
        let (make, store) = (make.clone(), self.clone());
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                let built = store.build_snapshot(&make);
                let mut building = store.building.lock();
                *building = match built {
                    Ok(snap) => Building::Ready(snap),
                    Err(e) => {
                        tracing::warn!(
                            to = format!("{to:x}"),
                            "making a snapshot for a follower failed: {e}"
                        );
                        Building::Idle
                    }
                };
            });
        if let Err(e) = spawned {
            tracing::warn!("starting the snapshot builder failed: {e}");
            *self.building.lock() = Building::Idle;
        }
        Err(unavailable())
    }
}

impl LogStore {
    /// Copies the state machine (off the Raft thread) and labels the copy
    /// with the term of the index it reflects.
    fn build_snapshot(&self, make: &Snapshotter) -> Result<Snapshot, String> {
        let started = std::time::Instant::now();
        let (data, index, conf_state) = make()?;
        let term = raft::Storage::term(self, index)
            .map_err(|e| format!("term of applied index {index}: {e}"))?;
        tracing::info!(
            index,
            bytes = data.len(),
            took = ?started.elapsed(),
            "built database snapshot for a follower"
        );
        Ok(Snapshot {
            data,
            metadata: Some(SnapshotMetadata {
                conf_state: Some(conf_state),
                index,
                term,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    #[test]
    fn append_truncates_conflicts_and_compact_moves_first_index() {
        let s = LogStore::default();
        s.append(&[entry(1, 1), entry(2, 1), entry(3, 1)]);
        s.append(&[entry(2, 2)]);
        assert_eq!(s.last_index().ok(), Some(2));
        assert_eq!(s.term(2).ok(), Some(2));
        assert_eq!(s.compact(1).ok(), Some(1));
        assert_eq!(s.first_index().ok(), Some(2));
        assert_eq!(s.term(1).ok(), Some(1));
        assert!(s.term(0).is_err());
        let got = s
            .entries(2, 3, None, GetEntriesContext::empty(false))
            .expect("entries");
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn a_snapshot_is_built_off_the_caller_and_served_once_ready() {
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = parking_lot::Mutex::new(gate);
        let s = LogStore::default();
        s.append(&[entry(1, 1), entry(2, 1), entry(3, 2)]);
        let s = s.with_snapshotter(Arc::new(move || {
            // Blocks until the test lets the copy finish.
            gate.lock().recv().map_err(|e| e.to_string())?;
            Ok((b"db".to_vec(), 3, ConfState::default()))
        }));
        let unavailable = || raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable);
        // The caller is not held up while the copy is made.
        assert_eq!(s.snapshot(0, 2).err(), Some(unavailable()));
        assert_eq!(s.snapshot(0, 2).err(), Some(unavailable()));
        release.send(()).expect("release");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let snap = loop {
            match s.snapshot(0, 2) {
                Ok(snap) => break snap,
                Err(e) => assert_eq!(e, unavailable()),
            }
            assert!(std::time::Instant::now() < deadline, "snapshot never ready");
            std::thread::yield_now();
        };
        let meta = snap.metadata.expect("metadata");
        assert_eq!((meta.index, meta.term), (3, 2));
        assert_eq!(snap.data, b"db");
    }
}
