//! Streaming bbolt writer: pages are written in one pass, as entries come.
//!
//! Each bucket is a B+tree built bottom-up: entries fill a leaf page until
//! the next one would not fit, the full page is written and its first key
//! and page id go to the branch page one level up, which is written the same
//! way when full. Only one page per tree level is ever held in memory, so
//! the size of the database does not matter. Pages are filled completely
//! (bbolt itself keeps them half full to leave room for inserts; a snapshot
//! is read-mostly and etcd splits pages when it writes).

use std::io::{BufWriter, Seek, SeekFrom, Write};

use super::page::{self, Header, Meta, BRANCH, BUCKET_HEADER, ELEMENT, FREELIST, HEADER, LEAF};
use super::{BoltError, Result, PAGE_SIZE};

/// Pages 0 and 1 hold the metas, page 2 the (empty) freelist.
const FIRST_DATA_PAGE: u64 = 3;
/// Transaction id of the snapshot; meta 1 gets one less, like bbolt's `Tx.WriteTo`.
const TXID: u64 = 2;

/// Where finished pages go: the output and the next free page id.
struct Sink<W: Write + Seek> {
    out: BufWriter<W>,
    next: u64,
}

impl<W: Write + Seek> Sink<W> {
    /// Writes one node, spanning as many pages as it needs, and returns its page id.
    fn write_node(&mut self, node: &Node) -> Result<u64> {
        let id = self.next;
        let size = node.size();
        let pages = size.div_ceil(PAGE_SIZE).max(1);
        let mut buf = vec![0u8; pages * PAGE_SIZE];
        let overflow =
            u32::try_from(pages - 1).map_err(|_| BoltError::Usage("element too large".into()))?;
        let count = u16::try_from(node.elems.len())
            .map_err(|_| BoltError::Usage("too many elements in a page".into()))?;
        Header {
            id,
            flags: node.flags,
            count,
            overflow,
        }
        .write(&mut buf);
        let data_start = HEADER + node.elems.len() * ELEMENT;
        let mut data_off = data_start;
        for (i, e) in node.elems.iter().enumerate() {
            let off = HEADER + i * ELEMENT;
            let pos = (data_off - off) as u32;
            let fields: [u8; 16] = if node.flags == LEAF {
                let mut f = [0u8; 16];
                f[0..4].copy_from_slice(&e.flags.to_le_bytes());
                f[4..8].copy_from_slice(&pos.to_le_bytes());
                f[8..12].copy_from_slice(&e.ksize.to_le_bytes());
                f[12..16].copy_from_slice(&e.vsize.to_le_bytes());
                f
            } else {
                let mut f = [0u8; 16];
                f[0..4].copy_from_slice(&pos.to_le_bytes());
                f[4..8].copy_from_slice(&e.ksize.to_le_bytes());
                f[8..16].copy_from_slice(&e.child.to_le_bytes());
                f
            };
            buf[off..off + ELEMENT].copy_from_slice(&fields);
            data_off += (e.ksize + e.vsize) as usize;
        }
        buf[data_start..data_start + node.data.len()].copy_from_slice(&node.data);
        self.out
            .write_all(&buf)
            .map_err(BoltError::io("write snapshot page"))?;
        self.next += pages as u64;
        Ok(id)
    }
}

/// An element waiting in a node: its sizes, leaf flags, branch child.
struct Elem {
    flags: u32,
    ksize: u32,
    vsize: u32,
    child: u64,
}

/// The page being filled at one level of a tree.
struct Node {
    flags: u16,
    elems: Vec<Elem>,
    /// Keys and values of all elements, back to back.
    data: Vec<u8>,
}

impl Node {
    fn new(flags: u16) -> Node {
        Node {
            flags,
            elems: Vec::new(),
            data: Vec::new(),
        }
    }

    fn size(&self) -> usize {
        HEADER + self.elems.len() * ELEMENT + self.data.len()
    }

    /// Whether an element of `len` key+value bytes still fits in the page.
    /// An empty node takes anything: a big element gets overflow pages. A
    /// branch takes at least two children whatever their key sizes, so every
    /// level has fewer pages than the one below and the tree has a top.
    fn fits(&self, len: usize) -> bool {
        let min = if self.flags == BRANCH { 2 } else { 1 };
        self.elems.len() < min || self.size() + ELEMENT + len <= PAGE_SIZE
    }

    fn add(&mut self, flags: u32, key: &[u8], value: &[u8], child: u64) {
        self.elems.push(Elem {
            flags,
            ksize: key.len() as u32,
            vsize: value.len() as u32,
            child,
        });
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(value);
    }

    /// Writes the node and empties it; returns its first key and page id.
    fn flush<W: Write + Seek>(&mut self, sink: &mut Sink<W>) -> Result<(Vec<u8>, u64)> {
        let first = self
            .elems
            .first()
            .map_or(Vec::new(), |e| self.data[..e.ksize as usize].to_vec());
        let id = sink.write_node(self)?;
        self.elems.clear();
        self.data.clear();
        Ok((first, id))
    }
}

/// One B+tree under construction (a bucket, or the root bucket).
struct Tree {
    leaf: Node,
    /// Pending branch pages, lowest level first.
    branches: Vec<Node>,
    last_key: Option<Vec<u8>>,
}

impl Tree {
    fn new() -> Tree {
        Tree {
            leaf: Node::new(LEAF),
            branches: Vec::new(),
            last_key: None,
        }
    }

    fn put<W: Write + Seek>(
        &mut self,
        sink: &mut Sink<W>,
        flags: u32,
        key: &[u8],
        value: &[u8],
    ) -> Result<()> {
        if key.is_empty() || key.len() > page::MAX_KEY {
            return Err(BoltError::Usage(format!(
                "key of {} bytes (must be 1..={})",
                key.len(),
                page::MAX_KEY
            )));
        }
        if value.len() > page::MAX_VALUE {
            return Err(BoltError::Usage(format!(
                "value of {} bytes is too large",
                value.len()
            )));
        }
        match &mut self.last_key {
            Some(last) if key <= last.as_slice() => {
                return Err(BoltError::Usage(format!(
                    "keys out of order: {key:?} after {last:?}"
                )));
            }
            Some(last) => {
                last.clear();
                last.extend_from_slice(key);
            }
            None => self.last_key = Some(key.to_vec()),
        }
        if !self.leaf.fits(key.len() + value.len()) {
            let (first, id) = self.leaf.flush(sink)?;
            self.push_branch(sink, 0, &first, id)?;
        }
        self.leaf.add(flags, key, value, 0);
        Ok(())
    }

    /// Records a written child page in the branch page at `level`.
    fn push_branch<W: Write + Seek>(
        &mut self,
        sink: &mut Sink<W>,
        level: usize,
        key: &[u8],
        child: u64,
    ) -> Result<()> {
        if self.branches.len() == level {
            self.branches.push(Node::new(BRANCH));
        }
        if !self.branches[level].fits(key.len()) {
            let (first, id) = self.branches[level].flush(sink)?;
            self.push_branch(sink, level + 1, &first, id)?;
        }
        self.branches[level].add(0, key, &[], child);
        Ok(())
    }

    /// Writes what is pending, bottom-up, and returns the root page id.
    fn finish<W: Write + Seek>(mut self, sink: &mut Sink<W>) -> Result<u64> {
        let (first, id) = self.leaf.flush(sink)?;
        if self.branches.is_empty() {
            // One leaf page (possibly empty) is the whole tree.
            return Ok(id);
        }
        self.push_branch(sink, 0, &first, id)?;
        let mut level = 0;
        loop {
            let top = level + 1 == self.branches.len();
            if top && self.branches[level].elems.len() == 1 {
                return Ok(self.branches[level].elems[0].child);
            }
            let (first, id) = self.branches[level].flush(sink)?;
            if top {
                return Ok(id);
            }
            self.push_branch(sink, level + 1, &first, id)?;
            level += 1;
        }
    }
}

/// Writes a bbolt database: buckets in name order, each filled with
/// entries in key order, then `finish`.
pub struct Writer<W: Write + Seek> {
    sink: Sink<W>,
    /// The root bucket: bucket name → bucket header.
    root: Tree,
    /// The bucket being written, with its name.
    open: Option<(Vec<u8>, Tree)>,
}

impl<W: Write + Seek> Writer<W> {
    /// Starts a database at the beginning of `out` (which should be empty).
    pub fn new(out: W) -> Result<Writer<W>> {
        let mut out = BufWriter::with_capacity(256 * 1024, out);
        // Placeholders for the metas and the freelist, written by `finish`.
        out.write_all(&[0u8; FIRST_DATA_PAGE as usize * PAGE_SIZE])
            .map_err(BoltError::io("write snapshot page"))?;
        Ok(Writer {
            sink: Sink {
                out,
                next: FIRST_DATA_PAGE,
            },
            root: Tree::new(),
            open: None,
        })
    }

    /// Closes the current bucket (if any) and opens `name`, which must sort
    /// after every bucket before it.
    pub fn start_bucket(&mut self, name: &[u8]) -> Result<()> {
        self.close_bucket()?;
        if let Some(last) = &self.root.last_key {
            if name <= last.as_slice() {
                return Err(BoltError::Usage(format!(
                    "bucket {name:?} out of order after {last:?}"
                )));
            }
        }
        self.open = Some((name.to_vec(), Tree::new()));
        Ok(())
    }

    /// Adds an entry to the open bucket; keys must be strictly increasing.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let (_, tree) = self
            .open
            .as_mut()
            .ok_or_else(|| BoltError::Usage("put before start_bucket".into()))?;
        tree.put(&mut self.sink, 0, key, value)
    }

    /// Writes a whole bucket from an iterator of entries in key order.
    pub fn write_bucket<K, V, E>(
        &mut self,
        name: &[u8],
        entries: impl IntoIterator<Item = Result<(K, V), E>>,
    ) -> Result<()>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
        BoltError: From<E>,
    {
        self.start_bucket(name)?;
        for entry in entries {
            let (k, v) = entry?;
            self.put(k.as_ref(), v.as_ref())?;
        }
        self.close_bucket()
    }

    fn close_bucket(&mut self) -> Result<()> {
        if let Some((name, tree)) = self.open.take() {
            let root = tree.finish(&mut self.sink)?;
            let mut header = [0u8; BUCKET_HEADER];
            header[..8].copy_from_slice(&root.to_le_bytes());
            self.root
                .put(&mut self.sink, page::BUCKET_LEAF, &name, &header)?;
        }
        Ok(())
    }

    /// Writes the root bucket, the freelist and both metas; returns the
    /// output and the database size in bytes (high-water page × page size).
    pub fn finish(mut self) -> Result<(W, u64)> {
        self.close_bucket()?;
        let root = self.root.finish(&mut self.sink)?;
        let pgid = self.sink.next;
        let meta = |txid| Meta {
            page_size: PAGE_SIZE as u32,
            root,
            freelist: 2,
            pgid,
            txid,
        };
        let mut freelist = vec![0u8; PAGE_SIZE];
        Header {
            id: 2,
            flags: FREELIST,
            count: 0,
            overflow: 0,
        }
        .write(&mut freelist);
        let out = &mut self.sink.out;
        out.seek(SeekFrom::Start(0))
            .map_err(BoltError::io("seek in snapshot"))?;
        out.write_all(&meta(TXID).encode(0))
            .map_err(BoltError::io("write snapshot meta"))?;
        out.write_all(&meta(TXID - 1).encode(1))
            .map_err(BoltError::io("write snapshot meta"))?;
        out.write_all(&freelist)
            .map_err(BoltError::io("write snapshot freelist"))?;
        let size = pgid * PAGE_SIZE as u64;
        out.seek(SeekFrom::Start(size))
            .map_err(BoltError::io("seek in snapshot"))?;
        let inner = self.sink.out.into_inner().map_err(|e| BoltError::Io {
            context: "flush snapshot",
            source: e.into_error(),
        })?;
        Ok((inner, size))
    }
}
