//! Kubernetes quantities (`8Gi`, `2G`, `1.5Gi`) as bytes, for the flags that take plain byte
//! counts (`--quota-backend-bytes`) and for comparing volume sizes.

use crate::error::Error;

/// Parses a quantity into bytes, rounding fractions up. Only the forms a size can
/// reasonably take are accepted: an unsigned decimal number with an optional binary
/// (`Ki`..`Ei`) or decimal (`k`..`E`) suffix.
pub fn to_bytes(q: &str) -> Result<u64, Error> {
    let bad = || Error::InvalidSpec(format!("{q:?} is not a size such as 8Gi"));
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let multiplier: u128 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        _ => return Err(bad()),
    };
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(bad());
    }
    if frac_part.len() > 18 {
        return Err(bad());
    }
    let int: u128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().map_err(|_| bad())?
    };
    let mut total = int.checked_mul(multiplier).ok_or_else(bad)?;
    if !frac_part.is_empty() {
        let frac: u128 = frac_part.parse().map_err(|_| bad())?;
        let scale = 10u128.pow(frac_part.len() as u32);
        let frac_bytes = (frac * multiplier).div_ceil(scale);
        total = total.checked_add(frac_bytes).ok_or_else(bad)?;
    }
    u64::try_from(total).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::to_bytes;

    #[test]
    fn parses_sizes() {
        assert_eq!(to_bytes("8Gi").unwrap(), 8 << 30);
        assert_eq!(to_bytes("2G").unwrap(), 2_000_000_000);
        assert_eq!(to_bytes("1.5Gi").unwrap(), 3 << 29);
        assert_eq!(to_bytes("4096").unwrap(), 4096);
        assert!(to_bytes("8 Gi").is_err());
        assert!(to_bytes("Gi").is_err());
        assert!(to_bytes("-1Gi").is_err());
        assert!(to_bytes("9Ei9").is_err());
    }
}
