//! Lexical cleaning: a path made relative to a root without touching the disk (`.` and empty
//! parts dropped, `..` folded and never above the root).

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

/// Cleans a tar entry path into a relative path below the root: strips `/`
/// and `.`, folds `..`. `Ok(None)` is the root itself. A `..` that would climb
/// above the root is refused: no legitimate layer contains one.
pub fn clean_entry_path(raw: &Path) -> Result<Option<PathBuf>, &'static str> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn entry_paths_are_cleaned_strictly() {
        let c = |p: &str| clean_entry_path(Path::new(p));
        assert_eq!(c("./a/b/"), Ok(Some(PathBuf::from("a/b"))));
        assert_eq!(c("/a/./b/../c"), Ok(Some(PathBuf::from("a/c"))));
        assert_eq!(c("./"), Ok(None));
        assert!(c("../etc/passwd").is_err());
        assert!(c("a/../../x").is_err());
    }
}
