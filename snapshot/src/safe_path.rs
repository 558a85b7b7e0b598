//! Confining archive paths to the extraction root, on disk.
//!
//! Entry names are cleaned lexically (`/abs` → `abs`, `../x` → `x`, as if the
//! archive root were `/`), and every *parent* directory is then resolved by the
//! rule of [`crate::stack`]: in the merged filesystem of the layer being written
//! (`dest`) over the unpacked layers below it, following symlinks the way
//! `openat2(RESOLVE_IN_ROOT)` would, so an absolute target or a `..` that climbs
//! above the root lands back at the root. The final component is never
//! followed, so callers replace or create it in place, always inside `dest`.
//!
//! Why the layers below matter: a layer is unpacked into its own directory and
//! the RUN view is an overlay of those directories, but an entry `esc/pwned`
//! over a lower symlink `esc -> /tmp/x` belongs at `tmp/x/pwned` (see
//! [`crate::stack`]). An overlay of a layer unpacked on its own would show a
//! directory `esc` instead, so such a layer's unpack has to look below, and
//! [`LayerView::depends_on_lowers`] tells the caller the result is only valid
//! on that stack.

use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::meta::{copy_metadata, remove_any};
use crate::overlay_format::{is_opaque, is_whiteout, set_opaque};
use crate::stack::{Node, StackView, resolve_parent};

pub(crate) use crate::stack::clean_components;

/// A directory created in `dest` and the mtime (seconds, nanoseconds) it must end up with.
pub(crate) type DirTime = (PathBuf, (i64, i64));

/// The merged view of `dest` (the layer being written, on top) over `lowers` (top-first),
/// with overlayfs's rules: whiteouts hide, a non-directory ends the stack below it, an opaque
/// directory hides the same directory in lower layers.
pub(crate) struct LayerView<'a> {
    pub dest: &'a Path,
    pub lowers: &'a [PathBuf],
    /// Set once an answer needed more than `dest`: the unpack then depends on the stack.
    pub depends_on_lowers: bool,
}

impl StackView for LayerView<'_> {
    fn node(&mut self, path: &[OsString]) -> io::Result<Node> {
        // Fast path: what this layer itself holds there wins (the usual case, where a layer
        // carries its parent directories). Resolved prefixes are directories, so lstat here
        // follows no symlink.
        match fs::symlink_metadata(join(self.dest, path)) {
            Ok(m) => return node_of(&join(self.dest, path), &m),
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(e),
        }
        self.depends_on_lowers = true;
        let mut stack = Vec::with_capacity(self.lowers.len() + 1);
        stack.push(self.dest.to_path_buf());
        stack.extend(self.lowers.iter().cloned());
        Ok(merged_lookup(&stack, path)?.0)
    }
}

impl LayerView<'_> {
    /// Resolves the parent directory `components` and, when `create`, makes every directory
    /// of the resolved path exist in `dest`: a directory the lowers show is created with
    /// their metadata (as containerd's `mkparent` copies it from the parent layers), so the
    /// overlay still shows the lower directory's owner and mode; one nobody has is created
    /// 0755. Returns the directory's path in `dest` and the directories created, whose times
    /// the caller sets last.
    pub fn resolve_dir(
        &mut self,
        components: &[OsString],
        create: bool,
    ) -> io::Result<(PathBuf, Vec<DirTime>)> {
        let resolved = resolve_parent(self, components)?;
        let mut created = Vec::new();
        let mut path = self.dest.to_path_buf();
        for (i, c) in resolved.iter().enumerate() {
            path.push(c);
            let existing = match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => continue,
                Ok(m) => Some(m),
                Err(e) if not_found(&e) => None,
                Err(e) => return Err(e),
            };
            if !create {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            match existing {
                // Deleted earlier in this layer: the new directory must keep hiding the
                // lower one's contents.
                Some(m) if is_whiteout(&m) => {
                    remove_any(&path)?;
                    fs::create_dir(&path)?;
                    set_opaque(&path)?;
                }
                Some(_) => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
                None => {
                    fs::create_dir(&path)?;
                    if let (Node::Dir, Some(lower)) = merged_lookup(self.lowers, &resolved[..=i])? {
                        let meta = fs::symlink_metadata(&lower)?;
                        copy_metadata(&lower, &meta, &path)?;
                        let times = (meta.mtime(), meta.mtime_nsec());
                        created.push((path.clone(), times));
                    }
                }
            }
        }
        Ok((path, created))
    }
}

/// What overlayfs would show at `path` for the layer directories `stack` (top-first), and for
/// a directory, the topmost layer's copy of it.
fn merged_lookup(stack: &[PathBuf], path: &[OsString]) -> io::Result<(Node, Option<PathBuf>)> {
    let mut visible: Vec<PathBuf> = stack.to_vec();
    for comp in path {
        let mut next: Vec<PathBuf> = Vec::new();
        for dir in &visible {
            let p = dir.join(comp);
            let m = match fs::symlink_metadata(&p) {
                Ok(m) => m,
                Err(e) if not_found(&e) => continue,
                Err(e) => return Err(e),
            };
            if !m.is_dir() {
                if next.is_empty() {
                    // The topmost entry decides; below a directory, a non-directory just
                    // ends the stack.
                    return Ok((node_of(&p, &m)?, None));
                }
                break;
            }
            let opaque = is_opaque(&p)?;
            next.push(p);
            if opaque {
                break;
            }
        }
        if next.is_empty() {
            return Ok((Node::Missing, None));
        }
        visible = next;
    }
    Ok((Node::Dir, visible.into_iter().next()))
}

fn node_of(path: &Path, m: &Metadata) -> io::Result<Node> {
    Ok(if is_whiteout(m) {
        Node::Missing
    } else if m.is_dir() {
        Node::Dir
    } else if m.file_type().is_symlink() {
        Node::Symlink(fs::read_link(path)?.as_os_str().as_bytes().to_vec())
    } else {
        Node::Other
    })
}

/// A missing name, or a path through a non-directory (a whiteout below a deleted directory).
fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

fn join(root: &Path, parts: &[OsString]) -> PathBuf {
    let mut p = root.to_path_buf();
    p.extend(parts);
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_the_root() -> io::Result<()> {
        let t = tempfile::tempdir()?;
        let root = t.path();
        fs::create_dir_all(root.join("real/sub"))?;
        symlink("/", root.join("toroot"))?;
        symlink("../../../real", root.join("real/sub/up"))?;
        symlink("loop", root.join("loop"))?;
        let comps = |s: &str| clean_components(s.as_bytes());
        let mut view = LayerView {
            dest: root,
            lowers: &[],
            depends_on_lowers: false,
        };
        assert_eq!(
            view.resolve_dir(&comps("toroot/real"), false)?.0,
            root.join("real")
        );
        assert_eq!(
            view.resolve_dir(&comps("real/sub/up/sub"), false)?.0,
            root.join("real/sub")
        );
        assert!(!view.depends_on_lowers);
        assert_eq!(
            view.resolve_dir(&comps("toroot/etc"), true)?.0,
            root.join("etc")
        );
        assert!(view.depends_on_lowers, "etc was looked up below");
        assert_eq!(
            view.resolve_dir(&comps("loop"), false)
                .map_err(|e| e.raw_os_error()),
            Err(Some(libc::ELOOP))
        );
        Ok(())
    }

    #[test]
    fn a_lower_symlink_is_followed_and_lower_dirs_lend_their_metadata() -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir()?;
        let (lower, dest) = (t.path().join("lower"), t.path().join("dest"));
        fs::create_dir_all(lower.join("tmp/x"))?;
        fs::set_permissions(lower.join("tmp"), fs::Permissions::from_mode(0o1777))?;
        symlink("/tmp/x", lower.join("esc"))?;
        fs::create_dir(&dest)?;
        let lowers = [lower];
        let mut view = LayerView {
            dest: &dest,
            lowers: &lowers,
            depends_on_lowers: false,
        };
        let (dir, created) = view.resolve_dir(&clean_components(b"esc"), true)?;
        assert_eq!(dir, dest.join("tmp/x"));
        assert_eq!(created.len(), 2);
        assert!(view.depends_on_lowers);
        let mode = fs::symlink_metadata(dest.join("tmp"))?.permissions().mode();
        assert_eq!(mode & 0o7777, 0o1777);
        assert!(fs::symlink_metadata(dest.join("esc")).is_err());
        Ok(())
    }
}
