//! A minimal bbolt (etcd's storage engine) file writer and reader, enough to
//! produce and consume etcd snapshot files without Go.
//!
//! The on-disk format, as bbolt v1.3 lays it out (all integers
//! little-endian, every page `PAGE_SIZE` bytes or a run of them):
//!
//! * page header (16 bytes): page id u64, flags u16, element count u16,
//!   overflow u32 (how many extra pages the page spans);
//! * pages 0 and 1: meta pages (magic, version, page size, root bucket,
//!   freelist page, high-water page id, txid, FNV-64a checksum); readers use
//!   the valid one with the larger txid;
//! * branch pages: elements `{pos u32, ksize u32, child pgid u64}`;
//! * leaf pages: elements `{flags u32, pos u32, ksize u32, vsize u32}`; `pos`
//!   is counted from the element's own header;
//! * the root bucket is a tree whose leaf values (flag 1) are bucket headers
//!   `{root pgid u64, sequence u64}`; root 0 means the bucket's page follows
//!   the header inline in the value.

mod page;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use reader::{Entries, Reader};
pub use writer::Writer;

/// The page size etcd uses on Linux (the OS page size), and what we write.
pub const PAGE_SIZE: usize = 4096;

/// Errors of the bbolt reader and writer.
#[derive(Debug, thiserror::Error)]
pub enum BoltError {
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a well-formed bbolt database.
    #[error("not an etcd/bbolt snapshot: {0}")]
    Malformed(String),
    /// The caller broke the writer's contract (order, sizes).
    #[error("bbolt writer: {0}")]
    Usage(String),
}

impl BoltError {
    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> BoltError {
        move |source| BoltError::Io { context, source }
    }
}

impl From<BoltError> for crate::error::Error {
    fn from(e: BoltError) -> Self {
        match e {
            BoltError::Io { context, source } => crate::error::Error::io(context, source),
            other => crate::error::Error::Other(other.to_string()),
        }
    }
}

pub type Result<T, E = BoltError> = std::result::Result<T, E>;
