//! The on-disk "overlay format" every layer directory uses: deletions are
//! whiteout character devices 0/0, and a directory that hides everything below
//! it carries `user.overlay.opaque="y"` (the `userxattr` flavour, which both real
//! root and root-in-a-user-namespace can read and write).

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::sys;

/// Tar name prefix marking a deleted entry (`.wh.<name>`).
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Tar name marking its directory as opaque.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// Prefix of aufs bookkeeping names (`.wh..wh.plnk`, ...), never real files.
pub(crate) const AUFS_META_PREFIX: &str = ".wh..wh.";
/// The xattr overlayfs (mounted with `userxattr`) reads to treat a dir as opaque.
pub const OPAQUE_XATTR: &[u8] = b"user.overlay.opaque";
/// The privileged flavour, only honoured when reading layers made by others.
const TRUSTED_OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";

/// A whiteout is a character device with device number 0/0.
pub fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

pub fn make_whiteout(path: &Path) -> io::Result<()> {
    sys::mknod(path, libc::S_IFCHR, 0, 0)
}

pub fn is_opaque(dir: &Path) -> io::Result<bool> {
    for name in [OPAQUE_XATTR, TRUSTED_OPAQUE_XATTR] {
        // Reading trusted.* from a user namespace just reports "not set".
        if sys::get_xattr(sys::XattrsOf::Path(dir), name)?.as_deref() == Some(b"y") {
            return Ok(true);
        }
    }
    Ok(false)
}

pub fn set_opaque(dir: &Path) -> io::Result<()> {
    sys::set_xattr(dir, OPAQUE_XATTR, b"y")
}

/// Overlayfs keeps its own bookkeeping (origin, impure, redirect, metacopy,
/// opaque, ...) in these namespaces. They must never reach a layer tar, and must
/// never be taken *from* a tar either: a crafted `user.overlay.redirect` would
/// make the kernel look up other paths in the lower layers.
pub fn is_overlay_private_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}
