//! Copying and comparing file metadata (owner, mode, xattrs, times) between
//! paths, never following symlinks. Order matters when applying: chown clears
//! setuid bits and `security.capability`, so owner goes first, then mode, then
//! xattrs, and times last (every other change bumps them).

use std::fs::{self, File, Metadata, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::overlay_format::is_overlay_private_xattr;
use crate::sys::{self, XattrsOf};

/// Xattrs of `p` that belong to the file (not overlayfs bookkeeping), sorted by name.
pub(crate) fn file_xattrs(p: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    xattrs_of(XattrsOf::Path(p))
}

/// [`file_xattrs`] of an open file, read through its descriptor.
pub(crate) fn open_file_xattrs(f: &File) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    xattrs_of(XattrsOf::File(f))
}

fn xattrs_of(of: XattrsOf<'_>) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    for name in sys::list_xattrs(of)? {
        if is_overlay_private_xattr(&name) {
            continue;
        }
        if let Some(value) = sys::get_xattr(of, &name)? {
            out.push((name, value));
        }
    }
    Ok(out)
}

pub(crate) fn set_owner(p: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
}

/// Sets permission bits; a no-op for symlinks, whose mode Linux ignores.
pub(crate) fn set_mode(p: &Path, is_symlink: bool, mode: u32) -> io::Result<()> {
    if is_symlink {
        return Ok(());
    }
    fs::set_permissions(p, Permissions::from_mode(mode & 0o7777))
}

/// Makes `dst` carry the owner, mode, file xattrs and mtime of `src_meta`/`src`.
pub(crate) fn copy_metadata(src: &Path, src_meta: &Metadata, dst: &Path) -> io::Result<()> {
    let is_symlink = src_meta.file_type().is_symlink();
    set_owner(dst, src_meta.uid(), src_meta.gid())?;
    set_mode(dst, is_symlink, src_meta.mode())?;
    for (name, value) in file_xattrs(src)? {
        sys::set_xattr(dst, &name, &value)?;
    }
    sys::set_times(dst, src_meta.mtime(), src_meta.mtime_nsec())
}

/// Copies one non-directory entry (regular file, symlink, device, fifo) with
/// its metadata. Sockets are skipped: they cannot be meaningfully copied and
/// image layers never carry them. Returns whether something was created.
pub(crate) fn copy_node(src: &Path, meta: &Metadata, dst: &Path) -> io::Result<bool> {
    let ft = meta.file_type();
    if ft.is_file() {
        fs::copy(src, dst)?;
    } else if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
    } else if std::os::unix::fs::FileTypeExt::is_socket(&ft) {
        return Ok(false);
    } else {
        // char/block device or fifo: same type bits and device number.
        let rdev = meta.rdev();
        sys::mknod(
            dst,
            meta.mode() & libc::S_IFMT,
            libc::major(rdev),
            libc::minor(rdev),
        )?;
    }
    copy_metadata(src, meta, dst)?;
    Ok(true)
}

/// Removes whatever is at `p` (file, symlink, or whole directory tree); absent is fine.
pub(crate) fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
