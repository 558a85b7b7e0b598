//! Walking a source tree below a selected directory: every entry in sorted order with its
//! metadata, .dockerignore rules applied, symlinks listed and never followed.
//!
//! Checking a large unchanged build context is one `stat` per file, and those calls are most of
//! a no-op rebuild's time. So the walk is a small pipeline: this thread lists directories (names
//! and types come with `getdents`, so deciding where to descend needs no `stat`) and cuts what it
//! lists into chunks; stat threads (one per core but this one) stat the chunks, relative to the
//! open directory, which spares the kernel a path walk per file; this thread hands the stat'ed
//! chunks, in order, to the caller's sink while it goes on listing, and stats a chunk itself
//! when the threads are all busy. A walk smaller than one chunk starts no thread. On the
//! suite's 20,000-file context this is ~13% faster than listing and stat'ing by turns.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::Scope;

use builder_frontend::dockerignore::{IgnoreMatcher, ParentMatches};

use crate::source_tree::{SourceError, io_err};

/// One entry of a walk: its path relative to the walked directory, its host path, and its
/// metadata (symlinks not followed). Paths keep the bytes the directory listed: Linux names
/// need not be UTF-8.
pub type Found = (PathBuf, PathBuf, Metadata);

/// Where a walk hands its entries, a chunk at a time and in walk order (it may drain the chunk).
pub type Sink<'s> = dyn FnMut(&mut Vec<Found>) -> Result<(), SourceError> + 's;

/// Entries per chunk handed to the stat threads, and directories per chunk: a listed entry
/// keeps its directory open until it is stat'ed, and only a few chunks are in flight at once
/// (one per stat thread, one queued per thread, one being listed), so this bounds the open
/// descriptors.
const CHUNK: usize = 1024;
pub(crate) const CHUNK_DIRS: usize = 32;

/// The cores this process may use, asked once: `available_parallelism` reads cgroup files on
/// every call.
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Walks everything below `host` (not `host` itself), which is `tree_rel` in a tree filtered by
/// `ignore`, handing the entries to `sink`. `exclude` (`COPY --exclude`) leaves out more,
/// matched against paths relative to `host`; excluded directories are not entered.
pub(crate) fn walk(
    host: &Path,
    tree_rel: &Path,
    ignore: Option<&IgnoreMatcher>,
    exclude: &IgnoreMatcher,
    sink: &mut Sink<'_>,
) -> Result<(), SourceError> {
    let ignore = ignore.filter(|m| !m.is_empty());
    let exclude = Some(exclude).filter(|m| !m.is_empty());
    let parents = ignore.map(|m| m.parent_matches(tree_rel));
    std::thread::scope(|scope| {
        let mut stage = StatStage {
            scope,
            sink,
            pool: None,
            submitted: 0,
            delivered: 0,
            arrived: BTreeMap::new(),
        };
        let mut lister = Lister {
            rules: ignore,
            exclude,
            chunk: Vec::new(),
            chunk_dirs: 0,
            stage: &mut stage,
        };
        lister.list(host, tree_rel, Path::new(""), parents.as_ref())?;
        let rest = std::mem::take(&mut lister.chunk);
        stage.finish(rest)
    })
}

/// An entry listed by name and type, not yet stat'ed.
struct Listed {
    sel_rel: PathBuf,
    host: PathBuf,
    entry: fs::DirEntry,
}

fn stat_chunk(chunk: Vec<Listed>) -> Result<Vec<Found>, SourceError> {
    chunk
        .into_iter()
        .map(|l| {
            let meta = l.entry.metadata().map_err(io_err(&l.host))?;
            Ok((l.sel_rel, l.host, meta))
        })
        .collect()
}

/// `base/name` (or `name` when `base` is empty) in one allocation of the final size:
/// `Path::join` grows its buffer as it appends, and those reallocations were ~9% of a no-op
/// rebuild's user-space instructions on the 20,000-file context (callgrind).
fn join_exact(base: &Path, name: &std::ffi::OsStr) -> PathBuf {
    let mut path = PathBuf::with_capacity(base.as_os_str().len() + 1 + name.len());
    path.push(base);
    path.push(name);
    path
}

/// The listing side of the walk.
struct Lister<'l, 'scope, 'env, 's> {
    /// The .dockerignore rules, when there are any: without them no tree-relative path is
    /// built per file.
    rules: Option<&'l IgnoreMatcher>,
    /// `COPY --exclude` rules, matched against walk-relative paths.
    exclude: Option<&'l IgnoreMatcher>,
    chunk: Vec<Listed>,
    chunk_dirs: usize,
    stage: &'l mut StatStage<'scope, 'env, 's>,
}

impl Lister<'_, '_, '_, '_> {
    /// Lists `host` (at `tree_rel` in the tree, `sel_rel` in the walk) and what is below it.
    /// `parents` says which patterns match `host` or a parent of it (None without rules).
    fn list(
        &mut self,
        host: &Path,
        tree_rel: &Path,
        sel_rel: &Path,
        parents: Option<&ParentMatches>,
    ) -> Result<(), SourceError> {
        let mut entries: Vec<(OsString, fs::DirEntry)> = fs::read_dir(host)
            .map_err(io_err(host))?
            .map(|e| e.map(|e| (e.file_name(), e)))
            .collect::<Result<_, _>>()
            .map_err(io_err(host))?;
        // Names taken once: sorting by `DirEntry::file_name` allocates per comparison.
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.chunk_dirs += 1;
        let rules = self.rules.zip(parents);
        for (name, entry) in entries {
            // `base/name`, or `name` at the top: the bytes the checksum hashes (see
            // `hash_entry`), so they must stay what they were when they were strings.
            let join = |base: &Path| join_exact(base, &name);
            let child_tree = if rules.is_some() {
                join(tree_rel)
            } else {
                PathBuf::new()
            };
            let ignored = rules.is_some_and(|(m, p)| m.is_excluded_below(p, &child_tree));
            let child_sel = join(sel_rel);
            let dropped = self.exclude.is_some_and(|m| m.is_excluded(&child_sel));
            // The type from the directory entry; std falls back to lstat where the file
            // system leaves it unknown. Symlinks are not followed either way.
            let is_dir = entry.file_type().map_err(io_err(host))?.is_dir();
            // An excluded directory is still walked when an exception (`!pattern`) may
            // re-include something below it.
            if is_dir
                && ((ignored && !rules.is_some_and(|(m, _)| m.may_include_children(&child_tree)))
                    || (dropped
                        && !self
                            .exclude
                            .is_some_and(|m| m.may_include_children(&child_sel))))
            {
                continue;
            }
            let excluded = ignored || dropped;
            let child_host = join_exact(host, &name);
            if is_dir {
                let below = (child_sel.clone(), child_host.clone());
                let below_parents = rules.map(|(m, p)| m.child_matches(p, &child_tree));
                if !excluded {
                    self.push(child_sel, child_host, entry)?;
                }
                self.list(&below.1, &child_tree, &below.0, below_parents.as_ref())?;
            } else if !excluded {
                self.push(child_sel, child_host, entry)?;
            }
        }
        Ok(())
    }

    fn push(
        &mut self,
        sel_rel: PathBuf,
        host: PathBuf,
        entry: fs::DirEntry,
    ) -> Result<(), SourceError> {
        self.chunk.push(Listed {
            sel_rel,
            host,
            entry,
        });
        if self.chunk.len() >= CHUNK || self.chunk_dirs >= CHUNK_DIRS {
            self.chunk_dirs = 0;
            let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
            self.stage.submit(full)?;
        }
        Ok(())
    }
}

/// The stat threads, started with the first full chunk.
struct Pool {
    /// Bounded: when it is full the lister stats the chunk itself rather than run far ahead
    /// (each chunk holds directories open).
    jobs: Option<mpsc::SyncSender<(usize, Vec<Listed>)>>,
    done: mpsc::Receiver<(usize, Result<Vec<Found>, SourceError>)>,
}

impl Pool {
    fn start<'scope>(scope: &'scope Scope<'scope, '_>) -> Pool {
        // This thread lists and feeds the sink, and stats chunks too when these are busy.
        let workers = cores().saturating_sub(1).max(1);
        let (jobs, queue) = mpsc::sync_channel::<(usize, Vec<Listed>)>(workers);
        let queue = Arc::new(Mutex::new(queue));
        let (results, done) = mpsc::channel();
        for _ in 0..workers {
            let (queue, results) = (queue.clone(), results.clone());
            scope.spawn(move || {
                loop {
                    // The lock is held while waiting: only one thread can take a job anyway.
                    let job = queue.lock().ok().and_then(|q| q.recv().ok());
                    let Some((seq, chunk)) = job else { return };
                    if results.send((seq, stat_chunk(chunk))).is_err() {
                        return;
                    }
                }
            });
        }
        Pool {
            jobs: Some(jobs),
            done,
        }
    }
}

/// The stat side of the walk: hands chunks to the pool and the results, in order, to the sink.
struct StatStage<'scope, 'env, 's> {
    scope: &'scope Scope<'scope, 'env>,
    sink: &'s mut Sink<'s>,
    pool: Option<Pool>,
    submitted: usize,
    delivered: usize,
    /// Results that came back ahead of an earlier chunk.
    arrived: BTreeMap<usize, Result<Vec<Found>, SourceError>>,
}

fn pool_stopped() -> SourceError {
    SourceError::Io {
        path: "(walk)".into(),
        source: io::Error::other("a stat thread stopped"),
    }
}

impl StatStage<'_, '_, '_> {
    fn submit(&mut self, chunk: Vec<Listed>) -> Result<(), SourceError> {
        if cores() < 2 {
            let mut found = stat_chunk(chunk)?;
            return (self.sink)(&mut found);
        }
        let scope = self.scope;
        let pool = self.pool.get_or_insert_with(|| Pool::start(scope));
        let jobs = pool.jobs.as_ref().ok_or_else(pool_stopped)?;
        // When the threads are all busy and the queue is full, this thread stats the chunk
        // itself rather than wait: it then shares the stat work with them.
        match jobs.try_send((self.submitted, chunk)) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full((seq, chunk))) => {
                self.arrived.insert(seq, stat_chunk(chunk));
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(pool_stopped()),
        }
        self.submitted += 1;
        self.deliver(false)
    }

    /// Stats the last, partial chunk and delivers everything still owed to the sink.
    fn finish(mut self, rest: Vec<Listed>) -> Result<(), SourceError> {
        if self.pool.is_none() {
            // A small walk: no thread was worth starting.
            let mut found = stat_chunk(rest)?;
            return (self.sink)(&mut found);
        }
        if !rest.is_empty() {
            self.submit(rest)?;
        }
        if let Some(pool) = &mut self.pool {
            // No more jobs: the threads end once the queue is empty.
            pool.jobs = None;
        }
        self.deliver(true)
    }

    /// Passes the results that are next in order to the sink; with `wait`, until every
    /// submitted chunk is through.
    fn deliver(&mut self, wait: bool) -> Result<(), SourceError> {
        loop {
            while let Some(result) = self.arrived.remove(&self.delivered) {
                let mut found = result?;
                (self.sink)(&mut found)?;
                self.delivered += 1;
            }
            if self.delivered == self.submitted {
                return Ok(());
            }
            let Some(pool) = &self.pool else {
                return Err(pool_stopped());
            };
            let next = if wait {
                pool.done.recv().map_err(|_| pool_stopped())?
            } else {
                match pool.done.try_recv() {
                    Ok(next) => next,
                    Err(mpsc::TryRecvError::Empty) => return Ok(()),
                    Err(mpsc::TryRecvError::Disconnected) => return Err(pool_stopped()),
                }
            };
            self.arrived.insert(next.0, next.1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_of(files: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("one")).unwrap();
        for i in 0..files {
            fs::write(dir.path().join(format!("one/f{i:05}")), i.to_string()).unwrap();
        }
        dir
    }

    /// One directory larger than several chunks: entries come out whole and in name order,
    /// chunk after chunk.
    #[test]
    fn a_large_directory_comes_out_in_order_across_chunks() {
        let dir = tree_of(CHUNK * 3 + 17);
        let mut chunks = 0;
        let mut names = Vec::new();
        walk(
            dir.path(),
            Path::new(""),
            None,
            &IgnoreMatcher::empty(),
            &mut |chunk| {
                chunks += 1;
                names.extend(chunk.drain(..).map(|(rel, _, meta)| {
                    assert!(meta.is_file() || rel == Path::new("one"));
                    rel
                }));
                Ok(())
            },
        )
        .unwrap();
        let mut expected = vec![PathBuf::from("one")];
        expected.extend((0..CHUNK * 3 + 17).map(|i| PathBuf::from(format!("one/f{i:05}"))));
        assert_eq!(names, expected);
        assert!(chunks >= 4, "{chunks} chunks");
    }

    /// A sink that fails stops the walk with its error, with stat threads still busy.
    #[test]
    fn a_failing_sink_ends_the_walk_with_its_error() {
        let dir = tree_of(CHUNK * 6);
        let mut calls = 0;
        let err = walk(
            dir.path(),
            Path::new(""),
            None,
            &IgnoreMatcher::empty(),
            &mut |_| {
                calls += 1;
                if calls == 2 {
                    return Err(SourceError::NotFound {
                        pattern: "stop".into(),
                        what: "test",
                    });
                }
                Ok(())
            },
        )
        .unwrap_err();
        assert!(matches!(err, SourceError::NotFound { ref pattern, .. } if pattern == "stop"));
        assert_eq!(calls, 2);
    }
}
