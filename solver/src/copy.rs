//! COPY and ADD semantics: docker's rules for what lands where, applied inside a destination
//! root filesystem with every path resolved inside that root.
//!
//! - a directory source copies its *contents* into the destination;
//! - a file source lands at `dest/<name>` when the destination is a directory (trailing `/`,
//!   or a directory when that source is copied), else at `dest`;
//! - a wildcard source may match nothing; a socket becomes an empty regular file;
//! - symlinks inside a source are copied as symlinks, never followed;
//! - ownership is 0:0 for files from the context, preserved for files from a stage or image,
//!   and `--chown` overrides both; `--chmod` overrides modes; modification times are kept;
//! - ADD extracts local tar archives (plain or gzip) into the destination.

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::source_tree::{Selected, SourceError, SourceTree, exclude_rules, excludes};
use crate::userdb::Owner;
use builder_frontend::dockerignore::IgnoreMatcher;
use builder_graph::CopyAction;
use builder_graph::chmod::Chmod;
use builder_rootpath::{clean_rel, clean_rel_path, resolve_in_root};

mod archive;
mod file_pool;
mod placed;
pub use archive::unpack_file;
use archive::{extract_archive, is_tar_archive};
use file_pool::{FileJob, FilePool};
use placed::{PlacedDirs, direct_dir};

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{0}")]
    Invalid(String),
    /// The build was cancelled while the copy was under way.
    #[error("cancelled")]
    Cancelled,
}

/// Stops a copy between files (and, for large files, between chunks of one).
fn check_cancelled() -> Result<(), CopyError> {
    if builder_snapshot::cancel::cancel_requested() {
        return Err(CopyError::Cancelled);
    }
    Ok(())
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What to apply to every entry written.
#[derive(Clone, Copy, Debug)]
pub struct Attributes<'a> {
    /// `--chown`, or None to keep the source's (stage/image) or use 0:0 (context).
    pub owner: Option<Owner>,
    pub chmod: Option<&'a Chmod>,
    /// Files from the context are owned by root in the image, whatever they are on the host.
    pub reset_owner: bool,
}

pub fn copy(
    src: &SourceTree,
    action: &CopyAction,
    dest_root: &Path,
    attrs: Attributes<'_>,
) -> Result<(), CopyError> {
    copy_with_upper(src, action, dest_root, None, attrs)
}

/// [`copy`] into an overlay mount at `dest_root` whose upper directory is `upper`: the
/// contents of a directory this copy creates are written straight into `upper`, not through
/// the mount. A directory made through the mount where nothing lay below is a plain upper
/// directory (no lower to merge, no whiteout or opaque marker needed), so its entries written
/// there are exactly what the mount would have written — at about a third of the cost per file
/// on ext4 (see BENCHMARKS.md, issue #17). Nothing ever looked those names up through the
/// mount, so it holds no stale entry for them, and it is unmounted before the diff is read.
pub fn copy_with_upper(
    src: &SourceTree,
    action: &CopyAction,
    dest_root: &Path,
    upper: Option<&Path>,
    attrs: Attributes<'_>,
) -> Result<(), CopyError> {
    let exclude = exclude_rules(&action.exclude)?;
    // Each selected source, with how many leading components of its path --parents drops.
    let mut selected: Vec<(Selected, usize)> = Vec::new();
    for pattern in &action.sources {
        let drop = parents_pivot(pattern);
        selected.extend(src.select(pattern)?.into_iter().map(|s| (s, drop)));
    }
    let dest_rel = PathBuf::from(clean_rel(&action.dest));
    let mut created = CreatedDirs::default();
    if action.parents {
        // BuildKit copies the tree below the destination with include patterns, which makes
        // the destination even when nothing matches.
        ensure_dir_in(dest_root, &dest_rel, attrs, &mut created)?;
    }
    let placing = Placing {
        src,
        action,
        dest_rel: &dest_rel,
        dest_root,
        upper,
        attrs,
        exclude: &exclude,
    };
    let mut dir_times = Vec::new();
    std::thread::scope(|scope| {
        let mut pool = FilePool::new(scope, attrs);
        for (sel, drop) in &selected {
            placing.place(sel, *drop, &mut created, &mut dir_times, &mut pool)?;
        }
        pool.finish()
    })?;
    // Directory times last, since writing their children changed them.
    for (dir, meta) in dir_times.iter().rev() {
        set_times(dir, meta)?;
    }
    created.finish()
}

/// One COPY or ADD action under way: what each of its sources is placed with.
struct Placing<'a> {
    src: &'a SourceTree<'a>,
    action: &'a CopyAction,
    dest_rel: &'a Path,
    dest_root: &'a Path,
    upper: Option<&'a Path>,
    attrs: Attributes<'a>,
    exclude: &'a IgnoreMatcher,
}

impl Placing<'_> {
    /// Writes one selected source (`drop`: how many leading components --parents leaves out),
    /// its regular files through `pool`.
    fn place(
        &self,
        sel: &Selected,
        drop: usize,
        created: &mut CreatedDirs,
        dir_times: &mut Vec<(PathBuf, Metadata)>,
        pool: &mut FilePool<'_, '_>,
    ) -> Result<(), CopyError> {
        check_cancelled()?;
        let meta = fs::symlink_metadata(&sel.host).map_err(io_err(&sel.host))?;
        // Where this source lands: the destination, or with --parents the destination joined
        // with the source's own path (less what comes before a `/./` pivot).
        let kept = if self.action.parents {
            let rest: PathBuf = sel.rel.components().skip(drop).collect();
            join_rel(self.dest_rel, &rest)
        } else {
            self.dest_rel.to_path_buf()
        };
        if meta.is_dir() {
            // This walk may replace what an earlier source wrote.
            pool.finish()?;
            self.place_dir(sel, &kept, created, dir_times, pool)
        } else if excludes(self.exclude, &sel.rel) {
            Ok(())
        } else if self.action.unpack_archives && is_tar_archive(&sel.host)? {
            pool.finish()?;
            let target = ensure_dir_in(self.dest_root, &kept, self.attrs, created)?;
            extract_archive(&sel.host, &target, self.attrs)
        } else {
            self.place_file(sel, meta, kept, created, pool)
        }
    }

    /// A directory source copies its contents only: the destination directory keeps its own
    /// owner, mode and times when it exists, and is made like any missing parent (0755, the
    /// --chown owner or root) when it does not — as BuildKit does. Giving it the source's mode
    /// and root ownership broke `USER app; COPY . .` into a home directory.
    fn place_dir(
        &self,
        sel: &Selected,
        kept: &Path,
        created: &mut CreatedDirs,
        dir_times: &mut Vec<(PathBuf, Metadata)>,
        pool: &mut FilePool<'_, '_>,
    ) -> Result<(), CopyError> {
        let (root, attrs) = (self.dest_root, self.attrs);
        let existed = resolve_in_root(root, kept, true)
            .map_err(io_err(root))
            .map(|p| fs::symlink_metadata(p).is_ok())?;
        let top = ensure_dir_in(root, kept, attrs, created)?;
        let mut placed = if existed {
            PlacedDirs::new(top, false)
        } else {
            // Made just now: nothing in it to replace, and it may be written directly.
            PlacedDirs::new(direct_dir(root, self.upper, top), true)
        };
        for (rel, host, meta) in self.src.walk_excluding(sel, self.exclude)? {
            check_cancelled()?;
            let (target, parent_fresh) = match placed.child(&rel) {
                Some(found) => found,
                None => (
                    resolve_in_root(root, join_rel(kept, &rel), false).map_err(io_err(root))?,
                    false,
                ),
            };
            if meta.is_file() {
                let job = FileJob {
                    src: host,
                    meta,
                    target,
                    parent_fresh,
                };
                pool.submit_walked(job)?;
                continue;
            }
            let made = write_entry_in(&host, &meta, &target, attrs, parent_fresh)?;
            if meta.is_dir() {
                placed.insert(rel, target.clone(), parent_fresh || made);
                dir_times.push((target, meta));
            }
        }
        Ok(())
    }

    /// A source that is not a directory (nor an archive ADD unpacks).
    fn place_file(
        &self,
        sel: &Selected,
        meta: Metadata,
        kept: PathBuf,
        created: &mut CreatedDirs,
        pool: &mut FilePool<'_, '_>,
    ) -> Result<(), CopyError> {
        let (root, dest_rel) = (self.dest_root, self.dest_rel);
        let name = Path::new(sel.rel.file_name().unwrap_or(sel.rel.as_os_str()));
        // As BuildKit decides it for each source in turn: into the destination when it names a
        // directory (a trailing `/`) or is one now (through symlinks, inside the root), else at
        // the destination itself. So several sources need no trailing `/` when the destination
        // is a directory, made by an earlier source or not.
        let dest_is_dir = self.action.dest_is_dir
            || resolve_in_root(root, dest_rel, true)
                .map_err(io_err(root))?
                .is_dir();
        let rel = if self.action.parents {
            kept
        } else if dest_is_dir {
            join_rel(dest_rel, name)
        } else {
            dest_rel.to_path_buf()
        };
        if let Some(parent) = rel.parent() {
            // A parent still to be made may be where a file in flight is going: in order, that
            // file would be there first (and the copy fail on it). Files in flight all go
            // inside the destination, so a destination that is a directory needs no look.
            let made = (parent == dest_rel && dest_is_dir)
                || resolve_in_root(root, parent, true).is_ok_and(|p| p.is_dir());
            if !made {
                pool.finish()?;
            }
            ensure_dir_in(root, parent, self.attrs, created)?;
        }
        let target = resolve_in_root(root, &rel, false).map_err(io_err(root))?;
        if meta.is_file() {
            let job = FileJob {
                src: sel.host.clone(),
                meta,
                target,
                parent_fresh: false,
            };
            return pool.submit_single(job);
        }
        if pool.conflicts(&target) {
            pool.finish()?;
        }
        write_entry(&sel.host, &meta, &target, self.attrs)
    }
}

/// For `COPY --parents`: how many leading components of a source's path are not kept. BuildKit
/// keeps the whole path unless the source has a `/./` pivot: `./a/./b/*.go` keeps `b/...`.
fn parents_pivot(pattern: &str) -> usize {
    match pattern.split_once("/./") {
        Some((before, _)) => clean_rel(before)
            .split('/')
            .filter(|p| !p.is_empty())
            .count(),
        None => 0,
    }
}

/// `base/rel` with the bytes of both kept; an empty side adds no `/`.
fn join_rel(base: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    }
}

/// Creates a directory and its missing parents (0755, or an octal `--chmod`; owned by the
/// --chown owner or root).
pub fn ensure_dir(
    root: &Path,
    rel: impl AsRef<Path>,
    attrs: Attributes<'_>,
) -> Result<PathBuf, CopyError> {
    let mut created = CreatedDirs::default();
    let host = ensure_dir_in(root, rel.as_ref(), attrs, &mut created)?;
    created.finish()?;
    Ok(host)
}

/// The mode of a directory a copy creates on the way to its destination. As fsutil's copy in
/// BuildKit ≥ 0.13: an octal `--chmod` (its permission bits), else 0755 — a symbolic
/// `--chmod` is applied to copied files only.
fn created_dir_mode(attrs: Attributes<'_>) -> u32 {
    match attrs.chmod {
        Some(Chmod::Octal(mode)) => mode & 0o777,
        _ => 0o755,
    }
}

/// Directories made during one copy whose final mode would stop the copy from working in
/// them (`--chmod=644` has no search bit): they are made usable by their owner first, and
/// get their mode when the copy is done, deepest first, so a non-root builder can finish too.
#[derive(Default)]
struct CreatedDirs {
    pending: Vec<(PathBuf, u32)>,
}

impl CreatedDirs {
    fn finish(self) -> Result<(), CopyError> {
        for (dir, mode) in self.pending.iter().rev() {
            fs::set_permissions(dir, fs::Permissions::from_mode(*mode)).map_err(io_err(dir))?;
        }
        Ok(())
    }
}

fn ensure_dir_in(
    root: &Path,
    rel: &Path,
    attrs: Attributes<'_>,
    created: &mut CreatedDirs,
) -> Result<PathBuf, CopyError> {
    let rel = clean_rel_path(rel);
    let mode = created_dir_mode(attrs);
    let mut current = PathBuf::new();
    let mut host = root.to_path_buf();
    for part in rel.iter() {
        current.push(part);
        host = resolve_in_root(root, &current, true).map_err(io_err(root))?;
        match fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => {
                return Err(CopyError::Invalid(format!(
                    "cannot create directory /{}: a file of that name exists",
                    current.display()
                )));
            }
            Err(_) => {
                // A dangling symlink on the way resolved to a target whose parents may not
                // exist either: make them as BuildKit does, inside the root.
                if let Some(parent) = host.strip_prefix(root).ok().and_then(Path::parent)
                    && parent != current.parent().unwrap_or(Path::new(""))
                {
                    ensure_dir_in(root, parent, attrs, created)?;
                }
                fs::create_dir(&host).map_err(io_err(&host))?;
                let usable = mode | 0o700;
                fs::set_permissions(&host, fs::Permissions::from_mode(usable))
                    .map_err(io_err(&host))?;
                if usable != mode {
                    created.pending.push((host.clone(), mode));
                }
                let owner = attrs.owner.unwrap_or(Owner { uid: 0, gid: 0 });
                lchown(&host, owner)?;
            }
        }
    }
    Ok(host)
}

fn remove_existing(target: &Path, keep_dir: bool) -> Result<(), CopyError> {
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() && keep_dir => Ok(()),
        Ok(m) if m.is_dir() => fs::remove_dir_all(target).map_err(io_err(target)),
        Ok(_) => fs::remove_file(target).map_err(io_err(target)),
        Err(_) => Ok(()),
    }
}

fn write_entry(
    src: &Path,
    meta: &Metadata,
    target: &Path,
    attrs: Attributes<'_>,
) -> Result<(), CopyError> {
    write_entry_in(src, meta, target, attrs, false).map(|_| ())
}

/// Writes one entry at `target`, replacing what is there unless `parent_fresh` says the
/// parent was made by this copy (then nothing is, and the checks are skipped: on an overlay
/// mount each costs a lookup). True when a directory was created (not one kept).
fn write_entry_in(
    src: &Path,
    meta: &Metadata,
    target: &Path,
    attrs: Attributes<'_>,
    parent_fresh: bool,
) -> Result<bool, CopyError> {
    let ft = meta.file_type();
    if ft.is_dir() {
        let mut made = false;
        if parent_fresh {
            fs::create_dir(target).map_err(io_err(target))?;
            made = true;
        } else {
            remove_existing(target, true)?;
            if !target.is_dir() {
                fs::create_dir(target).map_err(io_err(target))?;
                made = true;
            }
        }
        apply_attrs(target, meta, attrs)?;
        return Ok(made);
    }
    if !parent_fresh {
        remove_existing(target, false)?;
    }
    if ft.is_symlink() {
        let link = fs::read_link(src).map_err(io_err(src))?;
        symlink(&link, target).map_err(io_err(target))?;
        lchown(target, owner_for(meta, attrs))?;
        return Ok(false);
    }
    if ft.is_file() {
        write_file(Some(src), meta, target, attrs)?;
        return Ok(false);
    }
    if ft.is_socket() {
        // A socket cannot be carried in a layer: BuildKit copies it as an empty regular file.
        write_file(None, meta, target, attrs)?;
        return Ok(false);
    }
    mknod_like(meta, target)?;
    apply_attrs(target, meta, attrs)?;
    set_times(target, meta)?;
    Ok(false)
}

/// Creates the regular file `target` (which must not exist) with the data of `src` (None: empty),
/// then gives it its owner, mode and times through the descriptor it was written with. By path,
/// each of lchown, chmod and utimensat walks the path again, and through an overlay mount a
/// lookup is most of a small file's cost: a 20,000-file COPY made ~20,000 of each (strace -c,
/// BENCHMARKS.md issue #17). A chown or chmod that would change nothing is skipped: the file is
/// created with its permission bits (less the umask), and usually already has its owner.
/// Data in chunks that notice a cancelled build (see builder_snapshot::cancel).
fn write_file(
    src: Option<&Path>,
    meta: &Metadata,
    target: &Path,
    attrs: Attributes<'_>,
) -> Result<(), CopyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let from = match src {
        Some(src) => Some(fs::File::open(src).map_err(io_err(src))?),
        None => None,
    };
    let mode = final_mode(meta, attrs);
    let to = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .open(target)
        .map_err(io_err(target))?;
    let made = to.metadata().map_err(io_err(target))?;
    if let Some(from) = &from {
        match builder_snapshot::cancel::copy_file_to_dev(from, &to, made.dev()) {
            Ok(_) => {}
            Err(_) if builder_snapshot::cancel::cancel_requested() => {
                return Err(CopyError::Cancelled);
            }
            Err(e) => return Err(io_err(target)(e)),
        }
    }
    let owner = owner_for(meta, attrs);
    let (uid, gid) = builder_snapshot::ids::to_disk(owner.uid, owner.gid);
    if (made.uid(), made.gid()) != (uid, gid) {
        std::os::unix::fs::fchown(&to, Some(uid), Some(gid))
            .map_err(|e| chown_error(target, owner, e))?;
    }
    // Created with `mode & 0o777` less the umask, so never with setuid/setgid/sticky bits: a
    // mode that has them is set here, after the chown (which would clear them).
    if made.mode() & 0o7777 != mode {
        to.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err(target))?;
    }
    futimens(&to, target, meta)
}

/// The mode an entry gets: its own, or `--chmod` applied to it.
fn final_mode(meta: &Metadata, attrs: Attributes<'_>) -> u32 {
    let own = meta.permissions().mode() & 0o7777;
    attrs.chmod.map_or(own, |c| c.apply(own, meta.is_dir()))
}

fn owner_for(meta: &Metadata, attrs: Attributes<'_>) -> Owner {
    match (attrs.owner, attrs.reset_owner) {
        (Some(o), _) => o,
        (None, true) => Owner { uid: 0, gid: 0 },
        (None, false) => {
            let (uid, gid) = builder_snapshot::ids::from_disk(meta.uid(), meta.gid());
            Owner { uid, gid }
        }
    }
}

fn apply_attrs(target: &Path, meta: &Metadata, attrs: Attributes<'_>) -> Result<(), CopyError> {
    lchown(target, owner_for(meta, attrs))?;
    let mode = final_mode(meta, attrs);
    fs::set_permissions(target, fs::Permissions::from_mode(mode)).map_err(io_err(target))
}

fn lchown(path: &Path, owner: Owner) -> Result<(), CopyError> {
    let (uid, gid) = builder_snapshot::ids::to_disk(owner.uid, owner.gid);
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(|e| chown_error(path, owner, e))
}

fn chown_error(path: &Path, owner: Owner, e: io::Error) -> CopyError {
    CopyError::Io {
        path: path.display().to_string(),
        source: io::Error::new(
            e.kind(),
            format!(
                "{e} (chown to {}:{}; in a rootless build the id must be inside your /etc/subuid range)",
                owner.uid, owner.gid
            ),
        ),
    }
}

fn set_times(target: &Path, meta: &Metadata) -> Result<(), CopyError> {
    utimens(
        target,
        (meta.atime(), meta.atime_nsec()),
        (meta.mtime(), meta.mtime_nsec()),
    )
}

/// Sets access and modification times of `target` itself (never a symlink's target) by path:
/// opening the entry instead would block on a FIFO and fail on a device node.
fn utimens(target: &Path, atime: (i64, i64), mtime: (i64, i64)) -> Result<(), CopyError> {
    let times = [timespec(atime), timespec(mtime)];
    let c = c_path(target)?;
    // SAFETY: c is a valid NUL-terminated path and times points to two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io_err(target)(io::Error::last_os_error()));
    }
    Ok(())
}

/// Sets the access and modification times of `meta` on the open regular file `file` (`target`
/// names it in errors).
fn futimens(file: &fs::File, target: &Path, meta: &Metadata) -> Result<(), CopyError> {
    use std::os::fd::AsRawFd;
    let times = [
        timespec((meta.atime(), meta.atime_nsec())),
        timespec((meta.mtime(), meta.mtime_nsec())),
    ];
    // SAFETY: the descriptor is open for the duration of the call and times points to two
    // timespecs.
    let rc = unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) };
    if rc != 0 {
        return Err(io_err(target)(io::Error::last_os_error()));
    }
    Ok(())
}

fn timespec((sec, nsec): (i64, i64)) -> libc::timespec {
    libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as _,
    }
}

fn c_path(target: &Path) -> Result<std::ffi::CString, CopyError> {
    std::ffi::CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(|_| CopyError::Invalid(format!("path with NUL byte: {}", target.display())))
}

fn mknod_like(meta: &Metadata, target: &Path) -> Result<(), CopyError> {
    make_node(target, meta.mode(), meta.rdev()).map_err(io_err(target))
}

/// mknod(2): `mode` carries the file type (S_IFCHR, S_IFBLK, S_IFIFO) and permissions.
fn make_node(target: &Path, mode: u32, rdev: u64) -> Result<(), io::Error> {
    let c = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path with NUL byte"))?;
    // SAFETY: c is a valid NUL-terminated path; mknod only reads its arguments.
    let rc = unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, rdev as libc::dev_t) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes `content` to `path` inside `root` (a heredoc file, a download): parents created as
/// needed (owned like the file, with `parent_mode` or 0755, as fsutil's copy makes them in
/// BuildKit), an existing entry replaced, with the given mode and owner, and `mtime` (seconds
/// since the epoch) when given.
pub fn make_file(
    root: &Path,
    path: &str,
    content: &mut dyn std::io::Read,
    mode: u32,
    owner: Owner,
    mtime: Option<i64>,
    parent_mode: Option<u32>,
) -> Result<(), CopyError> {
    let rel = clean_rel(path);
    let parent_chmod = parent_mode.map(Chmod::Octal);
    let mut created = CreatedDirs::default();
    if let Some((parent, _)) = rel.rsplit_once('/') {
        let attrs = Attributes {
            owner: Some(owner),
            chmod: parent_chmod.as_ref(),
            reset_owner: true,
        };
        ensure_dir_in(root, Path::new(parent), attrs, &mut created)?;
    }
    let target = resolve_in_root(root, &rel, false).map_err(io_err(root))?;
    remove_existing(&target, false)?;
    let mut file = fs::File::create(&target).map_err(io_err(&target))?;
    std::io::copy(content, &mut file).map_err(io_err(&target))?;
    if let Some(secs) = mtime {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
        file.set_modified(time).map_err(io_err(&target))?;
    }
    drop(file);
    fs::set_permissions(&target, fs::Permissions::from_mode(mode)).map_err(io_err(&target))?;
    lchown(&target, owner)?;
    created.finish()
}
