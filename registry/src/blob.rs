//! The two traits through which the client reaches the local content store,
//! so this crate depends on no store internals.

use std::io::Write;
use std::path::{Path, PathBuf};

use builder_store::Digest;

use crate::error::RegistryError;

/// Where pulled blobs go. Downloads are written to a file in `temp_dir()`,
/// verified, then handed over with `commit_file` (expected to be a rename).
pub trait BlobSink: Send + Sync {
    fn contains(&self, d: &Digest) -> bool;
    fn temp_dir(&self) -> PathBuf;
    /// Move a fully downloaded and verified file into the store.
    fn commit_file(&self, tmp: &Path, d: &Digest) -> std::io::Result<()>;
}

/// Where pushed blobs (and child manifests of an index) come from.
pub trait BlobSource: Send + Sync {
    fn open(&self, d: &Digest) -> std::io::Result<(std::fs::File, u64)>;
}

/// The local content store is what the CLI pulls into and pushes from.
impl BlobSink for builder_store::Store {
    fn contains(&self, d: &Digest) -> bool {
        self.blobs().contains(d)
    }
    fn temp_dir(&self) -> PathBuf {
        self.tmp_dir()
    }
    fn commit_file(&self, tmp: &Path, d: &Digest) -> std::io::Result<()> {
        self.blobs()
            .commit_file(tmp, d)
            .map_err(std::io::Error::other)
    }
}

impl BlobSource for builder_store::Store {
    fn open(&self, d: &Digest) -> std::io::Result<(std::fs::File, u64)> {
        let file = self.blobs().open(d).map_err(std::io::Error::other)?;
        let size = file.metadata()?.len();
        Ok((file, size))
    }
}

/// Stores a small in-memory document (a manifest) through the sink.
pub(crate) fn commit_bytes(
    sink: &dyn BlobSink,
    bytes: &[u8],
    d: &Digest,
) -> Result<(), RegistryError> {
    if sink.contains(d) {
        return Ok(());
    }
    let dir = sink.temp_dir();
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| RegistryError::io(&dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| RegistryError::io(tmp.path(), e))?;
    let path = tmp.into_temp_path();
    sink.commit_file(&path, d)
        .map_err(|e| RegistryError::io(&*path, e))
}

/// Reads a small blob (a child manifest) from the source, refusing big ones.
pub(crate) fn read_small(
    source: &dyn BlobSource,
    d: &Digest,
    limit: u64,
) -> Result<Vec<u8>, RegistryError> {
    use std::io::Read;
    let what = PathBuf::from(format!("blob {d}"));
    let (file, size) = source.open(d).map_err(|e| RegistryError::io(&what, e))?;
    if size > limit {
        return Err(RegistryError::ManifestTooLarge {
            reference: d.to_string(),
            limit,
        });
    }
    let mut buf = Vec::with_capacity(size as usize);
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| RegistryError::io(&what, e))?;
    let actual = Digest::of(&buf);
    if actual != *d {
        return Err(RegistryError::DigestMismatch {
            what: format!("local blob {d}"),
            expected: *d,
            actual,
        });
    }
    Ok(buf)
}
