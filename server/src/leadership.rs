//! Handing leadership over when a leader is stopped, as etcd does on SIGTERM: the cluster
//! then does not wait an election timeout for a new leader, and a rolling restart costs
//! clients a short pause at most instead of timeouts.

use std::time::Instant;

use crate::server::EtcdServer;

/// When this member leads and another voter is connected, transfers leadership to the
/// voter connected the longest (etcd's choice) and waits until it has taken over or one
/// election timeout has passed. Never fails: a stop goes on either way.
pub async fn hand_over_on_shutdown(s: &EtcdServer) {
    if s.raft.leader() != s.member_id {
        return;
    }
    let voters: Vec<u64> = s
        .members
        .list()
        .into_iter()
        .filter(|m| !m.is_learner && m.id != s.member_id)
        .map(|m| m.id)
        .collect();
    if voters.is_empty() {
        tracing::info!("skipped leadership transfer for single voting member cluster");
        return;
    }
    let Some(target) = choose(&voters, |id| s.transport.active_since(id)) else {
        tracing::warn!("skipped leadership transfer: no other voting member is connected");
        return;
    };
    tracing::info!(
        transferee = format!("{target:x}"),
        "leadership transfer starting"
    );
    s.raft.transfer_leader(target);
    let deadline = tokio::time::Instant::now() + s.cfg.election_timeout;
    while s.raft.leader() != target {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                transferee = format!("{target:x}"),
                "leadership transfer failed to finish within the election timeout"
            );
            return;
        }
        tokio::time::sleep(s.cfg.heartbeat_interval).await;
    }
    tracing::info!(
        transferee = format!("{target:x}"),
        "leadership transfer finished"
    );
}

/// The voter connected since the earliest moment, among those connected at all.
fn choose(voters: &[u64], active_since: impl Fn(u64) -> Option<Instant>) -> Option<u64> {
    voters
        .iter()
        .filter_map(|id| active_since(*id).map(|t| (t, *id)))
        .min()
        .map(|(_, id)| id)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_longest_connected_voter_takes_over() {
        let now = Instant::now();
        let since = |id: u64| match id {
            1 => Some(now),
            2 => Some(now - Duration::from_secs(30)),
            _ => None,
        };
        assert_eq!(choose(&[1, 2, 3], since), Some(2));
        assert_eq!(choose(&[1, 3], since), Some(1));
        assert_eq!(choose(&[3], since), None);
    }
}
