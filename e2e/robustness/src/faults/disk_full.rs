//! A member whose data volume fills up while traffic runs, then gets its space back.
//!
//! The filler leaves less than the reserve Ballast keeps for its log and database (a 64 MiB
//! WAL segment and 16 MiB: server/src/server/disk_space.rs) but more than the 4 MiB below
//! which it refuses everything, so the member refuses writes with `etcdserver: mvcc:
//! database space exceeded` and raises the NOSPACE alarm (every member then refuses puts,
//! txns with puts and lease grants) instead of failing a commit and stopping. Undoing it is
//! what an operator does: free the space, then disarm the alarm.

use std::time::Duration;

use etcd_client::{AlarmAction, AlarmOptions, AlarmType, Client};

use crate::cluster::{connect, Cluster};
use crate::Error;

const MIB: u64 = 1024 * 1024;

/// Each member's tmpfs: room for its preallocated WAL segment (64 MiB), the database and
/// the reserve, and then some.
pub const VOLUME_SIZE: u64 = 256 * MIB;

/// What the filler leaves free: under the 80 MiB reserve, well over the 4 MiB floor.
const LEFT_FREE: u64 = 24 * MIB;

/// How long the member gets to raise the alarm itself (it looks at its volume once a
/// second) before the fault is reported as not taking.
const ALARM_DEADLINE: Duration = Duration::from_secs(10);
/// How long disarming may take (a member may raise the alarm again for a write that raced
/// with the freeing: then it is disarmed again).
const DISARM_DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Fills member `target`'s volume, keeps it full for `full`, frees it and disarms the
/// alarm; returns what happened, for the report.
pub async fn fill_and_free(
    cluster: &Cluster,
    target: usize,
    full: Duration,
) -> Result<String, Error> {
    let member = &cluster.members[target];
    let id = member.id;
    let url = member.client_url();
    let volume = member
        .volume
        .as_ref()
        .ok_or_else(|| Error::Setup(format!("{} has no volume of its own", member.name)))?;
    let before = volume.available()?;
    let filler = volume.fill_leaving(LEFT_FREE)?;
    let left = volume.available();
    // The filler goes whatever happens while it is there, so a failure here cannot leave
    // the member short of space for the rest of the run.
    let held = async {
        let mut client = connect(&url).await?;
        let raised = wait_for_alarm(&mut client, id, true, ALARM_DEADLINE).await?;
        tokio::time::sleep(full).await;
        Ok::<_, Error>((client, raised))
    }
    .await;
    volume.free(&filler)?;
    let (mut client, raised) = held?;
    let left = left?;
    let disarmed = disarm(&mut client, id).await?;
    Ok(format!(
        "volume filled ({} MiB free of {} MiB), NOSPACE alarm raised after {raised:?}, \
         kept full {full:?}, freed, alarm disarmed after {disarmed:?}",
        left / MIB,
        before / MIB
    ))
}

/// Waits until member `id`'s NOSPACE alarm is (`raised`) or is not listed; returns how
/// long that took.
async fn wait_for_alarm(
    client: &mut Client,
    id: u64,
    raised: bool,
    deadline: Duration,
) -> Result<Duration, Error> {
    let start = tokio::time::Instant::now();
    loop {
        // A call that fails (the member busy) is only a poll missed.
        if nospace_raised(client, id).await.ok() == Some(raised) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > deadline {
            return Err(Error::Cluster(format!(
                "member {id:x}'s NOSPACE alarm still {} after {deadline:?}",
                if raised { "not raised" } else { "raised" }
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Maintenance Alarm DEACTIVATE for member `id`'s NOSPACE, repeated until the alarm is
/// gone; returns how long that took.
async fn disarm(client: &mut Client, id: u64) -> Result<Duration, Error> {
    let start = tokio::time::Instant::now();
    loop {
        let mut options = AlarmOptions::new();
        options.with_member(id);
        let call = client.alarm(AlarmAction::Deactivate, AlarmType::Nospace, Some(options));
        // A failed or slow call is retried: the alarm list decides.
        let _ = tokio::time::timeout(CALL_TIMEOUT, call).await;
        if nospace_raised(client, id).await.ok() == Some(false) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > DISARM_DEADLINE {
            return Err(Error::Cluster(format!(
                "member {id:x}'s NOSPACE alarm still raised {DISARM_DEADLINE:?} after freeing its volume"
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether the alarm list names member `id` with NOSPACE.
async fn nospace_raised(client: &mut Client, id: u64) -> Result<bool, Error> {
    let call = client.alarm(AlarmAction::Get, AlarmType::None, None);
    let response = tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| Error::Cluster("listing alarms timed out".into()))?
        .map_err(|e| Error::client("listing alarms", e))?;
    Ok(response
        .alarms()
        .iter()
        .any(|a| a.member_id() == id && a.alarm() == AlarmType::Nospace))
}
