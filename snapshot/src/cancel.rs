//! The process-wide "stop now" flag the long loops of this crate poll (layer writes, file
//! copies). The solver's cancellation (Ctrl-C, SIGTERM) raises it; it lives here, in the
//! lowest crate that does long file work, so the copy and archive loops can see it without
//! depending on the solver. Process-wide on purpose: a signal is.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks every long copy or layer write in this process to stop at its next check.
pub fn request_cancel() {
    REQUESTED.store(true, Ordering::SeqCst);
}

pub fn cancel_requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// The error a cancelled copy returns through `io` interfaces (never `Interrupted`, which
/// `io::copy` and friends would retry).
pub fn cancelled_io_error() -> io::Error {
    io::Error::other("cancelled")
}

/// Pairs of file systems (source `st_dev`, target `st_dev`) between which `copy_file_range`
/// was refused: a COPY into an overlay mount from the context's ext4 gets EXDEV for every
/// file, and asking again each time costs a syscall per file for nothing.
static NO_KERNEL_COPY: std::sync::Mutex<Vec<(u64, u64)>> = std::sync::Mutex::new(Vec::new());

fn kernel_copy_refused(pair: (u64, u64)) -> bool {
    NO_KERNEL_COPY
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&pair)
}

fn remember_kernel_copy_refused(pair: (u64, u64)) {
    let mut refused = NO_KERNEL_COPY.lock().unwrap_or_else(|p| p.into_inner());
    if !refused.contains(&pair) {
        refused.push(pair);
    }
}

/// How the bytes move: in the kernel between two files of one file system
/// (`copy_file_range`, which may reflink), in the kernel between any two files (`sendfile`),
/// or through a user-space buffer as a last resort.
#[derive(Clone, Copy, PartialEq)]
enum Way {
    CopyFileRange,
    Sendfile,
    Buffer,
}

/// Copies `from` into `to` in chunks of a few MiB, checking for cancellation between chunks:
/// a single large file then stops within one chunk's time instead of at its end. In-kernel
/// (`copy_file_range`, else `sendfile`) wherever the file systems allow it; the copy ends at
/// the size `from` had when it started (or at its end, if it shrank).
pub fn copy_file_cancellable(from: &std::fs::File, to: &std::fs::File) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let dst_dev = to.metadata()?.dev();
    copy_file_to_dev(from, to, dst_dev)
}

/// [`copy_file_cancellable`] for a caller that already knows the `st_dev` of `to` (it has just
/// stat'ed the descriptor it created): one `fstat` less per file of a many-file COPY.
pub fn copy_file_to_dev(from: &std::fs::File, to: &std::fs::File, dst_dev: u64) -> io::Result<u64> {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    const CHUNK: usize = 8 << 20;
    let src = from.metadata()?;
    let pair = (src.dev(), dst_dev);
    // A size of 0 may still hide content (a file that grew): read until the end then.
    let size = src.len();
    let mut way = if kernel_copy_refused(pair) {
        Way::Sendfile
    } else {
        Way::CopyFileRange
    };
    let mut total = 0u64;
    let mut buf = Vec::new();
    loop {
        if cancel_requested() {
            return Err(cancelled_io_error());
        }
        if size > 0 && total >= size {
            return Ok(total);
        }
        let want = if size > total {
            CHUNK.min(usize::try_from(size - total).unwrap_or(CHUNK))
        } else {
            CHUNK
        };
        let r = match way {
            // SAFETY: both descriptors are open for the duration of the call; null offsets
            // mean the files' own positions are used and advanced.
            Way::CopyFileRange => unsafe {
                libc::copy_file_range(
                    from.as_raw_fd(),
                    std::ptr::null_mut(),
                    to.as_raw_fd(),
                    std::ptr::null_mut(),
                    want,
                    0,
                )
            },
            // SAFETY: as above; a null offset reads from (and advances) `from`'s position.
            Way::Sendfile => unsafe {
                libc::sendfile(to.as_raw_fd(), from.as_raw_fd(), std::ptr::null_mut(), want)
            },
            Way::Buffer => {
                // Sized to the file, not to the chunk: zeroing 8 MiB for a 4 KiB file was
                // most of a many-file COPY's time.
                buf.resize(want.clamp(1, CHUNK), 0);
                let n = match (&*from).read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                (&*to).write_all(&buf[..n])?;
                n as isize
            }
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // Not supported between these files (or at all): the next way down.
                Some(libc::EXDEV | libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL)
                    if total == 0 && way != Way::Buffer =>
                {
                    if way == Way::CopyFileRange {
                        remember_kernel_copy_refused(pair);
                        way = Way::Sendfile;
                    } else {
                        way = Way::Buffer;
                    }
                    continue;
                }
                Some(libc::EINTR) => continue,
                _ => return Err(e),
            }
        }
        if r == 0 {
            return Ok(total);
        }
        total += r as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(9u32 << 20)).map(|i| i as u8).collect();
        std::fs::write(dir.path().join("a"), &data).unwrap();
        let from = std::fs::File::open(dir.path().join("a")).unwrap();
        let to = std::fs::File::create(dir.path().join("b")).unwrap();
        assert_eq!(
            copy_file_cancellable(&from, &to).unwrap(),
            data.len() as u64
        );
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), data);
    }

    #[test]
    fn copies_small_and_empty_files_and_every_way_gives_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        for (i, len) in [0usize, 1, 4096, 4097, (8 << 20) + 3]
            .into_iter()
            .enumerate()
        {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let a = dir.path().join(format!("a{i}"));
            std::fs::write(&a, &data).unwrap();
            let from = std::fs::File::open(&a).unwrap();
            let b = dir.path().join(format!("b{i}"));
            let to = std::fs::File::create(&b).unwrap();
            // The same pair refused afterwards: sendfile is used for the next file.
            assert_eq!(copy_file_cancellable(&from, &to).unwrap(), len as u64);
            assert_eq!(std::fs::read(&b).unwrap(), data);
            let pair = {
                use std::os::unix::fs::MetadataExt;
                (from.metadata().unwrap().dev(), to.metadata().unwrap().dev())
            };
            remember_kernel_copy_refused(pair);
        }
    }
}
