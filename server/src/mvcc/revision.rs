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
    pub fn to_key(self, tombstone: bool) -> Vec<u8> {
        let mut k = Vec::with_capacity(REV_BYTES + 1);
        k.extend_from_slice(&self.main.to_be_bytes());
        k.push(b'_');
        k.extend_from_slice(&self.sub.to_be_bytes());
        if tombstone {
            k.push(TOMBSTONE_MARK);
        }
        k
    }

    /// The smallest backend key at or after this revision (tombstone or not).
    pub fn lower_bound_key(self) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_is_revision_order() {
        let a = Revision::new(1, 5).to_key(false);
        let b = Revision::new(2, 0).to_key(true);
        let c = Revision::new(2, 1).to_key(false);
        assert!(a < b && b < c);
        assert_eq!(Revision::from_key(&b), Some((Revision::new(2, 0), true)));
        assert_eq!(Revision::from_key(&c), Some((Revision::new(2, 1), false)));
        assert_eq!(Revision::from_key(b"short"), None);
    }
}
