//! builder-remote-cache: build cache shared between machines, as buildx's `--cache-to` and
//! `--cache-from` do it.
//!
//! A cache export is a set of cache records (cache key → the layer the step added, and the step's
//! description) plus the layer blobs they name. It travels as an OCI image manifest whose config
//! is the records ([`format`]): in a directory laid out as an OCI image layout (`type=local`), or
//! in a registry repository (`type=registry`). `type=inline` instead puts the records for an
//! image's own layers into its config, so the image itself, once pushed, is a cache source.
//!
//! - [`spec`]: the `--cache-to` / `--cache-from` values.
//! - [`format`]: the records document and its media types.
//! - [`export`]: writing a directory, pushing to a registry, embedding in an image config.
//! - [`import`]: reading the records up front; blobs are fetched only for the steps that hit, from
//!   the executor's [`builder_solver::cache_import::CacheImport`] hook.
//!
//! Cache keys are portable because they are made of the Dockerfile's operations, the digests of
//! base images and the *content* of context files: no host paths, uids or times (see the
//! `cache_share` end-to-end tests, which build from two stores and two context directories).

pub mod export;
pub mod format;
pub mod import;
pub mod mounts;
pub mod spec;

use std::sync::Arc;

pub use export::{ExportSummary, embed_inline, export};
pub use import::Imports;
pub use spec::{ExportSpec, ImportSpec, Mode};

#[derive(Debug, thiserror::Error)]
pub enum RemoteCacheError {
    #[error("{0}")]
    Spec(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] builder_store::StoreError),
    #[error(transparent)]
    Registry(#[from] builder_registry::RegistryError),
    #[error("compressing layer {0} for the cache export: {1}")]
    Compress(
        builder_store::Digest,
        #[source] builder_snapshot::SnapshotError,
    ),
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

impl RemoteCacheError {
    fn io(op: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.display().to_string();
        move |source| RemoteCacheError::Io { op, path, source }
    }

    fn invalid(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        RemoteCacheError::Invalid {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// A registry client and the runtime its calls run on. Imports keep it to fetch blobs during the
/// build, from the solver's (non-async) worker threads.
#[derive(Clone)]
pub struct Remote {
    pub client: Arc<builder_registry::Client>,
    pub runtime: Arc<tokio::runtime::Runtime>,
}

impl Remote {
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}
