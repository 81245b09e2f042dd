//! A member whose data volume fills up: writes are refused, with the NOSPACE alarm, while
//! enough space is still free to keep the log and the database consistent.
//!
//! # What etcd does
//!
//! etcd has no check of its own. Measured with 3.4.23 and 3.6.16 on a tmpfs filled to its
//! last byte: its WAL segments are preallocated, so the log keeps taking entries and
//! clients see puts succeed (3.4 acknowledged four, 3.6 two), until bbolt's next commit
//! fails and etcd exits: `C | mvcc/backend: cannot commit tx (write .../member/snap/db: no
//! space left on device)` (3.4), `"level":"fatal" ... "msg":"failed to commit tx"` (3.6).
//! Clients then see `context deadline exceeded`; no alarm is raised. Once space is back it
//! restarts and replays the acknowledged writes from its log. Ballast without this module
//! did the same (its apply thread's redb commit failed and the member stopped), except that
//! the put being applied got `transport is closing` instead of an acknowledgement.
//!
//! # What Ballast does
//!
//! Before a write is proposed (the same place and the same requests as the
//! `--quota-backend-bytes` check: puts, txns with puts, lease grants), the free space of the
//! file systems holding the WAL and the database is compared with a reserve that covers
//! what the member may still have to write without asking anyone: a whole new WAL segment
//! (a log compaction or a segment rotation writes one before the old ones are deleted;
//! appends inside the current, preallocated, segment need no space) and room for redb's
//! copy-on-write commits. Below it the write is refused with etcd's quota error,
//! `etcdserver: mvcc: database space exceeded`, and the NOSPACE alarm is raised for this
//! member, exactly as for the quota: every member then refuses puts, txns with puts and
//! lease grants; reads, deletes, compaction and defragmentation keep working, and `etcdctl
//! alarm disarm` clears the alarm once space is back (a write that still does not fit
//! raises it again). Measuring takes four system calls, so one measurement serves the writes
//! of the next 20 ms (or 1 MiB), each admitted write taking its log entry and its two
//! database copies off it; a write is only refused on a fresh measurement ([`SpaceGauge`]).
//! Every member also looks at its own volume once a second and raises
//! the alarm itself, so a follower that fills up stops the cluster's writes before its
//! apply fails (followers apply what the leader sends, whatever their own volume holds).
//! A member restarted while its volume is short of the reserve starts (recovery cuts the
//! WAL segment to its records and reserves it again, so it takes no more than it held) and
//! keeps the alarm, which lives in the database.
//!
//! # When the space goes anyway
//!
//! The check cannot make space: another process writing to the same volume can take the
//! reserve. Once less than [`EXHAUSTED`] is left, every request that would go through the
//! log is refused with the same error, deletes and compactions included (unlike under the
//! quota; etcd has no such state): a commit could not be trusted to fit, and a failed one
//! stops the member, while refusing keeps it serving reads. Only the alarm and the
//! member's publication of its name and URLs at start (without which it serves nothing)
//! still go through: a page or two each. A commit can
//! still fail: a follower applying the leader's entries, a race with the other writer, or
//! the durable redb commit that follows a member's last writes within half a second (redb's
//! faster non-durable commits become durable with a later one). Then the member stops, as
//! etcd does, because neither half can go on safely: a failed WAL write or fsync poisons the
//! log, and raft-rs is never told the entries are persisted (the Raft thread stops before
//! `advance`), so nothing after the last successful fsync was acknowledged, and the next
//! start's recovery cuts off whatever reached the file without one; a failed redb commit
//! leaves the database at its previous commit, from which the log is replayed. The log line
//! says the file system is full and to free space and restart ([`out_of_space_advice`]).

use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::{Duration, Instant};

use super::EtcdServer;
use crate::config::Config;
use crate::error::Error;
use crate::raft::wal::{WalError, DEFAULT_SEGMENT_SIZE};

/// What the WAL's file system must keep free beyond the write itself: one segment, which a
/// log compaction or a rotation preallocates in full while the old segments still exist.
const WAL_RESERVE: u64 = DEFAULT_SEGMENT_SIZE;

/// What the database's file system must keep free beyond twice the write (redb copies
/// every page it changes): room for the B-tree pages and allocator state of the commits in
/// flight, and for the NOSPACE alarm itself.
const DB_RESERVE: u64 = 16 * 1024 * 1024;

/// Free space below which nothing more is proposed at all: what one small commit of the
/// database, or a few of the log, may need.
pub(super) const EXHAUSTED: u64 = 4 * 1024 * 1024;

/// How often every member looks at its volume without a write asking.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// How long one measurement of the volumes serves the writes that follow it. Measuring is
/// four system calls (a `stat` and a `statvfs` per directory), which were 3.8 % of a member's
/// CPU under 1000 clients' puts when every write measured; a write arriving within this
/// time uses the last measurement less what the writes admitted since it may take.
const REUSE_FOR: Duration = Duration::from_millis(20);

/// Bytes the writes admitted since the last measurement may take before the next write
/// measures again, however recent the measurement.
const REUSE_UP_TO: u64 = 1024 * 1024;

/// A volume with less free space than the member needs.
#[derive(Debug, PartialEq)]
pub(super) struct Shortage {
    pub dir: PathBuf,
    pub available: u64,
    pub needed: u64,
}

impl std::fmt::Display for Shortage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the file system of {} has {} bytes free, below the {} bytes this member keeps \
             free for its log and database",
            self.dir.display(),
            self.available,
            self.needed
        )
    }
}

/// One directory's file system as the check sees it.
struct Volume {
    dir: PathBuf,
    device: u64,
    available: u64,
}

impl Volume {
    /// `None` when the directory cannot be looked at: a check that cannot measure must
    /// not refuse writes (a missing directory fails the write itself anyway).
    fn of(dir: &Path) -> Option<Volume> {
        use std::os::unix::fs::MetadataExt;
        let device = std::fs::metadata(dir).ok()?.dev();
        let st = rustix::fs::statvfs(dir).ok()?;
        Some(Volume {
            dir: dir.to_path_buf(),
            device,
            // What an unprivileged process may still use: members often do not run as root.
            available: st.f_bavail.saturating_mul(st.f_frsize),
        })
    }
}

/// The WAL's and the database's file systems, measured (or taken from [`SpaceGauge`]) once per
/// request and asked both questions below.
pub(super) struct DataVolumes {
    wal: Option<Volume>,
    db: Option<Volume>,
}

impl DataVolumes {
    pub(super) fn measure(cfg: &Config) -> DataVolumes {
        DataVolumes {
            wal: Volume::of(&cfg.wal_path()),
            db: Volume::of(&cfg.snap_dir()),
        }
    }

    /// Whether either file system has less than [`EXHAUSTED`] left.
    pub(super) fn exhausted(&self) -> bool {
        [&self.wal, &self.db]
            .into_iter()
            .flatten()
            .any(|v| v.available < EXHAUSTED)
    }

    /// Whether a write of `cost` bytes leaves the reserve free on both (one check, for
    /// both needs, when they share one file system).
    pub(super) fn shortage(&self, cost: u64) -> Option<Shortage> {
        short_of(self.wal.as_ref(), self.db.as_ref(), cost)
    }

    /// Takes what an admitted write of `cost` bytes may use off the volumes: its log entry
    /// on the WAL's, twice it on the database's (see `short_of`), all three on one file system.
    fn charge(&mut self, cost: u64) {
        let shared = matches!((&self.wal, &self.db), (Some(w), Some(d)) if w.device == d.device);
        let (wal_cost, db_cost) = if shared {
            (cost.saturating_mul(3), cost.saturating_mul(3))
        } else {
            (cost, cost.saturating_mul(2))
        };
        for (v, c) in [(&mut self.wal, wal_cost), (&mut self.db, db_cost)] {
            if let Some(v) = v {
                v.available = v.available.saturating_sub(c);
            }
        }
    }

    /// What these volumes say about a write of `cost` bytes (`None`: not charged).
    fn verdict(&self, cost: Option<u64>) -> SpaceVerdict {
        SpaceVerdict {
            exhausted: self.exhausted(),
            shortage: cost.and_then(|c| self.shortage(c)),
        }
    }
}

/// What the data volumes say about one write.
pub(super) struct SpaceVerdict {
    /// Less than [`EXHAUSTED`] is left: only the member's own requests go through.
    pub exhausted: bool,
    /// The write would take a volume below its reserve.
    pub shortage: Option<Shortage>,
}

impl SpaceVerdict {
    fn refuses(&self) -> bool {
        self.exhausted || self.shortage.is_some()
    }
}

/// The last measurement of the data volumes, shared by the writes that follow it closely.
#[derive(Default)]
pub(crate) struct SpaceGauge {
    last: parking_lot::Mutex<Option<Reading>>,
}

struct Reading {
    at: Instant,
    /// Bytes admitted since the measurement, already taken off `volumes`.
    charged: u64,
    volumes: DataVolumes,
}

impl Reading {
    /// Takes an admitted write's cost off the reading.
    fn charge(&mut self, cost: Option<u64>) {
        if let Some(c) = cost {
            self.volumes.charge(c);
            self.charged = self.charged.saturating_add(c);
        }
    }
}

/// Whether a reading taken `age` ago, with `charged` bytes admitted since, still serves a write.
fn reading_serves(age: Duration, charged: u64) -> bool {
    age < REUSE_FOR && charged < REUSE_UP_TO
}

impl SpaceGauge {
    /// The verdict on a write of `cost` bytes (`None`: a request the check does not charge),
    /// from a measurement of a moment ago less what was admitted since ([`REUSE_FOR`]), or a
    /// new one. A write is only ever refused on a new measurement: the charges are estimates
    /// on the high side, and space may just have been freed.
    pub(super) fn check(&self, cfg: &Config, cost: Option<u64>) -> SpaceVerdict {
        self.check_at(Instant::now(), cfg, cost)
    }

    fn check_at(&self, now: Instant, cfg: &Config, cost: Option<u64>) -> SpaceVerdict {
        if let Some(verdict) = self.admit_on_last(now, cost) {
            return verdict;
        }
        // Measured without the lock: a slow file system delays this write, not every other.
        let volumes = DataVolumes::measure(cfg);
        let verdict = volumes.verdict(cost);
        let mut reading = Reading {
            at: now,
            charged: 0,
            volumes,
        };
        if !verdict.refuses() {
            reading.charge(cost);
        }
        *self.last.lock() = Some(reading);
        verdict
    }

    /// The last reading's verdict if it still serves and admits the write.
    fn admit_on_last(&self, now: Instant, cost: Option<u64>) -> Option<SpaceVerdict> {
        let mut last = self.last.lock();
        let reading = last
            .as_mut()
            .filter(|r| reading_serves(now.saturating_duration_since(r.at), r.charged))?;
        let verdict = reading.volumes.verdict(cost);
        if verdict.refuses() {
            return None;
        }
        reading.charge(cost);
        Some(verdict)
    }
}

fn short_of(wal: Option<&Volume>, db: Option<&Volume>, cost: u64) -> Option<Shortage> {
    let wal_need = WAL_RESERVE.saturating_add(cost);
    let db_need = DB_RESERVE.saturating_add(cost.saturating_mul(2));
    let check = |v: &Volume, needed: u64| {
        (v.available < needed).then(|| Shortage {
            dir: v.dir.clone(),
            available: v.available,
            needed,
        })
    };
    match (wal, db) {
        (Some(w), Some(d)) if w.device == d.device => check(d, wal_need + db_need),
        (w, d) => w
            .and_then(|w| check(w, wal_need))
            .or_else(|| d.and_then(|d| check(d, db_need))),
    }
}

/// Every member raises NOSPACE for itself when its volume runs short, writes or not.
pub(super) async fn watch(server: Weak<EtcdServer>) {
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_exhausted = false;
    loop {
        tick.tick().await;
        let Some(s) = server.upgrade() else { return };
        let volumes = DataVolumes::measure(&s.cfg);
        let now_exhausted = volumes.exhausted();
        if now_exhausted != was_exhausted {
            was_exhausted = now_exhausted;
            if now_exhausted {
                tracing::error!(
                    "the data volume has less than {EXHAUSTED} bytes free: every write, \
                     deletes included, is refused until space is freed"
                );
            } else {
                tracing::info!("the data volume has room for writes again");
            }
        }
        if s.alarms.nospace() {
            continue;
        }
        if let Some(short) = volumes.shortage(0) {
            tracing::warn!("{short}; raising the NOSPACE alarm: writes are refused until space is freed and the alarm disarmed");
            super::background::raise_nospace_alarm(s);
        }
    }
}

/// For the log line of a thread that stopped: what to do when its storage error is a full
/// file system (`ENOSPC`, or `EDQUOT` for a user's disk quota).
pub(crate) fn out_of_space_advice(err: &Error) -> Option<&'static str> {
    is_out_of_space(err).then_some(
        "the file system holding this member's data is full. Nothing acknowledged is lost: \
         every acknowledged write is in the WAL, whose unsynced tail is discarded at the next \
         start, and the database replays the log from its last commit. Free space on the \
         data directory's volume (or grow it), restart the member, and clear the NOSPACE \
         alarm with `etcdctl alarm disarm` if it was raised",
    )
}

fn is_out_of_space(err: &Error) -> bool {
    match err {
        Error::Storage(redb::Error::Io(e)) => io_out_of_space(e),
        Error::StorageAt {
            source: redb::Error::Io(e),
            ..
        } => io_out_of_space(e),
        Error::Wal(WalError::Io { source, .. }) | Error::Io { source, .. } => {
            io_out_of_space(source)
        }
        _ => false,
    }
}

fn io_out_of_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(dir: &str, device: u64, available: u64) -> Option<Volume> {
        Some(Volume {
            dir: PathBuf::from(dir),
            device,
            available,
        })
    }

    fn short_of(wal: Option<Volume>, db: Option<Volume>, cost: u64) -> Option<Shortage> {
        super::short_of(wal.as_ref(), db.as_ref(), cost)
    }

    const BOTH: u64 = WAL_RESERVE + DB_RESERVE;

    #[test]
    fn one_file_system_must_hold_both_reserves() {
        assert_eq!(
            short_of(vol("/w", 1, BOTH + 300), vol("/d", 1, BOTH + 300), 100),
            None
        );
        assert_eq!(
            short_of(vol("/w", 1, BOTH + 299), vol("/d", 1, BOTH + 299), 100),
            Some(Shortage {
                dir: PathBuf::from("/d"),
                available: BOTH + 299,
                needed: BOTH + 300,
            })
        );
    }

    #[test]
    fn separate_file_systems_each_hold_their_own() {
        let wal_ok = vol("/w", 1, WAL_RESERVE + 10);
        let db_ok = vol("/d", 2, DB_RESERVE + 20);
        assert_eq!(short_of(wal_ok, db_ok, 10), None);
        let short = short_of(vol("/w", 1, WAL_RESERVE + 9), vol("/d", 2, u64::MAX), 10);
        assert_eq!(short.map(|s| s.dir), Some(PathBuf::from("/w")));
        let short = short_of(vol("/w", 1, u64::MAX), vol("/d", 2, DB_RESERVE + 19), 10);
        assert_eq!(short.map(|s| s.dir), Some(PathBuf::from("/d")));
    }

    #[test]
    fn a_reading_serves_briefly_and_for_a_bounded_charge() {
        let ms = Duration::from_millis;
        for (age, charged, serves) in [
            (ms(0), 0, true),
            (ms(19), REUSE_UP_TO - 1, true),
            (REUSE_FOR, 0, false),
            (ms(1), REUSE_UP_TO, false),
            (ms(500), 10, false),
        ] {
            assert_eq!(reading_serves(age, charged), serves, "{age:?} {charged}");
        }
    }

    fn temp_member() -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap();
        let cfg = match crate::config::parse(["--data-dir", data_dir], &[]) {
            Ok((crate::config::Outcome::Run(cfg), _)) => *cfg,
            _ => panic!("--data-dir {data_dir} should parse"),
        };
        std::fs::create_dir_all(cfg.wal_path()).unwrap();
        std::fs::create_dir_all(cfg.snap_dir()).unwrap();
        (dir, cfg)
    }

    fn db_free(g: &SpaceGauge) -> u64 {
        let last = g.last.lock();
        last.as_ref()
            .and_then(|r| r.volumes.db.as_ref())
            .unwrap()
            .available
    }

    fn charged(g: &SpaceGauge) -> u64 {
        g.last.lock().as_ref().unwrap().charged
    }

    #[test]
    fn writes_checked_on_one_reading_see_each_other() {
        let (_dir, cfg) = temp_member();
        let gauge = SpaceGauge::default();
        let t0 = Instant::now();
        assert!(!gauge.check_at(t0, &cfg, Some(1000)).refuses());
        let first = db_free(&gauge);
        // Within REUSE_FOR the next write sees the first one's log entry and database copies
        // (one file system here: all three on it).
        let ms = Duration::from_millis;
        assert!(!gauge.check_at(t0 + ms(5), &cfg, Some(10)).refuses());
        assert_eq!(db_free(&gauge), first - 30);
        assert_eq!(charged(&gauge), 10 + 1000);
        // A request the check does not charge takes nothing.
        assert!(!gauge.check_at(t0 + ms(6), &cfg, None).refuses());
        assert_eq!(charged(&gauge), 1010);
        // Past REUSE_FOR the volumes are measured again.
        gauge.check_at(t0 + REUSE_FOR + ms(1), &cfg, None);
        assert_eq!(charged(&gauge), 0);
        // And past the byte bound, however recent the reading.
        let t1 = t0 + REUSE_FOR * 2;
        gauge.check_at(t1, &cfg, Some(REUSE_UP_TO));
        assert_eq!(charged(&gauge), REUSE_UP_TO);
        gauge.check_at(t1, &cfg, None);
        assert_eq!(charged(&gauge), 0);
    }

    #[test]
    fn a_write_is_refused_only_on_a_new_measurement() {
        let (_dir, cfg) = temp_member();
        let gauge = SpaceGauge::default();
        let t0 = Instant::now();
        gauge.check_at(t0, &cfg, None);
        // The reading says the volume is nearly full (as if charged, or as before an
        // operator freed space); the temporary directory's file system is not.
        {
            let mut last = gauge.last.lock();
            let db = last.as_mut().and_then(|r| r.volumes.db.as_mut()).unwrap();
            db.available = EXHAUSTED - 1;
        }
        let verdict = gauge.check_at(t0 + Duration::from_millis(1), &cfg, Some(100));
        assert!(!verdict.refuses(), "a new measurement finds the space");
        assert!(db_free(&gauge) > EXHAUSTED);
    }

    #[test]
    fn separate_file_systems_are_charged_their_own_share() {
        let mut v = DataVolumes {
            wal: vol("/w", 1, 1000),
            db: vol("/d", 2, 1000),
        };
        v.charge(100);
        assert_eq!(v.wal.as_ref().map(|w| w.available), Some(900));
        assert_eq!(v.db.as_ref().map(|d| d.available), Some(800));
        let mut shared = DataVolumes {
            wal: vol("/w", 1, 1000),
            db: vol("/d", 1, 1000),
        };
        shared.charge(100);
        assert_eq!(shared.db.as_ref().map(|d| d.available), Some(700));
    }

    #[test]
    fn an_unmeasurable_directory_refuses_nothing() {
        assert_eq!(short_of(None, None, 1), None);
        assert!(short_of(None, vol("/d", 2, 0), 1).is_some());
    }

    #[test]
    fn full_file_system_errors_are_told_apart() {
        let full = std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        let quota = std::io::Error::from_raw_os_error(rustix::io::Errno::DQUOT.raw_os_error());
        let other = std::io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error());
        assert!(out_of_space_advice(&Error::Storage(redb::Error::Io(full))).is_some());
        let wal = Error::Wal(WalError::Io {
            path: PathBuf::from("/w/0.wal"),
            source: quota,
        });
        assert!(out_of_space_advice(&wal).is_some());
        assert!(out_of_space_advice(&Error::io("sync", other)).is_none());
        assert!(out_of_space_advice(&Error::Other("x".into())).is_none());
    }
}
