//! Durable file-system primitives: fsync of directories and atomic whole-file replacement.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::{Digest, StoreError};

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

/// The name of a file kept per layer (`<diff id hex>-<what>`): SBOM scans and layer variants,
/// which a prune removes with their layer (see `gc::sweep`).
pub(crate) fn per_layer_file_name(diff_id: &Digest, what: &str) -> String {
    format!("{}-{what}", diff_id.hex())
}

/// The layer a [`per_layer_file_name`] is for; None for a temp file or a foreign name.
pub(crate) fn per_layer_file_diff_id(file_name: &str) -> Option<Digest> {
    let (hex, _) = file_name.split_once('-')?;
    Digest::from_hex(hex).ok()
}
