//! Durability: what a server acknowledged survives `kill -9`, a torn WAL
//! tail is cut on restart without losing synced data, and real damage (a
//! corrupted WAL record, a garbage database file) stops the server with an
//! error that names the problem instead of starting with less data.
//!
//! The kill test picks its moments with a seeded RNG; the seed is printed
//! and `BALLAST_CRASH_SEED=<seed>` replays the same schedule.

mod common;
mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestServer;
use etcd_client::{Client, GetOptions};
use rand::{Rng, SeedableRng};
use support::{connect, eventually, ok, start_to_exit, wal_segments};

/// Concurrent writers per round.
const WRITERS: usize = 4;
/// Kill/restart rounds on the same data dir.
const ROUNDS: usize = 4;
/// How long a crash-test write may take before the writer gives up on it.
const PUT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a start on a damaged data dir may take to fail.
const FAIL_DEADLINE: Duration = Duration::from_secs(20);

/// Every key under `prefix` with its value and mod revision.
async fn dump(c: &Client, prefix: &str) -> BTreeMap<String, (String, i64)> {
    let resp = ok(
        "dump",
        c.kv_client()
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await,
    );
    resp.kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                (
                    String::from_utf8_lossy(kv.value()).into_owned(),
                    kv.mod_revision(),
                ),
            )
        })
        .collect()
}

async fn current_rev(c: &Client) -> i64 {
    let resp = ok(
        "revision probe",
        c.kv_client().get("__rev_probe__", None).await,
    );
    resp.header().expect("range header").revision()
}

/// Checks that every acknowledged key is present with exactly its
/// acknowledged revision, and that the store is at least that far.
async fn verify_acked(c: &Client, acked: &BTreeMap<String, i64>, context: &str) {
    let stored = dump(c, "crash/").await;
    let mut lost = Vec::new();
    for (key, rev) in acked {
        match stored.get(key) {
            Some((value, mod_rev)) if value == key && mod_rev == rev => {}
            other => lost.push(format!(
                "{key}: acknowledged at revision {rev}, now {other:?}"
            )),
        }
    }
    assert!(
        lost.is_empty(),
        "{context}: {} of {} acknowledged writes are missing or changed, e.g.:\n{}",
        lost.len(),
        acked.len(),
        lost.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
    // Writes in flight at the kill may or may not have landed, but whatever
    // is there must be intact.
    for (key, (value, _)) in &stored {
        assert_eq!(
            key, value,
            "{context}: key {key} holds someone else's value"
        );
    }
    let max_acked = acked.values().copied().max().unwrap_or(0);
    let current = current_rev(c).await;
    assert!(
        current >= max_acked,
        "{context}: revision went back: {current} < acknowledged {max_acked}"
    );
}

fn crash_seed() -> u64 {
    match std::env::var("BALLAST_CRASH_SEED") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|e| panic!("BALLAST_CRASH_SEED={s:?}: {e}")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill9() {
    let seed = crash_seed();
    println!("crash test seed: {seed} (replay with BALLAST_CRASH_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut s = TestServer::start();
    let mut acked: BTreeMap<String, i64> = BTreeMap::new();

    for round in 0..ROUNDS {
        let c = connect(&s).await;
        let count = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, i64)>();
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let mut kv = c.kv_client();
            let tx = tx.clone();
            let count = count.clone();
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("crash/r{round}/w{w}/{i:06}");
                    match tokio::time::timeout(
                        PUT_TIMEOUT,
                        kv.put(key.as_str(), key.as_str(), None),
                    )
                    .await
                    {
                        Ok(Ok(resp)) => {
                            let rev = resp.header().expect("put header").revision();
                            count.fetch_add(1, Ordering::Relaxed);
                            if tx.send((key, rev)).is_err() {
                                return;
                            }
                        }
                        // The server is gone (or stuck): stop this writer.
                        _ => return,
                    }
                }
            }));
        }
        drop(tx);
        // Let the writers get going, then kill at a random moment.
        eventually("first acknowledged writes", Duration::from_secs(10), || {
            let n = count.load(Ordering::Relaxed);
            async move { (n >= WRITERS).then_some(()) }
        })
        .await;
        let delay = Duration::from_millis(rng.random_range(50..=900));
        tokio::time::sleep(delay).await;
        s.kill9();
        for w in writers {
            tokio::time::timeout(PUT_TIMEOUT * 2, w)
                .await
                .expect("a writer did not notice the killed server")
                .expect("writer task panicked");
        }
        let mut this_round = 0;
        let mut revs = HashSet::new();
        while let Some((key, rev)) = rx.recv().await {
            assert!(
                revs.insert(rev),
                "two acknowledged puts share revision {rev}"
            );
            acked.insert(key, rev);
            this_round += 1;
        }
        println!("round {round}: killed after {delay:?}, {this_round} acknowledged writes");

        s.restart();
        let c = connect(&s).await;
        verify_acked(&c, &acked, &format!("after kill #{}", round + 1)).await;
    }
    // One more clean cycle: the data dir is still usable after all that.
    let c = connect(&s).await;
    let rev = ok(
        "put after the last crash",
        c.kv_client().put("crash/final", "crash/final", None).await,
    )
    .header()
    .expect("header")
    .revision();
    acked.insert("crash/final".into(), rev);
    verify_acked(&c, &acked, "after the last restart").await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "crash test took {:?}",
        started.elapsed()
    );
}

/// Writes `n` keys `prefix{i}` (value = key) and returns them with their revisions.
async fn write_keys(c: &Client, prefix: &str, n: usize) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for i in 0..n {
        let key = format!("{prefix}{i:04}");
        let resp = ok(
            "put",
            c.kv_client().put(key.as_str(), key.as_str(), None).await,
        );
        out.insert(key, resp.header().expect("header").revision());
    }
    out
}

#[tokio::test]
async fn torn_wal_tail_is_cut_and_data_kept() {
    if support::against_etcd() {
        eprintln!("skipped: Ballast's WAL layout");
        return;
    }
    let mut s = TestServer::start();
    let c = connect(&s).await;
    let mut acked = write_keys(&c, "crash/torn/", 40).await;
    s.kill9();

    // A write interrupted by the crash: garbage after the last record, inside the
    // space the segment reserves for appends.
    let last = wal_segments(&s.data_dir()).pop().expect("a WAL segment");
    let mut bytes = std::fs::read(&last).expect("read WAL segment");
    let at = records_end(&bytes) + 64;
    let garbage = support::filler(7, 300);
    if bytes.len() < at + garbage.len() {
        bytes.resize(at + garbage.len(), 0);
    }
    bytes[at..at + garbage.len()].copy_from_slice(&garbage);
    std::fs::write(&last, &bytes).expect("write torn WAL segment");

    s.restart();
    let c = connect(&s).await;
    verify_acked(&c, &acked, "after a torn WAL tail").await;
    // The member keeps working on the repaired log, across another crash.
    acked.extend(write_keys(&c, "crash/torn/after/", 5).await);
    s.kill9();
    s.restart();
    let c = connect(&s).await;
    verify_acked(&c, &acked, "after a crash following the repair").await;
}

/// Once the backend has made its state durable (a defragmentation forces
/// that; otherwise it happens every half second under load), a `kill -9`
/// must still leave a data dir the member restarts from.
#[tokio::test]
async fn restart_after_kill9_once_the_backend_is_durable() {
    let mut s = TestServer::start();
    let c = connect(&s).await;
    let mut acked = write_keys(&c, "crash/durable/a/", 10).await;
    ok("defragment", c.maintenance_client().defragment().await);
    acked.extend(write_keys(&c, "crash/durable/b/", 10).await);
    s.kill9();
    s.restart();
    let c = connect(&s).await;
    verify_acked(&c, &acked, "after kill -9 following a defragmentation").await;
}

/// Where a WAL segment's records end: segments are preallocated, and the reserved
/// space after the records reads as zeros.
fn records_end(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

/// Starts the (stopped) server on its damaged data dir and returns its output,
/// asserting that it refused to start.
fn assert_refuses_to_start(s: &TestServer, what: &str) -> String {
    let finished = start_to_exit(s, FAIL_DEADLINE).unwrap_or_else(|running| {
        panic!("the server kept running on a data dir with {what} (silent data loss?): {running:?}")
    });
    assert!(
        !finished.status.success(),
        "the server exited successfully with {what}: {finished:?}"
    );
    format!("{}{}", finished.stderr, finished.stdout)
}

#[tokio::test]
async fn corrupted_wal_record_stops_the_server() {
    if support::against_etcd() {
        eprintln!("skipped: Ballast's WAL layout");
        return;
    }
    let mut s = TestServer::start();
    let c = connect(&s).await;
    write_keys(&c, "crash/walmid/", 60).await;
    s.kill9();

    let seg = wal_segments(&s.data_dir()).pop().expect("a WAL segment");
    let mut bytes = std::fs::read(&seg).expect("read WAL segment");
    assert!(
        bytes.len() > 2048,
        "WAL segment unexpectedly small: {} bytes",
        bytes.len()
    );
    let mid = records_end(&bytes) / 2;
    for b in &mut bytes[mid..mid + 8] {
        *b ^= 0xA5;
    }
    std::fs::write(&seg, &bytes).expect("write damaged WAL segment");

    let out = assert_refuses_to_start(&s, "a corrupted WAL record");
    let lower = out.to_lowercase();
    assert!(
        lower.contains("corrupt"),
        "the error does not say the WAL is corrupt:\n{out}"
    );
    assert!(
        out.contains(&seg.display().to_string()),
        "the error does not name {}:\n{out}",
        seg.display()
    );
    // Refusing must not have "repaired" the log by cutting it.
    assert_eq!(
        std::fs::read(&seg).expect("read WAL segment"),
        bytes,
        "the damaged WAL was modified"
    );
}

#[tokio::test]
async fn garbage_database_file_stops_the_server() {
    if support::against_etcd() {
        eprintln!("skipped: Ballast's data dir layout");
        return;
    }
    let mut s = TestServer::start();
    let c = connect(&s).await;
    write_keys(&c, "crash/db/", 20).await;
    s.kill9();

    let db = support::db_file(&s.data_dir());
    let len = std::fs::metadata(&db).expect("stat db").len() as usize;
    std::fs::write(&db, support::filler(11, len)).expect("overwrite db with garbage");

    let out = assert_refuses_to_start(&s, "a garbage database file");
    assert!(
        out.to_lowercase().contains("corrupt"),
        "the error does not say the database is corrupt:\n{out}"
    );
    assert!(
        out.contains(&db.display().to_string()),
        "the error does not name {}:\n{out}",
        db.display()
    );
}

/// Pages damaged behind an intact header: redb panics on those instead of returning an
/// error; the server catches it and ends with the same clear error as for any damage.
#[tokio::test]
async fn damaged_database_pages_stop_the_server_with_an_error_not_a_panic() {
    if support::against_etcd() {
        eprintln!("skipped: Ballast's data dir layout");
        return;
    }
    let mut s = TestServer::start();
    let c = connect(&s).await;
    write_keys(&c, "crash/dbpages/", 50).await;
    // A clean stop: redb then trusts the file on open (no repair pass that would verify
    // checksums) and meets the damage while reading pages.
    s.stop();

    let db = support::db_file(&s.data_dir());
    let mut bytes = std::fs::read(&db).expect("read db");
    for b in &mut bytes[4096..] {
        *b = 0xFF;
    }
    std::fs::write(&db, &bytes).expect("damage db pages");

    let out = assert_refuses_to_start(&s, "damaged database pages");
    assert!(
        out.contains("data corrupted: cannot open the database"),
        "the error does not say the database is corrupt:\n{out}"
    );
}

/// A database the server may not read is not a damaged one: the error says what is wrong
/// and never the words the operator takes for corruption (it would renew the volume).
#[tokio::test]
async fn an_unreadable_database_is_reported_as_a_permission_problem_not_corruption() {
    if support::against_etcd() {
        eprintln!("skipped: Ballast's data dir layout");
        return;
    }
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    assert!(
        is_root,
        "this test drops to an unprivileged user with setpriv: run the suite as root (CI does)"
    );
    const USER: u32 = 65532;
    let mut s = TestServer::start();
    let c = connect(&s).await;
    write_keys(&c, "crash/perm/", 10).await;
    s.stop();

    // The user owns the data dir and can reach it, but not the database file.
    let data_dir = s.data_dir();
    let status = std::process::Command::new("chown")
        .args(["-R", &format!("{USER}:{USER}")])
        .arg(s.scratch_dir())
        .status()
        .expect("chown runs");
    assert!(status.success());
    use std::os::unix::fs::PermissionsExt;
    let mut dir = Some(s.scratch_dir());
    while let Some(d) = dir {
        let mode = std::fs::metadata(d).expect("stat").permissions().mode();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o711)).expect("chmod");
        dir = d.parent();
    }
    let db = support::db_file(&data_dir);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o000)).expect("chmod db");

    let finished = support::start_to_exit_as(&s, Some(USER), FAIL_DEADLINE)
        .unwrap_or_else(|running| panic!("the server ran without its database: {running:?}"));
    assert!(!finished.status.success());
    let out = format!("{}{}", finished.stderr, finished.stdout);
    assert!(
        out.to_lowercase().contains("permission denied"),
        "the error does not say permission denied:\n{out}"
    );
    for corrupt in ["data corrupted: ", " is corrupt at byte offset "] {
        assert!(
            !out.contains(corrupt),
            "a permission problem reads as corruption ({corrupt:?}):\n{out}"
        );
    }
    // Nothing was changed on the way: the file is as it was.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).expect("chmod db");
    assert!(
        std::fs::metadata(&db).expect("db").len() > 0,
        "the database is still there"
    );
}

#[tokio::test]
async fn missing_database_with_existing_wal_stops_the_server() {
    if support::against_etcd() {
        eprintln!("skipped: Ballast's data dir layout");
        return;
    }
    let mut s = TestServer::start();
    let c = connect(&s).await;
    write_keys(&c, "crash/nodb/", 5).await;
    s.kill9();
    let db = support::db_file(&s.data_dir());
    std::fs::remove_file(&db).expect("remove db");
    // A WAL without its database must not start as an empty member.
    let out = assert_refuses_to_start(&s, "a WAL but no database");
    assert!(
        out.contains(&db.display().to_string()),
        "the error does not name {}:\n{out}",
        db.display()
    );
}
