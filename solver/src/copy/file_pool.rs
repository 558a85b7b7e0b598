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
//!
//! Files go to the workers in batches (see [`BATCH_FILES`]): handed out one by one, each woke a
//! worker, and the 20,000-file COPY of BENCHMARKS.md cost ~1.6 context switches per file.

use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};

use super::{Attributes, CopyError, write_entry_in};

/// Files per batch handed to a worker, and the bytes of file data after which a batch goes
/// out however few files it holds: a batch is written in order by one worker, so large files
/// travel alone and still spread over every core.
const BATCH_FILES: usize = 32;
const BATCH_BYTES: u64 = 1 << 20;

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
    jobs: Option<SyncSender<Vec<FileJob>>>,
    /// Files not yet handed out, and their bytes.
    batch: Vec<FileJob>,
    batch_bytes: u64,
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
            batch: Vec::new(),
            batch_bytes: 0,
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
        if self.failed.load(Ordering::Relaxed) {
            // Nothing more is written once a worker has failed.
            self.batch.clear();
        }
        // When no worker takes the batch any more, one has failed: its error is the one told.
        self.hand_out();
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
        self.batch_bytes += job.meta.len();
        self.batch.push(job);
        if self.batch.len() < BATCH_FILES && self.batch_bytes < BATCH_BYTES {
            return Ok(());
        }
        match self.hand_out() {
            true => Ok(()),
            // Every worker has stopped: one failed, and `finish` says how.
            false => self.finish(),
        }
    }

    /// Passes the batch to the workers (starting them with the first); false when none takes
    /// it any more.
    fn hand_out(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        if self.jobs.is_none() {
            self.start();
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        self.jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(batch).is_ok())
    }

    fn start(&mut self) {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // A few batches queued per worker: enough that none waits on the walk, few enough that
        // a failure stops the copy soon.
        let (tx, rx) = sync_channel::<Vec<FileJob>>(threads * 4);
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
    jobs: &Mutex<Receiver<Vec<FileJob>>>,
    failed: &AtomicBool,
    attrs: Attributes<'_>,
) -> Result<(), CopyError> {
    loop {
        // The lock is held only while waiting for a batch: the writes run unlocked.
        let batch = match jobs.lock() {
            Ok(rx) => rx.recv(),
            // Another worker panicked holding the lock; `finish` passes its panic on.
            Err(_) => return Ok(()),
        };
        let Ok(batch) = batch else { return Ok(()) };
        for job in batch {
            if failed.load(Ordering::Relaxed) {
                return Ok(());
            }
            if let Err(e) =
                write_entry_in(&job.src, &job.meta, &job.target, attrs, job.parent_fresh)
            {
                failed.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn attrs() -> Attributes<'static> {
        Attributes {
            owner: None,
            chmod: None,
            reset_owner: false,
        }
    }

    fn job(src: &Path, target: PathBuf) -> FileJob {
        FileJob {
            src: src.to_path_buf(),
            meta: fs::symlink_metadata(src).unwrap(),
            target,
            parent_fresh: true,
        }
    }

    /// Hands every job to a pool and finishes it: the first error, from a submit or finish.
    fn run(jobs: Vec<FileJob>) -> Result<(), CopyError> {
        std::thread::scope(|scope| {
            let mut pool = FilePool::new(scope, attrs());
            for job in jobs {
                pool.submit_walked(job)?;
            }
            pool.finish()
        })
    }

    /// Two full batches and a partial one, which only `finish` hands out: every file arrives.
    #[test]
    fn files_short_of_a_full_batch_are_written_by_finish() {
        let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let count = BATCH_FILES * 2 + 3;
        let jobs = (0..count)
            .map(|i| {
                let from = src.path().join(format!("f{i}"));
                fs::write(&from, i.to_string()).unwrap();
                job(&from, dst.path().join(format!("f{i}")))
            })
            .collect();
        run(jobs).unwrap();
        for i in 0..count {
            let got = fs::read_to_string(dst.path().join(format!("f{i}"))).unwrap();
            assert_eq!(got, i.to_string());
        }
    }

    /// A file that cannot be written, in the middle of a batch, fails the copy with its path.
    #[test]
    fn a_failing_file_in_a_batch_fails_the_copy() {
        let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let from = src.path().join("f");
        fs::write(&from, "x").unwrap();
        let mut jobs: Vec<FileJob> = (0..5)
            .map(|i| job(&from, dst.path().join(format!("ok{i}"))))
            .collect();
        jobs.insert(2, job(&from, dst.path().join("no-such-dir/f")));
        let err = run(jobs).unwrap_err();
        assert!(err.to_string().contains("no-such-dir"), "{err}");
    }

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
