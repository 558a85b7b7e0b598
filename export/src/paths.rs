//! Path safety for layer entries: lexical cleaning, and symlink resolution
//! that can never leave the destination root.

use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};

/// Linux's own limit on symlinks followed in one lookup.
const MAX_SYMLINKS: usize = 40;

/// Cleans a tar entry path into a relative path below the root: strips `/`
/// and `.`, folds `..`. `Ok(None)` is the root itself. A `..` that would climb
/// above the root is refused: no legitimate layer contains one.
pub(crate) fn clean_entry_path(raw: &Path) -> Result<Option<PathBuf>, &'static str> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                if !out.pop() {
                    return Err("climbs above the root with '..'");
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Resolves the directory `rel` inside `root` the way the image's own
/// processes would see it (symlinks followed, absolute targets and `..`
/// clamped to `root`, like a chroot), creating missing directories with mode
/// 0755. Returns the real path on disk, which is always under `root`.
pub(crate) fn resolve_dir_in_root(root: &Path, rel: &Path) -> io::Result<PathBuf> {
    let mut resolved = PathBuf::new();
    let mut pending: Vec<std::ffi::OsString> = Vec::new();
    push_components(&mut pending, &mut resolved, rel);
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let candidate = root.join(&resolved).join(&name);
        match fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::other(format!(
                        "too many levels of symlinks at {}",
                        candidate.display()
                    )));
                }
                let target = fs::read_link(&candidate)?;
                push_components(&mut pending, &mut resolved, &target);
            }
            Ok(m) if m.is_dir() => resolved.push(&name),
            Ok(_) => {
                return Err(io::Error::new(
                    ErrorKind::NotADirectory,
                    format!("{} is not a directory", candidate.display()),
                ));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::DirBuilder::new().mode(0o755).create(&candidate)?;
                resolved.push(&name);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(root.join(resolved))
}

/// Queues `path`'s components (in reverse, as `pending` is a stack). An
/// absolute path restarts resolution at the root.
fn push_components(pending: &mut Vec<std::ffi::OsString>, resolved: &mut PathBuf, path: &Path) {
    if path.has_root() {
        resolved.clear();
    }
    for c in path.components().rev() {
        match c {
            Component::Normal(n) => pending.push(n.to_os_string()),
            Component::ParentDir => pending.push("..".into()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn cleaning() {
        let c = |p: &str| clean_entry_path(Path::new(p));
        assert_eq!(c("./a/b/"), Ok(Some(PathBuf::from("a/b"))));
        assert_eq!(c("/a/./b/../c"), Ok(Some(PathBuf::from("a/c"))));
        assert_eq!(c("./"), Ok(None));
        assert!(c("../etc/passwd").is_err());
        assert!(c("a/../../x").is_err());
    }

    #[test]
    fn symlinks_cannot_escape_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir(&root).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../../outside", root.join("rel")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        assert_eq!(
            resolve_dir_in_root(&root, Path::new("abs/x")).unwrap(),
            root.join("etc/x")
        );
        assert_eq!(
            resolve_dir_in_root(&root, Path::new("rel")).unwrap(),
            root.join("outside")
        );
        assert_eq!(
            resolve_dir_in_root(&root, Path::new("lib/x")).unwrap(),
            root.join("usr/lib/x")
        );
        assert!(root.join("usr/lib/x").is_dir());
        assert!(!tmp.path().join("outside").exists());
        symlink("loop", root.join("loop")).unwrap();
        assert!(resolve_dir_in_root(&root, Path::new("loop/x")).is_err());
    }
}
