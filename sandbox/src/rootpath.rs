//! Resolving in-container paths to host paths without letting symlinks in the rootfs escape
//! it: an absolute symlink target means "relative to the rootfs", and ".." stops at the rootfs.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Linux's own limit on symlink hops (MAXSYMLINKS is 40).
const MAX_SYMLINKS: usize = 40;

/// Resolve `path` (interpreted inside `root`) to a host path under `root`. Every existing
/// component is followed if it is a symlink; missing components are appended literally.
pub fn resolve_in_root(root: &Path, path: &str) -> io::Result<PathBuf> {
    resolve_in_root_with(root, path, true)
}

/// Like [`resolve_in_root`], but a symlink in the *last* component is only followed when
/// `follow_last` is set: operations on the link itself (replacing it, `lchown`) must not be
/// redirected to its target.
/// `path` may be any bytes (a context file's name need not be UTF-8).
pub fn resolve_in_root_with(
    root: &Path,
    path: impl AsRef<Path>,
    follow_last: bool,
) -> io::Result<PathBuf> {
    let mut pending: VecDeque<OsString> = components(path.as_ref()).collect();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = join(root, &resolved).join(&part);
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() && (follow_last || !pending.is_empty()) => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = std::fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for (i, c) in components(&target).enumerate() {
                    pending.insert(i, c);
                }
            }
            Ok(_) => resolved.push(part),
            Err(e) if e.kind() == io::ErrorKind::NotFound => resolved.push(part),
            Err(e) => return Err(e),
        }
    }
    Ok(join(root, &resolved))
}

/// Normal components and "..", dropping "/" and ".".
fn components(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

fn join(root: &Path, parts: &[OsString]) -> PathBuf {
    let mut p = root.to_path_buf();
    for part in parts {
        p.push(part);
    }
    p
}

/// The in-container form of a host path under `root` ("/" + relative part).
pub fn container_path(root: &Path, host: &Path) -> String {
    match host.strip_prefix(root) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => host.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_symlink_stays_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("etc")).unwrap();
        symlink("/etc", root.join("link")).unwrap();
        symlink("/etc/passwd", root.join("etc/hosts")).unwrap();
        assert_eq!(
            resolve_in_root(root, "/link/hosts").unwrap(),
            root.join("etc/passwd")
        );
    }

    #[test]
    fn dotdot_cannot_climb_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        symlink("../../../../tmp", root.join("up")).unwrap();
        assert_eq!(resolve_in_root(root, "/../../x").unwrap(), root.join("x"));
        assert_eq!(resolve_in_root(root, "/up/y").unwrap(), root.join("tmp/y"));
    }

    #[test]
    fn relative_symlink_and_missing_tail() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        assert_eq!(
            resolve_in_root(root, "/bin/new/dir").unwrap(),
            root.join("usr/bin/new/dir")
        );
    }

    #[test]
    fn symlink_loop_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        symlink("/b", root.join("a")).unwrap();
        symlink("/a", root.join("b")).unwrap();
        let err = resolve_in_root(root, "/a/x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn container_path_strips_root() {
        assert_eq!(
            container_path(Path::new("/r"), Path::new("/r/etc/hosts")),
            "/etc/hosts"
        );
    }
}
