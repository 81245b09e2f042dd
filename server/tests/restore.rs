//! Snapshots taken while a client keeps writing restore to exactly the
//! source's state at the snapshot's revision; `ballast snapshot restore`
//! refuses to overwrite a member and refuses damaged snapshot files.
//!
//! These drive Ballast's own offline tool (`ballast snapshot status|restore`),
//! so they are skipped when the suite runs against etcd.

mod common;
mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use etcd_client::{Client, GetOptions, PutOptions};
use support::{connect, db_file, eventually, ok, run_ballast, within, Finished};
use tokio::io::AsyncWriteExt;

const TOOL_DEADLINE: Duration = Duration::from_secs(30);
const LEASE_TTL: i64 = 3600;

/// (key, value, create_revision, mod_revision, version, lease) of every key.
type Dump = Vec<(String, String, i64, i64, i64, i64)>;

/// Every key of the store, read at `rev` (0 = current), and the header revision.
async fn dump_all(c: &Client, rev: i64) -> (Dump, i64) {
    let opts = GetOptions::new().with_all_keys().with_revision(rev);
    let resp = ok("read every key", c.kv_client().get("", Some(opts)).await);
    let kvs = resp
        .kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                String::from_utf8_lossy(kv.value()).into_owned(),
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
                kv.lease(),
            )
        })
        .collect();
    (kvs, resp.header().expect("range header").revision())
}

async fn current_rev(c: &Client) -> i64 {
    let resp = ok(
        "revision probe",
        c.kv_client().get("__rev_probe__", None).await,
    );
    resp.header().expect("range header").revision()
}

/// A client that keeps writing until told to stop: new keys, overwrites of
/// one hot key, and deletes, so the history has every kind of change.
struct Writer {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn spawn(c: &Client) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let mut kv = c.kv_client();
        let (stop2, done2) = (stop.clone(), done.clone());
        let task = tokio::spawn(async move {
            let mut n = 0usize;
            while !stop2.load(Ordering::Relaxed) {
                let what = format!("writer op {n}");
                match n % 5 {
                    3 => {
                        ok(
                            &what,
                            within(&what, kv.put("live/hot", format!("hot-{n}"), None)).await,
                        );
                    }
                    4 => {
                        let victim = format!("live/{:06}", n - 4);
                        ok(&what, within(&what, kv.delete(victim, None)).await);
                    }
                    _ => {
                        let key = format!("live/{n:06}");
                        ok(
                            &what,
                            within(&what, kv.put(key.as_str(), format!("v{n}"), None)).await,
                        );
                    }
                }
                n += 1;
                done2.store(n, Ordering::Relaxed);
            }
        });
        Writer { stop, done, task }
    }

    fn count(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    async fn wait_for(&self, n: usize, what: &str) {
        eventually(what, Duration::from_secs(20), || {
            let have = self.count();
            async move { (have >= n).then_some(()) }
        })
        .await;
    }

    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        within("writer stops", self.task)
            .await
            .expect("writer task failed");
        self.done.load(Ordering::Relaxed)
    }
}

/// Some history before the writer starts: overwrites, deletes, a leased key.
async fn seed(c: &Client) -> i64 {
    let mut kv = c.kv_client();
    for i in 0..30 {
        ok(
            "seed put",
            kv.put(format!("base/{i:02}"), format!("first-{i}"), None)
                .await,
        );
    }
    for i in 0..10 {
        ok(
            "seed overwrite",
            kv.put(format!("base/{i:02}"), format!("second-{i}"), None)
                .await,
        );
    }
    for i in 20..25 {
        ok("seed delete", kv.delete(format!("base/{i:02}"), None).await);
    }
    let lease = ok("grant", c.lease_client().grant(LEASE_TTL, None).await).id();
    ok(
        "leased put",
        kv.put(
            "lease/k",
            "leased",
            Some(PutOptions::new().with_lease(lease)),
        )
        .await,
    );
    lease
}

/// Takes a snapshot through Maintenance.Snapshot (etcd-client) into `path`.
async fn snapshot_grpc(c: &Client, path: &Path) {
    let mut stream = within("open snapshot stream", c.maintenance_client().snapshot())
        .await
        .unwrap_or_else(|e| panic!("Maintenance.Snapshot: {e:?}"));
    let mut file = tokio::fs::File::create(path)
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let mut last_remaining = None;
    while let Some(msg) = within("snapshot chunk", stream.message())
        .await
        .unwrap_or_else(|e| panic!("snapshot stream failed: {e:?}"))
    {
        file.write_all(msg.blob())
            .await
            .expect("write snapshot chunk");
        last_remaining = Some(msg.remaining_bytes());
    }
    assert_eq!(
        last_remaining,
        Some(0),
        "the snapshot stream must end with remaining_bytes = 0"
    );
    file.sync_all().await.expect("sync snapshot file");
}

/// `ballast snapshot status FILE -w json`, parsed.
fn snapshot_status(path: &Path) -> serde_json::Value {
    let out = run_ballast(
        &[
            "snapshot",
            "status",
            &path.display().to_string(),
            "-w",
            "json",
        ],
        TOOL_DEADLINE,
    );
    assert!(out.status.success(), "snapshot status failed: {out:?}");
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("snapshot status printed invalid JSON ({e}): {out:?}"))
}

fn restore(path: &Path, data_dir: &Path) -> Finished {
    run_ballast(
        &[
            "snapshot",
            "restore",
            &path.display().to_string(),
            "--data-dir",
            &data_dir.display().to_string(),
        ],
        TOOL_DEADLINE,
    )
}

/// Snapshot while writing, then restore and compare with the source read at
/// the snapshot's revision.
async fn snapshot_while_writing_restores_state_at_its_revision(via_etcdctl: bool) {
    let src = TestServer::start();
    let c = connect(&src).await;
    let lease = seed(&c).await;
    let writer = Writer::spawn(&c);
    writer.wait_for(50, "writes before the snapshot").await;

    let rev_before = current_rev(&c).await;
    let file = src.scratch_dir().join("backup.db");
    if via_etcdctl {
        let path = file.display().to_string();
        let out = tokio::task::block_in_place(|| src.etcdctl(&["snapshot", "save", &path]));
        let out = out.ok();
        assert!(
            out.contains("Snapshot saved at"),
            "etcdctl snapshot save: {out}"
        );
    } else {
        snapshot_grpc(&c, &file).await;
    }
    let rev_after = current_rev(&c).await;
    let at_snapshot_end = writer.count();
    writer
        .wait_for(at_snapshot_end + 50, "writes after the snapshot")
        .await;
    let total = writer.finish().await;
    assert!(total > at_snapshot_end, "the writer kept writing");

    let st = snapshot_status(&file);
    let rev = st["revision"]
        .as_i64()
        .unwrap_or_else(|| panic!("no revision in {st}"));
    assert!(
        (rev_before..=rev_after).contains(&rev),
        "snapshot revision {rev} outside the window [{rev_before}, {rev_after}] it was taken in"
    );
    assert!(
        st["totalKey"].as_u64().is_some_and(|n| n > 0),
        "totalKey in {st}"
    );
    let size = std::fs::metadata(&file).expect("stat snapshot").len();
    assert!(
        st["totalSize"].as_u64().is_some_and(|n| n > 0 && n <= size),
        "totalSize in {st} (file {size} bytes)"
    );
    assert!(st["hash"].as_u64().is_some(), "hash in {st}");

    // Restore into the data dir of a second server and start it there.
    let mut dst = TestServer::start();
    dst.kill9();
    std::fs::remove_dir_all(dst.data_dir()).expect("clear the new member's data dir");
    let out = restore(&file, &dst.data_dir());
    assert!(out.status.success(), "snapshot restore failed: {out:?}");
    tokio::task::block_in_place(|| dst.restart());
    let d = connect(&dst).await;

    let (want, _) = dump_all(&c, rev).await;
    let (got, got_rev) = dump_all(&d, 0).await;
    assert_eq!(
        got_rev, rev,
        "the restored member starts at the snapshot's revision"
    );
    assert!(
        want.iter().any(|kv| kv.0.starts_with("live/")),
        "the snapshot caught some of the writer's keys"
    );
    if want != got {
        let missing: Vec<_> = want.iter().filter(|kv| !got.contains(kv)).take(5).collect();
        let extra: Vec<_> = got.iter().filter(|kv| !want.contains(kv)).take(5).collect();
        panic!(
            "restored data differs from the source at revision {rev}: {} keys vs {}; \
             missing or changed (first 5): {missing:?}; unexpected (first 5): {extra:?}",
            got.len(),
            want.len()
        );
    }
    // Leases come along, and the member takes new writes after the snapshot's revision.
    let ttl = ok(
        "time_to_live",
        d.lease_client().time_to_live(lease, None).await,
    );
    assert_eq!(ttl.granted_ttl(), LEASE_TTL, "lease restored: {ttl:?}");
    let next = ok(
        "put on the restored member",
        d.kv_client().put("after/restore", "x", None).await,
    );
    assert_eq!(next.header().expect("header").revision(), rev + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_snapshot_while_writing_restores_state_at_its_revision() {
    if support::against_etcd() {
        eprintln!("skipped: uses Ballast's snapshot tool");
        return;
    }
    snapshot_while_writing_restores_state_at_its_revision(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_snapshot_save_while_writing_restores_state_at_its_revision() {
    if support::against_etcd() {
        eprintln!("skipped: uses Ballast's snapshot tool");
        return;
    }
    snapshot_while_writing_restores_state_at_its_revision(true).await;
}

/// A snapshot of a small store, for the refusal tests.
async fn small_snapshot(s: &TestServer) -> PathBuf {
    let c = connect(s).await;
    seed(&c).await;
    let file = s.scratch_dir().join("small.db");
    snapshot_grpc(&c, &file).await;
    file
}

#[tokio::test]
async fn restore_refuses_an_existing_member() {
    if support::against_etcd() {
        eprintln!("skipped: uses Ballast's snapshot tool");
        return;
    }
    let s = TestServer::start();
    let file = small_snapshot(&s).await;
    let target = s.scratch_dir().join("restored");
    let out = restore(&file, &target);
    assert!(out.status.success(), "first restore failed: {out:?}");
    let db = db_file(&target);
    let before = std::fs::read(&db).expect("read restored db");

    let out = restore(&file, &target);
    assert!(
        !out.status.success(),
        "restore over an existing member succeeded: {out:?}"
    );
    let target_text = target.display().to_string();
    assert!(
        out.stderr.contains("exists") && out.stderr.contains(&target_text),
        "the error must say that {target_text} exists: {out:?}"
    );
    assert_eq!(
        std::fs::read(&db).expect("read restored db"),
        before,
        "the existing member's db was touched"
    );

    // The running server's own data dir is refused too.
    let out = restore(&file, &s.data_dir());
    assert!(
        !out.status.success(),
        "restore over a running member's data dir succeeded: {out:?}"
    );
}

#[tokio::test]
async fn restore_and_status_refuse_damaged_snapshots() {
    if support::against_etcd() {
        eprintln!("skipped: uses Ballast's snapshot tool");
        return;
    }
    let s = TestServer::start();
    let file = small_snapshot(&s).await;
    let good = std::fs::read(&file).expect("read snapshot");
    assert_eq!(
        snapshot_status(&file)["revision"].as_i64().map(|r| r > 0),
        Some(true)
    );

    let mid = good.len() / 2;
    let mut flipped_mid = good.clone();
    flipped_mid[mid] ^= 0x01;
    let mut flipped_hash = good.clone();
    *flipped_hash.last_mut().expect("non-empty") ^= 0x80;
    let damaged: [(&str, Vec<u8>); 5] = [
        ("truncated by 1 byte", good[..good.len() - 1].to_vec()),
        ("truncated by 512 bytes", good[..good.len() - 512].to_vec()),
        ("truncated to half", good[..mid].to_vec()),
        ("one bit flipped in the middle", flipped_mid),
        ("one bit flipped in the checksum", flipped_hash),
    ];
    for (i, (what, bytes)) in damaged.into_iter().enumerate() {
        let path = s.scratch_dir().join(format!("damaged-{i}.db"));
        std::fs::write(&path, &bytes).expect("write damaged snapshot");
        let path_text = path.display().to_string();
        let clear = |out: &Finished| {
            let text = out.stderr.to_lowercase();
            out.stderr.contains(&path_text)
                && ["corrupt", "truncated", "mismatch", "does not match"]
                    .iter()
                    .any(|w| text.contains(w))
        };

        let out = run_ballast(
            &["snapshot", "status", &path_text, "-w", "json"],
            TOOL_DEADLINE,
        );
        assert!(
            !out.status.success(),
            "snapshot status accepted a snapshot {what}: {out:?}"
        );
        assert!(
            clear(&out),
            "snapshot status: unclear error for a snapshot {what}: {out:?}"
        );

        let target = s.scratch_dir().join(format!("restore-{i}"));
        let out = restore(&path, &target);
        assert!(
            !out.status.success(),
            "restore accepted a snapshot {what}: {out:?}"
        );
        assert!(
            clear(&out),
            "restore: unclear error for a snapshot {what}: {out:?}"
        );
        assert!(
            !db_file(&target).exists(),
            "restore left a database behind for a snapshot {what}"
        );
    }
}
