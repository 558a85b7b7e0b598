//! Layer compression: what a layer blob is compressed with, and the streaming
//! encoders that do it on every core.
//!
//! Both compressed formats are deterministic for a given input and setting,
//! whatever the thread count: gzip through [`ParallelGzipWriter`]'s fixed
//! chunks, zstd because its multithreaded mode (any worker count ≥ 1) cuts jobs
//! by size, not by worker — we never use its single-threaded mode, whose
//! output differs.

use std::io::{self, Write};

use crate::parallel_gzip::ParallelGzipWriter;

pub use builder_store::manifest::media_type::{
    OCI_LAYER as MEDIA_TYPE_TAR, OCI_LAYER_GZIP as MEDIA_TYPE_TAR_GZIP,
    OCI_LAYER_ZSTD as MEDIA_TYPE_TAR_ZSTD,
};

/// Highest zstd level accepted: 20–22 ("ultra") want windows of up to
/// 128 MiB per worker, far past a builder's memory budget.
pub const ZSTD_MAX_LEVEL: i32 = 19;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip at `level` 0..=9 (values above 9 are treated as 9).
    Gzip {
        level: u32,
    },
    /// zstd at `level` 1..=[`ZSTD_MAX_LEVEL`] (clamped into that range).
    Zstd {
        level: i32,
    },
    Uncompressed,
}

impl Compression {
    /// gzip's and zstd's own defaults (6 and 3), which BuildKit uses too.
    pub const GZIP_DEFAULT: Compression = Compression::Gzip { level: 6 };
    pub const ZSTD_DEFAULT: Compression = Compression::Zstd { level: 3 };

    /// The OCI media type of a layer compressed this way.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip { .. } => MEDIA_TYPE_TAR_GZIP,
            Compression::Zstd { .. } => MEDIA_TYPE_TAR_ZSTD,
            Compression::Uncompressed => MEDIA_TYPE_TAR,
        }
    }
}

/// How many threads to compress with when the caller does not say: every core
/// the process may use. The bytes do not depend on it.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A streaming compressor for one layer; call [`LayerEncoder::finish`] to end
/// the stream (dropping it leaves the output truncated).
pub enum LayerEncoder<W: Write> {
    Gzip(ParallelGzipWriter<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Plain(W),
}

impl<W: Write> LayerEncoder<W> {
    /// Starts a stream into `out` compressed with `compression` on `threads`
    /// threads (at least one).
    pub fn new(out: W, compression: Compression, threads: usize) -> io::Result<Self> {
        let threads = threads.max(1);
        Ok(match compression {
            Compression::Gzip { level } => {
                LayerEncoder::Gzip(ParallelGzipWriter::new(out, level, threads)?)
            }
            Compression::Zstd { level } => LayerEncoder::Zstd(zstd_encoder(out, level, threads)?),
            Compression::Uncompressed => LayerEncoder::Plain(out),
        })
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            LayerEncoder::Gzip(g) => g.finish(),
            LayerEncoder::Zstd(z) => z.finish(),
            LayerEncoder::Plain(p) => Ok(p),
        }
    }
}

/// Bytes of input per zstd worker job (see `zstd_encoder`); part of what the output is.
const ZSTD_JOB_SIZE: u32 = 2 * 1024 * 1024;
/// The highest level whose window (2 MiB from level 3 to 7) fits one such job.
const ZSTD_SMALL_JOB_MAX_LEVEL: i32 = 7;

fn zstd_encoder<W: Write>(
    out: W,
    level: i32,
    threads: usize,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut enc = zstd::stream::write::Encoder::new(out, level.clamp(1, ZSTD_MAX_LEVEL))?;
    // The frame checksum lets `zstd -t` and strict readers verify the layer.
    enc.include_checksum(true)?;
    // Always ≥ 1 worker: zstd's output is the same for every worker count
    // ≥ 1, but differs in its single-threaded (0 workers) mode.
    enc.multithread(u32::try_from(threads).unwrap_or(u32::MAX))?;
    // zstd's own job size is 4 windows (8 MiB at the default level), and it keeps several
    // jobs' input and output buffered per worker: compressing a 300 MB random file took 112 MB
    // of RSS (157 MB of text: 57 MB). With 2 MiB jobs (one window up to level 7): 33 MB and
    // 20 MB, the same speed, and the text 0.1% smaller (`layer_write_bench`, BENCHMARKS.md
    // "Issue #17: zstd's memory"). Higher levels keep zstd's choice: their windows are larger.
    if level <= ZSTD_SMALL_JOB_MAX_LEVEL {
        enc.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
    }
    Ok(enc)
}

impl<W: Write> Write for LayerEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            LayerEncoder::Gzip(g) => g.write(buf),
            LayerEncoder::Zstd(z) => z.write(buf),
            LayerEncoder::Plain(p) => p.write(buf),
        }
    }

    /// Flushes what is already compressed, never forcing a block boundary:
    /// the bytes must not depend on when (or whether) callers flush.
    fn flush(&mut self) -> io::Result<()> {
        match self {
            LayerEncoder::Gzip(g) => g.flush(),
            LayerEncoder::Zstd(z) => z.get_mut().flush(),
            LayerEncoder::Plain(p) => p.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};

    use super::*;

    /// The same text-and-random test data as the parallel gzip tests.
    fn mixed(len: usize) -> Vec<u8> {
        crate::parallel_gzip::tests::mixed(len, 0x9e37_79b9_7f4a_7c15)
    }

    fn encode(data: &[u8], c: Compression, threads: usize) -> Vec<u8> {
        let mut enc = LayerEncoder::new(Vec::new(), c, threads).unwrap();
        for piece in data.chunks(65_521) {
            enc.write_all(piece).unwrap();
            // Flushing must not cut blocks (tar or a BufWriter may flush at any time).
            enc.flush().unwrap();
        }
        enc.finish().unwrap()
    }

    #[test]
    fn zstd_same_bytes_for_any_thread_count_and_decodes() {
        // Several zstd jobs' worth, so the workers really split the frame.
        let data = mixed(24 << 20);
        let one = encode(&data, Compression::ZSTD_DEFAULT, 1);
        for threads in [2, 4] {
            assert!(
                encode(&data, Compression::ZSTD_DEFAULT, threads) == one,
                "{threads} threads differ"
            );
        }
        let mut back = Vec::new();
        zstd::stream::read::Decoder::new(&one[..])
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data);
        assert!(one.len() < data.len() / 2);
    }

    #[test]
    fn zstd_tool_accepts_the_stream() {
        let data = mixed(3 << 20);
        let z = encode(&data, Compression::Zstd { level: 19 }, 2);
        let mut child = Command::new("zstd")
            .args(["-t", "-q"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("zstd is installed (apt-get install zstd)");
        child.stdin.take().unwrap().write_all(&z).unwrap();
        assert!(
            child.wait().unwrap().success(),
            "zstd -t rejected the stream"
        );
    }

    #[test]
    fn gzip_flushes_do_not_change_the_bytes() {
        let data = mixed(3 << 20);
        let flushed = encode(&data, Compression::GZIP_DEFAULT, 2);
        let mut plain = ParallelGzipWriter::new(Vec::new(), 6, 2).unwrap();
        plain.write_all(&data).unwrap();
        assert!(plain.finish().unwrap() == flushed);
    }

    #[test]
    fn media_types_and_passthrough() {
        assert_eq!(
            Compression::ZSTD_DEFAULT.media_type(),
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        assert_eq!(Compression::GZIP_DEFAULT.media_type(), MEDIA_TYPE_TAR_GZIP);
        assert_eq!(Compression::Uncompressed.media_type(), MEDIA_TYPE_TAR);
        assert_eq!(encode(b"abc", Compression::Uncompressed, 4), b"abc");
    }
}
