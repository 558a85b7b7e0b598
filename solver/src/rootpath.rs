//! Resolving paths inside a root directory the way the kernel would inside a chroot
//! (openat2's RESOLVE_IN_ROOT): `..` never climbs above the root, and symlinks — absolute or
//! relative — are interpreted relative to the root. Every file operation on a rootfs or the
//! build context goes through here, so a hostile symlink cannot send a write or a read outside.

use std::io;
use std::path::{Component, Path, PathBuf};

/// How many symlinks one resolution may follow before it is considered a loop (Linux: 40).
const MAX_SYMLINKS: usize = 40;

/// Cleans a slash-separated path relative to a root: drops `.` and empty parts, and `..` at the
/// top. The result has no leading slash; "" means the root itself.
pub fn clean_rel(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Resolves `path` (interpreted inside `root`) to a host path under `root`.
///
/// All intermediate symlinks are followed within the root; the last component is followed only
/// when `follow_last` is set. Missing components are fine: the rest is appended as-is (the caller
/// is about to create it).
pub fn resolve_in_root(root: &Path, path: &str, follow_last: bool) -> io::Result<PathBuf> {
    let mut resolved: Vec<String> = Vec::new();
    let mut pending: Vec<String> = components_rev(path);
    let mut followed = 0usize;
    while let Some(part) = pending.pop() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let is_last = pending.iter().all(|p| p.is_empty() || p == ".");
        let candidate = host_path(root, &resolved).join(&part);
        let meta = match std::fs::symlink_metadata(&candidate) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                resolved.push(part);
                continue;
            }
            Err(e) => return Err(e),
        };
        if meta.file_type().is_symlink() && (!is_last || follow_last) {
            followed += 1;
            if followed > MAX_SYMLINKS {
                return Err(io::Error::other(format!(
                    "too many levels of symbolic links resolving {path:?}"
                )));
            }
            let target = std::fs::read_link(&candidate)?;
            let target = target.to_string_lossy().into_owned();
            if target.starts_with('/') {
                resolved.clear();
            }
            pending.extend(components_rev(&target));
            continue;
        }
        resolved.push(part);
    }
    Ok(host_path(root, &resolved))
}

fn components_rev(path: &str) -> Vec<String> {
    path.split('/').rev().map(str::to_string).collect()
}

fn host_path(root: &Path, parts: &[String]) -> PathBuf {
    let mut p = root.to_path_buf();
    for part in parts {
        p.push(part);
    }
    p
}

/// The path of `path` relative to `root`, slash-separated, if it is inside it.
pub fn relative_to(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let mut out = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn clean_rel_never_climbs_out() {
        assert_eq!(clean_rel("../../etc/passwd"), "etc/passwd");
        assert_eq!(clean_rel("/a/./b/../c/"), "a/c");
        assert_eq!(clean_rel("."), "");
    }

    #[test]
    fn symlinks_resolve_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        symlink("/", root.join("toroot")).unwrap();
        symlink("../../../../", root.join("real/up")).unwrap();
        symlink("/real", root.join("abs")).unwrap();
        assert_eq!(
            resolve_in_root(root, "toroot/etc/x", true).unwrap(),
            root.join("etc/x")
        );
        assert_eq!(
            resolve_in_root(root, "real/up/etc", true).unwrap(),
            root.join("etc")
        );
        assert_eq!(
            resolve_in_root(root, "abs/sub", true).unwrap(),
            root.join("real/sub")
        );
        // The last component is left alone unless asked.
        assert_eq!(
            resolve_in_root(root, "abs", false).unwrap(),
            root.join("abs")
        );
    }

    #[test]
    fn symlink_loops_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        assert!(resolve_in_root(dir.path(), "a/x", true).is_err());
    }
}
