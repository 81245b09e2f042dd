//! Byte layout of bbolt pages: headers, meta pages and page elements.

use super::{BoltError, Result};

/// Size of the page header and of one branch or leaf element header.
pub const HEADER: usize = 16;
pub const ELEMENT: usize = 16;
/// A bucket header in a leaf value: root pgid and sequence.
pub const BUCKET_HEADER: usize = 16;

pub const BRANCH: u16 = 0x01;
pub const LEAF: u16 = 0x02;
pub const META: u16 = 0x04;
pub const FREELIST: u16 = 0x10;
/// Leaf element flag: the value is a bucket header.
pub const BUCKET_LEAF: u32 = 0x01;

pub const MAGIC: u32 = 0xED0C_DAED;
pub const VERSION: u32 = 2;
/// Meta freelist value when the freelist is not stored (etcd's default).
pub const NO_FREELIST: u64 = u64::MAX;
/// bbolt's limits on keys and values.
pub const MAX_KEY: usize = 32768;
pub const MAX_VALUE: usize = (1 << 31) - 2;

/// Offset of the checksum in a meta page; the checksum covers the meta
/// fields before it.
const META_CHECKSUM: usize = HEADER + 56;

fn bytes<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}
pub fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    bytes(b, off).map(u16::from_le_bytes)
}
pub fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    bytes(b, off).map(u32::from_le_bytes)
}
pub fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    bytes(b, off).map(u64::from_le_bytes)
}

pub fn malformed(why: impl Into<String>) -> BoltError {
    BoltError::Malformed(why.into())
}

/// FNV-1a, 64 bit: bbolt's meta checksum.
pub fn fnv64a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The fixed header every page starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u64,
    pub flags: u16,
    pub count: u16,
    pub overflow: u32,
}

impl Header {
    pub fn parse(b: &[u8]) -> Option<Header> {
        Some(Header {
            id: u64_at(b, 0)?,
            flags: u16_at(b, 8)?,
            count: u16_at(b, 10)?,
            overflow: u32_at(b, 12)?,
        })
    }

    pub fn write(&self, b: &mut [u8]) {
        b[0..8].copy_from_slice(&self.id.to_le_bytes());
        b[8..10].copy_from_slice(&self.flags.to_le_bytes());
        b[10..12].copy_from_slice(&self.count.to_le_bytes());
        b[12..16].copy_from_slice(&self.overflow.to_le_bytes());
    }
}

/// The contents of a meta page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub page_size: u32,
    pub root: u64,
    pub freelist: u64,
    /// High-water mark: the number of pages the database uses.
    pub pgid: u64,
    pub txid: u64,
}

impl Meta {
    /// A whole meta page with id `id` (0 or 1), checksummed.
    pub fn encode(&self, id: u64) -> Vec<u8> {
        let mut p = vec![0u8; self.page_size as usize];
        Header {
            id,
            flags: META,
            count: 0,
            overflow: 0,
        }
        .write(&mut p);
        let fields: [(usize, &[u8]); 9] = [
            (16, &MAGIC.to_le_bytes()),
            (20, &VERSION.to_le_bytes()),
            (24, &self.page_size.to_le_bytes()),
            (28, &0u32.to_le_bytes()),
            (32, &self.root.to_le_bytes()),
            (40, &0u64.to_le_bytes()),
            (48, &self.freelist.to_le_bytes()),
            (56, &self.pgid.to_le_bytes()),
            (64, &self.txid.to_le_bytes()),
        ];
        for (off, v) in fields {
            p[off..off + v.len()].copy_from_slice(v);
        }
        let sum = fnv64a(&p[HEADER..META_CHECKSUM]);
        p[META_CHECKSUM..META_CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
        p
    }

    /// Decodes and validates a meta page (magic, version, checksum).
    pub fn decode(p: &[u8]) -> Result<Meta, String> {
        let h = Header::parse(p).ok_or("short meta page")?;
        let field = |off| u64_at(p, off).ok_or("short meta page");
        let field32 = |off| u32_at(p, off).ok_or("short meta page");
        if field32(16)? != MAGIC {
            return Err("bad magic number (not a bbolt file)".into());
        }
        if field32(20)? != VERSION {
            return Err(format!("unsupported bbolt version {}", field32(20)?));
        }
        let sum = fnv64a(p.get(HEADER..META_CHECKSUM).ok_or("short meta page")?);
        if field(META_CHECKSUM)? != sum {
            return Err("meta page checksum mismatch".into());
        }
        if h.flags & META == 0 {
            return Err(format!(
                "page {} is not a meta page (flags {:#x})",
                h.id, h.flags
            ));
        }
        let page_size = field32(24)?;
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(format!("implausible page size {page_size}"));
        }
        Ok(Meta {
            page_size,
            root: field(32)?,
            freelist: field(48)?,
            pgid: field(56)?,
            txid: field(64)?,
        })
    }
}

/// One element of a leaf page.
pub struct LeafElem<'a> {
    pub flags: u32,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// A decoded branch or leaf page (or an inline bucket page) over its bytes.
pub struct PageView<'a> {
    pub header: Header,
    bytes: &'a [u8],
}

impl<'a> PageView<'a> {
    pub fn new(bytes: &'a [u8]) -> Result<PageView<'a>> {
        let header =
            Header::parse(bytes).ok_or_else(|| malformed("page shorter than its header"))?;
        Ok(PageView { header, bytes })
    }

    pub fn is_leaf(&self) -> bool {
        self.header.flags & LEAF != 0
    }

    pub fn is_branch(&self) -> bool {
        self.header.flags & BRANCH != 0
    }

    /// `len` bytes at `pos` counted from element `i`'s header.
    fn span(&self, i: usize, pos: u32, skip: u64, len: u64) -> Result<&'a [u8]> {
        let start = (HEADER + i * ELEMENT) as u64 + u64::from(pos) + skip;
        let end = start + len;
        if end > self.bytes.len() as u64 {
            return Err(malformed(format!(
                "page {}: element {i} points past the end of the page",
                self.header.id
            )));
        }
        Ok(&self.bytes[start as usize..end as usize])
    }

    fn element(&self, i: usize) -> Result<usize> {
        let off = HEADER + i * ELEMENT;
        if i >= usize::from(self.header.count) || off + ELEMENT > self.bytes.len() {
            return Err(malformed(format!(
                "page {}: element {i} is out of range",
                self.header.id
            )));
        }
        Ok(off)
    }

    pub fn leaf(&self, i: usize) -> Result<LeafElem<'a>> {
        let off = self.element(i)?;
        let field = |o| u32_at(self.bytes, off + o).unwrap_or(0);
        let (flags, pos, ksize, vsize) = (field(0), field(4), field(8), field(12));
        let key = self.span(i, pos, 0, u64::from(ksize))?;
        let value = self.span(i, pos, u64::from(ksize), u64::from(vsize))?;
        Ok(LeafElem { flags, key, value })
    }

    pub fn branch(&self, i: usize) -> Result<(&'a [u8], u64)> {
        let off = self.element(i)?;
        let pos = u32_at(self.bytes, off).unwrap_or(0);
        let ksize = u32_at(self.bytes, off + 4).unwrap_or(0);
        let child = u64_at(self.bytes, off + 8).unwrap_or(0);
        Ok((self.span(i, pos, 0, u64::from(ksize))?, child))
    }
}
