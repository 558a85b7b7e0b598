//! Writable rootfs views over read-only layer directories: an overlay mount
//! when the kernel allows it, otherwise a materialised copy that is diffed
//! afterwards. Either way `finish` yields an overlay-format diff directory.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::copy_snapshotter::{Baseline, diff_against_lowers, materialise};
use crate::error::{SnapshotError, io_err};
use crate::overlay_format::{is_opaque, is_whiteout};
use crate::sys;

/// The kernel copies mount options into one page; the terminating NUL counts.
const MOUNT_OPTIONS_MAX: usize = 4095;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshotter {
    /// overlayfs with `userxattr`: O(1) prepare, O(changes) diff.
    Overlay,
    /// Full copy of the lowers, diffed by comparison: O(tree) both ways.
    Copy,
}

/// Answers per filesystem (st_dev of the scratch dir): overlay may work on
/// ext4 but not on, say, an overlay-backed container root.
static DETECTED: Mutex<Option<HashMap<u64, Snapshotter>>> = Mutex::new(None);

/// Whether overlay (with `userxattr`) can be mounted with upper/work dirs on the
/// filesystem of `scratch_dir`, found by trying once; cached per filesystem.
pub fn detect_snapshotter(scratch_dir: &Path) -> Snapshotter {
    let Ok(dev) = fs::metadata(scratch_dir).map(|m| m.dev()) else {
        return Snapshotter::Copy;
    };
    let mut cache = DETECTED.lock().unwrap_or_else(|p| p.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    *cache.entry(dev).or_insert_with(|| {
        let stamp = probe_stamp();
        let record = scratch_dir.join(PROBE_RECORD);
        if let Some(known) = read_probe_record(&record, &stamp) {
            return known;
        }
        let found = if overlay_works(scratch_dir) {
            Snapshotter::Overlay
        } else {
            Snapshotter::Copy
        };
        write_probe_record(&record, &stamp, found);
        found
    })
}

/// Where the probe's answer is kept for the next process: mounting, using and unmounting a
/// probe overlay costs ~100-200 ms on a busy ext4 disk (the unmount syncs the filesystem),
/// which every build would otherwise pay before its first step.
const PROBE_RECORD: &str = "snapshotter.v1";

/// What the answer depends on besides the filesystem (the record lives on it): the kernel,
/// and who we are — root on the host, or root of a user namespace with some id map.
fn probe_stamp() -> String {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let uid_map = fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let uid_map: Vec<&str> = uid_map.split_whitespace().collect();
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    format!("{} euid={euid} map={}", release.trim(), uid_map.join(","))
}

fn read_probe_record(record: &Path, stamp: &str) -> Option<Snapshotter> {
    let text = fs::read_to_string(record).ok()?;
    let (kind, recorded) = text.trim_end().split_once(' ')?;
    if recorded != stamp {
        return None;
    }
    match kind {
        "overlay" => Some(Snapshotter::Overlay),
        "copy" => Some(Snapshotter::Copy),
        _ => None,
    }
}

/// Best effort: without the record the next process simply probes again.
fn write_probe_record(record: &Path, stamp: &str, found: Snapshotter) {
    let kind = match found {
        Snapshotter::Overlay => "overlay",
        Snapshotter::Copy => "copy",
    };
    let Some(dir) = record.parent() else { return };
    let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) else {
        return;
    };
    if std::io::Write::write_all(&mut tmp, format!("{kind} {stamp}\n").as_bytes()).is_ok() {
        let _ = tmp.persist(record);
    }
}

/// Whether mounting with `volatile` works (0 = not tried yet, 1 = yes, 2 = no).
///
/// `volatile` (Linux 5.10) drops the `syncfs` of the upper filesystem that overlay otherwise
/// does at unmount; on ext4 that sync waits for a journal commit and was the largest part of a
/// `RUN` step's overhead. Nothing is lost by skipping it: the upper dir is a scratch diff that
/// either becomes a layer (whose blob the blob store writes durably) or is thrown away, and a
/// crashed build's scratch dirs are never reused.
static VOLATILE: AtomicU8 = AtomicU8::new(0);
const VOLATILE_OPTION: &str = ",volatile";

/// Mounts a tiny overlay, deletes a lower file and recreates a lower dir
/// through it: that exercises the mount, whiteout creation (kernel ≥ 5.8 in a
/// user namespace) and the opaque xattr (user xattrs on the upper filesystem).
fn overlay_works(scratch_dir: &Path) -> bool {
    let Ok(probe) = tempfile::Builder::new()
        .prefix("overlay-probe-")
        .tempdir_in(scratch_dir)
    else {
        return false;
    };
    let [lower, upper, work, merged] =
        ["lower", "upper", "work", "merged"].map(|d| probe.path().join(d));
    let setup = || -> std::io::Result<()> {
        for d in [&lower, &upper, &work, &merged, &lower.join("d")] {
            fs::create_dir(d)?;
        }
        fs::write(lower.join("f"), b"x")?;
        fs::write(lower.join("d/x"), b"x")
    };
    if setup().is_err() {
        return false;
    }
    let Ok(options) = overlay_options(std::slice::from_ref(&lower), &upper, &work) else {
        return false;
    };
    if sys::mount_overlay(&merged, &options).is_err() {
        return false;
    }
    let changed = fs::remove_file(merged.join("f"))
        .and_then(|()| fs::remove_dir_all(merged.join("d")))
        .and_then(|()| fs::create_dir(merged.join("d")))
        .is_ok();
    if sys::unmount(&merged).is_err() {
        // Never delete recursively through a live mount: leave the probe behind.
        let _ = probe.keep();
        return false;
    }
    let whiteout = fs::symlink_metadata(upper.join("f")).is_ok_and(|m| is_whiteout(&m));
    let opaque = is_opaque(&upper.join("d")).unwrap_or(false);
    changed && whiteout && opaque
}

/// The mount data string. Paths go in unescaped, so characters the option
/// parser treats specially are refused rather than silently misparsed.
fn overlay_options(lowers: &[PathBuf], upper: &Path, work: &Path) -> Result<String, SnapshotError> {
    for p in lowers.iter().map(PathBuf::as_path).chain([upper, work]) {
        if p.as_os_str()
            .as_bytes()
            .iter()
            .any(|b| matches!(b, b',' | b':' | b'\\' | b'='))
            || p.to_str().is_none()
        {
            return Err(SnapshotError::BadLowerDir {
                path: p.to_path_buf(),
                reason:
                    "overlay mount options cannot carry ',', ':', '\\', '=' or non-UTF-8 in paths"
                        .into(),
            });
        }
    }
    let lowerdir: Vec<&str> = lowers.iter().filter_map(|p| p.to_str()).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={},userxattr",
        lowerdir.join(":"),
        upper.display(),
        work.display()
    );
    // Room is kept for the `,volatile` that mounting may append.
    if options.len() + VOLATILE_OPTION.len() > MOUNT_OPTIONS_MAX {
        return Err(SnapshotError::MountOptionsTooLong {
            len: options.len(),
            max: MOUNT_OPTIONS_MAX,
            lowers: lowers.len(),
        });
    }
    Ok(options)
}

/// Mounts with `volatile` where the kernel has it. `from`: the directory relative lower paths
/// in `options` start from.
fn mount_volatile_if_possible(
    target: &Path,
    options: &str,
    from: Option<&Path>,
) -> std::io::Result<()> {
    let mount = |options: &str| match from {
        Some(dir) => sys::mount_overlay_from(dir, target, options),
        None => sys::mount_overlay(target, options),
    };
    if VOLATILE.load(Ordering::Relaxed) != 2 {
        match mount(&format!("{options}{VOLATILE_OPTION}")) {
            Ok(()) => {
                VOLATILE.store(1, Ordering::Relaxed);
                return Ok(());
            }
            // An older kernel rejects the unknown option; any other error will recur below.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                VOLATILE.store(2, Ordering::Relaxed)
            }
            Err(e) => return Err(e),
        }
    }
    mount(options)
}

enum Mode {
    Overlay {
        mounted: bool,
    },
    Copy {
        lowers: Vec<PathBuf>,
        baseline: Baseline,
    },
}

/// A writable view of `lowers` plus a fresh upper layer, at [`ActiveSnapshot::rootfs`].
pub struct ActiveSnapshot {
    /// Private directory holding upper/, work/, merged/ (and empty/).
    dir: PathBuf,
    rootfs: PathBuf,
    upper: PathBuf,
    mode: Mode,
    /// Relative paths whose subtrees are not part of the diff (see `exclude_from_diff`).
    excluded: BTreeSet<PathBuf>,
    /// An exclusive flock on `dir` for as long as the snapshot lives: it tells
    /// [`crate::sweep_stale`] in other processes that the directory is in use, and the kernel
    /// drops it when a build is killed.
    _in_use: fs::File,
}

/// Prepares a writable view of `lowers` (top-first) in a new directory under
/// `work_root`. With no lowers (FROM scratch) the view starts empty.
pub fn prepare(
    snapshotter: Snapshotter,
    lowers: &[PathBuf],
    work_root: &Path,
) -> Result<ActiveSnapshot, SnapshotError> {
    for lower in lowers {
        if !fs::metadata(lower).is_ok_and(|m| m.is_dir()) {
            return Err(SnapshotError::BadLowerDir {
                path: lower.clone(),
                reason: "not a directory".into(),
            });
        }
    }
    // Absolute, so the mount options never depend on the current directory.
    let work_root = &fs::canonicalize(work_root).map_err(io_err("resolving", work_root))?;
    let dir = tempfile::Builder::new()
        .prefix("snap-")
        .tempdir_in(work_root)
        .map_err(io_err("creating snapshot dir in", work_root))?
        .keep();
    let in_use = match crate::cleanup::lock_in_use(&dir) {
        Ok(lock) => lock,
        Err(e) => {
            let _ = fs::remove_dir(&dir);
            return Err(SnapshotError::Io {
                op: "locking",
                path: dir,
                source: e,
            });
        }
    };
    let snap = ActiveSnapshot {
        _in_use: in_use,
        rootfs: dir.join("merged"),
        upper: dir.join("upper"),
        dir,
        mode: Mode::Overlay { mounted: false },
        excluded: BTreeSet::new(),
    };
    // From here on, dropping `snap` on error removes the directory again.
    snap.populate(snapshotter, lowers)
}

impl ActiveSnapshot {
    fn populate(
        mut self,
        snapshotter: Snapshotter,
        lowers: &[PathBuf],
    ) -> Result<ActiveSnapshot, SnapshotError> {
        for d in [&self.rootfs, &self.upper] {
            fs::create_dir(d).map_err(io_err("creating", d))?;
        }
        match snapshotter {
            Snapshotter::Overlay => self.mount(lowers)?,
            Snapshotter::Copy => {
                let baseline = materialise(lowers, &self.rootfs, &self.dir.join("baseline"))?;
                self.mode = Mode::Copy {
                    lowers: lowers.to_vec(),
                    baseline,
                };
            }
        }
        Ok(self)
    }

    fn mount(&mut self, lowers: &[PathBuf]) -> Result<(), SnapshotError> {
        let work = self.dir.join("work");
        fs::create_dir(&work).map_err(io_err("creating", &work))?;
        let mut lowers = lowers
            .iter()
            .map(|p| fs::canonicalize(p).map_err(io_err("resolving", p)))
            .collect::<Result<Vec<_>, _>>()?;
        // overlayfs refuses a directory given twice as a lower (ELOOP), and two steps of one
        // stage can produce the same layer (`COPY sub sub` twice). Only the topmost copy
        // matters: for any path it holds an entry for, it decides, exactly as it did with the
        // lower copy present; for any other path neither copy has a say.
        let mut seen = std::collections::HashSet::new();
        lowers.retain(|p| seen.insert(p.clone()));
        if lowers.is_empty() {
            // overlayfs needs at least one lower dir.
            let empty = self.dir.join("empty");
            fs::create_dir(&empty).map_err(io_err("creating", &empty))?;
            lowers.push(empty);
        }
        let (options, from) = match overlay_options(&lowers, &self.upper, &work) {
            // Too long, or a layer path with characters the option parser
            // would misread: short links named by us, given relative to the
            // snapshot dir, avoid both.
            Err(SnapshotError::MountOptionsTooLong { .. } | SnapshotError::BadLowerDir { .. }) => {
                let short = self.short_lower_links(&lowers)?;
                let options = overlay_options(&short, &self.upper, &work)?;
                (options, Some(self.dir.as_path()))
            }
            other => (other?, None),
        };
        mount_volatile_if_possible(&self.rootfs, &options, from).map_err(|source| {
            SnapshotError::Mount {
                target: self.rootfs.clone(),
                source,
            }
        })?;
        self.mode = Mode::Overlay { mounted: true };
        Ok(())
    }

    /// Deep layer stacks overflow the one-page mount options; overlayfs follows
    /// symlinks when it resolves lowerdir paths, so short links in the snapshot
    /// dir (`<dir>/l/<n>`) stand in for the long layer paths.
    fn short_lower_links(&self, lowers: &[PathBuf]) -> Result<Vec<PathBuf>, SnapshotError> {
        let links = self.dir.join("l");
        fs::create_dir(&links).map_err(io_err("creating", &links))?;
        let mut short = Vec::with_capacity(lowers.len());
        for (i, lower) in lowers.iter().enumerate() {
            let link = links.join(format!("{i:x}"));
            std::os::unix::fs::symlink(lower, &link).map_err(io_err("creating", &link))?;
            // Relative to the snapshot dir: see sys::mount_overlay_from.
            short.push(PathBuf::from(format!("l/{i:x}")));
        }
        Ok(short)
    }

    /// The directory to run the step in (the merged view).
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// The upper directory of a mounted overlay view, for a writer that creates a new
    /// directory through [`rootfs`](Self::rootfs) and then fills it here directly (see
    /// builder_solver's `copy_with_upper`). None for a copy snapshot: its rootfs is the
    /// directory itself.
    pub fn upper_for_direct_writes(&self) -> Option<&Path> {
        match self.mode {
            Mode::Overlay { mounted: true } => Some(&self.upper),
            _ => None,
        }
    }

    pub fn kind(&self) -> Snapshotter {
        match self.mode {
            Mode::Overlay { .. } => Snapshotter::Overlay,
            Mode::Copy { .. } => Snapshotter::Copy,
        }
    }

    /// Leaves the subtrees at these in-rootfs paths (`/dev`, `/etc/hosts`...) out of the diff:
    /// a sandbox that could not mount used them as mount points made of files, and what lies
    /// below a mount point is not the step's output.
    pub fn exclude_from_diff(&mut self, paths: &[String]) {
        self.excluded.extend(
            paths
                .iter()
                .map(|p| PathBuf::from(p.trim_start_matches('/')))
                .filter(|p| !p.as_os_str().is_empty()),
        );
    }

    /// Ends the view and returns the overlay-format diff directory (a sibling of
    /// the snapshot dir in `work_root`, owned by the caller from now on).
    pub fn finish(self) -> Result<PathBuf, SnapshotError> {
        self.finish_locked().map(|d| d.path)
    }

    /// [`finish`](Self::finish), keeping the diff directory flocked until the returned
    /// [`Diff`] is dropped: [`crate::sweep_stale`] in another process then leaves it alone
    /// however long the layer write takes, and removes it once its owner has died. The lock
    /// is taken before the upper directory is renamed to its `-diff` name (flock follows the
    /// inode), so no sweeper ever sees it unlocked while its owner lives.
    pub fn finish_locked(mut self) -> Result<Diff, SnapshotError> {
        match &mut self.mode {
            Mode::Overlay { mounted } => {
                if *mounted {
                    sys::unmount(&self.rootfs).map_err(|source| SnapshotError::Unmount {
                        target: self.rootfs.clone(),
                        source,
                    })?;
                    *mounted = false;
                }
                for rel in &self.excluded {
                    let p = self.upper.join(rel);
                    let removed = match fs::symlink_metadata(&p) {
                        Ok(m) if m.is_dir() => fs::remove_dir_all(&p),
                        Ok(_) => fs::remove_file(&p),
                        Err(_) => Ok(()),
                    };
                    removed.map_err(io_err("removing excluded path", &p))?;
                }
            }
            Mode::Copy { lowers, baseline } => {
                diff_against_lowers(&self.rootfs, lowers, baseline, &self.excluded, &self.upper)?
            }
        }
        let lock =
            crate::cleanup::lock_in_use(&self.upper).map_err(io_err("locking", &self.upper))?;
        let mut diff_name = self.dir.file_name().unwrap_or_default().to_os_string();
        diff_name.push("-diff");
        let diff = self.dir.with_file_name(diff_name);
        fs::rename(&self.upper, &diff).map_err(io_err("moving diff to", &diff))?;
        Ok(Diff {
            path: diff,
            _in_use: lock,
        })
        // Drop removes the rest of the snapshot dir.
    }
}

/// A finished step's diff directory, locked against other processes' sweeps while this lives
/// (see [`ActiveSnapshot::finish_locked`]).
#[derive(Debug)]
pub struct Diff {
    path: PathBuf,
    _in_use: fs::File,
}

impl Diff {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ActiveSnapshot {
    fn drop(&mut self) {
        if let Mode::Overlay { mounted: true } = self.mode {
            // Best effort: Drop cannot report; a failed unmount leaves the dir
            // in place rather than deleting through a live mount.
            if sys::unmount(&self.rootfs).is_err() {
                return;
            }
        }
        // work/ and merged/ are never read again: delete them off the critical path.
        crate::cleanup::remove_later(self.dir.clone());
    }
}

#[cfg(test)]
mod probe_record_tests {
    use super::*;

    #[test]
    fn a_recorded_answer_is_reused_only_for_the_same_kernel_and_ids() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join(PROBE_RECORD);
        let stamp = probe_stamp();
        assert_eq!(read_probe_record(&record, &stamp), None);
        write_probe_record(&record, &stamp, Snapshotter::Copy);
        assert_eq!(read_probe_record(&record, &stamp), Some(Snapshotter::Copy));
        write_probe_record(&record, &stamp, Snapshotter::Overlay);
        assert_eq!(
            read_probe_record(&record, &stamp),
            Some(Snapshotter::Overlay)
        );
        // another kernel, or root of a different user namespace, probes again
        assert_eq!(
            read_probe_record(&record, "4.19.0 euid=0 map=0,1000,1"),
            None
        );
        fs::write(&record, "garbage").unwrap();
        assert_eq!(read_probe_record(&record, &stamp), None);
    }
}
