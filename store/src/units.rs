//! docker's size syntax, one parser for every flag that takes a size (`--memory`,
//! `--shm-size`, `prune --keep-storage`): go-units' `RAMInBytes`, which docker uses for all of
//! them — a number, possibly fractional, an optional space, and an optional k/m/g/t/p prefix
//! (powers of 1024, any case) with an optional `i` and `b`: `64m`, `1.5GiB`, `5GB`, `1048576`.

/// The size in bytes, or why not (the caller names its flag).
pub fn ram_in_bytes(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let num_len = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let number = &lower[..num_len];
    let value: f64 = match number.parse() {
        Ok(v) if !number.is_empty() => v,
        _ => {
            return Err(format!(
                "invalid size {text:?}: expected e.g. 64m, 1.5g or 5GB"
            ));
        }
    };
    let suffix = lower[num_len..].trim_start();
    let suffix = suffix.strip_suffix('b').unwrap_or(suffix);
    let suffix = suffix.strip_suffix('i').unwrap_or(suffix);
    let power = match suffix {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return Err(format!("invalid size {text:?}: unknown unit {suffix:?}")),
    };
    let bytes = value * 1024f64.powi(power);
    // u64::MAX as f64 rounds up to 2^64, which no u64 holds: refuse it and anything above.
    if bytes >= u64::MAX as f64 {
        return Err(format!("invalid size {text:?}: too large"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::ram_in_bytes;

    #[test]
    fn docker_sizes() {
        assert_eq!(ram_in_bytes("5GB"), Ok(5 << 30));
        assert_eq!(ram_in_bytes("512mb"), Ok(512 << 20));
        assert_eq!(ram_in_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(ram_in_bytes("100"), Ok(100));
        assert_eq!(ram_in_bytes("10 k"), Ok(10240));
        assert_eq!(ram_in_bytes("64m"), Ok(64 << 20));
        assert_eq!(ram_in_bytes("8192k"), Ok(8 << 20));
        for bad in [
            "",
            "GB",
            "5XB",
            "-1",
            "m",
            "12x",
            "-5m",
            "99999999999999g",
            "1.2.3m",
        ] {
            assert!(ram_in_bytes(bad).is_err(), "{bad}");
        }
    }
}
