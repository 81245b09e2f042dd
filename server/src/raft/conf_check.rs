//! Whether a committed membership change may take effect. As in etcd, a
//! change is checked when it is applied, against the configuration at that
//! point of the log, not only when it is proposed: a promote or remove that
//! lost a race with another change (say, a removal committed first) becomes a
//! no-op, and its caller gets etcd's error, instead of undoing the other one.

use raft::prelude::{ConfChange, ConfChangeType, ConfState};

use crate::cluster::ConfChangeContext;
use crate::error::EtcdError;

/// Checks `cc` (with its decoded context, if any) against `conf`, the
/// configuration in force just before it.
pub fn check(
    conf: &ConfState,
    cc: &ConfChange,
    ctx: Option<&ConfChangeContext>,
) -> Result<(), EtcdError> {
    let id = cc.node_id;
    let voter = conf.voters.contains(&id);
    let learner = conf.learners.contains(&id);
    let promote = ctx.is_some_and(|c| c.promote);
    // Entries nobody waits for (the bootstrap entries, --force-new-cluster's
    // removals) describe a configuration already in place.
    let internal = ctx.is_none_or(|c| c.request_id == 0);
    match ConfChangeType::from_i32(cc.change_type) {
        Some(ConfChangeType::AddNode) if promote => match (voter, learner) {
            (_, true) => Ok(()),
            (true, false) => Err(EtcdError::MemberNotLearner),
            (false, false) => Err(EtcdError::MemberNotFound),
        },
        Some(ConfChangeType::AddNode | ConfChangeType::AddLearnerNode) => {
            if (voter || learner) && !internal {
                Err(EtcdError::MemberExist)
            } else {
                Ok(())
            }
        }
        Some(ConfChangeType::RemoveNode) => {
            if voter || learner || internal {
                Ok(())
            } else {
                Err(EtcdError::MemberNotFound)
            }
        }
        None => Err(EtcdError::Corrupt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Member;

    fn conf(voters: &[u64], learners: &[u64]) -> ConfState {
        ConfState {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            ..Default::default()
        }
    }

    fn cc(kind: ConfChangeType, id: u64) -> ConfChange {
        ConfChange {
            change_type: kind as i32,
            node_id: id,
            ..Default::default()
        }
    }

    fn ctx(id: u64, promote: bool) -> ConfChangeContext {
        ConfChangeContext {
            request_id: 7,
            member: Member {
                id,
                name: String::new(),
                peer_urls: vec![],
                client_urls: vec![],
                is_learner: false,
            },
            promote,
        }
    }

    #[test]
    fn a_promote_after_a_racing_removal_is_refused() {
        let promote = cc(ConfChangeType::AddNode, 4);
        // Still a learner: takes effect.
        assert_eq!(
            check(&conf(&[1, 2, 3], &[4]), &promote, Some(&ctx(4, true))),
            Ok(())
        );
        // Removed first: promoting must not re-add it.
        assert_eq!(
            check(&conf(&[1, 2, 3], &[]), &promote, Some(&ctx(4, true))),
            Err(EtcdError::MemberNotFound)
        );
        // Promoted twice: the second is refused.
        assert_eq!(
            check(&conf(&[1, 2, 3, 4], &[]), &promote, Some(&ctx(4, true))),
            Err(EtcdError::MemberNotLearner)
        );
    }

    #[test]
    fn removing_twice_and_adding_twice_are_refused() {
        let remove = cc(ConfChangeType::RemoveNode, 3);
        assert_eq!(
            check(&conf(&[1, 2, 3], &[]), &remove, Some(&ctx(3, false))),
            Ok(())
        );
        assert_eq!(
            check(&conf(&[1, 2], &[]), &remove, Some(&ctx(3, false))),
            Err(EtcdError::MemberNotFound)
        );
        let add = cc(ConfChangeType::AddLearnerNode, 4);
        assert_eq!(
            check(&conf(&[1, 2, 3], &[]), &add, Some(&ctx(4, false))),
            Ok(())
        );
        assert_eq!(
            check(&conf(&[1, 2, 3], &[4]), &add, Some(&ctx(4, false))),
            Err(EtcdError::MemberExist)
        );
    }

    #[test]
    fn bootstrap_entries_restate_the_initial_configuration() {
        // The initial members are in the configuration before their
        // bootstrap entries are applied; re-adding them is a no-op.
        let mut boot = ctx(1, false);
        boot.request_id = 0;
        assert_eq!(
            check(
                &conf(&[1, 2, 3], &[]),
                &cc(ConfChangeType::AddNode, 1),
                Some(&boot)
            ),
            Ok(())
        );
        assert_eq!(
            check(&conf(&[1], &[]), &cc(ConfChangeType::RemoveNode, 9), None),
            Ok(())
        );
    }
}
