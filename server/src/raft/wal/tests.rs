use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use raft::eraftpb::{ConfState, Entry, EntryType, HardState};
use tempfile::TempDir;

use super::format::{self, Decoded, Record};
use super::{Recovered, SnapshotMark, Wal, WalError, WalOptions};

fn entry(index: u64, term: u64) -> Entry {
    let mut e = Entry {
        term,
        index,
        data: format!("value-{index}-{term}").into_bytes(),
        ..Entry::default()
    };
    if index.is_multiple_of(3) {
        e.entry_type = EntryType::EntryConfChange as i32;
        e.context = vec![0xff, 0, index as u8];
    }
    e
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term)).collect()
}

fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState { term, vote, commit }
}

/// Without preallocation: these tests damage files right after their records.
fn opts(segment_size: u64) -> WalOptions {
    WalOptions {
        segment_size,
        preallocate: false,
    }
}

fn reopen(dir: &Path, segment_size: u64) -> (Wal, Recovered) {
    match Wal::open_with(dir, opts(segment_size)) {
        Ok(r) => r,
        Err(e) => panic!("reopening {} failed: {e}", dir.display()),
    }
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read dir")
        .map(|d| d.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    files.sort();
    files
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for f in fs::read_dir(from).expect("read dir") {
        let f = f.expect("dir entry");
        fs::copy(f.path(), to.join(f.file_name())).expect("copy");
    }
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).expect("metadata").len()
}

fn set_len(path: &Path, len: u64) {
    let f = fs::OpenOptions::new().write(true).open(path).expect("open");
    f.set_len(len).expect("set_len");
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(bytes).expect("write");
}

/// Offset of the record holding entry `index`, from the WAL's own index.
fn offset_of(wal: &Wal, index: u64) -> u64 {
    wal.index
        .after(0)
        .find(|&(i, _)| i == index)
        .map(|(_, loc)| loc.offset)
        .expect("entry is in the log")
}

fn expect_corrupt(dir: &Path) -> (PathBuf, u64, String) {
    match Wal::open_with(dir, opts(1 << 20)) {
        Err(e @ WalError::Corrupt { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("re-add"),
                "message should say what to do: {msg}"
            );
            let WalError::Corrupt { file, offset, .. } = e else {
                unreachable!()
            };
            (file, offset, msg)
        }
        Err(e) => panic!("expected corruption, got {e}"),
        Ok((_, rec)) => panic!("expected corruption, recovered {rec:?}"),
    }
}

#[test]
fn round_trip_entries_and_hard_state() {
    let tmp = TempDir::new().expect("tempdir");
    let dir = tmp.path().join("wal");
    assert!(!Wal::exists(&dir));
    let mut wal = Wal::create(&dir).expect("create");
    assert!(Wal::exists(&dir));
    let mut big = entry(9, 2);
    big.data = (0..100_000u32).map(|i| i as u8).collect();
    let mut empty = entry(10, 2);
    empty.data.clear();
    empty.context.clear();
    wal.append(&entries(1..=5, 1), Some(&hs(1, 1, 3)))
        .expect("append");
    wal.sync().expect("sync");
    wal.append(&entries(6..=8, 2), None).expect("append");
    wal.append(&[big.clone(), empty.clone()], Some(&hs(2, 3, 8)))
        .expect("append");
    wal.sync().expect("sync");
    assert_eq!(wal.last_index(), 10);
    drop(wal);

    let (wal, rec) = Wal::open(&dir).expect("open");
    let mut want = entries(1..=5, 1);
    want.extend(entries(6..=8, 2));
    want.push(big);
    want.push(empty);
    assert_eq!(rec.entries, want);
    assert_eq!(rec.hard_state, hs(2, 3, 8));
    assert_eq!(rec.snapshot, None);
    assert_eq!(wal.last_index(), 10);
    assert_eq!(wal.hard_state(), &hs(2, 3, 8));
}

#[test]
fn create_and_open_guard_against_mixups() {
    let tmp = TempDir::new().expect("tempdir");
    let dir = tmp.path().join("member");
    assert!(matches!(Wal::open(&dir), Err(WalError::NotFound(_))));
    fs::create_dir_all(&dir).expect("mkdir");
    assert!(matches!(Wal::open(&dir), Err(WalError::NotFound(_))));

    let mut wal = Wal::create(&dir).expect("create");
    wal.append(&entries(1..=2, 1), None).expect("append");
    wal.sync().expect("sync");
    drop(wal);
    assert!(matches!(Wal::create(&dir), Err(WalError::AlreadyExists(_))));
    let (_, rec) = Wal::open(&dir).expect("open");
    assert_eq!(
        rec.entries,
        entries(1..=2, 1),
        "failed create must not touch the log"
    );
}

#[test]
fn invalid_appends_are_rejected_without_writing() {
    let tmp = TempDir::new().expect("tempdir");
    let mut wal = Wal::create(tmp.path()).expect("create");
    // The first entry of a log without a snapshot mark is 1.
    assert!(matches!(
        wal.append(&[entry(2, 1)], None),
        Err(WalError::InvalidArgument(_))
    ));
    wal.append(&entries(1..=3, 1), None).expect("append");
    let gap = wal.append(&[entry(5, 1)], None);
    assert!(matches!(&gap, Err(WalError::InvalidArgument(m)) if m.contains("gap")));
    let holes = wal.append(&[entry(4, 1), entry(6, 1)], None);
    assert!(matches!(holes, Err(WalError::InvalidArgument(_))));
    // Still usable, and nothing of the rejected calls reached the log.
    wal.append(&[entry(4, 1)], None).expect("append");
    wal.sync().expect("sync");
    drop(wal);
    let (_, rec) = reopen(tmp.path(), 1 << 20);
    assert_eq!(rec.entries, entries(1..=4, 1));
}

#[test]
fn conflicting_tail_is_overwritten() {
    let tmp = TempDir::new().expect("tempdir");
    let mut wal = Wal::create(tmp.path()).expect("create");
    wal.append(&entries(1..=10, 1), Some(&hs(1, 1, 4)))
        .expect("append");
    wal.sync().expect("sync");
    // A new leader overwrites the uncommitted tail from index 6.
    wal.append(&entries(6..=7, 2), Some(&hs(2, 2, 5)))
        .expect("append");
    wal.sync().expect("sync");
    assert_eq!(wal.last_index(), 7);
    drop(wal);

    let (mut wal, rec) = reopen(tmp.path(), 1 << 20);
    let mut want = entries(1..=5, 1);
    want.extend(entries(6..=7, 2));
    assert_eq!(rec.entries, want);
    assert_eq!(rec.hard_state, hs(2, 2, 5));

    // Overwriting exactly the last entry, then extending.
    wal.append(&entries(7..=9, 3), None).expect("append");
    wal.sync().expect("sync");
    drop(wal);
    let (_, rec) = reopen(tmp.path(), 1 << 20);
    want.truncate(6);
    want.extend(entries(7..=9, 3));
    assert_eq!(rec.entries, want);
}

#[test]
fn conflict_reaching_back_into_an_older_segment() {
    let tmp = TempDir::new().expect("tempdir");
    let mut wal = Wal::create_with(tmp.path(), opts(200)).expect("create");
    for i in 1..=40 {
        wal.append(&[entry(i, 1)], None).expect("append");
    }
    wal.sync().expect("sync");
    let before = segment_files(tmp.path()).len();
    assert!(before >= 4, "expected several segments, got {before}");
    wal.append(&entries(5..=6, 2), Some(&hs(2, 0, 4)))
        .expect("append");
    wal.sync().expect("sync");
    drop(wal);
    let (_, rec) = reopen(tmp.path(), 200);
    let mut want = entries(1..=4, 1);
    want.extend(entries(5..=6, 2));
    assert_eq!(rec.entries, want);
}

/// Builds a log whose last segment ends with entry 4 followed by a hard
/// state, and returns (segment path, end of entries 1..=3 + first hs, end of
/// entry 4, full length).
fn torn_fixture(dir: &Path) -> (PathBuf, u64, u64, u64) {
    let mut wal = Wal::create_with(dir, opts(1 << 20)).expect("create");
    wal.append(&entries(1..=3, 1), Some(&hs(1, 1, 2)))
        .expect("append");
    wal.sync().expect("sync");
    let synced = wal.seg_len;
    let mut e4 = entry(4, 1);
    e4.data = vec![7; 600]; // spans a sector boundary
    wal.append(&[e4], None).expect("append");
    let mid = wal.seg_len;
    wal.append(&[], Some(&hs(1, 1, 4))).expect("append");
    wal.sync().expect("sync");
    let path = wal.current.path.clone();
    let full = wal.seg_len;
    assert_eq!(file_len(&path), full);
    (path, synced, mid, full)
}

#[test]
fn torn_tail_at_every_cut_point() {
    let tmp = TempDir::new().expect("tempdir");
    let orig = tmp.path().join("orig");
    let (path, synced, mid, full) = torn_fixture(&orig);
    let name = path.file_name().expect("name");
    for cut in synced..full {
        let dir = tmp.path().join(format!("cut-{cut}"));
        copy_dir(&orig, &dir);
        let seg = dir.join(name);
        set_len(&seg, cut);

        let (mut wal, rec) = reopen(&dir, 1 << 20);
        let (want_last, want_len) = if cut < mid { (3, synced) } else { (4, mid) };
        assert_eq!(rec.entries.len() as u64, want_last, "cut at {cut}");
        assert_eq!(rec.entries[..3], entries(1..=3, 1)[..], "cut at {cut}");
        assert_eq!(rec.hard_state, hs(1, 1, 2), "cut at {cut}");
        assert_eq!(
            file_len(&seg),
            want_len,
            "torn bytes must be cut off ({cut})"
        );

        // Appending afterwards continues cleanly and survives a reopen.
        wal.append(&[entry(4, 2), entry(5, 2)], Some(&hs(2, 2, 5)))
            .expect("append");
        wal.sync().expect("sync");
        drop(wal);
        let (_, rec) = reopen(&dir, 1 << 20);
        let mut want = entries(1..=3, 1);
        want.extend(entries(4..=5, 2));
        assert_eq!(rec.entries, want, "cut at {cut}");
        assert_eq!(rec.hard_state, hs(2, 2, 5), "cut at {cut}");
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}

#[test]
fn zeroed_or_garbage_tail_is_cut() {
    for junk in [vec![0u8; 8192], vec![0xa5; 37], vec![1, 0, 0, 0]] {
        let tmp = TempDir::new().expect("tempdir");
        let (path, _, _, full) = torn_fixture(tmp.path());
        append_bytes(&path, &junk);
        let (_, rec) = reopen(tmp.path(), 1 << 20);
        assert_eq!(rec.entries.len(), 4);
        assert_eq!(rec.hard_state, hs(1, 1, 4));
        assert_eq!(file_len(&path), full);
    }
}

#[test]
fn unwritten_block_inside_the_last_write_is_a_torn_tail() {
    // Power loss can persist later blocks of an unsynced write but not an
    // earlier one, which reads back as zeros; the intact-looking records
    // after the hole were never synced either.
    let tmp = TempDir::new().expect("tempdir");
    let mut wal = Wal::create_with(tmp.path(), opts(1 << 20)).expect("create");
    wal.append(&entries(1..=2, 1), Some(&hs(1, 1, 1)))
        .expect("append");
    wal.sync().expect("sync");
    let synced = wal.seg_len;
    let mut batch = entries(3..=6, 1);
    for e in &mut batch {
        e.data = vec![0x5a; 1500];
    }
    wal.append(&batch, None).expect("append");
    wal.sync().expect("sync");
    let path = wal.current.path.clone();
    drop(wal);

    let mut bytes = fs::read(&path).expect("read");
    let hole = (synced as usize).div_ceil(512) * 512 + 512;
    bytes[hole..hole + 512].fill(0);
    fs::write(&path, &bytes).expect("write");
    let (_, rec) = reopen(tmp.path(), 1 << 20);
    assert_eq!(rec.entries, entries(1..=2, 1));
    assert_eq!(file_len(&path), synced);
}

#[test]
fn flipped_byte_in_a_middle_record_is_corruption() {
    let tmp = TempDir::new().expect("tempdir");
    let mut wal = Wal::create(tmp.path()).expect("create");
    wal.append(&entries(1..=5, 1), Some(&hs(1, 1, 5)))
        .expect("append");
    wal.sync().expect("sync");
    let off = offset_of(&wal, 3);
    let path = wal.current.path.clone();
    drop(wal);

    let mut bytes = fs::read(&path).expect("read");
    let len_before = bytes.len() as u64;
    bytes[off as usize + 20] ^= 0x40;
    fs::write(&path, &bytes).expect("write");
    let (file, offset, msg) = expect_corrupt(tmp.path());
    assert_eq!(file, path);
    assert_eq!(offset, off);
    assert!(msg.contains("intact record follows"), "{msg}");
    assert_eq!(
        file_len(&path),
        len_before,
        "a corrupt log must not be modified"
    );
    // Stays an error: nothing was "repaired" away.
    expect_corrupt(tmp.path());
}

#[test]
fn flipped_byte_in_an_older_segment_is_corruption() {
    let tmp = TempDir::new().expect("tempdir");
    let mut wal = Wal::create_with(tmp.path(), opts(300)).expect("create");
    for i in 1..=30 {
        wal.append(&[entry(i, 1)], None).expect("append");
    }
    wal.sync().expect("sync");
    drop(wal);
    let files = segment_files(tmp.path());
    assert!(files.len() >= 3);
    // Damage the very end of a non-final segment: that looks like a torn
    // write, but the segment was synced before the next one was started.
    let victim = &files[1];
    let len = file_len(victim);
    set_len(victim, len - 3);
    let (file, _, _) = expect_corrupt(tmp.path());
    assert_eq!(&file, victim);
}

#[test]
fn missing_segments_are_corruption() {
    let tmp = TempDir::new().expect("tempdir");
    let orig = tmp.path().join("orig");
    let mut wal = Wal::create_with(&orig, opts(300)).expect("create");
    for i in 1..=40 {
        wal.append(&[entry(i, 1)], Some(&hs(1, 1, i)))
            .expect("append");
    }
    wal.sync().expect("sync");
    drop(wal);
    let files = segment_files(&orig);
    assert!(files.len() >= 4, "got {} segments", files.len());

    // Missing middle segment.
    let dir = tmp.path().join("middle");
    copy_dir(&orig, &dir);
    let names: Vec<_> = files.iter().filter_map(|f| f.file_name()).collect();
    fs::remove_file(dir.join(names[2])).expect("rm");
    let (file, offset, msg) = expect_corrupt(&dir);
    assert_eq!(file, dir.join(names[3]));
    assert_eq!(offset, 0);
    assert!(msg.contains("missing"), "{msg}");

    // Missing first segment.
    let dir = tmp.path().join("first");
    copy_dir(&orig, &dir);
    fs::remove_file(dir.join(names[0])).expect("rm");
    let (file, _, _) = expect_corrupt(&dir);
    assert_eq!(file, dir.join(names[1]));

    // A non-final segment emptied (its data lost) is caught by the name check.
    let dir = tmp.path().join("emptied");
    copy_dir(&orig, &dir);
    set_len(&dir.join(names[1]), 0);
    let (file, _, msg) = expect_corrupt(&dir);
    assert_eq!(file, dir.join(names[2]));
    assert!(msg.contains("continues the log"), "{msg}");
}

#[test]
fn entries_jumping_forward_on_disk_are_corruption() {
    // Raft never logs a gap; craft one directly on disk.
    let tmp = TempDir::new().expect("tempdir");
    let mut wal = Wal::create_with(tmp.path(), opts(1 << 20)).expect("create");
    wal.append(&entries(1..=2, 1), None).expect("append");
    wal.sync().expect("sync");
    let path = wal.current.path.clone();
    let end = wal.seg_len;
    drop(wal);
    let mut buf = Vec::new();
    format::encode(&mut buf, Record::Entry(&entry(4, 1)));
    format::encode(&mut buf, Record::Entry(&entry(5, 1)));
    append_bytes(&path, &buf);
    let (file, offset, msg) = expect_corrupt(tmp.path());
    assert_eq!((file, offset), (path, end));
    assert!(msg.contains("gap"), "{msg}");
}

#[test]
fn rotation_across_several_segments() {
    let tmp = TempDir::new().expect("tempdir");
    let mut wal = Wal::create_with(tmp.path(), opts(1024)).expect("create");
    for batch in 0..20u64 {
        let first = batch * 10 + 1;
        wal.append(
            &entries(first..=first + 9, 1 + batch / 5),
            Some(&hs(1 + batch / 5, 1, first)),
        )
        .expect("append");
        wal.sync().expect("sync");
    }
    drop(wal);
    let files = segment_files(tmp.path());
    assert!(files.len() >= 5, "got {} segments", files.len());
    for (seq, f) in files.iter().enumerate() {
        let name = f.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(name.starts_with(&format!("{seq:016x}-")), "{name}");
        if seq + 1 < files.len() {
            assert!(file_len(f) >= 1024, "{name} rotated early");
        }
    }

    let (mut wal, rec) = reopen(tmp.path(), 1024);
    let want: Vec<Entry> = (0..20u64)
        .flat_map(|b| entries(b * 10 + 1..=b * 10 + 10, 1 + b / 5))
        .collect();
    assert_eq!(rec.entries, want);
    assert_eq!(rec.hard_state, hs(4, 1, 191));
    // Each segment's name records where it continues the log.
    for f in &files[1..] {
        let name = f.file_name().and_then(|n| n.to_str()).expect("name");
        let first = u64::from_str_radix(&name[17..33], 16).expect("hex");
        let seq = u64::from_str_radix(&name[..16], 16).expect("hex");
        let in_it: Vec<u64> = wal
            .index
            .after(0)
            .filter(|(_, l)| l.seq == seq)
            .map(|(i, _)| i)
            .collect();
        if let Some(&i) = in_it.first() {
            assert_eq!(i, first, "{name}");
        }
    }
    wal.append(&entries(201..=260, 5), None).expect("append");
    wal.sync().expect("sync");
    drop(wal);
    let (_, rec) = reopen(tmp.path(), 1024);
    assert_eq!(rec.entries.len(), 260);
}

fn conf() -> ConfState {
    ConfState {
        voters: vec![1, 2, 3],
        learners: vec![4],
        voters_outgoing: vec![1, 2],
        learners_next: vec![5],
        auto_leave: true,
    }
}

#[test]
fn mark_snapshot_drops_old_segments_and_keeps_later_entries() {
    let tmp = TempDir::new().expect("tempdir");
    let mut wal = Wal::create_with(tmp.path(), opts(512)).expect("create");
    for i in 1..=100 {
        wal.append(&[entry(i, 1 + i / 50)], Some(&hs(1 + i / 50, 1, i)))
            .expect("append");
    }
    // Not synced on purpose: mark_snapshot must make the kept entries durable.
    assert!(segment_files(tmp.path()).len() > 3);
    let mark = SnapshotMark {
        index: 60,
        term: 2,
        conf_state: conf(),
    };
    wal.mark_snapshot(mark.clone()).expect("mark");
    let files = segment_files(tmp.path());
    assert_eq!(files.len(), 1, "old segments must be deleted: {files:?}");
    let name = files[0].file_name().and_then(|n| n.to_str()).expect("name");
    assert!(name.ends_with(&format!("-{:016x}.wal", 61)), "{name}");
    assert_eq!(wal.snapshot(), Some(&mark));
    assert_eq!(wal.last_index(), 100);

    let want: Vec<Entry> = (61..=100).map(|i| entry(i, 1 + i / 50)).collect();
    let (mut wal, rec) = reopen(tmp.path(), 512);
    assert_eq!(rec.snapshot, Some(mark.clone()));
    assert_eq!(rec.entries, want);
    assert_eq!(rec.hard_state, hs(3, 1, 100));

    // The log cannot be rewritten below the mark; above it works as usual.
    assert!(matches!(
        wal.append(&[entry(60, 9)], None),
        Err(WalError::InvalidArgument(_))
    ));
    wal.append(&entries(99..=110, 3), None).expect("append");
    // Re-marking the same point is a no-op; going back is refused.
    wal.mark_snapshot(mark.clone()).expect("same mark");
    assert!(matches!(
        wal.mark_snapshot(SnapshotMark {
            index: 50,
            term: 2,
            ..SnapshotMark::default()
        }),
        Err(WalError::InvalidArgument(_))
    ));
    wal.sync().expect("sync");
    drop(wal);
    let (mut wal, rec) = reopen(tmp.path(), 512);
    let mut want2: Vec<Entry> = (61..=98).map(|i| entry(i, 1 + i / 50)).collect();
    want2.extend(entries(99..=110, 3));
    assert_eq!(rec.entries, want2);

    // A mark at the last entry leaves an empty log after it.
    let mark2 = SnapshotMark {
        index: 110,
        term: 3,
        conf_state: ConfState::default(),
    };
    wal.mark_snapshot(mark2.clone()).expect("mark");
    wal.append(&[entry(111, 3)], None).expect("append");
    wal.sync().expect("sync");
    drop(wal);
    let (_, rec) = reopen(tmp.path(), 512);
    assert_eq!(rec.snapshot, Some(mark2));
    assert_eq!(rec.entries, vec![entry(111, 3)]);
    assert_eq!(segment_files(tmp.path()).len(), 1);
}

#[test]
fn mark_from_an_installed_snapshot_replaces_the_log() {
    let tmp = TempDir::new().expect("tempdir");
    let mut wal = Wal::create(tmp.path()).expect("create");
    wal.append(&entries(1..=10, 1), Some(&hs(1, 1, 5)))
        .expect("append");
    wal.sync().expect("sync");
    // The leader's snapshot disagrees with our entry 8: our log is stale.
    let mark = SnapshotMark {
        index: 8,
        term: 3,
        conf_state: conf(),
    };
    wal.append(&[], Some(&hs(3, 0, 8))).expect("append");
    wal.mark_snapshot(mark.clone()).expect("mark");
    assert_eq!(wal.last_index(), 8);
    wal.append(&entries(9..=9, 3), None).expect("append");
    wal.sync().expect("sync");
    drop(wal);
    let (mut wal, rec) = reopen(tmp.path(), 1 << 20);
    assert_eq!(rec.snapshot, Some(mark));
    assert_eq!(rec.entries, entries(9..=9, 3));
    assert_eq!(rec.hard_state, hs(3, 0, 8));

    // A snapshot beyond the end of the log.
    let far = SnapshotMark {
        index: 50,
        term: 4,
        conf_state: conf(),
    };
    wal.mark_snapshot(far.clone()).expect("mark");
    assert!(matches!(
        wal.append(&[entry(52, 4)], None),
        Err(WalError::InvalidArgument(_))
    ));
    wal.append(&[entry(51, 4)], None).expect("append");
    wal.sync().expect("sync");
    drop(wal);
    let (_, rec) = reopen(tmp.path(), 1 << 20);
    assert_eq!(rec.snapshot, Some(far));
    assert_eq!(rec.entries, vec![entry(51, 4)]);
}

#[test]
fn interrupted_mark_snapshot_recovers_either_log() {
    let tmp = TempDir::new().expect("tempdir");
    let dir = tmp.path();
    let mut wal = Wal::create_with(dir, opts(400)).expect("create");
    for i in 1..=30 {
        wal.append(&[entry(i, 1)], Some(&hs(1, 1, i)))
            .expect("append");
    }
    wal.sync().expect("sync");
    let old: Vec<(PathBuf, Vec<u8>)> = segment_files(dir)
        .into_iter()
        .map(|p| {
            let b = fs::read(&p).expect("read");
            (p, b)
        })
        .collect();
    let mark = SnapshotMark {
        index: 20,
        term: 1,
        conf_state: conf(),
    };
    wal.mark_snapshot(mark.clone()).expect("mark");
    drop(wal);

    // Crash before the temporary segment was renamed: only the old log.
    let before = tmp.path().join("before");
    fs::create_dir_all(&before).expect("mkdir");
    for (p, b) in &old {
        fs::write(before.join(p.file_name().expect("name")), b).expect("write");
    }
    let new_seg = &segment_files(dir)[0];
    let tmp_name = format!(
        "{}.tmp",
        new_seg.file_name().and_then(|n| n.to_str()).expect("name")
    );
    let half = fs::read(new_seg).expect("read");
    fs::write(before.join(&tmp_name), &half[..half.len() / 2]).expect("write");
    let (_, rec) = reopen(&before, 400);
    assert_eq!(rec.snapshot, None);
    assert_eq!(rec.entries, entries(1..=30, 1));
    assert!(!before.join(&tmp_name).exists(), "leftover must be removed");

    // Crash after the rename but before old segments were deleted.
    for (p, b) in &old {
        fs::write(p, b).expect("write");
    }
    let (_, rec) = reopen(dir, 400);
    assert_eq!(rec.snapshot, Some(mark));
    assert_eq!(rec.entries, entries(21..=30, 1));
    assert_eq!(rec.hard_state, hs(1, 1, 30));
    assert_eq!(
        segment_files(dir).len(),
        1,
        "superseded segments are removed"
    );
}

#[test]
fn records_round_trip_and_reject_malformed_payloads() {
    let e = entry(3, 7);
    let hard = hs(5, 6, 7);
    let mark = SnapshotMark {
        index: 9,
        term: 4,
        conf_state: conf(),
    };
    let mut buf = Vec::new();
    for rec in [
        Record::Entry(&e),
        Record::HardState(&hard),
        Record::SnapshotMark(&mark),
    ] {
        buf.clear();
        let n = format::encode(&mut buf, rec);
        assert_eq!(n, buf.len());
        assert_eq!(n, format::HEADER_LEN + rec.body_len());
        let format::Frame::Good { body, end } = format::frame_at(&buf, 0) else {
            panic!("fresh record must be intact");
        };
        assert_eq!(end, n);
        match (rec, format::decode(body).expect("decode")) {
            (Record::Entry(a), Decoded::Entry(b)) => assert_eq!(a, &b),
            (Record::HardState(a), Decoded::HardState(b)) => assert_eq!(a, &b),
            (Record::SnapshotMark(a), Decoded::SnapshotMark(b)) => assert_eq!(a, &b),
            (a, b) => panic!("{a:?} decoded as {b:?}"),
        }
        // Any truncation of the payload is rejected, never mis-read.
        for cut in 1..body.len() {
            assert!(format::decode(&body[..cut]).is_err(), "cut {cut}");
        }
        let mut long = body.to_vec();
        long.push(0);
        assert!(format::decode(&long).is_err());
    }
    assert!(format::decode(&[9, 1, 2]).is_err(), "unknown type");
}

/// Deterministic xorshift generator: reproducible without extra crates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A point a crash may leave the log at: everything written up to `len`
/// bytes of segment `seq`.
struct CrashPoint {
    seq: u64,
    len: u64,
    state: Recovered,
}

fn crash_point(wal: &Wal, state: &Recovered) -> CrashPoint {
    CrashPoint {
        seq: wal.current.seq,
        len: wal.seg_len,
        state: state.clone(),
    }
}

#[test]
fn random_histories_recover_what_was_synced() {
    for seed in 1..=16u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let tmp = TempDir::new().expect("tempdir");
        let dir = tmp.path();
        let size = 256 + rng.below(2048);
        let mut wal = Wal::create_with(dir, opts(size)).expect("create");
        let mut model = Recovered::default();
        let mut term = 1;
        // Crash points at or after the last sync.
        let mut points = vec![crash_point(&wal, &model)];
        for step in 0..300 {
            let base = model.snapshot.as_ref().map_or(0, |m| m.index);
            let last = base + model.entries.len() as u64;
            match rng.below(10) {
                0..=5 => {
                    if rng.below(4) == 0 {
                        term += 1;
                    }
                    let lo = (base + 1).max(last.saturating_sub(3));
                    let start = lo + rng.below(last + 2 - lo);
                    let batch: Vec<Entry> = (start..start + rng.below(5))
                        .map(|i| {
                            let mut e = entry(i, term);
                            e.data = vec![rng.next() as u8; rng.below(300) as usize];
                            e
                        })
                        .collect();
                    let hard =
                        (rng.below(2) == 0).then(|| hs(term, rng.below(4), rng.below(last + 1)));
                    wal.append(&batch, hard.as_ref()).expect("append");
                    if let Some(first) = batch.first() {
                        model.entries.truncate((first.index - base - 1) as usize);
                        model.entries.extend(batch.iter().cloned());
                    }
                    if let Some(h) = hard {
                        model.hard_state = h;
                    }
                    points.push(crash_point(&wal, &model));
                }
                6 | 7 => {
                    wal.sync().expect("sync");
                    points = vec![crash_point(&wal, &model)];
                }
                8 => {
                    let matching = last > base && rng.below(4) != 0;
                    let mark = if matching {
                        let index = base + 1 + rng.below(last - base);
                        let term_at = model.entries[(index - base - 1) as usize].term;
                        SnapshotMark {
                            index,
                            term: term_at,
                            conf_state: conf(),
                        }
                    } else {
                        term += 1;
                        SnapshotMark {
                            index: last + rng.below(3) + 1,
                            term,
                            conf_state: ConfState::default(),
                        }
                    };
                    wal.mark_snapshot(mark.clone()).expect("mark");
                    let keep = if matching {
                        (mark.index - base) as usize
                    } else {
                        model.entries.len()
                    };
                    model.entries.drain(..keep);
                    model.snapshot = Some(mark);
                    points = vec![crash_point(&wal, &model)];
                }
                _ => {
                    // Crash: lose everything after a random point at or
                    // after the last sync, possibly leaving a torn record.
                    let p = points.swap_remove(rng.below(points.len() as u64) as usize);
                    drop(wal);
                    for f in segment_files(dir) {
                        let name = f.file_name().and_then(|n| n.to_str()).expect("name");
                        let seq = u64::from_str_radix(&name[..16], 16).expect("hex");
                        if seq > p.seq {
                            fs::remove_file(&f).expect("rm");
                        } else if seq == p.seq {
                            set_len(&f, p.len);
                            if rng.below(2) == 0 {
                                let junk: Vec<u8> =
                                    (0..1 + rng.below(40)).map(|_| rng.next() as u8).collect();
                                append_bytes(&f, &junk);
                            }
                        }
                    }
                    let (w, rec) = reopen(dir, size);
                    assert_eq!(rec, p.state, "seed {seed} step {step}");
                    wal = w;
                    model = rec;
                    points = vec![crash_point(&wal, &model)];
                }
            }
        }
        drop(wal);
        // A clean shutdown loses nothing, synced or not.
        let (_, rec) = reopen(dir, size);
        assert_eq!(rec, model, "seed {seed} final");
    }
}

fn prealloc(segment_size: u64) -> WalOptions {
    WalOptions {
        segment_size,
        preallocate: true,
    }
}

/// A preallocated segment is as long as the segment size from the start; the zeros after
/// its records are the end of the log, not damage, and appends continue after them.
#[test]
fn preallocated_segments_end_where_their_records_end() {
    let tmp = TempDir::new().expect("tempdir");
    let mut wal = Wal::create_with(tmp.path(), prealloc(1 << 20)).expect("create");
    let path = wal.current.path.clone();
    assert_eq!(file_len(&path), 1 << 20, "reserved up front");
    wal.append(&entries(1..=4, 1), Some(&hs(1, 1, 4)))
        .expect("append");
    wal.sync().expect("sync");
    drop(wal);

    let (mut wal, rec) = Wal::open_with(tmp.path(), prealloc(1 << 20)).expect("open");
    assert_eq!(rec.entries, entries(1..=4, 1));
    assert_eq!(rec.hard_state, hs(1, 1, 4));
    assert_eq!(file_len(&path), 1 << 20, "reserved again after recovery");
    wal.append(&entries(5..=6, 1), Some(&hs(1, 1, 6)))
        .expect("append");
    wal.sync().expect("sync");
    drop(wal);
    let (_, rec) = Wal::open_with(tmp.path(), prealloc(1 << 20)).expect("open");
    assert_eq!(rec.entries, entries(1..=6, 1));
}

/// A write torn inside the reserved space (a partial record, then zeros) is cut like any
/// torn tail; the records before it survive.
#[test]
fn a_torn_write_inside_the_reservation_is_cut() {
    let tmp = TempDir::new().expect("tempdir");
    let mut wal = Wal::create_with(tmp.path(), prealloc(1 << 20)).expect("create");
    wal.append(&entries(1..=3, 1), Some(&hs(1, 1, 3)))
        .expect("append");
    wal.sync().expect("sync");
    let end = wal.seg_len as usize;
    let path = wal.current.path.clone();
    drop(wal);
    let mut bytes = fs::read(&path).expect("read");
    let mut torn = Vec::new();
    format::encode(&mut torn, Record::Entry(&entry(4, 1)));
    let half = torn.len() / 2;
    bytes[end..end + half].copy_from_slice(&torn[..half]);
    fs::write(&path, &bytes).expect("write");

    let (_, rec) = Wal::open_with(tmp.path(), prealloc(1 << 20)).expect("open");
    assert_eq!(rec.entries, entries(1..=3, 1));
}

/// Recovery treats damage in a segment older than the newest as corruption, so with
/// preallocation on, older segments must hold whole records to their last byte.
#[test]
fn preallocated_older_segments_hold_only_whole_records() {
    let tmp = TempDir::new().expect("tempdir");
    let mut wal = Wal::create_with(tmp.path(), prealloc(1024)).expect("create");
    for batch in 0..10u64 {
        let first = batch * 10 + 1;
        wal.append(&entries(first..=first + 9, 1), Some(&hs(1, 1, first)))
            .expect("append");
        wal.sync().expect("sync");
    }
    drop(wal);
    let files = segment_files(tmp.path());
    assert!(files.len() > 2, "{files:?}");
    let (newest, older) = files.split_last().expect("segments");
    for f in older {
        // Nothing but whole records, up to the last byte.
        let bytes = fs::read(f).expect("read");
        let mut off = 0;
        while off < bytes.len() {
            match format::frame_at(&bytes, off) {
                format::Frame::Good { end, .. } => off = end,
                format::Frame::Bad(why) => panic!("{f:?} at {off} of {}: {why}", bytes.len()),
            }
        }
        assert!(off >= 1024, "{f:?} holds a full segment of records");
    }
    assert!(file_len(newest) >= 1024);
    let (_, rec) = Wal::open_with(tmp.path(), prealloc(1024)).expect("open");
    assert_eq!(rec.entries, entries(1..=100, 1));
}

/// Larger than the chunk recovery reads at a time, so there are zeros to skip.
const BIG_SEGMENT: u64 = 4 << 20;

/// A WAL preallocated to `BIG_SEGMENT` holding entries 1..=4 and a hard state, synced.
/// Returns its directory, the segment's path, where the records end and where entry 4's
/// record starts.
fn four_entries_preallocated() -> (TempDir, PathBuf, usize, usize) {
    let tmp = TempDir::new().expect("tempdir");
    let mut wal = Wal::create_with(tmp.path(), prealloc(BIG_SEGMENT)).expect("create");
    wal.append(&entries(1..=4, 1), Some(&hs(1, 1, 4)))
        .expect("append");
    wal.sync().expect("sync");
    let entry4 = offset_of(&wal, 4) as usize;
    let (path, end) = (wal.current.path.clone(), wal.seg_len as usize);
    (tmp, path, end, entry4)
}

/// Recovery reads the records of the preallocated segment, not the zeros reserved after
/// them: reading all of it held the whole segment (64 MiB by default) in memory at every
/// start. Anything but zeros after the records is read whole, for the torn-tail rules.
#[test]
fn recovery_reads_the_records_not_the_reserved_zeros() {
    let (tmp, path, end, _) = four_entries_preallocated();
    let (buf, len) = super::recovery::read_segment(&path, true).expect("read");
    assert_eq!(len, BIG_SEGMENT);
    assert_eq!(buf.len(), end, "only the records");
    let (buf, _) = super::recovery::read_segment(&path, false).expect("read");
    assert_eq!(
        buf.len() as u64,
        BIG_SEGMENT,
        "an older segment is read whole"
    );

    let mut bytes = fs::read(&path).expect("read");
    bytes[BIG_SEGMENT as usize - 1] = 0xa5;
    fs::write(&path, &bytes).expect("write");
    let (buf, _) = super::recovery::read_segment(&path, true).expect("read");
    let whole = buf.len() as u64 == BIG_SEGMENT;
    assert!(whole, "garbage after the zeros: read whole");
    let (_, rec) = Wal::open_with(tmp.path(), prealloc(BIG_SEGMENT)).expect("open");
    assert_eq!(rec.entries, entries(1..=4, 1));
}

/// A damaged length field pointing into zeros must not hide the intact record it skips.
/// Here entry 4's length is changed to end one byte before the last record (the hard
/// state, whose encoding ends in zeros) ends: read only up to the zeros that follow, that
/// record would be cut short, the damage would look like a torn tail and two synced records
/// would be cut. Read whole, it is corruption, as it is without preallocation.
#[test]
fn a_length_pointing_into_zeros_is_corruption() {
    let (tmp, path, end, at) = four_entries_preallocated();
    let mut bytes = fs::read(&path).expect("read");
    assert_eq!(bytes[end - 1], 0, "the hard state record ends in a zero");
    let claimed = (end - 1 - at - format::HEADER_LEN) as u32;
    bytes[at..at + 4].copy_from_slice(&claimed.to_le_bytes());
    fs::write(&path, &bytes).expect("write");

    let (file, offset, _) = expect_corrupt(tmp.path());
    assert_eq!((file, offset), (path, at as u64));
}
