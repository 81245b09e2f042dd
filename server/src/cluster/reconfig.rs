//! etcd's `--strict-reconfig-check` rules: a membership change is refused
//! before it is proposed when it could leave the cluster without a working
//! quorum, judged by which voters have started (published themselves) and
//! which this member is connected to right now.

use std::time::{Duration, Instant};

use super::Member;
use crate::error::EtcdError;

/// etcd's `HealthInterval`: a peer counts as connected once its connection
/// has been up this long.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// Since when this member has been connected to each peer (`None`: not now).
pub trait Connectivity {
    fn active_since(&self, id: u64) -> Option<Instant>;
}

impl<F: Fn(u64) -> Option<Instant>> Connectivity for F {
    fn active_since(&self, id: u64) -> Option<Instant> {
        self(id)
    }
}

fn voters(members: &[Member]) -> impl Iterator<Item = &Member> {
    members.iter().filter(|m| !m.is_learner)
}

/// etcd's `IsStarted`: the member has published its name, so it ran.
fn started(m: &Member) -> bool {
    !m.name.is_empty()
}

fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// etcd's `IsReadyToAddVotingMember`: after the add, started voters must be
/// a quorum, except that a one-member cluster may always get a second member
/// (the recovery path after --force-new-cluster or a restore).
fn ready_to_add_voter(members: &[Member]) -> bool {
    let total = voters(members).count() + 1;
    let started = voters(members).filter(|m| started(m)).count();
    (started == 1 && total == 2) || started >= quorum(total)
}

/// etcd's `IsReadyToRemoveVotingMember`: the voters left must have a started quorum.
fn ready_to_remove_voter(members: &[Member], id: u64) -> bool {
    let rest: Vec<&Member> = voters(members).filter(|m| m.id != id).collect();
    rest.iter().filter(|m| started(m)).count() >= quorum(rest.len())
}

/// etcd's `IsReadyToPromoteMember`: the learner counts as a started voter.
fn ready_to_promote(members: &[Member]) -> bool {
    let total = voters(members).count() + 1;
    let started = voters(members).filter(|m| started(m)).count() + 1;
    started >= quorum(total)
}

/// etcd's `numConnectedSince`: this member plus the voters connected since
/// before `since`.
fn connected_since(members: &[Member], me: u64, net: &impl Connectivity, since: Instant) -> usize {
    voters(members)
        .filter(|m| m.id == me || net.active_since(m.id).is_some_and(|t| t < since))
        .count()
}

/// The instant a connection must predate to count (None: none can yet).
fn health_cutoff(now: Instant) -> Option<Instant> {
    now.checked_sub(HEALTH_INTERVAL)
}

/// etcd's `mayAddMember`.
pub fn may_add(
    members: &[Member],
    learner: bool,
    me: u64,
    net: &impl Connectivity,
    now: Instant,
) -> Result<(), EtcdError> {
    if !learner && !ready_to_add_voter(members) {
        tracing::warn!("rejecting member add request; not enough healthy members");
        return Err(EtcdError::MemberNotEnoughStarted);
    }
    let fully = health_cutoff(now)
        .is_some_and(|since| connected_since(members, me, net, since) == voters(members).count());
    if !fully {
        tracing::warn!("rejecting member add request; local member has not been connected to all peers, reconfigure breaks active quorum");
        return Err(EtcdError::UnhealthyCluster);
    }
    Ok(())
}

/// etcd's `mayRemoveMember`.
pub fn may_remove(
    members: &[Member],
    id: u64,
    me: u64,
    net: &impl Connectivity,
    now: Instant,
) -> Result<(), EtcdError> {
    if members.iter().any(|m| m.id == id && m.is_learner) {
        return Ok(());
    }
    if !ready_to_remove_voter(members, id) {
        tracing::warn!("rejecting member remove request; not enough healthy members");
        return Err(EtcdError::MemberNotEnoughStarted);
    }
    // A member that is down is not part of the active quorum.
    if id != me && net.active_since(id).is_none() {
        return Ok(());
    }
    let active = health_cutoff(now).map_or(1, |since| connected_since(members, me, net, since));
    let total = voters(members).count();
    if active < 2 + total.saturating_sub(1) / 2 {
        tracing::warn!(
            active_peers = active,
            "rejecting member remove request; local member has not been connected to all peers, reconfigure breaks active quorum"
        );
        return Err(EtcdError::UnhealthyCluster);
    }
    Ok(())
}

/// etcd's `mayPromoteMember` after the learner check (done by the leader).
pub fn may_promote(members: &[Member]) -> Result<(), EtcdError> {
    if !ready_to_promote(members) {
        tracing::warn!("rejecting member promote request; not enough healthy members");
        return Err(EtcdError::MemberNotEnoughStarted);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u64, name: &str, learner: bool) -> Member {
        Member {
            id,
            name: name.into(),
            peer_urls: vec![],
            client_urls: vec![],
            is_learner: learner,
        }
    }

    /// Peers 2 and 3 connected for a minute, 4 just now, others not at all.
    fn net(now: Instant) -> impl Fn(u64) -> Option<Instant> {
        move |id| match id {
            2 | 3 => now.checked_sub(Duration::from_secs(60)),
            4 => Some(now),
            _ => None,
        }
    }

    #[test]
    fn started_quorum_rules() {
        assert!(ready_to_add_voter(&[m(1, "a", false)]));
        assert!(!ready_to_add_voter(&[m(1, "a", false), m(2, "", false)]));
        assert!(ready_to_remove_voter(
            &[m(1, "a", false), m(2, "", false), m(3, "c", false)],
            2
        ));
        assert!(!ready_to_remove_voter(
            &[m(1, "a", false), m(2, "", false), m(3, "c", false)],
            3
        ));
        assert!(ready_to_promote(&[m(1, "a", false), m(2, "", false)]));
        assert!(!ready_to_promote(&[
            m(1, "a", false),
            m(2, "", false),
            m(3, "", false)
        ]));
    }

    #[test]
    fn add_needs_every_voter_connected_for_the_health_interval() {
        let now = Instant::now() + Duration::from_secs(120);
        let three = [m(1, "a", false), m(2, "b", false), m(3, "c", false)];
        assert_eq!(may_add(&three, false, 1, &net(now), now), Ok(()));
        assert_eq!(may_add(&three, true, 1, &net(now), now), Ok(()));
        // Member 4 connected only now: too recent.
        let four = [m(1, "a", false), m(2, "b", false), m(4, "d", false)];
        assert_eq!(
            may_add(&four, true, 1, &net(now), now),
            Err(EtcdError::UnhealthyCluster)
        );
        // Member 5 down.
        let down = [m(1, "a", false), m(2, "b", false), m(5, "e", false)];
        assert_eq!(
            may_add(&down, false, 1, &net(now), now),
            Err(EtcdError::UnhealthyCluster)
        );
        // Not started: the started-quorum rule answers first.
        let unstarted = [m(1, "a", false), m(2, "", false)];
        assert_eq!(
            may_add(&unstarted, false, 1, &net(now), now),
            Err(EtcdError::MemberNotEnoughStarted)
        );
    }

    #[test]
    fn remove_keeps_an_active_quorum() {
        let now = Instant::now() + Duration::from_secs(120);
        // 1 (me), 2 connected, 5 down: removing the down member is fine,
        // removing a connected one would leave 1 of 2 active.
        let members = [m(1, "a", false), m(2, "b", false), m(5, "e", false)];
        assert_eq!(may_remove(&members, 5, 1, &net(now), now), Ok(()));
        assert_eq!(
            may_remove(&members, 2, 1, &net(now), now),
            Err(EtcdError::UnhealthyCluster)
        );
        // All connected: fine; learners are never checked.
        let healthy = [m(1, "a", false), m(2, "b", false), m(3, "c", false)];
        assert_eq!(may_remove(&healthy, 3, 1, &net(now), now), Ok(()));
        let with_learner = [m(1, "a", false), m(9, "", true)];
        assert_eq!(may_remove(&with_learner, 9, 1, &net(now), now), Ok(()));
    }
}
