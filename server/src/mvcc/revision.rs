//! Revisions and their byte encoding as backend keys.

/// A point in the store's history: `main` is the revision of a whole request
/// (one per Put, DeleteRange or Txn); `sub` orders the changes within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

/// Length of an encoded revision: 8 bytes main, `_`, 8 bytes sub (etcd's layout).
pub const REV_BYTES: usize = 17;
/// Appended to the key of a deletion so that it can be told apart without
/// decoding the value.
const TOMBSTONE_MARK: u8 = b't';

impl Revision {
    pub fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    /// Big-endian encoding so that byte order equals revision order in the backend.
    pub fn to_key(self, tombstone: bool) -> KeyBytes {
        let mut buf = [0u8; REV_BYTES + 1];
        buf[..8].copy_from_slice(&self.main.to_be_bytes());
        buf[8] = b'_';
        buf[9..REV_BYTES].copy_from_slice(&self.sub.to_be_bytes());
        buf[REV_BYTES] = TOMBSTONE_MARK;
        KeyBytes {
            buf,
            len: REV_BYTES + usize::from(tombstone),
        }
    }

    /// The smallest backend key at or after this revision (tombstone or not).
    pub fn lower_bound_key(self) -> KeyBytes {
        self.to_key(false)
    }

    /// Decodes a backend key; `None` if it is not one we wrote.
    pub fn from_key(k: &[u8]) -> Option<(Revision, bool)> {
        if k.len() < REV_BYTES || k.len() > REV_BYTES + 1 || k[8] != b'_' {
            return None;
        }
        let main = i64::from_be_bytes(k[0..8].try_into().ok()?);
        let sub = i64::from_be_bytes(k[9..17].try_into().ok()?);
        let tombstone = match k.get(REV_BYTES) {
            None => false,
            Some(&TOMBSTONE_MARK) => true,
            Some(_) => return None,
        };
        Some((Revision { main, sub }, tombstone))
    }
}

/// An encoded revision, kept on the stack: the apply thread makes one per write.
#[derive(Debug, Clone, Copy)]
pub struct KeyBytes {
    buf: [u8; REV_BYTES + 1],
    len: usize,
}

impl KeyBytes {
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::ops::Deref for KeyBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_is_revision_order() {
        let a = Revision::new(1, 5).to_key(false);
        let b = Revision::new(2, 0).to_key(true);
        let c = Revision::new(2, 1).to_key(false);
        assert!(a.as_slice() < b.as_slice() && b.as_slice() < c.as_slice());
        assert_eq!(a.len(), REV_BYTES);
        assert_eq!(b.len(), REV_BYTES + 1);
        assert_eq!(Revision::from_key(&b), Some((Revision::new(2, 0), true)));
        assert_eq!(Revision::from_key(&c), Some((Revision::new(2, 1), false)));
        assert_eq!(Revision::from_key(b"short"), None);
    }
}
