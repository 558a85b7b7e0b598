//! Where a directory copy's entries go on the host: the directories it has placed so far, and
//! the overlay's upper directory for the contents of one it has just made.

use std::fs;
use std::path::{Path, PathBuf};

/// The directories a directory copy has written so far (relative to the copied directory),
/// with where they are on the host, so their children need no path resolution inside the root:
/// each was resolved once, and `write_entry_in` left a real directory there (never a symlink).
/// `fresh`: made by this copy, so nothing is in it yet to replace.
pub(super) struct PlacedDirs {
    dirs: std::collections::HashMap<PathBuf, (PathBuf, bool)>,
}

impl PlacedDirs {
    /// `top`: the destination directory, resolved; `fresh` when this copy made it.
    pub(super) fn new(top: PathBuf, fresh: bool) -> Self {
        let mut dirs = std::collections::HashMap::new();
        dirs.insert(PathBuf::new(), (top, fresh));
        PlacedDirs { dirs }
    }

    pub(super) fn insert(&mut self, rel: PathBuf, host: PathBuf, fresh: bool) {
        self.dirs.insert(rel, (host, fresh));
    }

    /// Where `rel` goes and whether its parent is fresh, when its parent was placed.
    pub(super) fn child(&self, rel: &Path) -> Option<(PathBuf, bool)> {
        let name = rel.file_name()?;
        let (dir, fresh) = self.dirs.get(rel.parent()?)?;
        Some((dir.join(name), *fresh))
    }
}

/// Where to write the contents of `dir` (a directory just made through the overlay mount at
/// `root`): the same directory in the mount's upper directory when there is one and it holds
/// that directory (it always should: a new directory lives in the upper layer), else `dir`.
pub(super) fn direct_dir(root: &Path, upper: Option<&Path>, dir: PathBuf) -> PathBuf {
    let Some(upper) = upper else { return dir };
    let Ok(rel) = dir.strip_prefix(root) else {
        return dir;
    };
    let direct = upper.join(rel);
    match fs::symlink_metadata(&direct) {
        Ok(m) if m.is_dir() => direct,
        _ => dir,
    }
}
