//! The one error type of the crate. Every variant names what it was about
//! (registry, URL, digest, path) so a CLI can print it as is.

use std::path::PathBuf;

use builder_cache::Digest;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference { input: String, reason: String },
    #[error("invalid platform {input:?}: expected os/arch[/variant], e.g. linux/amd64")]
    InvalidPlatform { input: String },
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
    #[error("building the HTTP client: {0}")]
    ClientBuild(#[source] reqwest::Error),
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
}
