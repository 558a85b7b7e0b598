//! Durable file-system primitives: fsync of directories and atomic whole-file replacement.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::StoreError;

/// Makes a rename or link inside `dir` durable: without fsyncing the directory,
/// a crash can lose the new directory entry even though the file data is on disk.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("fsync directory", dir))
}

/// Replaces `path` with `bytes` so readers see either the old or the new file,
/// never a partial one: write a sibling temp file, fsync it, rename over, fsync the dir.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(StoreError::io("create temp file in", dir))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(StoreError::io("write", tmp.path()))?;
    tmp.persist(path)
        .map_err(|e| StoreError::io("rename temp file to", path)(e.error))?;
    fsync_dir(dir)
}

/// Creates `dir` and its parents if missing.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(StoreError::io("create directory", dir))
}
