//! Keys and values as etcd's benchmark makes them, so that both servers store
//! byte-for-byte the same shapes.

use rand::RngCore;

use crate::error::BenchError;

/// A `size`-byte key whose first bytes are `n` as an unsigned LEB128 varint
/// (Go's `binary.PutUvarint`), zero-padded, as etcd's put and txn-put build keys.
pub fn numbered_key(n: u64, size: usize) -> Vec<u8> {
    let mut key = vec![0u8; size];
    let mut v = n;
    let mut i = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            key[i] = byte;
            return key;
        }
        key[i] = byte | 0x80;
        i += 1;
    }
}

/// Bytes the varint of `n` needs.
fn varint_len(n: u64) -> usize {
    (64 - n.leading_zeros() as usize).div_ceil(7).max(1)
}

/// Checks that every key number below `space` fits in `size` bytes.
pub fn check_key_space(size: usize, space: u64) -> Result<(), BenchError> {
    if space == 0 {
        return Err(BenchError::Config(
            "--key-space-size must be at least 1".into(),
        ));
    }
    let need = varint_len(space - 1);
    if size < need {
        return Err(BenchError::Config(format!(
            "--key-size {size} is too small for --key-space-size {space} (needs {need} bytes)"
        )));
    }
    Ok(())
}

/// Random bytes for values (content does not matter, size does).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_go_putuvarint() {
        assert_eq!(numbered_key(0, 4), [0, 0, 0, 0]);
        assert_eq!(numbered_key(5, 3), [5, 0, 0]);
        assert_eq!(numbered_key(300, 3), [0xac, 0x02, 0]);
        assert_eq!(numbered_key(127, 1), [127]);
    }

    #[test]
    fn key_space_must_fit_the_key_size() {
        assert!(check_key_space(1, 128).is_ok());
        assert!(check_key_space(1, 129).is_err());
        assert!(check_key_space(2, 129).is_ok());
        assert!(check_key_space(8, 0).is_err());
        assert!(check_key_space(0, 1).is_err());
    }
}
