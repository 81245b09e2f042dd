//! Ballast tables → etcd snapshot → status and restore, in process.

use std::sync::Arc;

use redb::{ReadableTable, ReadableTableMetadata};

use super::{export, layout, restore, status, stream};
use crate::mvcc::backend::{self, meta, Backend, ALARMS, KV, LEASES, META};
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
    let db_path = restore::restore(&file, &data, None, false).expect("restore");
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
    let again = restore::restore(&file, &data, None, false).expect_err("second restore");
    assert!(again.to_string().contains("exists"), "{again}");
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
        &restore::restore(&file, &dir.path().join("r"), None, false).expect("restore"),
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
        let err = restore::restore(&path, &target, None, false)
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
    restore::restore(&bare, &dir.path().join("from-bare"), None, true).expect("skip hash check");
    // With the hash check skipped, damage inside the pages is still caught where it shows.
    let mut broken_meta = good;
    broken_meta[16] ^= 1;
    broken_meta[4096 + 16] ^= 1;
    let path = dir.path().join("broken-meta");
    std::fs::write(&path, broken_meta).expect("write");
    let err = restore::restore(&path, &dir.path().join("bm"), None, true)
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
    let err = restore::restore(&path, &target, None, true)
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
