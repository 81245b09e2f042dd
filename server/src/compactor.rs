//! Automatic compaction (`--auto-compaction-mode`, `--auto-compaction-retention`).
//! The leader decides and proposes the compaction through Raft, like any
//! client's Compact; other members only apply it.

use std::collections::VecDeque;
use std::sync::Weak;
use std::time::{Duration, Instant};

use ballast_proto::etcdserverpb::CompactionRequest;
use ballast_proto::internal::internal_request::Request;

use crate::config::CompactionRetention;
use crate::error::EtcdError;
use crate::server::EtcdServer;

/// etcd's revision-mode compactor looks every five minutes.
const REVISION_CHECK: Duration = Duration::from_secs(300);

/// Which revision to compact to, given samples of (time, revision) taken
/// over the last period: the newest revision that is at least `period` old.
pub fn periodic_target(
    samples: &VecDeque<(Instant, i64)>,
    now: Instant,
    period: Duration,
) -> Option<i64> {
    samples
        .iter()
        .rev()
        .find(|(at, _)| now.duration_since(*at) >= period)
        .map(|(_, rev)| *rev)
}

/// Revision mode: keep the last `keep` revisions.
pub fn revision_target(current: i64, keep: u64) -> Option<i64> {
    let target = current - i64::try_from(keep).ok()?;
    (target > 0).then_some(target)
}

pub async fn run(server: Weak<EtcdServer>, retention: CompactionRetention) {
    let check = match retention {
        CompactionRetention::Disabled => return,
        // Sample ten times per period so the compacted point lags at most 10%.
        CompactionRetention::Period(p) => (p / 10).max(Duration::from_secs(1)),
        CompactionRetention::Revisions(_) => REVISION_CHECK,
    };
    let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
    let mut tick = tokio::time::interval(check);
    loop {
        tick.tick().await;
        let Some(s) = server.upgrade() else { return };
        let now = Instant::now();
        let current = s.store.current_revision();
        let target = match retention {
            CompactionRetention::Disabled => return,
            CompactionRetention::Period(p) => {
                samples.push_back((now, current));
                let t = periodic_target(&samples, now, p);
                while samples
                    .front()
                    .is_some_and(|(at, _)| now.duration_since(*at) > p + check)
                {
                    samples.pop_front();
                }
                t
            }
            CompactionRetention::Revisions(keep) => revision_target(current, keep),
        };
        let Some(target) = target else { continue };
        if s.raft.leader() != s.member_id || target <= s.store.compact_revision() {
            continue;
        }
        tracing::info!(revision = target, "starting auto compaction");
        let req = CompactionRequest {
            revision: target,
            physical: false,
        };
        match s.propose(Request::Compaction(req)).await {
            Ok(_) | Err(EtcdError::Compacted) => {
                tracing::info!(revision = target, "completed auto compaction")
            }
            Err(e) => tracing::warn!(revision = target, "auto compaction failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_picks_newest_sample_old_enough() {
        let t0 = Instant::now();
        let period = Duration::from_secs(10);
        let samples: VecDeque<_> = [
            (t0, 5),
            (t0 + Duration::from_secs(4), 9),
            (t0 + Duration::from_secs(8), 12),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            periodic_target(&samples, t0 + Duration::from_secs(9), period),
            None
        );
        assert_eq!(
            periodic_target(&samples, t0 + Duration::from_secs(14), period),
            Some(9)
        );
    }

    #[test]
    fn revision_mode_keeps_the_last_n() {
        assert_eq!(revision_target(100, 10), Some(90));
        assert_eq!(revision_target(5, 10), None);
    }
}
