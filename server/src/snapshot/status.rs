//! `snapshot status`: the numbers `etcdctl snapshot status` (3.4) prints,
//! computed the same way so both tools agree on any file:
//!
//! * hash: CRC-32C over every bucket name followed by its keys and values,
//!   buckets and keys in order;
//! * revision: main revision of the last key in the `key` bucket;
//! * totalKey: entries in all buckets;
//! * totalSize: bbolt's size, high-water page × page size.

use std::path::Path;

use super::{layout, named, open_db};
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotStatus {
    pub hash: u32,
    pub revision: i64,
    #[serde(rename = "totalKey")]
    pub total_key: u64,
    #[serde(rename = "totalSize")]
    pub total_size: u64,
}

/// Reads a snapshot (or bare database) file. A SHA-256 trailer, when
/// present, is verified first.
pub fn status(path: &Path) -> Result<SnapshotStatus> {
    super::check_trailer(path, false)?;
    let db = open_db(path)?;
    let mut crc = Crc32c::default();
    let mut st = SnapshotStatus {
        hash: 0,
        revision: 0,
        total_key: 0,
        total_size: db.size(),
    };
    for name in db.buckets().map_err(|e| named(path, e))? {
        crc.update(&name);
        let is_key = name == layout::KEY;
        let entries = db
            .bucket(&name)
            .map_err(|e| named(path, e))?
            .into_iter()
            .flatten();
        for entry in entries {
            let (k, v) = entry.map_err(|e| named(path, e))?;
            crc.update(&k);
            crc.update(&v);
            if is_key {
                // etcdctl reads the first 8 bytes as the main revision.
                let main: [u8; 8] =
                    k.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(|| {
                        named(
                            path,
                            format!(
                                "not an etcd snapshot: key bucket entry {k:?} is not a revision"
                            ),
                        )
                    })?;
                st.revision = i64::from_be_bytes(main);
            }
            st.total_key += 1;
        }
    }
    st.hash = crc.finish();
    Ok(st)
}

/// CRC-32 with the Castagnoli polynomial (Go's `crc32.Castagnoli`).
struct Crc32c {
    state: u32,
}

impl Default for Crc32c {
    fn default() -> Self {
        Crc32c { state: !0 }
    }
}

const CASTAGNOLI_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

impl Crc32c {
    fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.state =
                CASTAGNOLI_TABLE[((self.state ^ u32::from(b)) & 0xff) as usize] ^ (self.state >> 8);
        }
    }

    fn finish(&self) -> u32 {
        !self.state
    }
}

#[cfg(test)]
mod tests {
    use super::Crc32c;

    #[test]
    fn crc32c_check_value() {
        let mut c = Crc32c::default();
        c.update(b"12345");
        c.update(b"6789");
        assert_eq!(c.finish(), 0xE306_9283);
    }
}
