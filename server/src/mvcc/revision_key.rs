//! The redb key type of the `kv` table: revision keys, routed by short separators.
//!
//! Stored keys are etcd's revision keys (see [`Revision::to_key`](super::Revision::to_key))
//! and order byte by byte, as etcd's do. What differs is what redb keeps in its branch pages
//! to route between two leaves. For plain byte strings that is the shortest prefix of the
//! right-hand key that sorts above the left one: 8 bytes for neighbouring revisions, because
//! the big-endian main revision starts with zeros. Here a separator is the main revision
//! alone without those zeros, 3 bytes up to revision 16 million, which stands for the point
//! just below `main_0`. Branch pages then route about 14% more children each, which keeps
//! a defragmented database below bbolt's size for the same data.

use std::borrow::Cow;
use std::cmp::Ordering;

use redb::{Key, TypeName, Value};

/// Length of an encoded revision without the tombstone mark.
const REVISION_KEY_LEN: usize = super::revision::REV_BYTES;
/// Separators are 1 to 8 bytes; no stored key is that short.
const MAX_SEPARATOR_LEN: usize = 8;

/// Key type of the `kv` table. Values of the type are the encoded bytes, so the table is
/// read and written with `&[u8]` keys.
#[derive(Debug)]
pub struct RevisionKey;

impl Value for RevisionKey {
    type SelfType<'a> = &'a [u8];
    type AsBytes<'a> = &'a [u8];

    fn fixed_width() -> Option<usize> {
        None
    }

    fn from_bytes<'a>(data: &'a [u8]) -> &'a [u8]
    where
        Self: 'a,
    {
        data
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a &'b [u8]) -> &'a [u8]
    where
        Self: 'b,
    {
        value
    }

    fn type_name() -> TypeName {
        TypeName::new("ballast::RevisionKey")
    }
}

impl Key for RevisionKey {
    fn compare(a: &[u8], b: &[u8]) -> Ordering {
        match (is_separator(a), is_separator(b)) {
            (false, false) => a.cmp(b),
            // A separator sorts after every key below the first revision key of its main
            // revision, and before that key and everything above it.
            (true, false) => {
                if b < first_key_of(a).as_slice() {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (false, true) => Self::compare(b, a).reverse(),
            (true, true) => first_key_of(a).cmp(&first_key_of(b)),
        }
    }

    fn separator<'a>(left: &'a [u8], right: &'a [u8]) -> Cow<'a, [u8]> {
        if !is_separator(left) && right.len() >= REVISION_KEY_LEN && right[8] == b'_' {
            let main = &right[..8];
            let zeros = main[..7].iter().take_while(|b| **b == 0).count();
            let short = &main[zeros..];
            if left < first_key_of(short).as_slice() {
                return Cow::Borrowed(short);
            }
        }
        // Keys of one main revision (the changes of one transaction): nothing shorter
        // routes between them.
        Cow::Borrowed(left)
    }
}

fn is_separator(k: &[u8]) -> bool {
    (1..=MAX_SEPARATOR_LEN).contains(&k.len())
}

/// The revision key `main_0` for a separator holding `main` without its leading zeros.
fn first_key_of(separator: &[u8]) -> [u8; REVISION_KEY_LEN] {
    let mut key = [0u8; REVISION_KEY_LEN];
    key[8 - separator.len()..8].copy_from_slice(separator);
    key[8] = b'_';
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::Revision;
    use proptest::prelude::*;

    fn key(main: i64, sub: i64, tombstone: bool) -> Vec<u8> {
        Revision::new(main, sub).to_key(tombstone).to_vec()
    }

    fn revision_key() -> impl Strategy<Value = Vec<u8>> {
        // Mains cluster so that neighbours often share all but the last bytes.
        (
            prop_oneof![0i64..300, 0i64..1 << 40, Just(i64::MAX)],
            0i64..4,
            any::<bool>(),
        )
            .prop_map(|(main, sub, t)| key(main, sub, t))
    }

    proptest! {
        #[test]
        fn stored_keys_keep_byte_order(a in revision_key(), b in revision_key()) {
            prop_assert_eq!(RevisionKey::compare(&a, &b), a.cmp(&b));
        }

        #[test]
        fn a_separator_routes_between_its_keys(a in revision_key(), b in revision_key()) {
            prop_assume!(a != b);
            let (left, right) = if a < b { (a, b) } else { (b, a) };
            let sep = RevisionKey::separator(&left, &right);
            prop_assert!(RevisionKey::compare(&left, &sep) != Ordering::Greater);
            prop_assert_eq!(RevisionKey::compare(&sep, &right), Ordering::Less);
            prop_assert!(sep.len() <= left.len());
        }

        #[test]
        fn order_is_transitive_across_keys_and_separators(
            keys in proptest::collection::vec(revision_key(), 2..12)
        ) {
            let mut sorted = keys.clone();
            sorted.sort();
            sorted.dedup();
            let mut all = sorted.clone();
            for pair in sorted.windows(2) {
                all.push(RevisionKey::separator(&pair[0], &pair[1]).into_owned());
            }
            all.sort_by(|x, y| RevisionKey::compare(x, y));
            for (i, x) in all.iter().enumerate() {
                for y in &all[i + 1..] {
                    prop_assert!(RevisionKey::compare(x, y) != Ordering::Greater);
                    prop_assert!(RevisionKey::compare(y, x) != Ordering::Less);
                }
            }
        }
    }

    #[test]
    fn neighbouring_revisions_are_separated_by_their_significant_bytes() {
        let (left, right) = (key(999_999, 0, false), key(1_000_000, 0, false));
        assert_eq!(
            RevisionKey::separator(&left, &right).as_ref(),
            &[0x0f, 0x42, 0x40]
        );
        // The changes of one transaction share a main revision.
        let left = key(7, 0, false);
        assert_eq!(
            RevisionKey::separator(&left, &key(7, 1, false)).as_ref(),
            left
        );
        // A deletion and the next revision.
        assert_eq!(
            RevisionKey::separator(&key(7, 1, true), &key(8, 0, false)).as_ref(),
            &[8]
        );
    }
}
