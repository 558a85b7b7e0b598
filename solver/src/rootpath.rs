//! Resolving paths inside a root directory the way the kernel would inside a chroot
//! (openat2's RESOLVE_IN_ROOT): `..` never climbs above the root, and symlinks — absolute or
//! relative — are interpreted relative to the root. Every file operation on a rootfs or the
//! build context goes through here, so a hostile symlink cannot send a write or a read outside.

use std::path::{Component, Path, PathBuf};

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

/// [`clean_rel`] for a path that came from the file system or an archive rather than the
/// Dockerfile: its bytes are kept as they are (they need not be UTF-8).
pub fn clean_rel_path(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Resolves `path` inside `root` (intermediate symlinks always followed, the last one only
/// with `follow_last`). One implementation serves the sandbox's mount targets and our COPY/ADD
/// paths, so there is a single place where "never leave the root" is decided.
pub use builder_sandbox::resolve_in_root_with as resolve_in_root;

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
    fn clean_rel_path_keeps_bytes() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let raw = Path::new(OsStr::from_bytes(b"../a\xff/./b\n\t/../-c\xfe/"));
        assert_eq!(clean_rel_path(raw).as_os_str().as_bytes(), b"a\xff/-c\xfe");
        assert_eq!(
            clean_rel_path(Path::new("/a/./b/../c/")),
            Path::new(&clean_rel("/a/./b/../c/"))
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
}
