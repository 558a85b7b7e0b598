//! The one error type of the crate. Every variant names what it was about
//! (registry, URL, digest, path) so a CLI can print it as is.

use std::path::PathBuf;
use std::time::Duration;

use builder_store::Digest;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference { input: String, reason: String },
    #[error(transparent)]
    InvalidPlatform(#[from] builder_store::InvalidPlatform),
    #[error("{method} {url}: {source}")]
    Http {
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url}: unexpected status {status}: {body}")]
    Status {
        method: String,
        url: String,
        status: u16,
        body: String,
        /// The server's Retry-After (delta-seconds form), honoured by the retry loop.
        retry_after: Option<Duration>,
    },
    #[error("{method} {url}: upload session lost ({status}): {body}")]
    UploadSessionLost {
        method: String,
        url: String,
        status: u16,
        body: String,
    },
    #[error("authentication to registry {registry} failed: {detail}")]
    Unauthorized { registry: String, detail: String },
    #[error("{what} not found: {reference}")]
    NotFound {
        what: &'static str,
        reference: String,
    },
    #[error("no manifest for platform {wanted} in {reference}; available platforms: {}", available.join(", "))]
    PlatformNotFound {
        reference: String,
        wanted: String,
        available: Vec<String>,
    },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("blob {digest}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("unsupported manifest media type {media_type:?} for {reference}")]
    UnsupportedMediaType {
        media_type: String,
        reference: String,
    },
    #[error("malformed manifest from {reference}: {source}")]
    ManifestParse {
        reference: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("manifest {reference} is larger than the {limit} byte limit")]
    ManifestTooLarge { reference: String, limit: u64 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("docker credentials file {path}: {reason}")]
    Credentials { path: PathBuf, reason: String },
    #[error("credential helper docker-credential-{helper}: {reason}")]
    CredentialHelper { helper: String, reason: String },
    #[error("bad response from {url}: {reason}")]
    Protocol { url: String, reason: String },
    /// A transient failure that outlasted every retry: says where, what and why.
    /// The last error is rendered with its causes (not a `#[source]`): a timeout or reset
    /// is only named deep in reqwest's chain, and this message must say it on its own.
    #[error(
        "{operation} at registry {registry} failed after {attempts} attempts: {}",
        with_causes(last)
    )]
    GaveUp {
        registry: String,
        operation: String,
        attempts: u32,
        last: Box<RegistryError>,
    },
    #[error("building the HTTP client: {0}")]
    ClientBuild(#[source] reqwest::Error),
}

/// `e: cause: cause...`, skipping a cause whose text its parent already shows.
fn with_causes(e: &RegistryError) -> String {
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
        cause = c.source();
    }
    out
}

impl RegistryError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RegistryError::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether retrying the same request later may succeed: network trouble,
    /// timeouts, server errors and throttling. Auth and 4xx errors are final.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Http { source, .. } => {
                source.is_timeout()
                    || source.is_connect()
                    || source.is_request()
                    || source.is_body()
                    || source.is_decode()
            }
            RegistryError::Status { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408
            }
            // A short body is what a dropped connection looks like mid-download.
            RegistryError::SizeMismatch { .. } => true,
            RegistryError::UploadSessionLost { .. } => true,
            _ => false,
        }
    }

    /// How long the server asked us to wait before trying again, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RegistryError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
