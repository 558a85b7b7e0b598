//! What the SBOM scan found in each layer (`builder build --sbom`), kept by the layer's diff id
//! so a rebuild on the same base does not read that base's layers again.
//!
//! One file per layer and scan format: `sbom-scans/<diff id hex>-<format>.json`. Written as
//! every store file is (temp file, fsync, rename, fsync the directory), so a crash leaves the
//! old file or none, never a torn one; a file that does not parse is treated as missing and
//! rewritten. The store root is private to its user, and the files are created 0600. `builder
//! prune` removes the file of a layer it removes (see [`crate::gc::sweep`]).

use std::fs;
use std::io;
use std::path::PathBuf;

use crate::{Digest, Store, StoreError, fsutil};

/// The stored scans of one store.
pub struct LayerScans {
    dir: PathBuf,
}

impl LayerScans {
    pub fn new(store: &Store) -> LayerScans {
        LayerScans {
            dir: store.layer_scans_dir(),
        }
    }

    fn path(&self, diff_id: &Digest, format: &str) -> PathBuf {
        self.dir.join(fsutil::per_layer_file_name(
            diff_id,
            &format!("{format}.json"),
        ))
    }

    /// The stored scan of the layer, if any.
    pub fn get(&self, diff_id: &Digest, format: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(diff_id, format);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read", path)(e)),
        }
    }

    /// Stores the scan of the layer, replacing any older one atomically.
    pub fn put(&self, diff_id: &Digest, format: &str, bytes: &[u8]) -> Result<(), StoreError> {
        fsutil::ensure_dir(&self.dir)?;
        fsutil::write_atomic(&self.path(diff_id, format), bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_scans_round_trip_by_diff_id_and_format() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let scans = LayerScans::new(&store);
        let id = Digest::of(b"layer");
        assert_eq!(scans.get(&id, "1").unwrap(), None);
        scans.put(&id, "1", b"{}").unwrap();
        assert_eq!(scans.get(&id, "1").unwrap().as_deref(), Some(&b"{}"[..]));
        assert_eq!(scans.get(&id, "2").unwrap(), None);
        let name = format!("{}-1.json", id.hex());
        assert_eq!(fsutil::per_layer_file_diff_id(&name), Some(id));
        assert_eq!(fsutil::per_layer_file_diff_id(".tmp-abc"), None);
    }
}
