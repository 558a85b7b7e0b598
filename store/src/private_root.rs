//! Keeping the store private to the user who owns it.
//!
//! A build run as root can leave setuid-root binaries and device nodes in unpacked layers
//! (`snapshots/`), step scratch (`work/`) and cache mounts; a rootless build leaves the
//! invoking user's setuid files there. Whoever can walk the store's directories can run or
//! open them, so the store root is the one gate: it is created `0700` and any looser root (a
//! store from before this rule, or one chmod-ed since) is tightened whenever it is opened.
//! Everything builder keeps for a build lives under that root (`work/` holds the bundles of
//! `builder run` and `RUN` steps, `cache-mounts/` the cache mounts, `tmp/` secrets and blobs
//! in flight), so nothing below it needs its own check.
//!
//! A private root is only private if no other user can swap it or one of its parents for a
//! directory they control, so [`check_location`] refuses a store whose parent chain another
//! user could change.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::StoreError;

/// What [`make_private`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootMode {
    /// The root was already private (or was just created private).
    Private,
    /// The root was reachable by others with this mode and is now `0700`.
    Tightened { from: u32 },
}

/// Creates `root` with mode `0700` if missing (parents with the usual umask), and sets an
/// existing root with group or other permission bits to `0700`.
pub fn make_private(root: &Path) -> Result<RootMode, StoreError> {
    if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(StoreError::io("create directory", parent))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(root) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(StoreError::io("create directory", root)(e)),
    }
    // stat, not lstat: a root given as a symlink is the directory it names.
    let meta = fs::metadata(root).map_err(StoreError::io("stat", root))?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(RootMode::Private);
    }
    fs::set_permissions(root, fs::Permissions::from_mode(0o700))
        .map_err(StoreError::io("restrict permissions of", root))?;
    Ok(RootMode::Tightened { from: mode })
}

/// Refuses a store root another local user could replace: one whose existing parents (or the
/// root itself, or a symlink on the way) are owned by someone other than root and the caller,
/// or whose parents are writable by group or others without the sticky bit. Such a user could
/// rename the directory away and put their own in its place, and builder would then unpack
/// layers (setuid files included) where they can reach them, or read cache they wrote.
///
/// Both the path as given and its resolved form are checked. Call it with the caller's real
/// ids visible, i.e. before entering a user namespace (inside one, host root's files show up
/// as owned by the overflow uid).
pub fn check_location(root: &Path) -> Result<(), StoreError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let root = if root.is_absolute() {
        root.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(StoreError::io("read the current directory for", root))?
            .join(root)
    };
    let mut existing = PathBuf::new();
    let mut prefix = PathBuf::new();
    for component in root.components() {
        if component == Component::ParentDir {
            // Lexical `..` would name a different directory than the kernel resolves; the
            // canonical walk below checks what is really there.
            prefix.pop();
        } else {
            prefix.push(component);
        }
        let meta = match fs::symlink_metadata(&prefix) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(StoreError::io("stat", &prefix)(e)),
        };
        if meta.file_type().is_symlink() {
            check_owner(&prefix, &meta, me, "is a symlink owned by")?;
            prefix = fs::canonicalize(&prefix).map_err(StoreError::io("resolve", &prefix))?;
            let target = fs::metadata(&prefix).map_err(StoreError::io("stat", &prefix))?;
            check_dir(&root, &prefix, &target, me)?;
        } else {
            check_dir(&root, &prefix, &meta, me)?;
        }
        existing.clone_from(&prefix);
    }
    // The resolved chain of what exists (a symlink's target's parents included).
    if !existing.as_os_str().is_empty() {
        let resolved = fs::canonicalize(&existing).map_err(StoreError::io("resolve", &existing))?;
        for dir in resolved.ancestors() {
            let meta = fs::metadata(dir).map_err(StoreError::io("stat", dir))?;
            check_dir(&root, dir, &meta, me)?;
        }
    }
    Ok(())
}

fn check_dir(root: &Path, dir: &Path, meta: &fs::Metadata, me: u32) -> Result<(), StoreError> {
    check_owner(dir, meta, me, "is owned by")?;
    // The root's own mode is ours to fix (make_private does); its parents' is not.
    let is_root = fs::canonicalize(root).is_ok_and(|r| r == dir) || dir == root;
    let mode = meta.mode();
    if !is_root && mode & 0o022 != 0 && mode & libc::S_ISVTX == 0 {
        return Err(StoreError::UnsafeLocation {
            path: dir.to_path_buf(),
            reason: format!(
                "is writable by {} (mode {:04o}, no sticky bit)",
                if mode & 0o002 != 0 {
                    "every user"
                } else {
                    "its group"
                },
                mode & 0o7777
            ),
        });
    }
    Ok(())
}

fn check_owner(path: &Path, meta: &fs::Metadata, me: u32, what: &str) -> Result<(), StoreError> {
    let owner = meta.uid();
    if owner == 0 || owner == me {
        return Ok(());
    }
    Err(StoreError::UnsafeLocation {
        path: path.to_path_buf(),
        reason: format!("{what} uid {owner}, another user"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_new_root_is_private_and_an_open_one_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a/b/root");
        assert_eq!(make_private(&root).unwrap(), RootMode::Private);
        assert_eq!(mode(&root), 0o700);
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            make_private(&root).unwrap(),
            RootMode::Tightened { from: 0o755 }
        );
        assert_eq!(mode(&root), 0o700);
    }

    #[test]
    fn a_world_writable_parent_without_sticky_bit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let root = open.join("store");
        let err = check_location(&root).unwrap_err().to_string();
        assert!(err.contains(&*open.to_string_lossy()), "{err}");
        assert!(err.contains("writable by every user"), "{err}");
        // The same through a symlink to it.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&open, &link).unwrap();
        assert!(check_location(&link.join("store")).is_err());
        // With the sticky bit (as /tmp), other users cannot rename our entries.
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
        check_location(&root).unwrap();
        check_location(&link.join("store")).unwrap();
    }
}
