//! Confining archive paths to the extraction root.
//!
//! Entry names are cleaned lexically (`/abs` → `abs`, `../x` → `x`, as if the
//! archive root were `/`), and every *parent* directory is then resolved the
//! way `openat2(RESOLVE_IN_ROOT)` would: symlinks are followed, but an absolute
//! target or a `..` that climbs above the root lands back at the root. The final
//! component is never followed, so callers replace or create it in place.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Same limit as the kernel's (MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// The normal components of an archive path, with `.`/`..`/`/` resolved lexically
/// against a virtual root. Empty means the root itself.
pub(crate) fn clean_components(raw: &[u8]) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            name => out.push(OsStr::from_bytes(name).to_os_string()),
        }
    }
    out
}

/// Resolves the directory `components` inside `root`, following symlinks but
/// never leaving `root`. Missing directories are created (mode 0755, as tar
/// does) when `create` is set. Returns the real path of the directory.
pub(crate) fn resolve_dir(
    root: &Path,
    components: &[OsString],
    create: bool,
) -> io::Result<PathBuf> {
    let mut pending: VecDeque<OsString> = components.iter().cloned().collect();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut symlinks = 0usize;
    while let Some(part) = pending.pop_front() {
        match part.as_bytes() {
            b"" | b"." => continue,
            b".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let candidate = join(root, &resolved).join(&part);
        match fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                symlinks += 1;
                if symlinks > MAX_SYMLINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for (i, c) in target
                    .as_os_str()
                    .as_bytes()
                    .split(|b| *b == b'/')
                    .enumerate()
                {
                    pending.insert(i, OsStr::from_bytes(c).to_os_string());
                }
            }
            Ok(m) if m.is_dir() => resolved.push(part),
            Ok(_) => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir(&candidate)?;
                resolved.push(part);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(join(root, &resolved))
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

    fn names(v: &[OsString]) -> Vec<&str> {
        v.iter().map(|s| s.to_str().unwrap_or("?")).collect()
    }

    #[test]
    fn cleaning_keeps_paths_below_the_root() {
        assert_eq!(names(&clean_components(b"/abs/x")), ["abs", "x"]);
        assert_eq!(names(&clean_components(b"../../escape")), ["escape"]);
        assert_eq!(names(&clean_components(b"a/./b/../c/")), ["a", "c"]);
        assert!(clean_components(b"./").is_empty());
    }

    #[test]
    fn symlinks_resolve_inside_the_root() -> io::Result<()> {
        let t = tempfile::tempdir()?;
        let root = t.path();
        fs::create_dir_all(root.join("real/sub"))?;
        symlink("/", root.join("toroot"))?;
        symlink("../../../real", root.join("real/sub/up"))?;
        symlink("loop", root.join("loop"))?;
        let comps = |s: &str| clean_components(s.as_bytes());
        assert_eq!(
            resolve_dir(root, &comps("toroot/real"), false)?,
            root.join("real")
        );
        assert_eq!(
            resolve_dir(root, &comps("real/sub/up/sub"), false)?,
            root.join("real/sub")
        );
        assert_eq!(
            resolve_dir(root, &comps("toroot/etc"), true)?,
            root.join("etc")
        );
        assert_eq!(
            resolve_dir(root, &comps("loop"), false).map_err(|e| e.raw_os_error()),
            Err(Some(libc::ELOOP))
        );
        Ok(())
    }
}
