//! Layer compression throughput: a generated layer-sized stream (mixed text and
//! random blocks, never held in memory) through one compressor.
//!
//! cargo run --release -p builder-snapshot --example compress_bench -- MODE [MiB] [THREADS]
//!
//! MODE: `none` (generation only), `gzip1` (flate2's single-threaded GzEncoder,
//! what write_layer used before), `pgzip` (ParallelGzipWriter), `zstd`
//! (LayerEncoder, multithreaded). Default 1024 MiB and every core. Prints one
//! line: mode, threads, MiB in, bytes out, ratio, seconds, MB/s of input.
//! Run under `/usr/bin/time -v` for peak RSS (bench/compress.sh does).

use std::error::Error;
use std::io::{self, Write};
use std::time::Instant;

use builder_snapshot::{Compression, LayerEncoder, ParallelGzipWriter, default_threads};

const PIECE: usize = 1 << 20;
const BLOCK: usize = 64 << 10;

#[path = "common/counter.rs"]
mod counter;
use counter::Counter;

/// xorshift64: cheap, deterministic, incompressible enough to stand in for binaries.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// 256 KiB of word soup, the "text" that 2 of every 3 blocks copy from.
fn corpus(rng: &mut Rng) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "usr", "lib", "share", "config", "install", "debian", "package", "version", "=", "/", "\n",
        "the", "build", "layer", "0.1.2", "libc6",
    ];
    let mut text = Vec::with_capacity(256 << 10);
    while text.len() < 256 << 10 {
        text.extend_from_slice(WORDS[(rng.next() % 16) as usize].as_bytes());
        text.push(b' ');
    }
    text
}

/// Streams `total` bytes of mixed content into `out`, one piece at a time.
fn generate(total: usize, out: &mut dyn Write) -> io::Result<()> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let text = corpus(&mut rng);
    let mut piece = vec![0u8; PIECE];
    let mut left = total;
    while left > 0 {
        for block in piece.chunks_mut(BLOCK) {
            let r = rng.next();
            if r.is_multiple_of(3) {
                rng.fill(block);
            } else {
                let start = (r >> 8) as usize % (text.len() - BLOCK);
                block.copy_from_slice(&text[start..start + BLOCK]);
            }
        }
        let n = left.min(PIECE);
        out.write_all(&piece[..n])?;
        left -= n;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("pgzip");
    let mib: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let threads: usize = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or_else(default_threads);
    let total = mib << 20;
    let start = Instant::now();
    let out = match mode {
        "none" => {
            let mut c = Counter(0);
            generate(total, &mut c)?;
            c.0
        }
        "gzip1" => {
            let mut e = flate2::GzBuilder::new().write(Counter(0), flate2::Compression::new(6));
            generate(total, &mut e)?;
            e.finish()?.0
        }
        "pgzip" => {
            let mut e = ParallelGzipWriter::new(Counter(0), 6, threads)?;
            generate(total, &mut e)?;
            e.finish()?.0
        }
        "zstd" => {
            let mut e = LayerEncoder::new(Counter(0), Compression::ZSTD_DEFAULT, threads)?;
            generate(total, &mut e)?;
            e.finish()?.0
        }
        other => return Err(format!("unknown mode {other}: none, gzip1, pgzip or zstd").into()),
    };
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{mode} threads={threads} in={mib}MiB out={out} ratio={:.3} secs={secs:.2} MB/s={:.1}",
        out as f64 / total as f64,
        total as f64 / 1e6 / secs
    );
    Ok(())
}
