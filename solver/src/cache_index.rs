//! Cache records: which layer an operation with a given cache key produced.
//!
//! One small JSON file per key under `<root>/cache/`, written by rename so a killed build never
//! leaves a torn record. (A crash-safe embedded index and GC come with the cache issue.)

use std::fs;
use std::io;
use std::path::PathBuf;

use builder_cache::Digest;
use serde::{Deserialize, Serialize};

use crate::graph::LayerRef;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The layer the step added; None when it changed nothing.
    pub layer: Option<LayerRef>,
    /// The step, as the user wrote it (for listings).
    pub description: String,
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

    /// The record for `key`; unreadable or corrupt records count as misses.
    pub fn get(&self, key: &Digest) -> Option<CacheRecord> {
        let bytes = fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn put(&self, key: &Digest, record: &CacheRecord) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let bytes = serde_json::to_vec(record).map_err(io::Error::other)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        io::Write::write_all(&mut tmp, &bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.path(key)).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
