use std::io;
use std::path::PathBuf;

use builder_store::{Digest, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what}: invalid JSON: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{digest} has media type {media_type:?}, which cannot be exported as an image manifest"
    )]
    UnsupportedManifest { digest: Digest, media_type: String },
    #[error("layer {digest} has unsupported media type {media_type:?}")]
    UnsupportedLayer { digest: Digest, media_type: String },
    #[error("layer {layer}: entry {path:?} {reason}")]
    UnsafeEntry {
        layer: Digest,
        path: String,
        reason: &'static str,
    },
    #[error("layer {layer}: reading tar: {source}")]
    LayerTar {
        layer: Digest,
        #[source]
        source: io::Error,
    },
    #[error("blob {digest} changed while being exported: content hashes to {actual}")]
    BlobChanged { digest: Digest, actual: Digest },
    #[error("image name {0:?} is not a normalized reference")]
    InvalidName(String),
    /// The files a caller adds to a tar part (attestation statements) could not be made.
    #[error("making the attestation files: {0}")]
    Attestation(String),
}

impl ExportError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> ExportError {
        let path = path.into();
        move |source| ExportError::Io { op, path, source }
    }
}
