//! The regular files of a COPY written on every core.
//!
//! Why: writing a file's data is work the kernel does on the calling thread (`copy_file_range`
//! copies page to page; a new file waits on the file system's journal), so one thread leaves the
//! other cores idle. On the 2-core VM of BENCHMARKS.md, ten 100 MB files copied by two `cp`
//! processes at once took 1.35 s against 2.29 s for one (156 vs 263 ms when the page cache
//! had pages to reuse); builder's own numbers are in its "Issue #17 (item 4)" section.
//!
//! What may run at once: the files of one directory walk (each has its own target, and its
//! parent was made before it was handed out), and single-file sources whose targets neither
//! equal nor contain one another. Everything else (directories, symlinks, devices, archives)
//! is written by the caller's thread after [`FilePool::finish`] when an earlier source's files
//! might still be in flight, so a later source still replaces an earlier one as it would in
//! order. Directory times are set by the caller after the last `finish`.

use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};

use super::{Attributes, CopyError, write_entry_in};

/// A regular file to write: `write_entry_in`'s arguments.
pub(super) struct FileJob {
    pub src: PathBuf,
    pub meta: Metadata,
    pub target: PathBuf,
    pub parent_fresh: bool,
}

/// Worker threads, started with the first job and stopped by [`FilePool::finish`].
pub(super) struct FilePool<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    attrs: Attributes<'env>,
    workers: Vec<ScopedJoinHandle<'scope, Result<(), CopyError>>>,
    jobs: Option<SyncSender<FileJob>>,
    /// Set by the first worker that fails: the others stop, and so does the caller's walk.
    failed: Arc<AtomicBool>,
    /// Targets of single-file sources in flight (see [`FilePool::submit_single`]).
    single_targets: Vec<PathBuf>,
    /// Whether a directory walk's files may be in flight.
    walk_in_flight: bool,
}

impl<'scope, 'env> FilePool<'scope, 'env> {
    pub(super) fn new(scope: &'scope Scope<'scope, 'env>, attrs: Attributes<'env>) -> Self {
        FilePool {
            scope,
            attrs,
            workers: Vec::new(),
            jobs: None,
            failed: Arc::new(AtomicBool::new(false)),
            single_targets: Vec::new(),
            walk_in_flight: false,
        }
    }

    /// Hands out a file of a directory walk. The caller has called [`FilePool::finish`] before
    /// the walk began.
    pub(super) fn submit_walked(&mut self, job: FileJob) -> Result<(), CopyError> {
        self.walk_in_flight = true;
        self.send(job)
    }

    /// Hands out a single-file source, first waiting for what is in flight when it could
    /// touch the same path.
    pub(super) fn submit_single(&mut self, job: FileJob) -> Result<(), CopyError> {
        if self.conflicts(&job.target) {
            self.finish()?;
        }
        self.single_targets.push(job.target.clone());
        self.send(job)
    }

    /// Whether writing `target` could touch a file still in flight.
    pub(super) fn conflicts(&self, target: &Path) -> bool {
        self.walk_in_flight || self.single_targets.iter().any(|t| overlap(t, target))
    }

    /// Waits until every file handed out is written; the first failure, if any.
    pub(super) fn finish(&mut self) -> Result<(), CopyError> {
        self.jobs = None;
        self.single_targets.clear();
        self.walk_in_flight = false;
        let mut first = Ok(());
        for worker in self.workers.drain(..) {
            let done = worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            if first.is_ok() {
                first = done;
            }
        }
        first
    }

    fn send(&mut self, job: FileJob) -> Result<(), CopyError> {
        if self.failed.load(Ordering::Relaxed) {
            return self.finish();
        }
        if self.jobs.is_none() {
            self.start();
        }
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok());
        match sent {
            true => Ok(()),
            // Every worker has stopped: one failed, and `finish` says how.
            false => self.finish(),
        }
    }

    fn start(&mut self) {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // A few jobs queued per worker: enough that none waits on the walk, few enough that a
        // failure stops the copy soon.
        let (tx, rx) = sync_channel::<FileJob>(threads * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..threads {
            let rx = Arc::clone(&rx);
            let failed = Arc::clone(&self.failed);
            let attrs = self.attrs;
            self.workers
                .push(self.scope.spawn(move || work(&rx, &failed, attrs)));
        }
        self.jobs = Some(tx);
    }
}

/// Whether writing one path could touch the other: the same path, or one inside the other
/// (a file written where a directory of files in flight is, or the reverse).
fn overlap(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn work(
    jobs: &Mutex<Receiver<FileJob>>,
    failed: &AtomicBool,
    attrs: Attributes<'_>,
) -> Result<(), CopyError> {
    loop {
        // The lock is held only while waiting for a job: the write itself runs unlocked.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            // Another worker panicked holding the lock; `finish` passes its panic on.
            Err(_) => return Ok(()),
        };
        let Ok(job) = job else { return Ok(()) };
        if failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        if let Err(e) = write_entry_in(&job.src, &job.meta, &job.target, attrs, job.parent_fresh) {
            failed.store(true, Ordering::Relaxed);
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::overlap;
    use std::path::Path;

    #[test]
    fn paths_overlap_when_equal_or_one_holds_the_other() {
        let p = Path::new;
        assert!(overlap(p("/r/dest/f"), p("/r/dest/f")));
        assert!(overlap(p("/r/dest/f"), p("/r/dest/f/inner")));
        assert!(overlap(p("/r/dest/f/inner"), p("/r/dest/f")));
        // Siblings, and names that only share a prefix of bytes, do not.
        assert!(!overlap(p("/r/dest/f"), p("/r/dest/g")));
        assert!(!overlap(p("/r/dest/f"), p("/r/dest/f2")));
    }
}
