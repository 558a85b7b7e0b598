//! pigz-style gzip: fixed-size chunks deflated independently on a thread pool.
//!
//! The input is cut every [`CHUNK_SIZE`] bytes. Each chunk becomes a raw
//! deflate stream ending in a sync flush (byte-aligned, not final); the last
//! chunk ends the stream with a final block. Concatenated in order behind one
//! gzip header and followed by one trailer (the chunks' CRC-32s combined),
//! that is a single valid gzip member any decoder reads.
//!
//! Chunks never share a dictionary, so each chunk's bytes depend only on its
//! own input and the level: the output is the same for any thread count.
//! Memory is bounded: at most `2 × threads` chunks are in flight, and the
//! caller's writes block until the oldest one is written out.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, FlushCompress, Status};

/// Input bytes per independently compressed chunk. Large enough that losing
/// the previous chunk's 32 KiB window costs well under 1% of ratio, small
/// enough that a handful in flight per core stays a few MiB.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Fixed header: no name, no mtime (reproducible), XFL 0, OS 255 ("unknown",
/// as flate2's GzBuilder writes).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Thread counts above this only add memory: deflate at these chunk sizes
/// saturates the tar producer long before.
const MAX_THREADS: usize = 32;

/// One compressed chunk and the CRC-32 of its input.
struct Block {
    deflated: Vec<u8>,
    crc: crc32fast::Hasher,
}

struct Job {
    input: Vec<u8>,
    level: u32,
    last: bool,
    reply: Sender<io::Result<Block>>,
}

/// A gzip encoder that compresses on `threads` worker threads (inline when 1).
pub struct ParallelGzipWriter<W: Write> {
    inner: W,
    level: u32,
    /// The chunk being filled.
    buf: Vec<u8>,
    /// Replies for chunks handed to the pool, oldest first.
    in_flight: VecDeque<Receiver<io::Result<Block>>>,
    max_in_flight: usize,
    pool: Option<Pool>,
    crc: crc32fast::Hasher,
    /// Uncompressed bytes taken so far, for the trailer's ISIZE.
    total_in: u64,
}

impl<W: Write> ParallelGzipWriter<W> {
    /// Writes the gzip header to `inner` at once. `level` is clamped to 0..=9.
    pub fn new(mut inner: W, level: u32, threads: usize) -> io::Result<Self> {
        inner.write_all(&GZIP_HEADER)?;
        let threads = threads.clamp(1, MAX_THREADS);
        Ok(ParallelGzipWriter {
            inner,
            level: level.min(9),
            buf: Vec::with_capacity(CHUNK_SIZE),
            in_flight: VecDeque::new(),
            max_in_flight: 2 * threads,
            pool: (threads > 1).then(|| Pool::new(threads)),
            crc: crc32fast::Hasher::new(),
            total_in: 0,
        })
    }

    /// Compresses what is buffered as the final chunk, writes the trailer and
    /// returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        self.drain(0)?;
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new());
        // ISIZE is the input length modulo 2^32 (RFC 1952).
        let isize = self.total_in as u32;
        self.inner.write_all(&crc.finalize().to_le_bytes())?;
        self.inner.write_all(&isize.to_le_bytes())?;
        self.pool = None;
        Ok(self.inner)
    }

    /// Hands the current chunk to the pool (or compresses it here).
    fn submit(&mut self, last: bool) -> io::Result<()> {
        self.drain(self.max_in_flight - 1)?;
        let input = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_SIZE));
        let (reply, rx) = mpsc::channel();
        match &self.pool {
            Some(pool) => pool.send(Job {
                input,
                level: self.level,
                last,
                reply,
            })?,
            None => {
                // Only the receiver can fail, and it is held just below.
                let _ = reply.send(deflate_chunk(&input, self.level, last));
            }
        }
        self.in_flight.push_back(rx);
        Ok(())
    }

    /// Writes finished chunks out, oldest first, until at most `keep` are in flight.
    fn drain(&mut self, keep: usize) -> io::Result<()> {
        while self.in_flight.len() > keep {
            let Some(rx) = self.in_flight.pop_front() else {
                break;
            };
            let block = rx
                .recv()
                .map_err(|_| io::Error::other("gzip compression worker exited"))??;
            self.inner.write_all(&block.deflated)?;
            self.crc.combine(&block.crc);
        }
        Ok(())
    }
}

impl<W: Write> Write for ParallelGzipWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK_SIZE - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        self.total_in += n as u64;
        if self.buf.len() == CHUNK_SIZE {
            self.submit(false)?;
        }
        Ok(n)
    }

    /// Writes out every chunk already submitted. The partly filled chunk stays
    /// buffered: cutting it here would make the bytes depend on flush calls.
    fn flush(&mut self) -> io::Result<()> {
        self.drain(0)?;
        self.inner.flush()
    }
}

/// Input judged at a time for whether deflate can shrink it (see `crate::incompressible`):
/// small enough that a chunk mixing small files of both kinds still stores most of what
/// cannot shrink, large enough that the judgement costs ~1% of deflating the piece.
const PIECE: usize = 64 << 10;

/// Raw deflate of one chunk: ends with a sync flush, or with the final block
/// when `last`. Also returns the chunk's CRC-32.
///
/// Runs of pieces that deflate cannot shrink are stored (a compressor at level 0), the rest
/// deflated at `level`. Each run ends with a sync flush (byte-aligned) and its compressor
/// starts with an empty window, so the runs join into one valid stream, as chunks do.
/// (Switching one compressor's level would keep the window, but flate2's zlib-rs backend
/// refuses `set_level` once data has passed: "stream error".)
fn deflate_chunk(input: &[u8], level: u32, last: bool) -> io::Result<Block> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(input);
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    // [stored, deflated], made on first use and reset before each later run.
    let mut compressors: [Option<Compress>; 2] = [None, None];
    let runs = runs(input, level);
    let count = runs.len();
    for (i, (run_level, bytes)) in runs.into_iter().enumerate() {
        let slot = &mut compressors[usize::from(run_level > 0)];
        let c = match slot {
            Some(c) => {
                c.reset();
                c
            }
            None => slot.insert(Compress::new(flate2::Compression::new(run_level), false)),
        };
        feed(c, bytes, &mut out, FlushCompress::None)?;
        let end = if last && i + 1 == count {
            FlushCompress::Finish
        } else {
            FlushCompress::Sync
        };
        feed(c, &[], &mut out, end)?;
    }
    Ok(Block { deflated: out, crc })
}

/// `input` cut into runs of whole pieces with the level each is deflated at: 0 for pieces
/// deflate cannot shrink (see `crate::incompressible`), else `level`. An empty input is one
/// empty run, so that a last chunk still ends the stream.
fn runs(input: &[u8], level: u32) -> Vec<(u32, &[u8])> {
    let mut runs: Vec<(u32, &[u8])> = Vec::new();
    let mut at = 0;
    for piece in input.chunks(PIECE) {
        let piece_level = if level > 0 && crate::incompressible::incompressible(piece) {
            0
        } else {
            level
        };
        match runs.last_mut() {
            Some((run_level, bytes)) if *run_level == piece_level => {
                *bytes = &input[at - bytes.len()..at + piece.len()];
            }
            _ => runs.push((piece_level, piece)),
        }
        at += piece.len();
    }
    if runs.is_empty() {
        runs.push((level, input));
    }
    runs
}

/// Gives all of `input` to `c`, then `flush`, growing `out` as needed.
fn feed(c: &mut Compress, input: &[u8], out: &mut Vec<u8>, flush: FlushCompress) -> io::Result<()> {
    let start = c.total_in();
    loop {
        let consumed = (c.total_in() - start) as usize;
        let status = c
            .compress_vec(&input[consumed..], out, flush)
            .map_err(io::Error::other)?;
        let all_in = (c.total_in() - start) as usize == input.len();
        // Done when everything is in and the flush completed: for Finish that is StreamEnd;
        // for Sync, output space left over (zlib's contract); without a flush, the input
        // taken (what it produced may wait inside the compressor).
        let done = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            FlushCompress::None => all_in,
            _ => all_in && out.len() < out.capacity(),
        };
        if done {
            return Ok(());
        }
        out.reserve(out.capacity().max(64 * 1024));
    }
}

/// Worker threads sharing one job queue.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(threads: usize) -> Pool {
        let (tx, rx) = mpsc::sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&rx);
                std::thread::spawn(move || worker(&rx))
            })
            .collect();
        Pool {
            jobs: Some(tx),
            workers,
        }
    }

    fn send(&self, job: Job) -> io::Result<()> {
        self.jobs
            .as_ref()
            .and_then(|tx| tx.send(job).ok())
            .ok_or_else(|| io::Error::other("gzip compression workers exited"))
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, not while compressing.
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // The writer may have gone away after an error; nothing to report to then.
        let _ = job
            .reply
            .send(deflate_chunk(&job.input, job.level, job.last));
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue ends each worker after its current job.
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};

    use super::*;
    use crate::incompressible::tests::random;

    /// Text runs and pseudo-random blocks, like a layer of binaries and config files.
    pub(crate) fn mixed(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(3) {
                out.extend((0..4096).map(|i| (x >> (i % 56)) as u8));
            } else {
                out.extend_from_slice(b"the quick brown fox jumps over the lazy layer\n");
            }
        }
        out.truncate(len);
        out
    }

    fn gzip(data: &[u8], level: u32, threads: usize) -> Vec<u8> {
        let mut w = ParallelGzipWriter::new(Vec::new(), level, threads).unwrap();
        // Odd write sizes: chunk boundaries must not depend on how callers write.
        for piece in data.chunks(7919) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    /// Whether `gzip -t` reads `gz` as a valid stream.
    fn gzip_tool_accepts(gz: &[u8]) -> bool {
        let mut child = Command::new("gzip")
            .arg("-t")
            .stdin(Stdio::piped())
            .spawn()
            .expect("gzip is installed");
        child.stdin.take().unwrap().write_all(gz).unwrap();
        child.wait().unwrap().success()
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn round_trips_at_chunk_edges_and_is_one_member() {
        for len in [
            0,
            1,
            CHUNK_SIZE - 1,
            CHUNK_SIZE,
            CHUNK_SIZE + 1,
            3 * CHUNK_SIZE + 12345,
        ] {
            let data = mixed(len, len as u64 + 7);
            let gz = gzip(&data, 6, 3);
            // A single-member decoder stops after the first member: getting
            // everything back proves the chunks form one deflate stream.
            assert_eq!(gunzip(&gz), data, "length {len}");
        }
    }

    #[test]
    fn thread_count_does_not_change_the_bytes() {
        let data = mixed(5 * CHUNK_SIZE + 999, 42);
        let one = gzip(&data, 6, 1);
        for threads in [2, 3, 8] {
            assert!(gzip(&data, 6, threads) == one, "{threads} threads differ");
        }
        assert!(one.len() < data.len() / 2, "compressible data shrinks");
    }

    #[test]
    fn every_level_decodes() {
        let data = mixed(CHUNK_SIZE + 5000, 3);
        for level in [0, 1, 9, 42] {
            assert_eq!(gunzip(&gzip(&data, level, 2)), data, "level {level}");
        }
    }

    /// Random bytes are stored without deflate's search: at the default level they come out
    /// exactly as level 0 writes them.
    #[test]
    fn incompressible_input_is_stored_as_level_0_stores_it() {
        let data = random(2 * CHUNK_SIZE + 4321, 5);
        assert!(gzip(&data, 6, 2) == gzip(&data, 0, 2));
    }

    /// Pieces of both kinds in one chunk, switching back and forth at piece edges and inside
    /// the last chunk: one stream that decodes (here and with gzip -t), the same for any
    /// thread count, and as small as zlib's own level 6 makes it.
    #[test]
    fn stored_and_compressed_pieces_share_one_stream() {
        let mut data = Vec::new();
        for i in 0..7u64 {
            data.extend(random(PIECE * 2 + 1000, i));
            data.extend(mixed(PIECE + 3000, i));
        }
        data.extend(random(5000, 99));
        let gz = gzip(&data, 6, 1);
        assert_eq!(gunzip(&gz), data);
        assert!(gzip(&data, 6, 3) == gz, "thread count changed the bytes");
        // No larger than one plain level-6 stream of the same bytes, give or take 0.5%.
        let mut plain = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        plain.write_all(&data).unwrap();
        let plain = plain.finish().unwrap();
        assert!(
            gz.len() <= plain.len() + plain.len() / 200,
            "{} bytes against {}",
            gz.len(),
            plain.len()
        );
        assert!(gzip_tool_accepts(&gz), "gzip -t rejected it");
    }

    #[test]
    fn gzip_tool_accepts_the_stream() {
        let data = mixed(2 * CHUNK_SIZE + 77, 9);
        let gz = gzip(&data, 6, 2);
        assert!(gzip_tool_accepts(&gz), "gzip -t rejected the stream");
    }

    #[test]
    fn write_errors_reach_the_caller() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        assert!(ParallelGzipWriter::new(Broken, 6, 2).is_err());
    }
}
