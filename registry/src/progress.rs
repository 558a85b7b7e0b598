//! Progress reports for a CLI to render; also how tests count uploads.

use builder_store::Digest;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgressEvent {
    /// A manifest was resolved (by tag or digest) to this digest.
    ManifestResolved {
        digest: Digest,
        media_type: String,
    },
    /// A blob was already in the local store; nothing downloaded.
    BlobCached {
        digest: Digest,
    },
    DownloadStarted {
        digest: Digest,
        size: u64,
    },
    /// Bytes of the blob now on disk (including a resumed prefix).
    DownloadProgress {
        digest: Digest,
        done: u64,
        total: u64,
    },
    /// A retried download continues from `from` bytes instead of starting over.
    DownloadResumed {
        digest: Digest,
        from: u64,
    },
    DownloadComplete {
        digest: Digest,
    },
    /// The registry already had the blob; nothing uploaded.
    BlobExists {
        digest: Digest,
    },
    /// The registry linked the blob from another repository; nothing uploaded.
    BlobMounted {
        digest: Digest,
        from: String,
    },
    UploadStarted {
        digest: Digest,
        size: u64,
    },
    /// A retried chunked upload continues the registry's session from `from` bytes.
    UploadResumed {
        digest: Digest,
        from: u64,
    },
    UploadProgress {
        digest: Digest,
        done: u64,
        total: u64,
    },
    UploadComplete {
        digest: Digest,
    },
    ManifestPushed {
        digest: Digest,
        reference: String,
    },
    /// A transient failure; the operation is tried again after a pause.
    Retrying {
        what: String,
        attempt: u32,
        error: String,
    },
}
