//! Resolving paths inside a root directory the way the kernel would inside a chroot
//! (openat2's RESOLVE_IN_ROOT): `..` never climbs above the root, and symlinks (absolute or
//! relative) are interpreted relative to the root. Every file operation on a rootfs, a layer
//! being exported or the build context goes through here, so a hostile symlink cannot send a
//! write or a read outside.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Linux's own limit on symlink hops (MAXSYMLINKS is 40).
const MAX_SYMLINKS: usize = 40;

/// Resolves `path` (interpreted inside `root`) to a host path under `root`. Every existing
/// component but the last is followed if it is a symlink; the last only when `follow_last` is
/// set, since operations on the link itself (replacing it, `lchown`) must not be redirected to
/// its target. Missing components are appended literally. `path` may be any bytes (a context
/// file's name need not be UTF-8).
pub fn resolve_in_root(
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

/// Resolves the directory `rel` inside `root` as [`resolve_in_root`] does (every symlink
/// followed), then creates what is missing with mode 0755, as a layer's entries need their
/// parents. A component that exists but is not a directory is an error.
pub fn resolve_dir_in_root(root: &Path, rel: impl AsRef<Path>) -> io::Result<PathBuf> {
    let dir = resolve_in_root(root, rel, true)?;
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", dir.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&dir)?;
        }
        Err(e) => return Err(e),
    }
    Ok(dir)
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
            resolve_in_root(root, "/link/hosts", true).unwrap(),
            root.join("etc/passwd")
        );
    }

    #[test]
    fn dotdot_cannot_climb_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        symlink("../../../../tmp", root.join("up")).unwrap();
        assert_eq!(
            resolve_in_root(root, "/../../x", true).unwrap(),
            root.join("x")
        );
        assert_eq!(
            resolve_in_root(root, "/up/y", true).unwrap(),
            root.join("tmp/y")
        );
    }

    #[test]
    fn relative_symlink_and_missing_tail() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        assert_eq!(
            resolve_in_root(root, "/bin/new/dir", true).unwrap(),
            root.join("usr/bin/new/dir")
        );
    }

    #[test]
    fn symlink_loop_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        symlink("/b", root.join("a")).unwrap();
        symlink("/a", root.join("b")).unwrap();
        let err = resolve_in_root(root, "/a/x", true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn container_path_strips_root() {
        assert_eq!(
            container_path(Path::new("/r"), Path::new("/r/etc/hosts")),
            "/etc/hosts"
        );
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

    #[test]
    fn created_directories_stay_inside_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../../outside", root.join("rel")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        assert_eq!(
            resolve_dir_in_root(&root, "abs/x").unwrap(),
            root.join("etc/x")
        );
        assert_eq!(
            resolve_dir_in_root(&root, "rel").unwrap(),
            root.join("outside")
        );
        assert_eq!(
            resolve_dir_in_root(&root, "lib/x").unwrap(),
            root.join("usr/lib/x")
        );
        assert!(root.join("usr/lib/x").is_dir());
        assert!(!tmp.path().join("outside").exists());
        symlink("loop", root.join("loop")).unwrap();
        assert!(resolve_dir_in_root(&root, "loop/x").is_err());
    }
}
