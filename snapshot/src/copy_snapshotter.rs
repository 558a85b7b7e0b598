//! The copy-based fallback for when overlayfs cannot be mounted.
//!
//! `materialise` applies the overlay-format lowers bottom-up into a plain
//! directory (whiteouts delete, opaque dirs reset). `diff_against_lowers`
//! later compares that directory with the lowers and writes the same
//! overlay-format upper dir overlayfs would have produced, so everything
//! downstream cannot tell the two snapshotters apart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{SnapshotError, io_err};
use crate::meta::{copy_metadata, copy_node, file_xattrs, remove_any};
use crate::overlay_format::{is_opaque, is_whiteout, make_whiteout, set_opaque};
use crate::sys;

/// Who a directory is: a directory deleted and recreated by the step gets a new
/// inode or birth time, which is how we know to make it opaque like overlayfs does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirId {
    ino: u64,
    born: Option<SystemTime>,
}

impl DirId {
    fn of(meta: &Metadata) -> DirId {
        DirId {
            ino: meta.ino(),
            born: meta.created().ok(),
        }
    }
}

/// What the merged tree looked like when the step started.
#[derive(Debug, Default)]
pub(crate) struct Baseline {
    /// Identity of every directory `materialise` created, by relative path.
    dirs: HashMap<PathBuf, DirId>,
    /// The ctime of a marker written right after materialising. Anything the
    /// step touched (write, chmod, chown, link, rename, utime...) has a later
    /// ctime: exactly the operations on which overlayfs copies a file up, so
    /// the copy diff includes the same entries overlay's upper dir would.
    settled: (i64, i64),
}

impl Baseline {
    fn touched(&self, meta: &Metadata) -> bool {
        (meta.ctime(), meta.ctime_nsec()) > self.settled
    }
}

/// Builds the merged view of `lowers` (top-first) in the empty dir `merged`;
/// `marker` (a new file on the same filesystem) records when it was done.
pub(crate) fn materialise(
    lowers: &[PathBuf],
    merged: &Path,
    marker: &Path,
) -> Result<Baseline, SnapshotError> {
    let mut baseline = Baseline::default();
    for layer in lowers.iter().rev() {
        merge_dir(layer, merged, Path::new(""), &mut baseline.dirs)?;
    }
    baseline.settled = settle(marker)?;
    Ok(baseline)
}

/// Timestamps come from a coarse clock (one tick is several ms), so a change
/// made right after materialising could carry the very same ctime. Waiting
/// until a fresh ctime is strictly later makes `touched` exact afterwards.
fn settle(marker: &Path) -> Result<(i64, i64), SnapshotError> {
    let ctime = |p: &Path| -> Result<(i64, i64), SnapshotError> {
        File::create(p).map_err(io_err("creating", p))?;
        let m = fs::symlink_metadata(p).map_err(io_err("stat", p))?;
        Ok((m.ctime(), m.ctime_nsec()))
    };
    let settled = ctime(marker)?;
    let probe = marker.with_extension("probe");
    // Bounded: if the clock is stuck, fall back to the metadata comparison alone.
    for _ in 0..1000 {
        if ctime(&probe)? > settled {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Ok(settled)
}

fn merge_dir(
    layer: &Path,
    merged: &Path,
    rel: &Path,
    origins: &mut HashMap<PathBuf, DirId>,
) -> Result<(), SnapshotError> {
    let src_dir = layer.join(rel);
    for entry in fs::read_dir(&src_dir).map_err(io_err("reading directory", &src_dir))? {
        let entry = entry.map_err(io_err("reading directory", &src_dir))?;
        let child_rel = rel.join(entry.file_name());
        let (src, dst) = (layer.join(&child_rel), merged.join(&child_rel));
        let meta = fs::symlink_metadata(&src).map_err(io_err("stat", &src))?;
        if is_whiteout(&meta) {
            remove_any(&dst).map_err(io_err("removing", &dst))?;
            continue;
        }
        if !meta.is_dir() {
            remove_any(&dst).map_err(io_err("removing", &dst))?;
            copy_node(&src, &meta, &dst).map_err(io_err("copying to", &dst))?;
            continue;
        }
        let keep = fs::symlink_metadata(&dst).is_ok_and(|m| m.is_dir())
            && !is_opaque(&src).map_err(io_err("reading xattrs of", &src))?;
        if !keep {
            remove_any(&dst).map_err(io_err("removing", &dst))?;
            fs::create_dir(&dst).map_err(io_err("creating", &dst))?;
            let id = fs::symlink_metadata(&dst)
                .map(|m| DirId::of(&m))
                .map_err(io_err("stat", &dst))?;
            origins.insert(child_rel.clone(), id);
        }
        merge_dir(layer, merged, &child_rel, origins)?;
        // After the children, so their creation does not bump the copied mtime.
        copy_metadata(&src, &meta, &dst).map_err(io_err("copying metadata to", &dst))?;
    }
    Ok(())
}

/// Writes into the empty dir `out` the overlay-format diff between `merged`
/// and the lowers it was materialised from.
pub(crate) fn diff_against_lowers(
    merged: &Path,
    lowers: &[PathBuf],
    baseline: &Baseline,
    excluded: &BTreeSet<PathBuf>,
    out: &Path,
) -> Result<(), SnapshotError> {
    let mut differ = Differ {
        merged,
        out,
        baseline,
        excluded,
        created_dirs: Vec::new(),
        links: HashMap::new(),
    };
    differ.diff_dir(Path::new(""), lowers)?;
    differ.fix_dir_times()
}

/// The entry the lowers show for a name, top-most layer winning.
struct LowerEntry {
    path: PathBuf,
    meta: Metadata,
}

struct Differ<'a> {
    merged: &'a Path,
    out: &'a Path,
    baseline: &'a Baseline,
    /// Relative paths left out of the diff with everything below them.
    excluded: &'a BTreeSet<PathBuf>,
    /// Directories created in `out`, whose times are set once all children exist.
    created_dirs: Vec<PathBuf>,
    /// Multiply-linked merged files already copied to `out`, to keep them linked.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Differ<'_> {
    /// `visible`: the directories at `rel` in each lower that shows through, top-first.
    fn diff_dir(&mut self, rel: &Path, visible: &[PathBuf]) -> Result<(), SnapshotError> {
        let lower = lower_listing(visible)?;
        let merged_dir = self.merged.join(rel);
        let mut names = BTreeSet::new();
        for entry in fs::read_dir(&merged_dir).map_err(io_err("reading directory", &merged_dir))? {
            names.insert(
                entry
                    .map_err(io_err("reading directory", &merged_dir))?
                    .file_name(),
            );
        }
        names.retain(|n| !self.excluded.contains(&rel.join(n)));
        for gone in lower
            .keys()
            .filter(|n| !names.contains(*n) && !self.excluded.contains(&rel.join(n)))
        {
            self.ensure_dir(rel)?;
            let wh = self.out.join(rel).join(gone);
            make_whiteout(&wh).map_err(io_err("creating whiteout", &wh))?;
        }
        for name in &names {
            let child_rel = rel.join(name);
            let path = self.merged.join(&child_rel);
            let meta = fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
            match lower.get(name) {
                None => self.copy_out(rel, &child_rel, &meta, false)?,
                Some(l) if meta.is_dir() => {
                    let same_dir = l.meta.is_dir()
                        && self.baseline.dirs.get(&child_rel) == Some(&DirId::of(&meta));
                    if !same_dir {
                        // Replaced a file, or deleted and recreated: overlayfs makes such dirs opaque.
                        self.copy_out(rel, &child_rel, &meta, true)?;
                        continue;
                    }
                    if self.baseline.touched(&meta) || differs(&path, &meta, l)? {
                        self.ensure_dir(&child_rel)?;
                    }
                    let child_visible = visible_below(visible, name)?;
                    self.diff_dir(&child_rel, &child_visible)?;
                }
                Some(l) => {
                    if l.meta.is_dir() || self.baseline.touched(&meta) || differs(&path, &meta, l)?
                    {
                        self.copy_out(rel, &child_rel, &meta, false)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Creates `rel` and its missing parents in `out` with the merged metadata.
    fn ensure_dir(&mut self, rel: &Path) -> Result<(), SnapshotError> {
        let mut prefix = PathBuf::new();
        for comp in rel.components() {
            prefix.push(comp);
            let dst = self.out.join(&prefix);
            if fs::symlink_metadata(&dst).is_ok() {
                continue;
            }
            let src = self.merged.join(&prefix);
            let meta = fs::symlink_metadata(&src).map_err(io_err("stat", &src))?;
            fs::create_dir(&dst).map_err(io_err("creating", &dst))?;
            copy_metadata(&src, &meta, &dst).map_err(io_err("copying metadata to", &dst))?;
            self.created_dirs.push(prefix.clone());
        }
        Ok(())
    }

    /// Copies the merged entry `rel` (a whole tree, for dirs) into `out`.
    fn copy_out(
        &mut self,
        parent: &Path,
        rel: &Path,
        meta: &Metadata,
        opaque: bool,
    ) -> Result<(), SnapshotError> {
        self.ensure_dir(parent)?;
        let (src, dst) = (self.merged.join(rel), self.out.join(rel));
        if !meta.is_dir() {
            return self.copy_file_out(&src, meta, &dst);
        }
        fs::create_dir(&dst).map_err(io_err("creating", &dst))?;
        copy_metadata(&src, meta, &dst).map_err(io_err("copying metadata to", &dst))?;
        if opaque {
            set_opaque(&dst).map_err(io_err("marking opaque", &dst))?;
        }
        self.created_dirs.push(rel.to_path_buf());
        for entry in fs::read_dir(&src).map_err(io_err("reading directory", &src))? {
            let entry = entry.map_err(io_err("reading directory", &src))?;
            let child = rel.join(entry.file_name());
            if self.excluded.contains(&child) {
                continue;
            }
            let child_meta =
                fs::symlink_metadata(entry.path()).map_err(io_err("stat", entry.path()))?;
            self.copy_out(rel, &child, &child_meta, false)?;
        }
        Ok(())
    }

    fn copy_file_out(
        &mut self,
        src: &Path,
        meta: &Metadata,
        dst: &Path,
    ) -> Result<(), SnapshotError> {
        let key = (meta.dev(), meta.ino());
        if meta.nlink() > 1 {
            if let Some(first) = self.links.get(&key) {
                return fs::hard_link(first, dst).map_err(io_err("hard-linking", dst));
            }
            self.links.insert(key, dst.to_path_buf());
        }
        copy_node(src, meta, dst).map_err(io_err("copying to", dst))?;
        Ok(())
    }

    fn fix_dir_times(&self) -> Result<(), SnapshotError> {
        for rel in self.created_dirs.iter().rev() {
            let src = self.merged.join(rel);
            let meta = fs::symlink_metadata(&src).map_err(io_err("stat", &src))?;
            let dst = self.out.join(rel);
            sys::set_times(&dst, meta.mtime(), meta.mtime_nsec())
                .map_err(io_err("setting times of", &dst))?;
        }
        Ok(())
    }
}

/// Names the lowers show in a directory (whiteouts hide lower-down names).
fn lower_listing(visible: &[PathBuf]) -> Result<BTreeMap<OsString, LowerEntry>, SnapshotError> {
    let mut seen = BTreeSet::new();
    let mut shown = BTreeMap::new();
    for dir in visible {
        for entry in fs::read_dir(dir).map_err(io_err("reading directory", dir))? {
            let entry = entry.map_err(io_err("reading directory", dir))?;
            let name = entry.file_name();
            if !seen.insert(name.clone()) {
                continue;
            }
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
            if !is_whiteout(&meta) {
                shown.insert(name, LowerEntry { path, meta });
            }
        }
    }
    Ok(shown)
}

/// The lower directories visible at `name` below `visible`: a dir continues
/// the stack, an opaque dir ends it after itself, anything else ends it.
fn visible_below(visible: &[PathBuf], name: &OsString) -> Result<Vec<PathBuf>, SnapshotError> {
    let mut out = Vec::new();
    for dir in visible {
        let p = dir.join(name);
        match fs::symlink_metadata(&p) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("stat", &p)(e)),
            Ok(m) if m.is_dir() => {
                let opaque = is_opaque(&p).map_err(io_err("reading xattrs of", &p))?;
                out.push(p);
                if opaque {
                    break;
                }
            }
            Ok(_) => break,
        }
    }
    Ok(out)
}

/// Whether the merged entry differs from what the lowers show, by metadata
/// first and by content only when size and mtime match but the mtime has no
/// sub-second part (a coarse clock could hide a same-second rewrite).
fn differs(path: &Path, meta: &Metadata, lower: &LowerEntry) -> Result<bool, SnapshotError> {
    let l = &lower.meta;
    let meta_differs = meta.mode() != l.mode()
        || meta.uid() != l.uid()
        || meta.gid() != l.gid()
        || meta.mtime() != l.mtime()
        || meta.mtime_nsec() != l.mtime_nsec()
        || (!meta.is_dir() && (meta.len() != l.len() || meta.rdev() != l.rdev()));
    if meta_differs {
        return Ok(true);
    }
    let xattrs = file_xattrs(path).map_err(io_err("reading xattrs of", path))?;
    if xattrs != file_xattrs(&lower.path).map_err(io_err("reading xattrs of", &lower.path))? {
        return Ok(true);
    }
    if meta.file_type().is_symlink() {
        let a = fs::read_link(path).map_err(io_err("reading symlink", path))?;
        return Ok(a != fs::read_link(&lower.path).map_err(io_err("reading symlink", &lower.path))?);
    }
    if meta.is_file() && meta.mtime_nsec() == 0 {
        return Ok(!same_content(path, &lower.path)?);
    }
    Ok(false)
}

fn same_content(a: &Path, b: &Path) -> Result<bool, SnapshotError> {
    let mut fa = File::open(a).map_err(io_err("opening", a))?;
    let mut fb = File::open(b).map_err(io_err("opening", b))?;
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(io_err("reading", a))?;
        let nb = read_full(&mut fb, &mut bb).map_err(io_err("reading", b))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Fills `buf` unless EOF comes first; returns the bytes read.
fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
