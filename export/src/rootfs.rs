//! `type=tar` and `type=local`: an image's merged filesystem as a tar stream
//! or written into a directory.

use std::fs::{self, File, Permissions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use builder_store::{Digest, Store};
use tar::EntryType;

use crate::ExportError;
use crate::flatten::{RootfsSink, flatten, hard_link_target, image_layers};
use crate::pax::{XattrResult, carried_records, set_xattr, xattrs};
use builder_rootpath::resolve_dir_in_root;

/// What a directory export did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RootfsSummary {
    /// Entries written.
    pub entries: u64,
    /// Device nodes not created: an unprivileged process cannot mknod them
    /// (BuildKit's rootless local exporter skips them too).
    pub skipped_devices: u64,
    /// Extended attributes the file system or our privileges refused.
    pub skipped_xattrs: u64,
}

/// Streams the merged filesystem of the image with manifest `manifest` as
/// one tar; entries keep their layer headers (mode, owner, mtime).
pub fn write_rootfs_tar<W: Write>(
    store: &Store,
    manifest: &Digest,
    out: W,
) -> Result<W, ExportError> {
    let part = TarPart {
        dir: None,
        manifest: *manifest,
    };
    write_rootfs_tar_parts(store, &[part], out, &mut |_, _| Ok(Vec::new()))
}

/// One image's tree in a [`write_rootfs_tar_parts`] stream: under `dir` (BuildKit's
/// `linux_amd64/` of a multi-platform tar) or at the top.
pub struct TarPart {
    pub dir: Option<PathBuf>,
    pub manifest: Digest,
}

/// A regular file written into a tar part, by its path in the part, and its content digest:
/// what an attestation written beside the tree names as its subjects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub path: PathBuf,
    pub digest: Digest,
}

/// Files added to a part after its tree (`(name, bytes)`, mode 0600): given the part's index
/// and the regular files written in it.
pub type ExtraFiles<'a> =
    dyn FnMut(usize, &[WrittenFile]) -> Result<Vec<(PathBuf, Vec<u8>)>, ExportError> + 'a;

/// Streams several images' merged filesystems as one tar, each under its part's directory,
/// then the files `extra` gives for that part (BuildKit's tar exporter writes attestation
/// statements there).
pub fn write_rootfs_tar_parts<W: Write>(
    store: &Store,
    parts: &[TarPart],
    out: W,
    extra: &mut ExtraFiles<'_>,
) -> Result<W, ExportError> {
    let mut sink = TarRootfs {
        builder: tar::Builder::new(out),
        prefix: None,
        written: Vec::new(),
    };
    for (i, part) in parts.iter().enumerate() {
        let layers = image_layers(store, &part.manifest)?;
        sink.prefix = part.dir.clone();
        sink.written.clear();
        if let Some(dir) = &part.dir {
            sink.top_dir(dir)?;
        }
        flatten(store.blobs(), &layers, &mut sink)?;
        for (name, bytes) in extra(i, &sink.written)? {
            let path = sink.prefixed(&name);
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(EntryType::Regular);
            header.set_mode(0o600);
            header.set_uid(0);
            header.set_gid(0);
            header.set_size(bytes.len() as u64);
            header.set_mtime(0);
            sink.builder
                .append_data(&mut header, &path, bytes.as_slice())
                .map_err(ExportError::io("write tar entry", &path))?;
        }
    }
    sink.builder
        .into_inner()
        .map_err(ExportError::io("finish tar", "<output>"))
}

/// Writes the merged filesystem into `dest` (created if missing; existing
/// files at the same paths are replaced). Nothing is ever written outside
/// `dest`: symlinks inside it are resolved as if `dest` were `/`.
pub fn write_rootfs_dir(
    store: &Store,
    manifest: &Digest,
    dest: &Path,
) -> Result<RootfsSummary, ExportError> {
    let layers = image_layers(store, manifest)?;
    fs::create_dir_all(dest).map_err(ExportError::io("create directory", dest))?;
    let root = fs::canonicalize(dest).map_err(ExportError::io("resolve", dest))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let as_root = unsafe { libc::geteuid() } == 0;
    let mut sink = DirRootfs {
        root,
        as_root,
        dirs: Vec::new(),
        summary: RootfsSummary::default(),
    };
    flatten(store.blobs(), &layers, &mut sink)?;
    sink.finish_dirs()?;
    Ok(sink.summary)
}

struct TarRootfs<W: Write> {
    builder: tar::Builder<W>,
    /// The part's directory every entry goes under.
    prefix: Option<PathBuf>,
    /// The part's regular files (hard links too) and their digests.
    written: Vec<WrittenFile>,
}

impl<W: Write> TarRootfs<W> {
    fn prefixed(&self, path: &Path) -> PathBuf {
        match &self.prefix {
            Some(dir) => dir.join(path),
            None => path.to_path_buf(),
        }
    }

    fn top_dir(&mut self, dir: &Path) -> Result<(), ExportError> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(EntryType::Directory);
        header.set_mode(0o755);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(0);
        self.builder
            .append_data(
                &mut header,
                tar_name(dir, EntryType::Directory),
                io::empty(),
            )
            .map_err(ExportError::io("write tar entry", dir))
    }
}

impl<W: Write> RootfsSink for TarRootfs<W> {
    fn entry(
        &mut self,
        layer: &Digest,
        path: &Path,
        entry: &mut tar::Entry<'_, Box<dyn Read>>,
        link_to: Option<&Path>,
    ) -> Result<(), ExportError> {
        let mut header = entry.header().clone();
        let kind = header.entry_type();
        let write_err = ExportError::io("write tar entry", path);
        let records = carried_records(entry).map_err(|source| ExportError::LayerTar {
            layer: *layer,
            source,
        })?;
        self.builder
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(ExportError::io("write tar entry", path))?;
        let out_path = self.prefixed(path);
        if kind.is_hard_link() || kind.is_symlink() {
            // Hard link targets name another entry: cleaned like entry paths.
            let target = match link_to {
                Some(p) => p.to_path_buf(),
                None if kind.is_hard_link() => hard_link_target(layer, entry)?,
                None => symlink_target(layer, path, entry)?,
            };
            if kind.is_hard_link() {
                // A hard link is the same file under another name: a subject of its own.
                if let Some(file) = self.written.iter().find(|f| f.path == target) {
                    let digest = file.digest;
                    self.written.push(WrittenFile {
                        path: path.to_path_buf(),
                        digest,
                    });
                }
                let target = self.prefixed(&target);
                return self
                    .builder
                    .append_link(&mut header, &out_path, &target)
                    .map_err(write_err);
            }
            return self
                .builder
                .append_link(&mut header, &out_path, &target)
                .map_err(write_err);
        }
        // The size may have come from a PAX record that is not carried over.
        header.set_size(entry.size());
        if !kind.is_file() {
            return self
                .builder
                .append_data(&mut header, tar_name(&out_path, kind), entry)
                .map_err(write_err);
        }
        let mut hashing = builder_store::HashingReader::new(entry);
        self.builder
            .append_data(&mut header, &out_path, &mut hashing)
            .map_err(write_err)?;
        self.written.push(WrittenFile {
            path: path.to_path_buf(),
            digest: hashing.finish().0,
        });
        Ok(())
    }

    fn implicit_dir(&mut self, path: &Path) -> Result<(), ExportError> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(EntryType::Directory);
        header.set_mode(0o755);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(0);
        let out_path = self.prefixed(path);
        self.builder
            .append_data(
                &mut header,
                tar_name(&out_path, EntryType::Directory),
                io::empty(),
            )
            .map_err(ExportError::io("write tar entry", path))
    }
}

/// The name an entry gets in the tar: a directory's ends in `/`, as BuildKit's tar exporter
/// (Go's archive/tar) writes it and as `tar` itself does; tools matching names (`out/`)
/// see the same archive from both.
fn tar_name(path: &Path, kind: EntryType) -> PathBuf {
    if kind.is_dir() {
        path.join("")
    } else {
        path.to_path_buf()
    }
}

struct DirRootfs {
    root: PathBuf,
    as_root: bool,
    /// Directory modes and mtimes, applied last: a read-only directory must
    /// stay writable until its children exist, and adding children bumps mtime.
    dirs: Vec<(PathBuf, u32, u64)>,
    summary: RootfsSummary,
}

impl RootfsSink for DirRootfs {
    fn entry(
        &mut self,
        layer: &Digest,
        path: &Path,
        entry: &mut tar::Entry<'_, Box<dyn Read>>,
        link_to: Option<&Path>,
    ) -> Result<(), ExportError> {
        let parent = resolve_dir_in_root(&self.root, path.parent().unwrap_or(Path::new("")))
            .map_err(ExportError::io("resolve parent directory of", path))?;
        let Some(name) = path.file_name() else {
            return Ok(());
        };
        let target = parent.join(name);
        let records = carried_records(entry).map_err(|source| ExportError::LayerTar {
            layer: *layer,
            source,
        })?;
        let header = entry.header();
        let mode = header.mode().map_err(|source| ExportError::LayerTar {
            layer: *layer,
            source,
        })? & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        let owner = (header.uid().unwrap_or(0), header.gid().unwrap_or(0));
        let io_err = |op| ExportError::io(op, target.clone());
        match header.entry_type() {
            EntryType::Directory => {
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove_existing(&target).map_err(io_err("replace"))?;
                        fs::create_dir(&target).map_err(io_err("create directory"))?;
                    }
                    Err(_) => fs::create_dir(&target).map_err(io_err("create directory"))?,
                }
                self.dirs.push((target.clone(), mode, mtime));
            }
            EntryType::Regular | EntryType::Continuous => {
                remove_existing(&target).map_err(io_err("replace"))?;
                let mut file = File::create_new(&target).map_err(io_err("create"))?;
                io::copy(entry, &mut file).map_err(io_err("write"))?;
                file.set_permissions(Permissions::from_mode(mode))
                    .map_err(io_err("chmod"))?;
                file.set_modified(UNIX_EPOCH + Duration::from_secs(mtime))
                    .map_err(io_err("set mtime of"))?;
            }
            EntryType::Symlink => {
                let link = symlink_target(layer, path, entry)?;
                remove_existing(&target).map_err(io_err("replace"))?;
                symlink(&link, &target).map_err(io_err("create symlink"))?;
            }
            EntryType::Link => {
                let link = match link_to {
                    Some(p) => p.to_path_buf(),
                    None => hard_link_target(layer, entry)?,
                };
                let link_parent =
                    resolve_dir_in_root(&self.root, link.parent().unwrap_or(Path::new("")))
                        .map_err(ExportError::io("resolve hard link target", &link))?;
                let source = link_parent.join(link.file_name().unwrap_or_default());
                remove_existing(&target).map_err(io_err("replace"))?;
                fs::hard_link(&source, &target).map_err(io_err("create hard link"))?;
            }
            EntryType::Fifo => {
                remove_existing(&target).map_err(io_err("replace"))?;
                mkfifo(&target, mode).map_err(io_err("mkfifo"))?;
            }
            EntryType::Char | EntryType::Block => {
                self.summary.skipped_devices += 1;
                return Ok(());
            }
            other => {
                return Err(ExportError::UnsafeEntry {
                    layer: *layer,
                    path: path.display().to_string(),
                    reason: unsupported_kind(other),
                });
            }
        }
        let kind = entry.header().entry_type();
        // A hard link shares the inode its source already set up; chown-ing
        // it again would only clear that inode's file capabilities.
        if !kind.is_hard_link() {
            if self.as_root {
                lchown(&target, Some(owner.0 as u32), Some(owner.1 as u32))
                    .map_err(io_err("chown"))?;
                // chown clears setuid/setgid even for root: restore the mode.
                if matches!(
                    kind,
                    EntryType::Regular | EntryType::Continuous | EntryType::Fifo
                ) {
                    fs::set_permissions(&target, Permissions::from_mode(mode))
                        .map_err(io_err("chmod"))?;
                }
            }
            // After chown, which would clear security.capability.
            for (name, value) in xattrs(&records) {
                match set_xattr(&target, name, value).map_err(io_err("set xattr on"))? {
                    XattrResult::Set => {}
                    XattrResult::NotPermitted => self.summary.skipped_xattrs += 1,
                }
            }
        }
        self.summary.entries += 1;
        Ok(())
    }

    fn implicit_dir(&mut self, path: &Path) -> Result<(), ExportError> {
        // Creates what is missing (0755), and leaves an existing directory as it is.
        resolve_dir_in_root(&self.root, path).map_err(ExportError::io("create directory", path))?;
        Ok(())
    }
}

impl DirRootfs {
    fn finish_dirs(&mut self) -> Result<(), ExportError> {
        // Deepest first, so fixing a parent's mtime is not undone by its children.
        self.dirs
            .sort_by_key(|(p, _, _)| std::cmp::Reverse(p.components().count()));
        for (dir, mode, mtime) in &self.dirs {
            let err = |op| ExportError::io(op, dir.clone());
            fs::set_permissions(dir, Permissions::from_mode(*mode)).map_err(err("chmod"))?;
            let handle = File::open(dir).map_err(err("open"))?;
            handle
                .set_modified(UNIX_EPOCH + Duration::from_secs(*mtime))
                .map_err(err("set mtime of"))?;
        }
        Ok(())
    }
}

fn symlink_target(
    layer: &Digest,
    path: &Path,
    entry: &tar::Entry<'_, Box<dyn Read>>,
) -> Result<PathBuf, ExportError> {
    match entry.link_name() {
        Ok(Some(target)) => Ok(target.into_owned()),
        Ok(None) => Err(ExportError::UnsafeEntry {
            layer: *layer,
            path: path.display().to_string(),
            reason: "is a link without a target",
        }),
        Err(source) => Err(ExportError::LayerTar {
            layer: *layer,
            source,
        }),
    }
}

fn unsupported_kind(kind: EntryType) -> &'static str {
    match kind {
        EntryType::GNUSparse => "is a sparse file, which is not supported",
        _ => "has an unsupported tar entry type",
    }
}

/// Clears the way for a new non-merging entry. A directory is replaced
/// wholesale: an upper non-directory hides everything below it.
fn remove_existing(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn mkfifo(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    if unsafe { libc::mkfifo(c.as_ptr(), mode as libc::mode_t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
