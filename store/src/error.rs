//! The one error type of the store, carrying the path or digest involved.

use std::io;
use std::path::PathBuf;

use crate::Digest;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("blob {0} is not in the store")]
    BlobNotFound(Digest),
    #[error("content digest mismatch: expected {expected}, got {actual} ({size} bytes)")]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        size: u64,
    },
    #[error("blob {digest} is corrupted: its content hashes to {actual}")]
    Corrupted { digest: Digest, actual: Digest },
    #[error(
        "blob {digest} is {size} bytes, larger than the {limit}-byte limit for in-memory reads"
    )]
    BlobTooLarge {
        digest: Digest,
        size: u64,
        limit: u64,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("no such image: {0}")]
    ImageNotFound(String),
    #[error("image id prefix {prefix:?} is ambiguous: it matches {count} images")]
    AmbiguousId { prefix: String, count: usize },
    #[error("image id prefix {0:?} is not a hex string")]
    InvalidIdPrefix(String),
    #[error(
        "conflict: unable to delete {id} (must be forced) - image is referenced in multiple repositories: {names:?}"
    )]
    ImageInUse { id: Digest, names: Vec<String> },
    /// Another user could replace the store or one of its parents (see private_root).
    #[error(
        "refusing to use a store under {path}: it {reason}, who could replace the store with a directory they control; choose another --root or fix the directory's owner and permissions"
    )]
    UnsafeLocation { path: PathBuf, reason: String },
    #[error("image config has {diff_ids} diff_ids but {layers} layers were given")]
    LayerCountMismatch { diff_ids: usize, layers: usize },
    #[error("layer {digest} is {media_type}, which has no Docker schema2 media type")]
    NoDockerMediaType { digest: Digest, media_type: String },
}

impl StoreError {
    /// Wraps an io::Error with the operation and path it came from.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }
}
