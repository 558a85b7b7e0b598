//! The step-cache records of stores made before the database: one JSON file per key,
//! `<root>/cache/<key hex>.json`, which [`CacheIndex::open`](super::CacheIndex::open) imports
//! once and deletes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use builder_graph::LayerRef;
use builder_store::Digest;
use serde::Deserialize;

use super::{CacheIndexError, CacheRecord, io_err, unix_ms};

/// A legacy record file. Fields after `description` were added for listing and GC; files
/// written before them still import (their creation time falls back to the file's mtime).
#[derive(Deserialize)]
struct LegacyRecord {
    layer: Option<LayerRef>,
    description: String,
    /// Seconds since the Unix epoch when the record was written.
    #[serde(default)]
    created: Option<u64>,
    /// Compressed size of the layer blob (0 when the step added no layer).
    #[serde(default)]
    size: Option<u64>,
}

/// `(key, path)` of every `<key hex>.json` in `dir`.
pub(super) fn files(dir: &Path) -> Result<Vec<(Digest, PathBuf)>, CacheIndexError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    let mut out = Vec::new();
    for dirent in entries {
        let dirent = dirent.map_err(io_err("list", dir))?;
        let name = dirent.file_name();
        if let Some(key) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|hex| Digest::from_hex(hex).ok())
        {
            out.push((key, dirent.path()));
        }
    }
    Ok(out)
}

/// A legacy record with its creation and last-use times (the file's mtime was the latter) and
/// its size.
pub(super) fn read(path: &Path) -> Option<(CacheRecord, [i64; 2], u64)> {
    let bytes = fs::read(path).ok()?;
    let legacy: LegacyRecord = serde_json::from_slice(&bytes).ok()?;
    let mtime = fs::metadata(path).and_then(|m| m.modified()).ok()?;
    let last_used = unix_ms(mtime);
    let created = legacy
        .created
        .map_or(last_used, |secs| (secs as i64).saturating_mul(1000));
    // Records from before sizes were stored take the layer's.
    let size = legacy
        .size
        .unwrap_or_else(|| legacy.layer.as_ref().map_or(0, |l| l.size));
    let record = CacheRecord {
        layer: legacy.layer,
        description: legacy.description,
    };
    Some((record, [created, last_used], size))
}
