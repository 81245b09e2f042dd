//! Round trips through the writer and reader, and damaged files.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::page::{self, Header, PageView};
use super::{BoltError, Reader, Writer, PAGE_SIZE};

type Entry = (Vec<u8>, Vec<u8>);

fn write_db(path: &Path, buckets: &[(&[u8], Vec<Entry>)]) -> u64 {
    let file = File::create(path).expect("create");
    let mut w = Writer::new(file).expect("writer");
    for (name, entries) in buckets {
        w.write_bucket(
            name,
            entries.iter().map(|(k, v)| Ok::<_, BoltError>((k, v))),
        )
        .expect("bucket");
    }
    let (_, size) = w.finish().expect("finish");
    size
}

fn read_bucket(r: &Reader, name: &[u8]) -> Vec<Entry> {
    r.bucket(name)
        .expect("bucket")
        .expect("exists")
        .collect::<Result<_, _>>()
        .expect("entries")
}

fn rev_key(i: u64) -> Vec<u8> {
    let mut k = i.to_be_bytes().to_vec();
    k.push(b'_');
    k.extend_from_slice(&0u64.to_be_bytes());
    k
}

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    (dir, path)
}

/// Depth of a bucket's tree, read straight from the file.
fn depth(path: &Path, bucket_root: u64) -> usize {
    let bytes = std::fs::read(path).expect("read");
    let mut id = bucket_root;
    let mut depth = 1;
    loop {
        let p = &bytes[id as usize * PAGE_SIZE..];
        let view = PageView::new(p).expect("page");
        if view.is_leaf() {
            return depth;
        }
        id = view.branch(0).expect("branch").1;
        depth += 1;
    }
}

fn bucket_root(path: &Path, name: &[u8]) -> u64 {
    let bytes = std::fs::read(path).expect("read");
    let meta = page::Meta::decode(&bytes).expect("meta");
    let root = PageView::new(&bytes[meta.root as usize * PAGE_SIZE..]).expect("root");
    (0..usize::from(root.header.count))
        .map(|i| root.leaf(i).expect("leaf"))
        .find(|e| e.key == name)
        .map(|e| page::u64_at(e.value, 0).expect("header"))
        .expect("bucket present")
}

#[test]
fn many_keys_round_trip_through_a_multi_level_tree() {
    let (_d, path) = tmp();
    let keys: Vec<Entry> = (1..=200_000u64)
        .map(|i| (rev_key(i), format!("value-{i}").into_bytes()))
        .collect();
    let meta: Vec<Entry> = vec![(b"consistent_index".to_vec(), 7u64.to_be_bytes().to_vec())];
    let size = write_db(&path, &[(b"key", keys.clone()), (b"meta", meta.clone())]);
    assert_eq!(size, std::fs::metadata(&path).expect("stat").len());
    assert_eq!(size % PAGE_SIZE as u64, 0);
    assert!(
        depth(&path, bucket_root(&path, b"key")) >= 3,
        "expected branch pages over branch pages"
    );

    let r = Reader::open(&path).expect("open");
    assert_eq!(r.size(), size);
    assert_eq!(
        r.buckets().expect("buckets"),
        vec![b"key".to_vec(), b"meta".to_vec()]
    );
    assert_eq!(read_bucket(&r, b"key"), keys);
    assert_eq!(read_bucket(&r, b"meta"), meta);
    assert!(r.bucket(b"lease").expect("lookup").is_none());
}

#[test]
fn big_values_and_keys_use_overflow_pages() {
    let (_d, path) = tmp();
    let mut entries: Vec<Entry> = Vec::new();
    for (i, len) in [10usize, 5000, 3, 70_000, 4070, 4080, 1 << 20, 12]
        .into_iter()
        .enumerate()
    {
        entries.push((
            vec![b'a' + i as u8],
            (0..len).map(|j| (j * 7 + i) as u8).collect(),
        ));
    }
    entries.push((vec![b'z'; page::MAX_KEY], b"biggest key".to_vec()));
    write_db(&path, &[(b"key", entries.clone())]);
    let r = Reader::open(&path).expect("open");
    assert_eq!(read_bucket(&r, b"key"), entries);
}

#[test]
fn empty_and_tiny_buckets() {
    let (_d, path) = tmp();
    let one = vec![(b"clusterVersion".to_vec(), b"3.5.0".to_vec())];
    write_db(
        &path,
        &[
            (b"alarm", vec![]),
            (b"cluster", one.clone()),
            (b"members_removed", vec![]),
        ],
    );
    let r = Reader::open(&path).expect("open");
    assert!(read_bucket(&r, b"alarm").is_empty());
    assert_eq!(read_bucket(&r, b"cluster"), one);
    assert!(read_bucket(&r, b"members_removed").is_empty());

    let (_d2, empty) = tmp();
    write_db(&empty, &[]);
    assert!(Reader::open(&empty)
        .expect("open")
        .buckets()
        .expect("buckets")
        .is_empty());
}

#[test]
fn many_buckets_make_a_multi_page_root() {
    let (_d, path) = tmp();
    let names: Vec<Vec<u8>> = (0..2000)
        .map(|i| format!("bucket-{i:05}").into_bytes())
        .collect();
    let buckets: Vec<(&[u8], Vec<Entry>)> = names
        .iter()
        .map(|n| (n.as_slice(), vec![(b"k".to_vec(), n.clone())]))
        .collect();
    write_db(&path, &buckets);
    let r = Reader::open(&path).expect("open");
    assert_eq!(r.buckets().expect("buckets"), names);
    assert_eq!(
        read_bucket(&r, b"bucket-01234"),
        vec![(b"k".to_vec(), b"bucket-01234".to_vec())]
    );
}

#[test]
fn the_writer_refuses_misuse() {
    let mut w = Writer::new(std::io::Cursor::new(Vec::new())).expect("writer");
    assert!(w.put(b"k", b"v").is_err(), "put outside a bucket");
    w.start_bucket(b"b").expect("bucket");
    w.put(b"k2", b"v").expect("put");
    assert!(w.put(b"k1", b"v").is_err(), "keys out of order");
    assert!(w.put(b"k2", b"v").is_err(), "duplicate key");
    assert!(w.put(b"", b"v").is_err(), "empty key");
    assert!(w.start_bucket(b"a").is_err(), "buckets out of order");
}

#[test]
fn damaged_files_are_refused_clearly() {
    let (_d, path) = tmp();
    let keys: Vec<Entry> = (1..=5000u64).map(|i| (rev_key(i), vec![1u8; 40])).collect();
    write_db(&path, &[(b"key", keys)]);
    let good = std::fs::read(&path).expect("read");
    let attempt = |bytes: &[u8]| -> String {
        std::fs::write(&path, bytes).expect("write");
        let result = Reader::open(&path).and_then(|r| {
            r.bucket(b"key")?
                .ok_or_else(|| page::malformed("no key bucket"))?
                .try_for_each(|e| e.map(|_| ()))
        });
        result.expect_err("damage not detected").to_string()
    };

    let mut both_metas = good.clone();
    both_metas[16] ^= 1;
    both_metas[PAGE_SIZE + 16] ^= 1;
    assert!(attempt(&both_metas).contains("no valid meta page"));
    assert!(attempt(&good[..good.len() / 2]).contains("truncated"));
    assert!(attempt(b"not a database at all").contains("not an etcd/bbolt snapshot"));

    // A leaf page labelled with the wrong id.
    let mut relabelled = good.clone();
    Header {
        id: 99_999,
        flags: page::LEAF,
        count: 1,
        overflow: 0,
    }
    .write(&mut relabelled[4 * PAGE_SIZE..]);
    assert!(attempt(&relabelled).contains("labelled"));

    // One meta damaged: the other one is used, as bbolt does.
    let mut one_meta = good.clone();
    one_meta[20] ^= 1;
    std::fs::write(&path, &one_meta).expect("write");
    assert_eq!(
        read_bucket(&Reader::open(&path).expect("open"), b"key").len(),
        5000
    );
}

/// Peak resident memory of this process, from /proc (Linux).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A million keys (~110 MB of database) stream through the writer and the
/// reader with a few pages in memory. Run with `--ignored` (slow in debug
/// builds, and other tests in the process blur the peak).
#[test]
#[ignore]
fn a_million_keys_need_little_memory() {
    let (_d, path) = tmp();
    let before = peak_rss_kib();
    let mut w = Writer::new(File::create(&path).expect("create")).expect("writer");
    w.start_bucket(b"key").expect("bucket");
    let value = vec![7u8; 80];
    for i in 1..=1_000_000u64 {
        w.put(&rev_key(i), &value).expect("put");
    }
    let (_, size) = w.finish().expect("finish");
    assert!(size > 100_000_000, "database of {size} bytes");
    let r = Reader::open(&path).expect("open");
    let mut n = 0;
    for entry in r.bucket(b"key").expect("bucket").expect("exists") {
        entry.expect("entry");
        n += 1;
    }
    assert_eq!(n, 1_000_000);
    let grown = peak_rss_kib().saturating_sub(before);
    assert!(grown < 32 * 1024, "peak memory grew by {grown} KiB");
}
