//! The faults a run injects while traffic runs, each undone before the next: members
//! killed and restarted on their data, stopped past the election timeout, cut off the
//! network, restarted on a torn WAL tail, left with a full data volume.

mod disk_full;
mod torn_wal;

use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::cluster::{Cluster, ELECTION_MS, SIZE};
use crate::history::Time;
use crate::traffic::Clock;
use crate::Error;

pub use torn_wal::{tear, Tear};

/// One kind of fault; a scenario injects one kind, repeatedly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    /// kill -9 of a random member, restarted on its data directory.
    KillRandom,
    /// kill -9 of the leader, restarted on its data directory.
    KillLeader,
    /// SIGSTOP of a random member for longer than the election timeout, then SIGCONT.
    Sigstop,
    /// The leader's link to the bridge cut, then restored.
    PartitionLeader,
    /// One follower's link cut, then restored.
    PartitionMinority,
    /// kill -9 of a follower, a torn write appended to its WAL, restarted.
    TornWal,
    /// A random member's data volume (its own tmpfs) filled past its reserve, then freed
    /// and the NOSPACE alarm disarmed.
    DiskFull,
}

impl FaultKind {
    pub const ALL: [FaultKind; 7] = [
        FaultKind::KillRandom,
        FaultKind::KillLeader,
        FaultKind::Sigstop,
        FaultKind::PartitionLeader,
        FaultKind::PartitionMinority,
        FaultKind::TornWal,
        FaultKind::DiskFull,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillRandom => "kill-random",
            FaultKind::KillLeader => "kill-leader",
            FaultKind::Sigstop => "sigstop",
            FaultKind::PartitionLeader => "partition-leader",
            FaultKind::PartitionMinority => "partition-minority",
            FaultKind::TornWal => "torn-wal",
            FaultKind::DiskFull => "disk-full",
        }
    }

    pub fn from_name(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The size of each member's own data volume, for the scenarios that need one (only
/// disk-full: tmpfs makes fsync a no-op, which the crash scenarios must not have).
pub fn volume_size(kind: FaultKind) -> Option<u64> {
    (kind == FaultKind::DiskFull).then_some(disk_full::VOLUME_SIZE)
}

/// One injected fault, for the report and the saved history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRecord {
    pub kind: FaultKind,
    pub member: String,
    /// When the fault began and when it was undone (the member restarted, continued or
    /// reconnected).
    pub start: Time,
    pub end: Time,
    pub detail: String,
}

/// Injects one fault of `kind` and undoes it; returns once it is undone (not once the
/// cluster has recovered: the caller waits for that).
pub async fn inject(
    kind: FaultKind,
    cluster: &mut Cluster,
    rng: &mut StdRng,
    clock: Clock,
) -> Result<FaultRecord, Error> {
    let leader = cluster.wait_all_healthy().await?;
    let random = rng.random_range(0..SIZE);
    let follower = (leader + rng.random_range(1..SIZE)) % SIZE;
    let target = match kind {
        FaultKind::KillRandom | FaultKind::Sigstop | FaultKind::DiskFull => random,
        FaultKind::KillLeader | FaultKind::PartitionLeader => leader,
        FaultKind::PartitionMinority | FaultKind::TornWal => follower,
    };
    let role = if target == leader {
        "leader"
    } else {
        "follower"
    };
    let name = cluster.members[target].name.clone();
    let start = clock.now();
    let detail = match kind {
        FaultKind::KillRandom | FaultKind::KillLeader => {
            cluster.kill_member(target);
            let down = millis(rng, 200, 1500);
            tokio::time::sleep(down).await;
            cluster.start_member(target)?;
            format!("{role} killed, restarted after {down:?}")
        }
        FaultKind::Sigstop => {
            cluster.members[target].pause(true)?;
            let stopped = millis(rng, 2 * ELECTION_MS, 4 * ELECTION_MS);
            tokio::time::sleep(stopped).await;
            cluster.members[target].pause(false)?;
            format!("{role} stopped for {stopped:?}")
        }
        FaultKind::PartitionLeader | FaultKind::PartitionMinority => {
            cluster.set_link(target, false)?;
            let cut = millis(rng, 1000, 3000);
            tokio::time::sleep(cut).await;
            cluster.set_link(target, true)?;
            format!("{role} cut off for {cut:?}")
        }
        FaultKind::TornWal => {
            cluster.kill_member(target);
            let tear = torn_wal::tear(&cluster.members[target].wal_dir(), rng)?;
            cluster.start_member(target)?;
            format!(
                "{role} killed, restarted on a torn WAL: {}",
                tear.description
            )
        }
        FaultKind::DiskFull => {
            let full = millis(rng, 1000, 3000);
            let what = disk_full::fill_and_free(cluster, target, full).await?;
            format!("{role}: {what}")
        }
    };
    Ok(FaultRecord {
        kind,
        member: name,
        start,
        end: clock.now(),
        detail,
    })
}

fn millis(rng: &mut StdRng, low: u64, high: u64) -> Duration {
    Duration::from_millis(rng.random_range(low..=high))
}
