//! Cross-process exclusion for one build step: while a process computes the result of a cache
//! key it holds an exclusive `flock` on `<root>/locks/<key hex>.lock`, so another `builder`
//! process needing the same key waits, then finds the record and takes it as a hit instead of
//! running the step a second time. Within one process the solver's in-flight slots already
//! dedupe; this extends that to every process sharing the store root.
//!
//! Deadlock freedom: a worker holds at most one step lock, takes it before anything else it
//! may wait for while running the step (a `sharing=locked` cache mount), and never waits for
//! another step lock while holding one. So no cycle of waiters can form. A killed holder's
//! lock is released by the kernel with its descriptors.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use builder_store::Digest;
use fs2::FileExt;

/// A held step lock; dropping it removes the lock file and releases the lock.
#[derive(Debug)]
pub struct StepLock {
    path: PathBuf,
    _file: File,
}

impl StepLock {
    /// Blocks until this process holds the lock for `key` under `dir`.
    pub fn acquire(dir: &Path, key: &Digest) -> io::Result<StepLock> {
        match StepLock::lock(dir, key, true)? {
            Some(lock) => Ok(lock),
            None => Err(io::Error::other("blocking flock returned without the lock")),
        }
    }

    /// The lock for `key` if nobody holds it, else None at once.
    pub fn try_acquire(dir: &Path, key: &Digest) -> io::Result<Option<StepLock>> {
        StepLock::lock(dir, key, false)
    }

    fn lock(dir: &Path, key: &Digest, wait: bool) -> io::Result<Option<StepLock>> {
        fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.lock", key.hex()));
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            if wait {
                file.lock_exclusive()?;
            } else {
                match file.try_lock_exclusive() {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
            // The previous holder unlinks the file before releasing it (see Drop). If that
            // happened after we opened it, our lock is on an orphaned inode while a newcomer
            // may lock a fresh file at the same path: only a lock on the file the path still
            // names excludes anyone, so start over otherwise.
            let held = file.metadata()?;
            match fs::metadata(&path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                    return Ok(Some(StepLock { path, _file: file }));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for StepLock {
    fn drop(&mut self) {
        // Unlinked while still locked, so lock files do not pile up one per step ever built.
        // A lock file left by a killed process is harmless: the next holder removes it.
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn holders_of_one_key_take_turns_and_files_go_away() {
        let dir = tempfile::tempdir().unwrap();
        let key = Digest::of(b"step");
        let inside = AtomicUsize::new(0);
        let max_inside = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    for _ in 0..10 {
                        let _lock = StepLock::acquire(dir.path(), &key).unwrap();
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        max_inside.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(1));
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(max_inside.load(Ordering::SeqCst), 1);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn try_acquire_does_not_wait_for_a_holder() {
        let dir = tempfile::tempdir().unwrap();
        let key = Digest::of(b"step");
        let held = StepLock::try_acquire(dir.path(), &key).unwrap().unwrap();
        assert!(StepLock::try_acquire(dir.path(), &key).unwrap().is_none());
        assert!(
            StepLock::try_acquire(dir.path(), &Digest::of(b"other"))
                .unwrap()
                .is_some()
        );
        drop(held);
        assert!(StepLock::try_acquire(dir.path(), &key).unwrap().is_some());
    }
}
