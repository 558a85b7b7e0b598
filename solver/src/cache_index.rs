//! Cache records: which layer an operation with a given cache key produced.
//!
//! One small JSON file per key under `<root>/cache/<key hex>.json`, written by rename so a killed
//! build never leaves a torn record. Besides the layer and the step's description a record keeps
//! its creation time and size (for `builder du` and `builder prune`); its last use is the file's
//! mtime, touched on every hit, so a hit costs one `futimens` instead of a rewrite.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use builder_cache::Digest;
use serde::{Deserialize, Serialize};

use crate::graph::LayerRef;

/// What the executor stores and reads back for a cache key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The layer the step added; None when it changed nothing.
    pub layer: Option<LayerRef>,
    /// The step, as the user wrote it (for listings).
    pub description: String,
}

/// The record file. Fields after `description` were added for listing and GC; records written
/// before them still read (their creation time falls back to the file's mtime).
#[derive(Serialize, Deserialize)]
struct StoredRecord {
    layer: Option<LayerRef>,
    description: String,
    /// Seconds since the Unix epoch when the record was written.
    #[serde(default)]
    created: Option<u64>,
    /// Compressed size of the layer blob (0 when the step added no layer).
    #[serde(default)]
    size: Option<u64>,
}

/// A record with what listings and GC need to know about it.
#[derive(Clone, Debug)]
pub struct CacheEntry {
    pub key: Digest,
    pub record: CacheRecord,
    pub created: SystemTime,
    /// When a build last hit (or wrote) the record.
    pub last_used: SystemTime,
    /// Compressed size of the record's layer blob.
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheIndexError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no cache record matches {0:?}")]
    NotFound(String),
    #[error("cache key prefix {prefix:?} is ambiguous: it matches {count} records")]
    Ambiguous { prefix: String, count: usize },
    #[error("cache key prefix {0:?} is not a hex string")]
    BadPrefix(String),
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CacheIndexError {
    let path = path.to_path_buf();
    move |source| CacheIndexError::Io { op, path, source }
}

pub struct CacheIndex {
    dir: PathBuf,
}

impl CacheIndex {
    pub fn new(dir: PathBuf) -> Self {
        CacheIndex { dir }
    }

    fn path(&self, key: &Digest) -> PathBuf {
        self.dir.join(format!("{}.json", key.hex()))
    }

    /// The record for `key`, marking it used; unreadable or corrupt records count as misses.
    pub fn get(&self, key: &Digest) -> Option<CacheRecord> {
        let path = self.path(key);
        let stored = read_stored(&path)?;
        // Best effort: a record we cannot touch is still a valid hit, it just ages sooner.
        let _ = touch(&path);
        Some(CacheRecord {
            layer: stored.layer,
            description: stored.description,
        })
    }

    pub fn put(&self, key: &Digest, record: &CacheRecord) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let stored = StoredRecord {
            layer: record.layer.clone(),
            description: record.description.clone(),
            created: Some(unix_secs(SystemTime::now())),
            size: Some(record.layer.as_ref().map_or(0, |l| l.size)),
        };
        let bytes = serde_json::to_vec(&stored).map_err(io::Error::other)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        io::Write::write_all(&mut tmp, &bytes)?;
        // No fsync: a record torn by a crash reads as a miss (the step runs again), and the blob
        // it names was made durable before the record was written. A per-step fsync was a
        // measurable part of RUN overhead on a busy disk (BENCHMARKS.md).
        tmp.persist(self.path(key)).map_err(|e| e.error)?;
        Ok(())
    }

    /// The entry for `key` without marking it used.
    pub fn entry(&self, key: &Digest) -> Option<CacheEntry> {
        let path = self.path(key);
        let stored = read_stored(&path)?;
        let last_used = fs::metadata(&path).and_then(|m| m.modified()).ok()?;
        Some(to_entry(*key, stored, last_used))
    }

    /// Every readable record. Temp files of in-flight writes and corrupt records are skipped:
    /// neither is a cache entry a listing could show or GC could reason about.
    pub fn list(&self) -> Result<Vec<CacheEntry>, CacheIndexError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list", &self.dir)(e)),
        };
        let mut out = Vec::new();
        for dirent in entries {
            let dirent = dirent.map_err(io_err("list", &self.dir))?;
            let name = dirent.file_name();
            let Some(key) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|hex| Digest::from_hex(hex).ok())
            else {
                continue;
            };
            if let Some(entry) = self.entry(&key) {
                out.push(entry);
            }
        }
        out.sort_by_key(|e| e.key);
        Ok(out)
    }

    /// The one entry whose key (hex, optionally `sha256:`-prefixed) starts with `prefix`.
    pub fn find(&self, prefix: &str) -> Result<CacheEntry, CacheIndexError> {
        let hex = prefix
            .strip_prefix("sha256:")
            .unwrap_or(prefix)
            .to_ascii_lowercase();
        if hex.is_empty() || hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CacheIndexError::BadPrefix(prefix.to_string()));
        }
        let mut matches: Vec<CacheEntry> = self
            .list()?
            .into_iter()
            .filter(|e| e.key.hex().starts_with(&hex))
            .collect();
        match matches.len() {
            0 => Err(CacheIndexError::NotFound(prefix.to_string())),
            1 => Ok(matches.remove(0)),
            count => Err(CacheIndexError::Ambiguous {
                prefix: prefix.to_string(),
                count,
            }),
        }
    }

    /// Deletes the record for `key`; returns whether it existed.
    pub fn remove(&self, key: &Digest) -> Result<bool, CacheIndexError> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("remove", &path)(e)),
        }
    }
}

fn read_stored(path: &Path) -> Option<StoredRecord> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn to_entry(key: Digest, stored: StoredRecord, last_used: SystemTime) -> CacheEntry {
    let size = stored
        .size
        .unwrap_or_else(|| stored.layer.as_ref().map_or(0, |l| l.size));
    let created = stored
        .created
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap_or(last_used);
    CacheEntry {
        key,
        record: CacheRecord {
            layer: stored.layer,
            description: stored.description,
        },
        created,
        last_used,
        size,
    }
}

/// Sets the record file's mtime to now: that is its last-used time.
fn touch(path: &Path) -> io::Result<()> {
    let file = fs::OpenOptions::new().write(true).open(path)?;
    file.set_modified(SystemTime::now())
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(size: u64) -> LayerRef {
        LayerRef {
            diff_id: Digest::of(b"diff"),
            digest: Digest::of(b"blob"),
            size,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        }
    }

    #[test]
    fn put_get_and_corrupt_records() {
        let dir = tempfile::tempdir().unwrap();
        let index = CacheIndex::new(dir.path().join("cache"));
        let key = Digest::of(b"k");
        assert!(index.get(&key).is_none());
        index
            .put(
                &key,
                &CacheRecord {
                    layer: None,
                    description: "RUN true".into(),
                },
            )
            .unwrap();
        assert_eq!(index.get(&key).unwrap().description, "RUN true");
        fs::write(index.path(&key), b"{not json").unwrap();
        assert!(index.get(&key).is_none());
        assert!(index.list().unwrap().is_empty());
    }

    #[test]
    fn records_carry_size_times_and_get_touches() {
        let dir = tempfile::tempdir().unwrap();
        let index = CacheIndex::new(dir.path().join("cache"));
        let key = Digest::of(b"k");
        let record = CacheRecord {
            layer: Some(layer(1234)),
            description: "COPY a /".into(),
        };
        index.put(&key, &record).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        let file = fs::OpenOptions::new()
            .write(true)
            .open(index.path(&key))
            .unwrap();
        file.set_modified(old).unwrap();
        let before = index.entry(&key).unwrap();
        assert_eq!(before.size, 1234);
        assert!(before.last_used <= old + Duration::from_secs(1));
        index.get(&key).unwrap();
        let after = index.entry(&key).unwrap();
        assert!(after.last_used > old + Duration::from_secs(1800));
        assert_eq!(after.created, before.created);
    }

    #[test]
    fn old_records_without_new_fields_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let index = CacheIndex::new(dir.path().join("cache"));
        let key = Digest::of(b"old");
        fs::create_dir_all(&index.dir).unwrap();
        let old = serde_json::json!({"layer": layer(77), "description": "RUN x"});
        fs::write(index.path(&key), old.to_string()).unwrap();
        let entry = index.entry(&key).unwrap();
        assert_eq!(entry.size, 77);
        assert_eq!(entry.created, entry.last_used);
        assert_eq!(index.get(&key).unwrap().description, "RUN x");
    }

    #[test]
    fn find_by_prefix_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let index = CacheIndex::new(dir.path().join("cache"));
        let record = CacheRecord {
            layer: None,
            description: "x".into(),
        };
        let keys: Vec<Digest> = (0..20u8).map(|i| Digest::of(&[i])).collect();
        for k in &keys {
            index.put(k, &record).unwrap();
        }
        let full = keys[0].hex();
        assert_eq!(index.find(&full[..12]).unwrap().key, keys[0]);
        assert_eq!(index.find(&format!("sha256:{full}")).unwrap().key, keys[0]);
        assert!(matches!(index.find(""), Err(CacheIndexError::BadPrefix(_))));
        assert!(matches!(
            index.find("zz"),
            Err(CacheIndexError::BadPrefix(_))
        ));
        // 20 keys over 16 first hex digits: some single digit is shared.
        let shared = (0..16)
            .map(|d| format!("{d:x}"))
            .find(|p| keys.iter().filter(|k| k.hex().starts_with(p)).count() > 1)
            .unwrap();
        assert!(matches!(
            index.find(&shared),
            Err(CacheIndexError::Ambiguous { .. })
        ));
        assert!(index.remove(&keys[0]).unwrap());
        assert!(!index.remove(&keys[0]).unwrap());
        assert!(matches!(
            index.find(&full),
            Err(CacheIndexError::NotFound(_))
        ));
        assert_eq!(index.list().unwrap().len(), 19);
    }
}
