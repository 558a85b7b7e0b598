//! The one error type of this crate. Every variant names the path (and, for
//! archives, the entry) it is about, so a failed build says *where*.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The build was cancelled (see [`crate::cancel`]) while this work was under way.
    #[error("cancelled")]
    Cancelled,
    #[error("writing layer archive: {0}")]
    ArchiveWrite(#[source] io::Error),
    #[error("reading layer archive: {0}")]
    ArchiveRead(#[source] io::Error),
    #[error("layer entry {entry:?}: {reason}")]
    BadEntry { entry: String, reason: String },
    #[error("layer entry {entry:?}: {op} {path}: {source}")]
    EntryIo {
        entry: String,
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "layer is compressed with {0}, which is not supported (only gzip, zstd or uncompressed)"
    )]
    UnsupportedCompression(&'static str),
    #[error("{path}: file changed while it was being archived ({reason})")]
    FileChanged { path: PathBuf, reason: String },
    #[error("{path}: name starts with \".wh.\", which OCI layers reserve for whiteouts")]
    ReservedName { path: PathBuf },
    #[error("{path}: cannot be used as an overlay layer directory ({reason})")]
    BadLowerDir { path: PathBuf, reason: String },
    #[error(
        "overlay mount options are {len} bytes, over the kernel's {max}-byte limit ({lowers} lower dirs)"
    )]
    MountOptionsTooLong {
        len: usize,
        max: usize,
        lowers: usize,
    },
    #[error("mounting overlay at {target}: {source}")]
    Mount {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "layer {} reads as {}, not as its diff id {}: the store is damaged (`builder cache verify --repair`)",
        .0.digest, .0.read, .0.diff_id
    )]
    DiffIdMismatch(Box<DiffIdMismatch>),
    #[error("{what}: {source}")]
    Store {
        what: &'static str,
        #[source]
        source: Box<builder_store::StoreError>,
    },
    #[error("unmounting {target}: {source}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A stored layer whose tar is not the one its diff id names (boxed: errors stay small).
#[derive(Debug)]
pub struct DiffIdMismatch {
    pub digest: builder_store::Digest,
    pub read: builder_store::Digest,
    pub diff_id: builder_store::Digest,
}

/// Shorthand for wrapping an `io::Error` with the operation and path.
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> SnapshotError {
    let path = path.into();
    move |source| SnapshotError::Io { op, path, source }
}
