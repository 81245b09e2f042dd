//! The end of a snapshot stream: etcd's `Maintenance.Snapshot` sends the database in
//! chunks and then, as its own last message, the database's SHA-256. Backups keep that
//! trailer (so the stored object is what `etcdctl snapshot save` writes) and check it before
//! the upload is completed, so a damaged stream never becomes a backup.

use sha2::{Digest, Sha256};

use super::save::hex;

/// Length of the SHA-256 trailer of a snapshot stream.
const TRAILER: usize = 32;

/// Tells the database chunks of a snapshot stream from its SHA-256 trailer, which the
/// member sends as its own last message, by holding each message back until the next one
/// arrives; and checks the trailer against the database.
#[derive(Default)]
pub(super) struct Split {
    held: Option<Vec<u8>>,
    db: Sha256,
}

impl Split {
    /// Takes the next message; returns the one before it, now known to be database bytes.
    pub(super) fn push(&mut self, blob: Vec<u8>) -> Option<Vec<u8>> {
        let db = self.held.replace(blob)?;
        self.db.update(&db);
        Some(db)
    }

    /// The trailer, if it is the database's SHA-256; otherwise what is wrong.
    pub(super) fn finish(self) -> std::result::Result<Vec<u8>, String> {
        let trailer = self.held.unwrap_or_default();
        if trailer.len() != TRAILER {
            return Err(format!(
                "the stream ended without its {TRAILER}-byte SHA-256 trailer (last message: \
                 {} bytes)",
                trailer.len()
            ));
        }
        let computed = self.db.finalize();
        if computed.as_slice() != trailer.as_slice() {
            return Err(format!(
                "the database's SHA-256 is {} but the member sent {}",
                hex(&computed),
                hex(&trailer)
            ));
        }
        Ok(trailer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(messages: &[&[u8]]) -> (Vec<u8>, std::result::Result<Vec<u8>, String>) {
        let mut split = Split::default();
        let mut db = Vec::new();
        for m in messages {
            db.extend(split.push(m.to_vec()).unwrap_or_default());
        }
        (db, split.finish())
    }

    #[test]
    fn the_last_message_is_the_trailer_and_must_match() {
        let sum = Sha256::digest(b"page1page2").to_vec();
        let (db, trailer) = split(&[b"page1", b"page2", &sum]);
        assert_eq!(db, b"page1page2");
        assert_eq!(trailer, Ok(sum.clone()));

        let (_, damaged) = split(&[b"page1", b"pageX", &sum]);
        let why = damaged.expect_err("a damaged page must be refused");
        assert!(why.starts_with("the database's SHA-256 is "), "{why}");

        let (_, cut) = split(&[b"page1", b"page2"]);
        let why = cut.expect_err("a stream without its trailer must be refused");
        assert!(
            why.contains("ended without its 32-byte SHA-256 trailer"),
            "{why}"
        );
        assert!(split(&[]).1.is_err());
    }
}
