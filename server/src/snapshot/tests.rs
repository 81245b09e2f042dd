//! Ballast tables → etcd snapshot → status and restore, in process.

use std::sync::Arc;

use redb::{ReadableTable, ReadableTableMetadata};

use super::{export, layout, restore, status, stream};
use crate::mvcc::backend::{self, meta, Backend, ALARMS, KV, LEASES, META};
use crate::mvcc::compaction::test_support::{compact, compacted_store};
use crate::mvcc::{KvStore, Revision};

const KEYS: usize = 3000;

/// A member database with history, a compaction, a lease and an alarm.
fn sample(dir: &std::path::Path) -> Arc<Backend> {
    let backend = Arc::new(Backend::open(&dir.join("src.db")).expect("open"));
    let (store, _) = KvStore::open(backend.clone()).expect("store");
    let txn = store.begin_batch(true).expect("batch");
    let mut b = txn.batch().expect("tables");
    for i in 0..KEYS {
        b.put(
            format!("key/{i:05}").as_bytes(),
            vec![b'x'; i % 300],
            0,
            None,
        )
        .expect("put");
        b.end_request();
    }
    b.put(b"leased", b"v".to_vec(), 0x1234, None).expect("put");
    b.end_request();
    b.compact(100).expect("compact");
    let finished = b.finish(77, 3).expect("finish");
    txn.commit(finished).expect("commit");
    store.finish_compaction().expect("compaction steps");
    let txn = backend.write(true).expect("write");
    txn.open_table(LEASES)
        .expect("leases")
        .insert(0x1234, 600)
        .expect("lease");
    txn.open_table(ALARMS)
        .expect("alarms")
        .insert((9, 1), ())
        .expect("alarm");
    txn.commit().expect("commit");
    backend
}

fn snapshot_file(backend: &Backend, dir: &std::path::Path) -> std::path::PathBuf {
    let txn = backend.read().expect("read");
    let db = tempfile::tempfile_in(dir).expect("temp");
    let (db, size) = export::write_db(&txn, db, "3.5.0").expect("export");
    assert_eq!(db.metadata().expect("stat").len(), size);
    let mut out = Vec::new();
    let mut remaining = Vec::new();
    stream(db, |chunk, left| {
        out.extend_from_slice(&chunk);
        remaining.push(left);
        Ok(())
    })
    .expect("stream");
    assert_eq!(out.len() as u64, size + 32);
    assert_eq!(
        out.len() % 512,
        32,
        "etcdctl recognises the hash by the size"
    );
    assert_eq!(remaining.last(), Some(&0));
    let path = dir.join("snap.db");
    std::fs::write(&path, out).expect("write");
    path
}

#[test]
fn export_status_restore_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = sample(dir.path());
    let file = snapshot_file(&src, dir.path());

    let st = status::status(&file).expect("status");
    assert_eq!(st.revision, KEYS as i64 + 2);
    // Keys, plus meta (4), lease, alarm, cluster version and auth revision.
    let kv_count = src
        .read()
        .expect("read")
        .open_table(KV)
        .expect("kv")
        .len()
        .expect("len");
    assert_eq!(st.total_key, kv_count + 4 + 1 + 1 + 1 + 1);
    assert_eq!(
        st.total_size + 32,
        std::fs::metadata(&file).expect("stat").len()
    );

    let db = super::open_db(&file).expect("open");
    let lease: Vec<_> = db
        .bucket(layout::LEASE)
        .expect("b")
        .expect("lease")
        .collect::<Result<_, _>>()
        .expect("e");
    assert_eq!(
        lease,
        vec![(
            layout::lease_key(0x1234).to_vec(),
            layout::lease_value(0x1234, 600)
        )]
    );

    let data = dir.path().join("restored");
    let db_path =
        restore::restore(&file, &data, None, false, Default::default(), None).expect("restore");
    assert!(!data.join("member.restoring").exists());
    let dst = Backend::open(&db_path).expect("open restored");
    let (s, d) = (src.read().expect("read"), dst.read().expect("read"));
    let all = |t: &redb::ReadTransaction| -> Vec<(Vec<u8>, Vec<u8>)> {
        t.open_table(KV)
            .expect("kv")
            .iter()
            .expect("iter")
            .map(|e| {
                e.map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))
                    .expect("entry")
            })
            .collect()
    };
    assert_eq!(all(&s), all(&d));
    let m = d.open_table(META).expect("meta");
    assert_eq!(
        backend::get_u64(&m, meta::COMPACT_REV).expect("compact"),
        100
    );
    assert_eq!(
        backend::get_u64(&m, meta::CURRENT_REV).expect("current"),
        KEYS as u64 + 2
    );
    assert_eq!(
        backend::get_u64(&m, meta::APPLIED_INDEX).expect("applied"),
        0
    );
    assert_eq!(
        d.open_table(LEASES)
            .expect("leases")
            .get(0x1234)
            .expect("get")
            .map(|v| v.value()),
        Some(600)
    );
    assert!(
        d.open_table(ALARMS)
            .expect("alarms")
            .is_empty()
            .expect("len"),
        "alarms are the old cluster's"
    );

    // Never over an existing member.
    let again = restore::restore(&file, &data, None, false, Default::default(), None)
        .expect_err("second restore");
    assert!(again.to_string().contains("exists"), "{again}");
}

#[test]
fn a_snapshot_taken_while_a_compaction_deletes_is_finished_by_the_restore() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 3000 revisions of 10 keys; compacting at 500 and then at 2500 drops 2000 more, two
    // steps' worth.
    let (backend, store) = compacted_store(dir.path(), 3000, 500);
    store.finish_compaction().expect("first compaction's steps");
    compact(&store, 2500);
    assert!(store.compaction_step().expect("one step"), "steps remain");

    let file = snapshot_file(&backend, dir.path());
    let db = super::open_db(&file).expect("open");
    let meta_bucket: std::collections::BTreeMap<_, _> = db
        .bucket(layout::META)
        .expect("b")
        .expect("meta")
        .collect::<Result<_, _>>()
        .expect("e");
    // etcd restoring this file finishes the compaction at 2500 itself.
    let rev = |r| Some(layout::revision_bytes(r).to_vec());
    assert_eq!(
        meta_bucket.get(layout::SCHEDULED_COMPACT_REV).cloned(),
        rev(2500)
    );
    assert_eq!(
        meta_bucket.get(layout::FINISHED_COMPACT_REV).cloned(),
        rev(500)
    );

    let data = dir.path().join("restored");
    let db_path =
        restore::restore(&file, &data, None, false, Default::default(), None).expect("restore");
    let dst = Backend::open(&db_path).expect("open restored");
    let revs: Vec<i64> = dst
        .read()
        .expect("read")
        .open_table(KV)
        .expect("kv")
        .iter()
        .expect("iter")
        .map(|e| {
            let (k, _) = e.expect("entry");
            Revision::from_key(k.value()).expect("revision").0.main
        })
        .collect();
    // Puts made revisions 2 to 3001: what stays is the newest of each key at 2500
    // (2491..=2500) and everything after.
    assert_eq!(revs, (2491..=3001).collect::<Vec<_>>());
}

/// Leaf and branch pages of the `kv` table, and of the whole database.
fn pages(backend: &Backend) -> ((u64, u64), (u64, u64)) {
    let txn = backend.read().expect("read");
    let kv = txn.open_table(KV).expect("kv").stats().expect("kv stats");
    let write = backend.write(false).expect("write");
    let all = write.stats().expect("stats");
    write.abort().expect("abort");
    (
        (kv.leaf_pages(), kv.branch_pages()),
        (all.leaf_pages(), all.branch_pages()),
    )
}

#[test]
fn restore_lays_revisions_out_and_trims_the_file_as_defrag_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Arc::new(Backend::open(&dir.path().join("src.db")).expect("open"));
    let (store, _) = KvStore::open(backend.clone()).expect("store");
    let txn = store.begin_batch(true).expect("batch");
    let mut b = txn.batch().expect("tables");
    // About 6 MiB of 1 KiB values: several cursor flushes and transactions of the restore.
    for i in 0..6_000 {
        b.put(format!("key/{i:05}").as_bytes(), vec![b'v'; 1024], 0, None)
            .expect("put");
        b.end_request();
    }
    let finished = b.finish(1, 1).expect("finish");
    txn.commit(finished).expect("commit");
    let file = snapshot_file(&backend, dir.path());

    let restored = Backend::open(
        &restore::restore(
            &file,
            &dir.path().join("r"),
            None,
            false,
            Default::default(),
            None,
        )
        .expect("restore"),
    )
    .expect("open restored");
    let after_restore = (pages(&restored), restored.size());
    restored.defragment().expect("defragment");
    assert_eq!(
        after_restore,
        (pages(&restored), restored.size()),
        "(kv pages, all pages), file length: after restore, then after a defrag"
    );
}

#[test]
fn damaged_snapshots_are_refused_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = snapshot_file(&sample(dir.path()), dir.path());
    let good = std::fs::read(&file).expect("read");
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x10;
    let cases = [
        ("flipped", flipped.clone(), "does not match"),
        ("short", good[..good.len() - 1].to_vec(), "truncated"),
        (
            "bare",
            good[..good.len() - 32].to_vec(),
            "--skip-hash-check",
        ),
    ];
    for (name, bytes, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        let target = dir.path().join(format!("restore-{name}"));
        let err = restore::restore(&path, &target, None, false, Default::default(), None)
            .expect_err(name)
            .to_string();
        assert!(
            err.contains(want) && err.contains(&path.display().to_string()),
            "{name}: {err}"
        );
        assert!(
            !target.exists(),
            "{name}: restore left {} behind",
            target.display()
        );
    }
    // A bare database restores with --skip-hash-check, as with etcdctl.
    let bare = dir.path().join("bare");
    restore::restore(
        &bare,
        &dir.path().join("from-bare"),
        None,
        true,
        Default::default(),
        None,
    )
    .expect("skip hash check");
    // With the hash check skipped, damage inside the pages is still caught where it shows.
    let mut broken_meta = good;
    broken_meta[16] ^= 1;
    broken_meta[4096 + 16] ^= 1;
    let path = dir.path().join("broken-meta");
    std::fs::write(&path, broken_meta).expect("write");
    let err = restore::restore(
        &path,
        &dir.path().join("bm"),
        None,
        true,
        Default::default(),
        None,
    )
    .expect_err("bad metas")
    .to_string();
    assert!(err.contains("not an etcd/bbolt snapshot"), "{err}");

    // A revision key rewritten into its predecessor's: the bucket repeats a revision.
    let mut repeated = std::fs::read(&bare).expect("read");
    let at = Revision::new(6, 0).to_key(false);
    let pos = only_position(&repeated, &at);
    repeated[pos..pos + at.len()].copy_from_slice(&Revision::new(5, 0).to_key(false));
    let path = dir.path().join("repeated");
    std::fs::write(&path, repeated).expect("write");
    let target = dir.path().join("restore-repeated");
    let err = restore::restore(&path, &target, None, true, Default::default(), None)
        .expect_err("repeated revision")
        .to_string();
    assert!(err.contains("keys out of order"), "{err}");
    assert!(!target.exists(), "restore left {} behind", target.display());
}

/// Where `needle` occurs in `haystack`, which must hold it exactly once.
fn only_position(haystack: &[u8], needle: &[u8]) -> usize {
    let found: Vec<usize> = haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(found.len(), 1, "{needle:?} occurs {} times", found.len());
    found[0]
}

#[test]
fn bump_revision_moves_the_store_and_compacts_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = sample(dir.path());
    let file = snapshot_file(&src, dir.path());
    let newest = KEYS as i64 + 2;
    let bump = restore::RevisionBump {
        amount: 1000,
        mark_compacted: true,
    };
    let db_path = restore::restore(&file, &dir.path().join("bumped"), None, false, bump, None)
        .expect("restore");
    let backend = Arc::new(Backend::open(&db_path).expect("open restored"));
    let (store, _) = KvStore::open(backend.clone()).expect("store");
    assert_eq!(store.current_revision(), newest + 1000);
    assert_eq!(store.compact_revision(), newest + 1000);
    // Compacted there: only the newest revision of each key is left.
    let kv_len = backend
        .read()
        .expect("read")
        .open_table(KV)
        .expect("kv")
        .len()
        .expect("len");
    assert_eq!(kv_len, KEYS as u64 + 1);
}

#[test]
fn bump_flags_are_checked_as_etcdutl_checks_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (amount, mark_compacted) in [(5, false), (0, true)] {
        let bump = restore::RevisionBump {
            amount,
            mark_compacted,
        };
        assert_eq!(
            bump.check(),
            Err("--mark-compacted required if --revision-bump > 0".to_string())
        );
        let target = dir.path().join(format!("r-{amount}"));
        let err = restore::restore(
            &dir.path().join("none.db"),
            &target,
            None,
            false,
            bump,
            None,
        )
        .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "--mark-compacted required if --revision-bump > 0"
        );
        assert!(!target.exists());
    }
    assert_eq!(restore::RevisionBump::default().check(), Ok(()));
}

#[test]
fn new_cluster_flags_are_checked_as_etcd_checks_them() {
    let cluster = |name: &str, advertise: Option<&str>| restore::NewCluster {
        name: name.to_string(),
        initial_cluster: "a=http://127.0.0.1:1,b=http://127.0.0.1:2".to_string(),
        token: "t".to_string(),
        advertise_peer_urls: advertise.map(str::to_string),
    };
    let members = cluster("a", Some("http://127.0.0.1:1"))
        .members()
        .expect("valid");
    assert_eq!(
        members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let err = |c: restore::NewCluster| c.members().expect_err("refused").to_string();
    assert_eq!(
        err(cluster("c", None)),
        "couldn't find local name \"c\" in the initial cluster configuration"
    );
    assert_eq!(
        err(cluster("a", Some("http://127.0.0.1:3"))),
        "--initial-cluster has a=http://127.0.0.1:1 but missing from \
         --initial-advertise-peer-urls=http://127.0.0.1:3 \
         (resolved urls: \"http://127.0.0.1:3\" != \"http://127.0.0.1:1\")"
    );
    assert_eq!(
        err(cluster("a", Some("http://127.0.0.1:1,http://127.0.0.1:3"))),
        "--initial-advertise-peer-urls has http://127.0.0.1:3 but missing from \
         --initial-cluster=a=http://127.0.0.1:1,a=http://127.0.0.1:3"
    );
}
