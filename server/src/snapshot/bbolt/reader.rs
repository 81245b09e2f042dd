//! bbolt reader: walks a database file with positional reads and yields a
//! bucket's entries in key order. Everything read from the file is checked
//! (page ids, types, bounds, key order, tree depth, pages reached twice), so a
//! damaged or foreign file gives an error rather than garbage, a panic or a walk
//! that never ends.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::page::{self, malformed, Header, Meta, PageView, BUCKET_HEADER, BUCKET_LEAF, HEADER};
use super::{BoltError, Result};

/// Deeper than any real tree (bbolt's fan-out makes 10 levels enormous);
/// stops a file whose branch pages point back up from looping forever.
const MAX_DEPTH: usize = 64;

/// An open bbolt file.
pub struct Reader {
    file: File,
    page_size: usize,
    meta: Meta,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader> {
        let file = File::open(path).map_err(BoltError::io("open snapshot file"))?;
        Reader::from_file(file)
    }

    /// Reads and validates the metas; picks the valid one with the larger txid, as bbolt does.
    pub fn from_file(file: File) -> Result<Reader> {
        let len = file
            .metadata()
            .map_err(BoltError::io("stat snapshot file"))?
            .len();
        let read_meta = |off: u64| -> Result<Meta, String> {
            let mut buf = vec![0u8; 4096.min(len.saturating_sub(off)) as usize];
            file.read_exact_at(&mut buf, off)
                .map_err(|e| e.to_string())?;
            Meta::decode(&buf)
        };
        let meta0 = read_meta(0);
        let page_size = meta0
            .as_ref()
            .map_or(super::PAGE_SIZE as u64, |m| u64::from(m.page_size));
        let meta1 = read_meta(page_size);
        let meta = match (meta0, meta1) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(m), Err(_)) | (Err(_), Ok(m)) => m,
            (Err(e), Err(_)) => return Err(malformed(format!("no valid meta page ({e})"))),
        };
        let page_size = meta.page_size as usize;
        let needed = meta
            .pgid
            .checked_mul(page_size as u64)
            .ok_or_else(|| malformed("implausible page count"))?;
        if len < needed {
            return Err(malformed(format!(
                "the file is truncated: it has {len} bytes but the database spans {needed}"
            )));
        }
        let reader = Reader {
            file,
            page_size,
            meta,
        };
        if meta.root < 2 || meta.root >= meta.pgid {
            return Err(malformed(format!(
                "root page {} is out of range",
                meta.root
            )));
        }
        if meta.freelist != page::NO_FREELIST {
            let h = reader.header(meta.freelist)?;
            if h.flags & page::FREELIST == 0 {
                return Err(malformed(format!(
                    "page {} is not the freelist",
                    meta.freelist
                )));
            }
        }
        Ok(reader)
    }

    /// The database size as bbolt reports it: high-water page × page size.
    pub fn size(&self) -> u64 {
        self.meta.pgid * self.page_size as u64
    }

    fn header(&self, id: u64) -> Result<Header> {
        if id < 2 || id >= self.meta.pgid {
            return Err(malformed(format!(
                "page {id} is out of range (the database has {} pages)",
                self.meta.pgid
            )));
        }
        let mut buf = [0u8; HEADER];
        self.file
            .read_exact_at(&mut buf, id * self.page_size as u64)
            .map_err(BoltError::io("read snapshot page"))?;
        let h = Header::parse(&buf).ok_or_else(|| malformed("short page header"))?;
        if h.id != id {
            return Err(malformed(format!("page {id} is labelled as page {}", h.id)));
        }
        if id + u64::from(h.overflow) >= self.meta.pgid {
            return Err(malformed(format!(
                "page {id} overflows past the end of the database"
            )));
        }
        Ok(h)
    }

    /// A branch or leaf page with its overflow pages.
    fn node(&self, id: u64) -> Result<Vec<u8>> {
        let h = self.header(id)?;
        if h.flags & (page::BRANCH | page::LEAF) == 0 {
            return Err(malformed(format!(
                "page {id} has type {:#x}, not a branch or leaf page",
                h.flags
            )));
        }
        let mut buf = vec![0u8; (u64::from(h.overflow) + 1) as usize * self.page_size];
        self.file
            .read_exact_at(&mut buf, id * self.page_size as u64)
            .map_err(BoltError::io("read snapshot page"))?;
        Ok(buf)
    }

    /// Names of the top-level buckets, in order.
    pub fn buckets(&self) -> Result<Vec<Vec<u8>>> {
        self.root_entries()
            .map(|e| e.map(|(name, _)| name))
            .collect()
    }

    /// Entries of a top-level bucket in key order; `None` if it does not exist.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Entries<'_>>> {
        for entry in self.root_entries() {
            let (bucket, value) = entry?;
            if bucket.as_slice() != name {
                continue;
            }
            let root = page::u64_at(&value, 0).ok_or_else(|| malformed("short bucket header"))?;
            return Ok(Some(if root == 0 {
                let inline = value[BUCKET_HEADER..].to_vec();
                let view = PageView::new(&inline)?;
                if !view.is_leaf() {
                    return Err(malformed(format!(
                        "inline bucket {:?} is not a leaf page",
                        show(name)
                    )));
                }
                Entries::new(self, inline, false)
            } else {
                Entries::new(self, self.node(root)?, false)
            }));
        }
        Ok(None)
    }

    fn root_entries(&self) -> Entries<'_> {
        match self.node(self.meta.root) {
            Ok(page) => Entries::new(self, page, true),
            Err(e) => Entries {
                reader: self,
                stack: Vec::new(),
                seen: HashSet::new(),
                last: None,
                buckets: true,
                failed: Some(e),
            },
        }
    }
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A page being walked and the next element to visit.
struct Frame {
    page: Vec<u8>,
    next: usize,
}

/// What one step of the walk found.
enum Step {
    Entry(Vec<u8>, Vec<u8>),
    Descend(u64),
    Up,
}

/// Iterator over a bucket's (key, value) entries in key order.
pub struct Entries<'r> {
    reader: &'r Reader,
    stack: Vec<Frame>,
    /// Child pages descended into. In a tree each page has one parent; a file whose branch
    /// pages share children (a DAG, which the depth limit alone lets through) would make
    /// the walk exponential in the depth: 255 elements on each of 4 branch pages pointing
    /// to the next are 255^4 page reads for a 32 KiB file.
    seen: HashSet<u64>,
    last: Option<Vec<u8>>,
    /// Walking the root bucket: every value must be a bucket header.
    buckets: bool,
    /// An error to report before anything else (then the walk ends).
    failed: Option<BoltError>,
}

impl<'r> Entries<'r> {
    fn new(reader: &'r Reader, page: Vec<u8>, buckets: bool) -> Entries<'r> {
        Entries {
            reader,
            stack: vec![Frame { page, next: 0 }],
            seen: HashSet::new(),
            last: None,
            buckets,
            failed: None,
        }
    }

    fn step(&mut self) -> Result<Option<Step>> {
        let Some(frame) = self.stack.last_mut() else {
            return Ok(None);
        };
        let view = PageView::new(&frame.page)?;
        let i = frame.next;
        if i >= usize::from(view.header.count) {
            return Ok(Some(Step::Up));
        }
        frame.next += 1;
        if view.is_leaf() {
            let e = view.leaf(i)?;
            let is_bucket = e.flags & BUCKET_LEAF != 0;
            if is_bucket != self.buckets {
                return Err(malformed(if self.buckets {
                    format!("root bucket entry {:?} is not a bucket", show(e.key))
                } else {
                    format!("nested bucket {:?} (etcd snapshots have none)", show(e.key))
                }));
            }
            if is_bucket && e.value.len() < BUCKET_HEADER {
                return Err(malformed(format!(
                    "bucket {:?} has a short header",
                    show(e.key)
                )));
            }
            Ok(Some(Step::Entry(e.key.to_vec(), e.value.to_vec())))
        } else if view.is_branch() {
            Ok(Some(Step::Descend(view.branch(i)?.1)))
        } else {
            Err(malformed(format!(
                "page {} is neither a branch nor a leaf page",
                view.header.id
            )))
        }
    }

    fn advance(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        loop {
            match self.step()? {
                None => return Ok(None),
                Some(Step::Up) => {
                    self.stack.pop();
                }
                Some(Step::Descend(child)) => {
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(malformed(
                            "the page tree is too deep (cyclic page references?)",
                        ));
                    }
                    if !self.seen.insert(child) {
                        return Err(malformed(format!(
                            "page {child} is referenced by more than one branch element \
                             (the page tree is not a tree)"
                        )));
                    }
                    let page = self.reader.node(child)?;
                    self.stack.push(Frame { page, next: 0 });
                }
                Some(Step::Entry(k, v)) => {
                    if let Some(last) = &self.last {
                        if k <= *last {
                            return Err(malformed(format!(
                                "keys out of order: {:?} after {:?}",
                                show(&k),
                                show(last)
                            )));
                        }
                    }
                    self.last = Some(k.clone());
                    return Ok(Some((k, v)));
                }
            }
        }
    }
}

impl Iterator for Entries<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.failed.take() {
            self.stack.clear();
            return Some(Err(e));
        }
        match self.advance() {
            Ok(entry) => entry.map(Ok),
            Err(e) => {
                self.stack.clear();
                Some(Err(e))
            }
        }
    }
}
