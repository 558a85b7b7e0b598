//! Telling, cheaply, that deflate cannot shrink a piece of a layer.
//!
//! Why: deflate at the default level searches for matches in every byte it is given, and on
//! data that is already compressed or random (archives, jars, images, media, encrypted or
//! packed files) it finds none and stores the data anyway, at ~47 MB/s per core here
//! (zlib-rs, level 6, 1 MiB chunks; ~56 MB/s on text). A piece judged incompressible is handed
//! to the compressor at level 0, which stores it at memory speed; the stream stays one
//! ordinary deflate stream.
//!
//! The judgement is conservative: a piece counts as incompressible only when its byte
//! frequencies are near-uniform (order-0 entropy of at least [`MIN_ENTROPY`] bits per byte,
//! which bounds what Huffman coding of its literals could save to 0.25%) *and* at most 1 in
//! [`REPEAT_SHARE`] of its positions starts a 4-byte sequence seen shortly before, which is
//! all LZ77 could use: such a piece stored is at most ~1.3% larger than deflated. Text, code
//! and machine code are far below that entropy (4–6.5 bits) and are compressed as before.

/// Bits per byte at or above which Huffman coding of literals saves at most
/// (8 - 7.98) / 8 = 0.25%. A 64 KiB piece of random bytes measures ~7.997 (the estimate's bias
/// for 256 symbols over 65,536 samples is ~0.003 bits).
const MIN_ENTROPY: f64 = 7.98;

/// Every [`SAMPLE_STRIDE`]th byte's entropy below which a piece is compressible without a
/// closer look. Most layer bytes are text or code (4–6.5 bits) and cost only this sample;
/// random bytes sample at ~7.95 (the estimate's bias over 4,096 samples is ~0.045 bits).
const SAMPLE_MIN_ENTROPY: f64 = 7.8;
const SAMPLE_STRIDE: usize = 16;

/// Pieces shorter than this are always compressed: too few bytes to judge.
const MIN_LEN: usize = 4096;

/// 1 in this many positions starting a 4-byte sequence seen at most 32 KiB before (deflate's
/// window) makes a piece worth deflate's search. Random bytes give none (a chance match is 1
/// in 2^32). Not fewer: a piece of compressed data that begins or ends with a little text (a
/// tar header, a file's first bytes) would be deflated whole for a gain under 1%; in the
/// benchmark's large files, half their pieces were random but for 512 bytes, and a limit of
/// 64 repeats left every one of them to deflate.
const REPEAT_SHARE: usize = 100;

/// Whether deflate could shrink `piece` by no more than ~0.25% (see the module's doc).
///
/// Measured on the benchmark VM: a full histogram of every piece cost the large-file build
/// (half its 64 KiB blocks random, none aligned to a piece) ~6% of its gzip time; the sample
/// first brings that to noise.
pub(crate) fn incompressible(piece: &[u8]) -> bool {
    piece.len() >= MIN_LEN
        && sampled_entropy(piece) >= SAMPLE_MIN_ENTROPY
        && entropy(piece) >= MIN_ENTROPY
        && !has_repeats(piece)
}

/// Order-0 entropy of every [`SAMPLE_STRIDE`]th byte of `bytes`.
fn sampled_entropy(bytes: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for &b in bytes.iter().step_by(SAMPLE_STRIDE) {
        counts[b as usize] += 1;
        n += 1;
    }
    bits_per_byte(counts.iter().copied(), f64::from(n))
}

/// Order-0 entropy of `bytes` in bits per byte.
fn entropy(bytes: &[u8]) -> f64 {
    // Four tables, summed at the end: consecutive increments of one table stall on the
    // same counter when bytes repeat.
    let mut counts = [[0u32; 256]; 4];
    let mut quads = bytes.chunks_exact(4);
    for q in &mut quads {
        counts[0][q[0] as usize] += 1;
        counts[1][q[1] as usize] += 1;
        counts[2][q[2] as usize] += 1;
        counts[3][q[3] as usize] += 1;
    }
    for &b in quads.remainder() {
        counts[0][b as usize] += 1;
    }
    let totals = (0..256).map(|i| counts.iter().map(|t| t[i]).sum::<u32>());
    bits_per_byte(totals, bytes.len() as f64)
}

/// Shannon entropy of a byte histogram of `n` bytes.
fn bits_per_byte(counts: impl Iterator<Item = u32>, n: f64) -> f64 {
    counts
        .filter(|&c| c > 0)
        .map(|c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Whether more than 1 in [`REPEAT_SHARE`] positions of `bytes` start a 4-byte sequence seen
/// earlier within deflate's 32 KiB window: what LZ77 would turn into matches.
fn has_repeats(bytes: &[u8]) -> bool {
    const BITS: u32 = 12;
    const WINDOW: usize = 32 * 1024;
    // Last position (plus one; 0 = none) of each hashed 4-byte sequence.
    let mut last = [0u32; 1 << BITS];
    let limit = bytes.len() / REPEAT_SHARE;
    let mut repeats = 0;
    for i in 0..bytes.len().saturating_sub(3) {
        let seq = [bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]];
        let slot = (u32::from_le_bytes(seq).wrapping_mul(0x9E37_79B1) >> (32 - BITS)) as usize;
        if let Some(j) = (last[slot] as usize).checked_sub(1)
            && i - j <= WINDOW
            && bytes[j..j + 4] == seq
        {
            repeats += 1;
            if repeats > limit {
                return true;
            }
        }
        last[slot] = i as u32 + 1;
    }
    false
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// xorshift64 bytes: as incompressible as compressed data.
    pub(crate) fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    #[test]
    fn random_bytes_are_incompressible_and_text_is_not() {
        assert!(incompressible(&random(64 << 10, 1)));
        let text: Vec<u8> = (0..)
            .flat_map(|i: u32| {
                format!("row {i} value={} name=item{}\n", i * 7, i % 97).into_bytes()
            })
            .take(64 << 10)
            .collect();
        assert!(!incompressible(&text));
        // Machine-code-like bytes: skewed frequencies, no long repeats.
        let skewed: Vec<u8> = random(64 << 10, 2).iter().map(|b| b & 0x3f).collect();
        assert!(!incompressible(&skewed));
    }

    /// Near-uniform bytes that repeat within deflate's window (two copies of one small
    /// compressed file side by side) are left to deflate, which halves them.
    #[test]
    fn repeated_random_blocks_are_compressible() {
        let block = random(16 << 10, 3);
        let piece: Vec<u8> = block
            .iter()
            .chain(&block)
            .chain(&block)
            .chain(&block)
            .copied()
            .collect();
        assert!(entropy(&piece) >= MIN_ENTROPY);
        assert!(!incompressible(&piece));
    }

    /// The sample lets random bytes through to the full look, and stops text at once.
    #[test]
    fn the_sample_passes_random_bytes_and_stops_text() {
        assert!(sampled_entropy(&random(64 << 10, 5)) >= SAMPLE_MIN_ENTROPY);
        let text = b"fn main() { println!(\"hello\"); }\n".repeat(2048);
        assert!(sampled_entropy(&text) < SAMPLE_MIN_ENTROPY);
    }

    #[test]
    fn short_pieces_are_always_compressed() {
        assert!(!incompressible(&random(MIN_LEN - 1, 4)));
        assert!(!incompressible(&[]));
    }
}
