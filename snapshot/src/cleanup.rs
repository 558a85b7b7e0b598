//! Deleting scratch directories: finished ones off a build's critical path, and those a killed
//! build left behind.
//!
//! On a busy ext4 disk every `rmdir` of a snapshot's `work/` and `merged/` waits for the
//! journal — several milliseconds each, more than the rest of a `RUN true`. Nothing later in a
//! build reads those directories, so [`remove_later`] hands them to one background thread and
//! the next step starts at once. [`wait_for_removals`] blocks until the queue is empty; the
//! solver calls it before a build returns so a finished build leaves nothing behind. If the
//! process dies first, the leftovers are ordinary directories under the store's `work/`, which
//! [`sweep_stale`] removes at the start of a later build.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Condvar, Mutex, OnceLock};

struct Reaper {
    queue: Mutex<Sender<PathBuf>>,
    /// Directories queued and not yet removed.
    pending: Mutex<usize>,
    idle: Condvar,
}

static REAPER: OnceLock<Option<Reaper>> = OnceLock::new();

fn reaper() -> Option<&'static Reaper> {
    REAPER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<PathBuf>();
            let spawned = std::thread::Builder::new()
                .name("snapshot-cleanup".into())
                .spawn(move || {
                    for dir in rx {
                        let _ = fs::remove_dir_all(&dir);
                        if let Some(r) = REAPER.get().and_then(Option::as_ref) {
                            let mut pending = r.pending.lock().unwrap_or_else(|p| p.into_inner());
                            *pending = pending.saturating_sub(1);
                            if *pending == 0 {
                                r.idle.notify_all();
                            }
                        }
                    }
                });
            spawned.ok().map(|_| Reaper {
                queue: Mutex::new(tx),
                pending: Mutex::new(0),
                idle: Condvar::new(),
            })
        })
        .as_ref()
}

/// Removes `dir` (recursively, best effort) in the background; inline when no thread can run.
pub fn remove_later(dir: PathBuf) {
    let Some(r) = reaper() else {
        let _ = fs::remove_dir_all(&dir);
        return;
    };
    *r.pending.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    let sent = r.queue.lock().unwrap_or_else(|p| p.into_inner()).send(dir);
    if let Err(mpsc::SendError(dir)) = sent {
        let _ = fs::remove_dir_all(&dir);
        let mut pending = r.pending.lock().unwrap_or_else(|p| p.into_inner());
        *pending = pending.saturating_sub(1);
    }
}

/// Blocks until every directory handed to [`remove_later`] so far is gone.
pub fn wait_for_removals() {
    let Some(r) = REAPER.get().and_then(Option::as_ref) else {
        return;
    };
    let mut pending = r.pending.lock().unwrap_or_else(|p| p.into_inner());
    while *pending > 0 {
        pending = r.idle.wait(pending).unwrap_or_else(|p| p.into_inner());
    }
}

/// Takes the lock that marks a live snapshot directory (see [`sweep_stale`]).
pub(crate) fn lock_in_use(dir: &Path) -> std::io::Result<fs::File> {
    let f = fs::File::open(dir)?;
    f.lock()?;
    Ok(f)
}

/// Removes (in the background) what killed builds left in `work_root`: snapshot directories
/// and finished diffs (`snap-*-diff`) whose owner no longer holds their lock (a diff is locked
/// from before it gets its name until its layer is stored, see
/// `ActiveSnapshot::finish_locked`). Returns how many it queued.
/// Safe while other builds run on the same store: their snapshots and diffs are locked.
pub fn sweep_stale(work_root: &Path) -> usize {
    let Ok(entries) = fs::read_dir(work_root) else {
        return 0;
    };
    let mut queued = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("snap-") || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        if is_abandoned(&path) {
            remove_later(path);
            queued += 1;
        }
    }
    queued
}

/// Whether nobody holds `dir`'s in-use lock. A merged view still mounted there (a killed build
/// whose mounts outlived it) is detached first so nothing is deleted through it.
fn is_abandoned(dir: &Path) -> bool {
    let Ok(f) = fs::File::open(dir) else {
        return false;
    };
    if f.try_lock().is_err() {
        return false;
    }
    let merged = dir.join("merged");
    if crate::sys::is_mount_point(&merged) && crate::sys::unmount(&merged).is_err() {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_dirs_are_gone_after_waiting() {
        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<_> = (0..20).map(|i| root.path().join(format!("d{i}"))).collect();
        for d in &dirs {
            fs::create_dir_all(d.join("a/b")).unwrap();
            fs::write(d.join("a/b/f"), b"x").unwrap();
            remove_later(d.clone());
        }
        wait_for_removals();
        assert!(dirs.iter().all(|d| !d.exists()));
    }

    #[test]
    fn sweep_removes_unlocked_snapshots_only() {
        let root = tempfile::tempdir().unwrap();
        let live = root.path().join("snap-live");
        let dead = root.path().join("snap-dead");
        let live_diff = root.path().join("snap-x-diff");
        let dead_diff = root.path().join("snap-y-diff");
        let other = root.path().join("mountpoints-v1");
        for d in [&live, &dead, &live_diff, &dead_diff, &other] {
            fs::create_dir_all(d.join("merged")).unwrap();
        }
        let _held = lock_in_use(&live).unwrap();
        let _held_diff = lock_in_use(&live_diff).unwrap();
        assert_eq!(sweep_stale(root.path()), 2);
        wait_for_removals();
        assert!(live.exists() && live_diff.exists() && other.exists());
        assert!(!dead.exists() && !dead_diff.exists());
    }
}
