//! Leader gauges and `etcd_server_leader_changes_seen_total`.
//!
//! etcd counts every time the leader it knows of becomes a different, known
//! member (also on followers, also when its own role stays the same), so the
//! counting follows the Raft node's published leader ID rather than this
//! member's role changes. The ID is polled: a change of leader takes at
//! least an election, far longer than the poll interval.

use std::sync::Weak;
use std::time::Duration;

use super::Metrics;
use crate::server::EtcdServer;

/// How often the leader ID is read.
const POLL: Duration = Duration::from_millis(10);

/// What this member last knew about the leader.
#[derive(Default)]
pub struct LeaderTracker {
    last: u64,
}

impl LeaderTracker {
    /// Updates the gauges for the current leader (0 = none) and counts a
    /// change when a leader different from the last one known appears.
    pub fn observe(&mut self, leader: u64, me: u64, m: &Metrics) {
        if leader != 0 && leader != self.last {
            m.leader_changes.inc();
        }
        self.last = leader;
        m.has_leader.set((leader != 0) as i64);
        m.is_leader.set((leader != 0 && leader == me) as i64);
    }
}

/// Follows the leader until the server is gone.
pub async fn run(server: Weak<EtcdServer>) {
    let mut tracker = LeaderTracker::default();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(s) = server.upgrade() else { return };
        tracker.observe(s.raft.leader(), s.member_id, &s.metrics);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_new_known_leader() {
        let m = Metrics::default();
        let mut t = LeaderTracker::default();
        t.observe(0, 1, &m);
        assert_eq!((m.leader_changes.get(), m.has_leader.get()), (0, 0));
        t.observe(2, 1, &m);
        t.observe(2, 1, &m);
        assert_eq!((m.leader_changes.get(), m.is_leader.get()), (1, 0));
        // Losing the leader and finding it again is a change, as in etcd.
        t.observe(0, 1, &m);
        t.observe(2, 1, &m);
        t.observe(1, 1, &m);
        assert_eq!((m.leader_changes.get(), m.is_leader.get()), (3, 1));
        assert_eq!(m.has_leader.get(), 1);
    }
}
