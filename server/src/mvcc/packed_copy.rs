//! Copying a table into an empty one with every B-tree page full.
//!
//! Defragmentation and Raft snapshots copy whole tables in key order. Inserted one by
//! one, redb splits every full branch page in half, so an ascending load leaves the
//! branch level half empty (about 1% of a database of 1 KiB values). Through a cursor,
//! redb buffers the inserts and packs them into full pages, but it flushes that buffer
//! by size, and a flush that ends just past a page boundary splits the last two leaves
//! evenly, stranding a half-full leaf each time. So the copy flushes the cursor itself
//! (closes and reopens it) where the leaves packed so far end on a page boundary.

use std::ops::Bound;

use redb::{Key, ReadableTable, Table, Value};

use crate::error::Result;

/// redb's page size (its default; only redb's own tests can change it).
const PAGE_SIZE: usize = 4096;
/// Bytes handed to the cursor between our flushes: well below the size at which redb
/// flushes on its own (1 MiB), so that its flush points never come first.
const FLUSH_BYTES: usize = 512 * 1024;

/// Copies every entry of `src` into `dst`, which must be empty.
pub fn copy_packed<K, V>(src: &impl ReadableTable<K, V>, dst: &mut Table<'_, K, V>) -> Result<()>
where
    K: Key + 'static,
    V: Value + 'static,
{
    let mut plan = FlushPlan::new::<K, V>();
    let mut cursor = dst.upper_bound_mut(Bound::<K::SelfType<'_>>::Unbounded)?;
    for item in src.iter()? {
        let (k, v) = item?;
        let (key, value) = (k.value(), v.value());
        let pair_bytes = K::as_bytes(&key).as_ref().len() + V::as_bytes(&value).as_ref().len();
        if plan.flush_before(pair_bytes) {
            cursor.close()?;
            cursor = dst.upper_bound_mut(Bound::<K::SelfType<'_>>::Unbounded)?;
        }
        cursor.insert_before(key, value)?;
    }
    cursor.close()?;
    Ok(())
}

/// Where a cursor appending ascending pairs to an empty table must be closed (flushed) so
/// that every page comes out full. For loads that also split the work into several
/// transactions (snapshot restore): a transaction may end only where a flush is due.
pub struct FlushPlan {
    leaves: LeafPlan,
}

impl FlushPlan {
    pub fn new<K: Key, V: Value>() -> Self {
        FlushPlan {
            leaves: LeafPlan::new(K::fixed_width(), V::fixed_width()),
        }
    }

    /// Call once per pair, in order, before appending it: true means close the cursor
    /// first, then append the pair through a new one.
    pub fn flush_before(&mut self, pair_bytes: usize) -> bool {
        let due = self.leaves.add(pair_bytes) >= FLUSH_BYTES;
        if due {
            self.leaves.flushed();
        }
        due
    }
}

/// Tracks how redb will pack the pairs handed to the cursor into leaves, using the leaf
/// layout of redb's file format: a 4-byte header, then a 4-byte end offset for each key
/// and each value unless the type has a fixed width, then the bytes.
struct LeafPlan {
    offsets_per_pair: usize,
    /// Pairs and bytes of the leaf being filled.
    open_pairs: usize,
    open_bytes: usize,
    /// Bytes in full leaves since the last flush.
    closed_bytes: usize,
}

impl LeafPlan {
    fn new(fixed_key: Option<usize>, fixed_value: Option<usize>) -> Self {
        let offsets = |fixed: Option<usize>| if fixed.is_some() { 0 } else { 4 };
        LeafPlan {
            offsets_per_pair: offsets(fixed_key) + offsets(fixed_value),
            open_pairs: 0,
            open_bytes: 0,
            closed_bytes: 0,
        }
    }

    /// Records a pair about to be inserted. Returns how many bytes of full leaves precede
    /// it since the last flush: flushing before the pair ends the flush on a full leaf.
    fn add(&mut self, pair_bytes: usize) -> usize {
        let with_pair = 4 + (self.open_pairs + 1) * self.offsets_per_pair;
        if self.open_pairs > 0 && with_pair + self.open_bytes + pair_bytes > PAGE_SIZE {
            self.closed_bytes += self.open_bytes;
            self.open_pairs = 0;
            self.open_bytes = 0;
        }
        let full_before = if self.open_pairs == 0 {
            self.closed_bytes
        } else {
            0
        };
        self.open_pairs += 1;
        self.open_bytes += pair_bytes;
        full_before
    }

    fn flushed(&mut self) {
        self.closed_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, ReadableDatabase, TableDefinition};

    const T: TableDefinition<&[u8], &[u8]> = TableDefinition::new("t");

    /// A source table of `n` ascending 17-byte keys with values of `value_len(i)` bytes,
    /// inserted one by one as the apply loop does.
    fn source(dir: &std::path::Path, n: u64, value_len: impl Fn(u64) -> usize) -> Database {
        let db = Database::create(dir.join("src.redb")).expect("create source");
        let txn = db.begin_write().expect("write");
        {
            let mut t = txn.open_table(T).expect("table");
            for i in 0..n {
                let key = [&i.to_be_bytes()[..], b"_", &0u64.to_be_bytes()[..]].concat();
                t.insert(key.as_slice(), vec![i as u8; value_len(i)].as_slice())
                    .expect("insert");
            }
        }
        txn.commit().expect("commit");
        db
    }

    fn copy_of(src: &Database, path: &std::path::Path) -> Database {
        let dst = Database::create(path).expect("create copy");
        let read = src.begin_read().expect("read");
        let txn = dst.begin_write().expect("write");
        {
            let from = read.open_table(T).expect("source table");
            let mut to = txn.open_table(T).expect("copy table");
            copy_packed(&from, &mut to).expect("copy");
        }
        txn.commit().expect("commit");
        dst
    }

    fn pages(db: &Database) -> (u64, u64) {
        let txn = db.begin_write().expect("write");
        let stats = txn.stats().expect("stats");
        txn.abort().expect("abort");
        (stats.leaf_pages(), stats.branch_pages())
    }

    fn same_entries(a: &Database, b: &Database) {
        let (ra, rb) = (a.begin_read().expect("read"), b.begin_read().expect("read"));
        let (ta, tb) = (ra.open_table(T).expect("a"), rb.open_table(T).expect("b"));
        let mut ia = ta.iter().expect("iter a");
        let mut ib = tb.iter().expect("iter b");
        loop {
            match (ia.next(), ib.next()) {
                (None, None) => return,
                (Some(x), Some(y)) => {
                    let ((ka, va), (kb, vb)) = (x.expect("a"), y.expect("b"));
                    assert_eq!(ka.value(), kb.value());
                    assert_eq!(va.value(), vb.value());
                }
                (x, y) => panic!("lengths differ: {:?} vs {:?}", x.is_some(), y.is_some()),
            }
        }
    }

    #[test]
    fn one_kib_values_fill_every_leaf_and_fewer_branches_than_one_by_one_inserts() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 1055 bytes is an encoded KeyValue of a 16-byte key and a 1 KiB value: three fit
        // a page, so the copy should need exactly n/3 leaves.
        let n = 30_000;
        let src = source(dir.path(), n, |_| 1055);
        let copy = copy_of(&src, &dir.path().join("copy.redb"));
        same_entries(&src, &copy);
        let (src_leaves, src_branches) = pages(&src);
        let (leaves, branches) = pages(&copy);
        assert_eq!(leaves, n.div_ceil(3));
        assert!(leaves <= src_leaves);
        assert!(
            branches * 3 <= src_branches * 2,
            "copy has {branches} branch pages, one-by-one inserts {src_branches}"
        );
    }

    #[test]
    fn mixed_sizes_are_copied_whole_and_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = source(dir.path(), 20_000, |i| {
            [0, 7, 300, 1055, 5000, 20_000][i as usize % 6]
        });
        let copy = copy_of(&src, &dir.path().join("copy.redb"));
        same_entries(&src, &copy);
    }

    #[test]
    fn an_empty_table_copies_to_an_empty_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = source(dir.path(), 0, |_| 0);
        let copy = copy_of(&src, &dir.path().join("copy.redb"));
        same_entries(&src, &copy);
    }

    /// How a defragmented `kv` table of 1 M revisions of 1055 bytes (a 16-byte key and a
    /// 1 KiB value, as the benchmark's big load writes) is laid out when copied one by one,
    /// packed, and packed under [`RevisionKey`](crate::mvcc::revision_key::RevisionKey).
    /// The page counts and times in docs/benchmarks.md come from its output:
    /// `cargo test --release -p ballast --lib -- --ignored --nocapture defrag_layouts`
    #[test]
    #[ignore]
    fn defrag_layouts_at_a_million_revisions() {
        use crate::mvcc::revision_key::RevisionKey;
        let n = 1_000_000;
        let one_by_one = layout::<&[u8]>("one by one", n, false);
        let packed = layout::<&[u8]>("packed", n, true);
        let short_separators = layout::<RevisionKey>("packed, RevisionKey", n, true);
        assert_eq!(packed.leaves, n.div_ceil(3));
        assert_eq!(short_separators.leaves, packed.leaves);
        assert!(packed.branches < one_by_one.branches);
        assert!(short_separators.branches < packed.branches);
    }

    struct Layout {
        leaves: u64,
        branches: u64,
    }

    /// Loads `n` revisions one by one in batches, as the apply loop does, then copies them
    /// into a fresh file and compacts it, as `Backend::defragment` does; prints what it got.
    fn layout<K>(name: &str, n: u64, packed: bool) -> Layout
    where
        K: Key + for<'a> Value<SelfType<'a> = &'a [u8]> + 'static,
    {
        let table: TableDefinition<K, &[u8]> = TableDefinition::new("kv");
        let dir = tempfile::tempdir().expect("tempdir");
        let src = Database::create(dir.path().join("src")).expect("create source");
        let value = vec![7u8; 1055];
        for batch in (1..=n).collect::<Vec<_>>().chunks(1000) {
            let mut txn = src.begin_write().expect("write");
            txn.set_durability(redb::Durability::None)
                .expect("durability");
            {
                let mut t = txn.open_table(table).expect("table");
                for &main in batch {
                    let key = crate::mvcc::Revision::new(main as i64, 0).to_key(false);
                    t.insert(key.as_slice(), value.as_slice()).expect("insert");
                }
            }
            txn.commit().expect("commit");
        }
        let path = dir.path().join("copy");
        let mut copy = Database::create(&path).expect("create copy");
        let started = std::time::Instant::now();
        let read = src.begin_read().expect("read");
        let txn = copy.begin_write().expect("write");
        {
            let from = read.open_table(table).expect("source table");
            let mut to = txn.open_table(table).expect("copy table");
            if packed {
                copy_packed(&from, &mut to).expect("copy");
            } else {
                for item in from.iter().expect("iter") {
                    let (k, v) = item.expect("entry");
                    to.insert(k.value(), v.value()).expect("insert");
                }
            }
        }
        txn.commit().expect("commit");
        let copied = started.elapsed();
        let started = std::time::Instant::now();
        copy.compact().expect("compact");
        let compacted = started.elapsed();
        let (leaves, branches) = pages(&copy);
        let size = std::fs::metadata(&path).expect("size").len();
        println!(
            "{name}: {leaves} leaf pages, {branches} branch pages, file {size} bytes; \
             copy {copied:.1?}, compact {compacted:.1?}"
        );
        Layout { leaves, branches }
    }
}
