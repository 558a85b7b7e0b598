//! Writing a blob past the page cache (`O_DIRECT`), for blobs that are written once and read
//! rarely: a step's layer is read again only by a push, an export or an unpack on another
//! machine, so keeping its pages cached buys nothing and pushes out what the build reads next.
//!
//! Measured on the 2-core VM of BENCHMARKS.md ("Issue #17 (item 4): large files, written past
//! the page cache and on every core"): a buffered write of 1 GiB spent 0.8–2.6 s in the kernel
//! copying into page-cache pages (memory the guest has not used lately is the expensive part),
//! the same GiB written with `O_DIRECT` took 0.32 s including the fsync (`dd bs=1M`,
//! `conv=fsync` vs `oflag=direct`).
//!
//! `O_DIRECT` wants the memory, the length and the file offset of every write aligned to the
//! device's block size. This writer fills an aligned buffer and writes whole chunks; the tail
//! (shorter than a chunk) is written through the page cache after `O_DIRECT` is turned off.
//! Where the file system refuses `O_DIRECT` (tmpfs on older kernels, some FUSE and network
//! file systems) or a direct write is refused (`EINVAL`: an alignment it needs larger than
//! ours), the writer goes on buffered: the bytes written are the same either way.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use nix::fcntl::{FcntlArg, OFlag, fcntl};

/// Alignment of memory, lengths and offsets: 4 KiB covers the logical block size of every
/// disk Linux supports (512 B or 4 KiB).
const ALIGN: usize = 4096;

/// Bytes per direct write. dd's 1 MiB blocks reached the disk's speed above; a larger chunk
/// only holds more memory per writer.
const CHUNK: usize = 1 << 20;

/// A [`Write`] that sends whole chunks to a file with `O_DIRECT` while it can, on a thread of
/// its own once there is more than one chunk: a direct write waits for the device, and the
/// layer writer feeding this one has its sha256 to compute meanwhile (ten 100 MB files,
/// uncompressed: 1204 → 789 ms for the whole build, BENCHMARKS.md).
pub(crate) struct DirectWriter {
    chunk: Chunk,
    out: Output,
}

/// Where full chunks go.
enum Output {
    /// Not a full chunk yet (a manifest, a config): no thread.
    Here(Sink),
    /// Chunks go to the writing thread and come back empty through `empty` (which holds the
    /// second chunk when the thread starts).
    Thread {
        full: SyncSender<Chunk>,
        empty: Receiver<Chunk>,
        thread: JoinHandle<io::Result<Sink>>,
    },
    /// Between states, and after a failure.
    Gone,
}

/// The file and whether it is still in `O_DIRECT` mode.
struct Sink {
    file: File,
    direct: bool,
}

/// `CHUNK` bytes of aligned memory, `filled` of them used.
struct Chunk {
    /// `CHUNK + ALIGN` bytes, of which the aligned window `start..start + CHUNK` is used.
    bytes: Vec<u8>,
    start: usize,
    filled: usize,
}

impl Chunk {
    fn new() -> Chunk {
        let bytes = vec![0u8; CHUNK + ALIGN];
        let start = bytes.as_ptr().align_offset(ALIGN);
        Chunk {
            bytes,
            start,
            filled: 0,
        }
    }

    /// No memory yet: most blobs (a config, a manifest) are written once and small, and need
    /// no 1 MiB buffer before their first byte.
    fn unallocated() -> Chunk {
        Chunk {
            bytes: Vec::new(),
            start: 0,
            filled: 0,
        }
    }

    fn data(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.filled]
    }
}

impl DirectWriter {
    /// Writes to `file` (opened for writing, at offset 0) past the page cache where it can.
    pub(crate) fn new(file: File) -> DirectWriter {
        let direct = set_direct(&file, true).is_ok();
        DirectWriter {
            chunk: Chunk::unallocated(),
            out: Output::Here(Sink { file, direct }),
        }
    }

    /// Writes to `file` through the page cache, in the same chunks and on a thread of its own
    /// as well: for a blob that is read again at once (a download a step unpacks next), whose
    /// pages are worth keeping.
    pub(crate) fn buffered(file: File) -> DirectWriter {
        DirectWriter {
            chunk: Chunk::unallocated(),
            out: Output::Here(Sink {
                file,
                direct: false,
            }),
        }
    }

    /// Writes what is buffered and hands back the file, no longer in `O_DIRECT` mode, for the
    /// caller's fsync.
    pub(crate) fn finish(mut self) -> io::Result<File> {
        let mut sink = match std::mem::replace(&mut self.out, Output::Gone) {
            Output::Here(sink) => sink,
            Output::Thread { full, thread, .. } => {
                drop(full);
                join(thread)?
            }
            Output::Gone => return Err(gone()),
        };
        if sink.direct {
            // The tail is shorter than a chunk and may be any length: buffered.
            set_direct(&sink.file, false)?;
            sink.direct = false;
        }
        sink.write(self.chunk.data())?;
        Ok(sink.file)
    }

    /// Sends the full chunk on, starting the writing thread with the first.
    fn pass_on(&mut self) -> io::Result<()> {
        match std::mem::replace(&mut self.out, Output::Gone) {
            Output::Here(sink) => {
                // Two chunks in all: one filled here while the other is queued or written.
                let (full, full_rx) = sync_channel::<Chunk>(1);
                let (empty_tx, empty) = sync_channel::<Chunk>(2);
                empty_tx
                    .send(Chunk::new())
                    .map_err(|_| io::Error::other("blob writer channel closed"))?;
                let thread = std::thread::Builder::new()
                    .name("blob-writer".into())
                    .spawn(move || write_chunks(sink, &full_rx, &empty_tx))?;
                self.out = Output::Thread {
                    full,
                    empty,
                    thread,
                };
                self.pass_on()
            }
            Output::Thread {
                full,
                empty,
                thread,
            } => {
                let sent = empty
                    .recv()
                    .map(|next| std::mem::replace(&mut self.chunk, next));
                match sent.map(|chunk| full.send(chunk)) {
                    Ok(Ok(())) => {
                        self.out = Output::Thread {
                            full,
                            empty,
                            thread,
                        };
                        Ok(())
                    }
                    // The thread stopped: its error says why.
                    _ => {
                        drop(full);
                        join(thread).and(Err(gone()))
                    }
                }
            }
            Output::Gone => Err(gone()),
        }
    }
}

impl Sink {
    /// Writes `data`, falling back to buffered writes when a direct one is refused.
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let mut done = 0;
        while done < data.len() {
            match self.file.write(&data[done..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                // A short direct write leaves the rest unaligned in memory: the next write is
                // refused and goes on buffered, which is right, if slower.
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                    set_direct(&self.file, false)?;
                    self.direct = false;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The writing thread: full chunks in, empty ones back, until the sender is dropped.
fn write_chunks(
    mut sink: Sink,
    full: &Receiver<Chunk>,
    empty: &SyncSender<Chunk>,
) -> io::Result<Sink> {
    while let Ok(mut chunk) = full.recv() {
        sink.write(chunk.data())?;
        chunk.filled = 0;
        // The other side may have finished and stopped taking chunks back.
        let _ = empty.send(chunk);
    }
    Ok(sink)
}

fn join(thread: JoinHandle<io::Result<Sink>>) -> io::Result<Sink> {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn gone() -> io::Error {
    io::Error::other("the blob writer stopped after an earlier error")
}

impl Write for DirectWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let chunk = &mut self.chunk;
        if chunk.bytes.is_empty() {
            *chunk = Chunk::new();
        }
        let n = data.len().min(CHUNK - chunk.filled);
        let at = chunk.start + chunk.filled;
        chunk.bytes[at..at + n].copy_from_slice(&data[..n]);
        chunk.filled += n;
        if chunk.filled == CHUNK {
            self.pass_on()?;
        }
        Ok(n)
    }

    /// Keeps a partial chunk: writing it now would misalign every later direct write. The data
    /// reaches the file in [`DirectWriter::finish`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let flags = fcntl(file.as_fd(), FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let mut flags = OFlag::from_bits_retain(flags);
    flags.set(OFlag::O_DIRECT, on);
    fcntl(file.as_fd(), FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Read;

    fn written(lens: &[usize], make: fn(File) -> DirectWriter) -> (Vec<u8>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let mut w = make(File::create(&path).unwrap());
        let mut expected = Vec::new();
        for (i, &len) in lens.iter().enumerate() {
            let data: Vec<u8> = (0..len).map(|k| (k * 31 + i) as u8).collect();
            w.write_all(&data).unwrap();
            expected.extend_from_slice(&data);
        }
        let file = w.finish().unwrap();
        file.sync_all().unwrap();
        let mut got = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut got).unwrap();
        (expected, got)
    }

    #[test]
    fn every_byte_arrives_in_order_whatever_the_write_sizes() {
        for lens in [
            vec![],
            vec![1],
            vec![CHUNK],
            vec![CHUNK - 1, 2, CHUNK + 7],
            vec![3 * CHUNK + 513],
            vec![4095, 4097, 1, CHUNK, 12345],
        ] {
            for make in [DirectWriter::new, DirectWriter::buffered] {
                let (expected, got) = written(&lens, make);
                assert_eq!(got.len(), expected.len(), "{lens:?}");
                assert!(got == expected, "content differs for writes of {lens:?}");
            }
        }
    }

    #[test]
    fn the_file_is_handed_back_without_o_direct() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = DirectWriter::new(File::create(dir.path().join("b")).unwrap());
        w.write_all(&[7u8; 10]).unwrap();
        let file = w.finish().unwrap();
        let flags = OFlag::from_bits_retain(fcntl(file.as_fd(), FcntlArg::F_GETFL).unwrap());
        assert!(!flags.contains(OFlag::O_DIRECT));
    }

    #[test]
    fn a_failed_write_is_reported_by_a_write_or_by_finish() {
        for len in [10, CHUNK, 5 * CHUNK + 3] {
            let full = fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap();
            let mut w = DirectWriter::new(full);
            let data = vec![1u8; len];
            let failed = match w.write_all(&data) {
                Err(e) => Some(e),
                Ok(()) => w.finish().err(),
            };
            let e = failed.unwrap_or_else(|| panic!("{len} bytes to /dev/full did not fail"));
            assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{len} bytes: {e}");
        }
    }

    #[test]
    fn a_direct_write_the_kernel_refuses_is_done_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let file = File::create(&path).unwrap();
        let direct = set_direct(&file, true).is_ok();
        let mut sink = Sink { file, direct };
        // One byte past an aligned start: a file system that honours O_DIRECT refuses this
        // (EINVAL), and the sink must write it anyway.
        let mut chunk = Chunk::new();
        let data: Vec<u8> = (0..ALIGN as u32 * 3).map(|k| (k % 251) as u8).collect();
        let at = chunk.start + 1;
        chunk.bytes[at..at + data.len()].copy_from_slice(&data);
        sink.write(&chunk.bytes[at..at + data.len()]).unwrap();
        sink.file.sync_all().unwrap();
        assert!(fs::read(&path).unwrap() == data);
    }
}
