//! The decisions on tables of situations: each row is what the operator would observe,
//! and the step it must take.

use super::*;

/// A started, healthy voter on ordinal `o` (ID 0x10 + o).
fn voter(o: i32) -> Member {
    Member {
        id: 0x10 + o as u64,
        name: format!("main-{o}"),
        ordinal: Some(o),
        learner: false,
        healthy: true,
        answered: true,
        applied_index: 100,
    }
}

fn down(mut m: Member) -> Member {
    m.healthy = false;
    m.answered = false;
    m
}

fn learner(o: i32, started: bool) -> Member {
    Member {
        learner: true,
        healthy: started,
        name: if started {
            format!("main-{o}")
        } else {
            String::new()
        },
        ..voter(o)
    }
}

fn pod(ordinal: i32, start: PodStart) -> Pod {
    Pod {
        ordinal,
        start,
        current: true,
        ready: start == PodStart::Started,
    }
}

fn stale(mut p: Pod) -> Pod {
    p.current = false;
    p
}

/// A steady cluster of `n` members, all pods running, all claims there, `main-0` leading.
fn steady(n: i32) -> Facts {
    Facts {
        desired: n,
        paused: false,
        replace_lost: true,
        members: (0..n).map(voter).collect(),
        leader: Some(0x10),
        pods_wanted: n,
        pods: (0..n).map(|o| pod(o, PodStart::Started)).collect(),
        claims: (0..n).collect(),
        quorum_lost_for: None,
        recover_after: None,
        recovery_requested: false,
        recovering: None,
        cluster: "main".into(),
    }
}

fn with(mut f: Facts, change: impl FnOnce(&mut Facts)) -> Facts {
    change(&mut f);
    f
}

use Operation::{
    ReplacingMember as Replacing, RollingUpdate as Rolling, ScalingDown as Down, ScalingUp as Up,
};

#[test]
fn scale_up_one_learner_at_a_time() {
    let table: Vec<(&str, Facts, Step)> = vec![
        ("nothing to do", steady(3), Step::Steady),
        (
            "3 -> 5: the first new member is added as a learner before its pod exists",
            with(steady(3), |f| f.desired = 5),
            Step::AddLearner(Up, 3),
        ),
        (
            "its pod is made",
            with(steady(3), |f| {
                f.desired = 5;
                f.members.push(learner(3, false));
            }),
            Step::SetPods(Up, 4),
        ),
        (
            "and waited for",
            with(steady(3), |f| {
                f.desired = 5;
                f.members.push(learner(3, false));
                f.pods_wanted = 4;
            }),
            Step::Wait(
                Up,
                "member 13 (ordinal 3) was added as a learner; waiting for it to start and catch up"
                    .into(),
            ),
        ),
        (
            "started and answering: promoted",
            with(steady(3), |f| {
                f.desired = 5;
                f.members.push(learner(3, true));
                f.pods_wanted = 4;
            }),
            Step::Promote(Up, 0x13, 3),
        ),
        (
            "then the next one",
            with(steady(4), |f| f.desired = 5),
            Step::AddLearner(Up, 4),
        ),
        (
            "a claim left by an earlier member is deleted before the member is added",
            with(steady(3), |f| {
                f.desired = 5;
                f.claims.push(3);
            }),
            Step::DeleteVolume(Up, 3),
        ),
        (
            "a learner whose volume is lost is removed, to be added again",
            with(steady(3), |f| {
                f.desired = 5;
                f.members.push(learner(3, true));
                f.members[3].healthy = false;
                f.pods_wanted = 4;
                f.pods.push(pod(3, PodStart::RefusedDataLost));
            }),
            Step::Remove(Up, 0x13, 3),
        ),
        (
            "scaled back down while the learner joins: it is removed",
            with(steady(3), |f| {
                f.members.push(learner(3, false));
                f.pods_wanted = 4;
            }),
            Step::Remove(Down, 0x13, 3),
        ),
        (
            "paused: nothing happens",
            with(steady(3), |f| {
                f.desired = 5;
                f.paused = true;
            }),
            Step::Paused,
        ),
    ];
    check(table);
}

/// Without a healthy quorum no membership changes: the loss is reported with what to do,
/// and recovered from only when asked, from the member that applied the most.
#[test]
fn a_lost_quorum_changes_nothing_unless_recovery_is_asked_for() {
    let lost = |f: &mut Facts| {
        f.members[0] = down(voter(0));
        f.members[1].applied_index = 90;
        f.members[2] = down(voter(2));
        f.leader = None;
        f.quorum_lost_for = Some(std::time::Duration::from_secs(120));
    };
    let report = "1 of 3 voting members are healthy, 2 are needed, for 2m; not answering: main-0, main-2. If the missing members cannot come back, recover from main-1 (applied index 90), losing what only the others had: `kubectl annotate etcdcluster/main ballast.dev/recover-quorum=true`, or set spec.recovery.quorumLoss: Automatic";
    let table: Vec<(&str, Facts, Step)> = vec![
        (
            "reported, not acted on",
            with(steady(3), lost),
            Step::Blocked("QuorumLost", report.into()),
        ),
        (
            "no scale-up either",
            with(steady(3), |f| {
                lost(f);
                f.desired = 5;
            }),
            Step::Blocked("QuorumLost", report.into()),
        ),
        (
            "no promotion of a caught-up learner either",
            with(steady(3), |f| {
                lost(f);
                f.members.push(learner(3, true));
                f.pods_wanted = 4;
            }),
            Step::Blocked("QuorumLost", report.into()),
        ),
        (
            "no replacement of a lost member either",
            with(steady(3), |f| {
                lost(f);
                f.pods[0] = pod(0, PodStart::RefusedDataLost);
            }),
            Step::Blocked("QuorumLost", report.into()),
        ),
        (
            "automatic recovery waits its delay",
            with(steady(3), |f| {
                lost(f);
                f.recover_after = Some(std::time::Duration::from_secs(600));
            }),
            Step::Blocked("QuorumLost", report.into()),
        ),
        (
            "then recovers from the member that applied the most",
            with(steady(3), |f| {
                lost(f);
                f.members[0].answered = true;
                f.members[0].applied_index = 120;
                f.recover_after = Some(std::time::Duration::from_secs(60));
            }),
            Step::ForceNewCluster(Operation::RecoveringQuorum, 0),
        ),
        (
            "the annotation asks for it at once",
            with(steady(3), |f| {
                lost(f);
                f.recovery_requested = true;
            }),
            Step::ForceNewCluster(Operation::RecoveringQuorum, 1),
        ),
        (
            "a recovery under way keeps its member while it restarts and does not answer",
            with(steady(3), |f| {
                lost(f);
                f.members[1] = down(voter(1));
                f.recovering = Some(1);
            }),
            Step::ForceNewCluster(Operation::RecoveringQuorum, 1),
        ),
        (
            "nobody answers: nothing to recover from",
            with(steady(3), |f| {
                lost(f);
                f.members[1] = down(voter(1));
                f.recovery_requested = true;
            }),
            Step::Blocked(
                "QuorumLost",
                "0 of 3 voting members are healthy, 2 are needed, for 2m; not answering: main-0, main-1, main-2. No member answers: bring a member back (its pod and volume), or restore from a snapshot".into(),
            ),
        ),
    ];
    check(table);
}

#[test]
fn scale_down_highest_first_leader_moved_away_claims_deleted() {
    let table: Vec<(&str, Facts, Step)> = vec![
        (
            "5 -> 3: the highest ordinal is removed before its pod goes",
            with(steady(5), |f| f.desired = 3),
            Step::Remove(Down, 0x14, 4),
        ),
        (
            "if it leads, leadership moves to the lowest healthy voter first",
            with(steady(5), |f| {
                f.desired = 3;
                f.leader = Some(0x14);
                f.members[0] = down(voter(0));
            }),
            Step::MoveLeader(Down, 0x11),
        ),
        (
            "removed: its pod goes",
            with(steady(5), |f| {
                f.desired = 3;
                f.members.truncate(4);
            }),
            Step::SetPods(Down, 4),
        ),
        (
            "the pod gone: its claim goes",
            with(steady(4), |f| {
                f.desired = 3;
                f.members.truncate(3);
                f.pods_wanted = 3;
                f.pods.truncate(3);
                f.claims.push(4);
            }),
            Step::DeleteVolume(Down, 3),
        ),
        (
            "a claim whose pod still terminates is left alone",
            with(steady(3), |f| {
                f.pods.push(pod(3, PodStart::Started));
                f.claims.push(3);
            }),
            Step::Steady,
        ),
        (
            "never below a healthy quorum",
            with(steady(3), |f| {
                f.desired = 2;
                f.members[0] = down(voter(0));
            }),
            Step::Blocked(
                "ScaleDownUnsafe",
                "removing main-2 would leave 1 healthy of 2 voters, short of a quorum; waiting for the unhealthy members"
                    .into(),
            ),
        ),
        (
            "removing an unhealthy highest member is fine while the rest keep quorum",
            with(steady(3), |f| {
                f.desired = 2;
                f.members[2] = down(voter(2));
            }),
            Step::Remove(Down, 0x12, 2),
        ),
    ];
    check(table);
}

#[test]
fn replacement_of_a_member_whose_data_is_lost() {
    let lost = |f: &mut Facts| {
        f.members[1] = down(voter(1));
        f.pods[1] = pod(1, PodStart::RefusedDataLost);
    };
    let table: Vec<(&str, Facts, Step)> = vec![
        (
            "its sidecar says the data is gone: removed",
            with(steady(3), lost),
            Step::Remove(Replacing, 0x11, 1),
        ),
        (
            "then added back as a learner on the empty volume its pod already has",
            with(steady(3), |f| {
                f.members.remove(1);
                f.pods[1] = pod(1, PodStart::RefusedNotMember);
            }),
            Step::AddLearner(Replacing, 1),
        ),
        (
            "and promoted once caught up",
            with(steady(3), |f| {
                f.members[1] = learner(1, true);
            }),
            Step::Promote(Replacing, 0x11, 1),
        ),
        (
            "scaled down during a replacement: the place below is filled before the highest goes",
            with(steady(4), |f| {
                f.desired = 3;
                f.members.remove(1);
                f.pods[1] = pod(1, PodStart::RefusedNotMember);
            }),
            Step::AddLearner(Replacing, 1),
        ),
        (
            "a member whose server exits on corrupt data is removed too",
            with(steady(3), |f| {
                f.members[1] = down(voter(1));
                f.pods[1] = pod(1, PodStart::DataCorrupt);
            }),
            Step::Remove(Replacing, 0x11, 1),
        ),
        (
            "and its volume renewed before it is added back",
            with(steady(3), |f| {
                f.members.remove(1);
                f.pods[1] = pod(1, PodStart::DataCorrupt);
            }),
            Step::DeleteVolume(Replacing, 1),
        ),
        (
            "a member that is merely down is not replaced",
            with(steady(3), |f| {
                f.members[1] = down(voter(1));
                f.pods[1] = pod(1, PodStart::Unknown);
            }),
            Step::Steady,
        ),
        (
            "opted out: reported, not replaced",
            with(steady(3), |f| {
                lost(f);
                f.replace_lost = false;
            }),
            Step::Blocked(
                "MemberDataLost",
                "member main-1 lost its data and replaceLostMembers is false: replace it by hand (member remove, then member add --learner)"
                    .into(),
            ),
        ),
        (
            "a member removed by hand whose pod still runs on its old data: the volume is renewed",
            with(steady(3), |f| {
                f.members.remove(1);
            }),
            Step::DeleteVolume(Replacing, 1),
        ),
        (
            "a member added by hand outside the pods blocks every change",
            with(steady(3), |f| {
                f.members.push(Member {
                    ordinal: None,
                    ..voter(9)
                });
            }),
            Step::Blocked(
                "ForeignMember",
                "member 19 (main-9) has a peer URL that is not one of this cluster's pods; the operator changes no membership until it is removed (`etcdctl member remove 19`)"
                    .into(),
            ),
        ),
    ];
    check(table);
}

#[test]
fn rolling_update_one_at_a_time_the_leader_last() {
    // main-0 leads; a new template makes every pod stale.
    let all_stale = |f: &mut Facts| {
        for p in f.pods.iter_mut() {
            p.current = false;
        }
    };
    let table: Vec<(&str, Facts, Step)> = vec![
        (
            "followers first, highest ordinal first",
            with(steady(3), all_stale),
            Step::Restart(Rolling, 2),
        ),
        (
            "the restarted pod must be back and ready before the next",
            with(steady(3), |f| {
                all_stale(f);
                f.pods[2] = pod(2, PodStart::Started);
                f.pods[2].ready = false;
            }),
            Step::Wait(
                Rolling,
                "2 of 3 pods to update; waiting for pod 2 before the next restart".into(),
            ),
        ),
        (
            "and its member healthy",
            with(steady(3), |f| {
                all_stale(f);
                f.pods[2] = pod(2, PodStart::Started);
                f.members[2] = down(voter(2));
            }),
            Step::Wait(
                Rolling,
                "2 of 3 pods to update; waiting for main-2 before the next restart".into(),
            ),
        ),
        (
            "then the next follower",
            with(steady(3), |f| {
                all_stale(f);
                f.pods[2] = pod(2, PodStart::Started);
            }),
            Step::Restart(Rolling, 1),
        ),
        (
            "only the leader left: leadership moves to an updated member first",
            with(steady(3), |f| f.pods[0] = stale(pod(0, PodStart::Started))),
            Step::MoveLeader(Rolling, 0x11),
        ),
        (
            "no longer leading: restarted",
            with(steady(3), |f| {
                f.pods[0] = stale(pod(0, PodStart::Started));
                f.leader = Some(0x11);
            }),
            Step::Restart(Rolling, 0),
        ),
        (
            "a single member has nobody to hand over to",
            with(steady(1), all_stale),
            Step::Restart(Rolling, 0),
        ),
        (
            "membership changes come first",
            with(steady(3), |f| {
                all_stale(f);
                f.desired = 5;
            }),
            Step::AddLearner(Up, 3),
        ),
    ];
    check(table);
}

fn check(table: Vec<(&str, Facts, Step)>) {
    for (what, facts, want) in table {
        assert_eq!(next_step(&facts), want, "{what}");
    }
}
