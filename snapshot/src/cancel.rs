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

/// Copies `from` into `to` in chunks of a few MiB, checking for cancellation between chunks:
/// a single large file then stops within one chunk's time instead of at its end. Uses
/// `copy_file_range` (in-kernel, no user-space buffer) where the file systems allow it.
pub fn copy_file_cancellable(from: &std::fs::File, to: &std::fs::File) -> io::Result<u64> {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    const CHUNK: usize = 8 << 20;
    let mut total = 0u64;
    let mut kernel_copy = true;
    let mut buf = Vec::new();
    loop {
        if cancel_requested() {
            return Err(cancelled_io_error());
        }
        let n = if kernel_copy {
            // SAFETY: both descriptors are open for the duration of the call; null offsets
            // mean the files' own positions are used and advanced.
            let r = unsafe {
                libc::copy_file_range(
                    from.as_raw_fd(),
                    std::ptr::null_mut(),
                    to.as_raw_fd(),
                    std::ptr::null_mut(),
                    CHUNK,
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    // Not supported between these files (or at all): copy through memory.
                    Some(libc::EXDEV | libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL)
                        if total == 0 =>
                    {
                        kernel_copy = false;
                        continue;
                    }
                    Some(libc::EINTR) => continue,
                    _ => return Err(e),
                }
            }
            r as usize
        } else {
            buf.resize(CHUNK, 0);
            let n = match (&*from).read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            (&*to).write_all(&buf[..n])?;
            n
        };
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
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
}
