use super::*;
use crate::crd::BackupStore;

fn spec() -> RollbackSpec {
    RollbackSpec {
        backup: "20261203T140000Z-r12.db".into(),
        store: None::<BackupStore>,
        confirm: "main".into(),
        bump_revision: None,
    }
}

fn facts<'a>(spec: &'a RollbackSpec) -> Facts<'a> {
    Facts {
        spec: Some(spec),
        status: None,
        check: JobState::Absent,
        restores: vec![JobState::Absent; 3],
        pods: 3,
        replicas: 3,
        available: true,
        busy: false,
        stopped: false,
        one_at_a_time: false,
    }
}

#[test]
fn situations() {
    use JobState::*;
    let s = spec();
    let done = RollbackStatus {
        backup: s.backup.clone(),
        phase: RollbackPhase::Succeeded,
        ..RollbackStatus::default()
    };
    let other_done = RollbackStatus {
        backup: "older.db".into(),
        ..done.clone()
    };
    type Edit = fn(&mut Facts);
    let cases: Vec<(&str, Edit, Step)> = vec![
        ("first look: check the backup", |_| {}, Step::Check),
        (
            "check running",
            |f| f.check = Running,
            Step::Wait(RollbackPhase::Checking, String::new()),
        ),
        (
            "check failed: nothing stops",
            |f| f.check = Failed("corrupt".into()),
            Step::Failed(RollbackPhase::Checking, String::new()),
        ),
        (
            "checked: stop every member",
            |f| f.check = Succeeded,
            Step::Stop,
        ),
        (
            "checked while scaling: wait",
            |f| {
                f.check = Succeeded;
                f.busy = true
            },
            Step::Wait(RollbackPhase::Checking, String::new()),
        ),
        (
            "stopped: restore all",
            |f| {
                f.check = Succeeded;
                f.pods = 0;
                f.available = false
            },
            Step::Restore(vec![0, 1, 2]),
        ),
        (
            "crash after one restore Job was made: make the others",
            |f| {
                f.check = Succeeded;
                f.pods = 0;
                f.restores[1] = Running
            },
            Step::Restore(vec![0, 2]),
        ),
        (
            "restore Jobs exist but a pod came back: wait for it to stop",
            |f| {
                f.restores = vec![Running, Succeeded, Absent];
                f.pods = 1
            },
            Step::Wait(RollbackPhase::Stopping, String::new()),
        ),
        (
            "the check Job was cleaned up after restores began: go on",
            |f| {
                f.check = Absent;
                f.pods = 0;
                f.restores = vec![Succeeded, Running, Succeeded]
            },
            Step::Wait(RollbackPhase::Restoring, String::new()),
        ),
        (
            "a restore failed: members stay stopped",
            |f| {
                f.pods = 0;
                f.restores = vec![Succeeded, Failed("no space".into()), Running]
            },
            Step::Failed(RollbackPhase::Restoring, String::new()),
        ),
        (
            "all restored: start",
            |f| {
                f.pods = 0;
                f.available = false;
                f.restores = vec![Succeeded; 3]
            },
            Step::Start,
        ),
        (
            "started, not yet answering",
            |f| {
                f.available = false;
                f.restores = vec![Succeeded; 3]
            },
            Step::Wait(RollbackPhase::Starting, String::new()),
        ),
        (
            "answering: done",
            |f| f.restores = vec![Succeeded; 3],
            Step::Done,
        ),
        (
            "an earlier backup's check Job is being deleted: wait for it",
            |f| f.check = Leaving,
            Step::Wait(RollbackPhase::Checking, String::new()),
        ),
        (
            "changed mid-way: an earlier backup's restore Job still runs, members stay stopped",
            |f| {
                f.stopped = true;
                f.pods = 0;
                f.check = Succeeded;
                f.restores = vec![Absent, Leaving, Absent]
            },
            Step::Wait(RollbackPhase::Restoring, String::new()),
        ),
        (
            "changed mid-way, earlier Jobs gone: check the new backup",
            |f| {
                f.stopped = true;
                f.pods = 0;
                f.available = false
            },
            Step::Check,
        ),
        (
            "changed mid-way, the new backup is bad: members stay stopped",
            |f| {
                f.stopped = true;
                f.pods = 0;
                f.check = Failed("corrupt".into())
            },
            Step::Failed(RollbackPhase::Restoring, String::new()),
        ),
        (
            "changed mid-way, the new backup checked: restore all",
            |f| {
                f.stopped = true;
                f.pods = 0;
                f.check = Succeeded
            },
            Step::Restore(vec![0, 1, 2]),
        ),
        (
            "a volume one node mounts at a time: the first member alone",
            |f| {
                f.one_at_a_time = true;
                f.pods = 0;
                f.check = Succeeded
            },
            Step::Restore(vec![0]),
        ),
        (
            "one at a time, one running: wait",
            |f| {
                f.one_at_a_time = true;
                f.pods = 0;
                f.restores = vec![Succeeded, Running, Absent]
            },
            Step::Wait(RollbackPhase::Restoring, String::new()),
        ),
        (
            "one at a time, the previous done: the next",
            |f| {
                f.one_at_a_time = true;
                f.pods = 0;
                f.restores = vec![Succeeded, Succeeded, Absent]
            },
            Step::Restore(vec![2]),
        ),
    ];
    for (what, edit, want) in cases {
        let mut f = facts(&s);
        edit(&mut f);
        let got = next(&f);
        let same = match (&got, &want) {
            (Step::Wait(a, _), Step::Wait(b, _)) | (Step::Failed(a, _), Step::Failed(b, _)) => {
                a == b
            }
            _ => got == want,
        };
        assert!(same, "{what}: got {got:?}, want {want:?}");
    }

    // Done for this backup: nothing more, whatever the Jobs; another backup starts over.
    let mut f = facts(&s);
    f.status = Some(&done);
    assert_eq!(next(&f), Step::Nothing);
    f.status = Some(&other_done);
    assert_eq!(next(&f), Step::Check);
    let mut none = facts(&s);
    none.spec = None;
    assert_eq!(next(&none), Step::Nothing);
}

#[test]
fn the_members_are_held_while_stopped_restored_or_started() {
    assert_eq!(Step::Stop.pods(3, false), Some(0));
    assert_eq!(Step::Restore(vec![0]).pods(3, false), Some(0));
    assert_eq!(
        Step::Failed(RollbackPhase::Restoring, String::new()).pods(3, false),
        Some(0)
    );
    assert_eq!(Step::Start.pods(3, false), Some(3));
    assert_eq!(Step::Check.pods(3, false), None);
    assert_eq!(
        Step::Failed(RollbackPhase::Checking, String::new()).pods(3, false),
        None
    );
    assert!(Step::Stop.holds_members(false));
    assert!(!Step::Check.holds_members(false));
    assert!(!Step::Done.holds_members(false));

    // Stopped for a rollback whose backup was changed: every step but starting keeps
    // them stopped, and the lifecycle away.
    let waiting = Step::Wait(RollbackPhase::Checking, String::new());
    let bad = Step::Failed(RollbackPhase::Checking, String::new());
    for step in [Step::Check, waiting, bad] {
        assert_eq!(step.pods(3, true), Some(0), "{step:?}");
        assert!(step.holds_members(true), "{step:?}");
    }
    assert_eq!(Step::Start.pods(3, true), Some(3));
    assert!(!Step::Done.holds_members(true));
}

#[test]
fn stopped_means_stopped_for_a_rollback_that_has_not_ended() {
    let stopped = RollbackStatus {
        backup: "a.db".into(),
        phase: RollbackPhase::Restoring,
        stopped_at: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        )),
        ..RollbackStatus::default()
    };
    assert!(stopped_for(Some(&stopped)));
    let failed = RollbackStatus {
        phase: RollbackPhase::Failed,
        ..stopped.clone()
    };
    assert!(stopped_for(Some(&failed)), "a failure while stopped");
    let done = RollbackStatus {
        phase: RollbackPhase::Succeeded,
        writable_since: stopped.stopped_at.clone(),
        ..stopped.clone()
    };
    assert!(!stopped_for(Some(&done)));
    let checking = RollbackStatus {
        phase: RollbackPhase::Checking,
        stopped_at: None,
        ..stopped
    };
    assert!(!stopped_for(Some(&checking)), "nothing stopped yet");
    assert!(!stopped_for(None));
}

#[test]
fn failure_messages_say_what_state_the_members_are_in() {
    let s = spec();
    let mut f = facts(&s);
    f.check = JobState::Failed("backup x is corrupt".into());
    match next(&f) {
        Step::Failed(_, m) => assert!(m.contains("Nothing was stopped"), "{m}"),
        other => panic!("{other:?}"),
    }
    f.pods = 0;
    f.restores = vec![
        JobState::Failed("disk full".into()),
        JobState::Succeeded,
        JobState::Succeeded,
    ];
    match next(&f) {
        Step::Failed(_, m) => {
            assert!(m.contains("member 0 failed: disk full"), "{m}");
            assert!(m.contains("stays stopped"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}
