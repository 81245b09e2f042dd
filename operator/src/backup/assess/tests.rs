use super::*;

const LOC: &str = "s3://backups/db/main";
const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).expect("time")
}

fn ok(job: &str, at: i64, revision: i64) -> JobOutcome {
    JobOutcome {
        job: job.into(),
        succeeded: Some(true),
        finished: Some(t(at)),
        message: Some(format!(
            r#"{{"name":"{job}.db","revision":{revision},"size":4096,"sha256":"00"}}"#
        )),
    }
}

fn failed(job: &str, at: i64, why: &str) -> JobOutcome {
    JobOutcome {
        job: job.into(),
        succeeded: Some(false),
        finished: Some(t(at)),
        message: Some(why.into()),
    }
}

fn running(job: &str) -> JobOutcome {
    JobOutcome {
        job: job.into(),
        succeeded: None,
        finished: None,
        message: None,
    }
}

/// (what, assessment, failing, reason, news reasons, job of the last success)
type Case<'a> = (
    &'a str,
    Assessment,
    bool,
    &'a str,
    Vec<&'a str>,
    Option<&'a str>,
);

#[test]
fn situations() {
    let first = assess(&[ok("b1", 10, 7)], None, LOC, Ok(MINUTE), t(0), t(20));
    let cases: Vec<Case> = vec![
        (
            "nothing ran yet, within two periods",
            assess(&[], None, LOC, Ok(MINUTE), t(0), t(100)),
            false,
            "BackupsSucceeding",
            vec![],
            None,
        ),
        (
            "nothing succeeded for more than two periods since set up",
            assess(&[running("b1")], None, LOC, Ok(MINUTE), t(0), t(121)),
            true,
            "BackupStale",
            vec![],
            None,
        ),
        (
            "a first success",
            first.clone(),
            false,
            "BackupsSucceeding",
            vec!["BackupSucceeded"],
            Some("b1"),
        ),
        (
            "the same success seen again is not news",
            assess(
                &[ok("b1", 10, 7)],
                Some(&first.status),
                LOC,
                Ok(MINUTE),
                t(0),
                t(30),
            ),
            false,
            "BackupsSucceeding",
            vec![],
            Some("b1"),
        ),
        (
            "a failure after a success",
            assess(
                &[
                    ok("b1", 10, 7),
                    failed("b2", 70, "cannot upload: NoSuchBucket"),
                ],
                Some(&first.status),
                LOC,
                Ok(MINUTE),
                t(0),
                t(75),
            ),
            true,
            "BackupFailed",
            vec!["BackupFailed"],
            Some("b1"),
        ),
        (
            "a success after a failure clears it",
            assess(
                &[failed("b2", 70, "x"), ok("b3", 130, 9)],
                Some(&first.status),
                LOC,
                Ok(MINUTE),
                t(0),
                t(135),
            ),
            false,
            "BackupsSucceeding",
            vec!["BackupSucceeded", "BackupFailed"],
            Some("b3"),
        ),
        (
            "the Jobs were cleaned up: the record stays, and ages",
            assess(&[], Some(&first.status), LOC, Ok(MINUTE), t(0), t(131)),
            true,
            "BackupStale",
            vec![],
            Some("b1"),
        ),
        (
            "a schedule that does not parse",
            assess(&[], None, LOC, Err("bad".into()), t(0), t(1)),
            true,
            "InvalidSchedule",
            vec![],
            None,
        ),
    ];
    for (what, a, failing, reason, news, last) in cases {
        assert_eq!(a.failing.0, failing, "{what}: {:?}", a.failing);
        assert_eq!(a.failing.1, reason, "{what}: {:?}", a.failing);
        let got: Vec<&str> = a.news.iter().map(|n| n.1).collect();
        assert_eq!(got, news, "{what}");
        assert_eq!(
            a.status
                .last_successful
                .as_ref()
                .and_then(|r| r.job.as_deref()),
            last,
            "{what}"
        );
    }
}

#[test]
fn a_success_records_where_the_backup_is() {
    let a = assess(&[ok("b1", 10, 7)], None, LOC, Ok(MINUTE), t(0), t(20));
    let r = a.status.last_successful.expect("recorded");
    assert_eq!(r.name.as_deref(), Some("b1.db"));
    assert_eq!(r.location.as_deref(), Some("s3://backups/db/main/b1.db"));
    assert_eq!(r.revision, Some(7));
    assert_eq!(r.size, Some(4096));
    assert!(
        a.news[0].2.contains("s3://backups/db/main/b1.db"),
        "{}",
        a.news[0].2
    );
}

#[test]
fn a_failure_keeps_what_the_job_said() {
    let a = assess(
        &[failed(
            "b2",
            70,
            "cannot upload to s3://nope/x: NoSuchBucket",
        )],
        None,
        LOC,
        Ok(MINUTE),
        t(0),
        t(75),
    );
    assert_eq!(
        a.failing.2, "cannot upload to s3://nope/x: NoSuchBucket",
        "{:?}",
        a.failing
    );
    assert!(a.news[0].0, "a failure is a warning");
}

#[test]
fn the_newest_defragmentation_is_reported_once() {
    let run = |job: &str, ok: bool, at: i64| JobOutcome {
        job: job.into(),
        succeeded: Some(ok),
        finished: Some(t(at)),
        message: Some(format!("{job} said")),
    };
    let (status, news) = defrag_status(
        &[run("d1", true, 10), run("d2", false, 70), running("d3")],
        None,
    );
    let status = status.expect("a status");
    assert_eq!(status.job.as_deref(), Some("d2"));
    assert!(!status.succeeded);
    assert_eq!(news.as_ref().map(|n| n.1), Some("DefragFailed"));
    // Seen again: no news.
    let (again, news) = defrag_status(&[run("d2", false, 70)], Some(&status));
    assert_eq!(again.as_ref(), Some(&status));
    assert!(news.is_none());
    // Nothing ran yet.
    assert_eq!(defrag_status(&[running("d1")], None), (None, None));
}
