//! The executor's hook for cache records from outside the local store (`--cache-from`).
//!
//! The solver knows nothing about where imported records come from (a directory, a registry, an
//! image's config): it only asks, when a step misses the local cache, whether an import has a
//! record for the step's key. Fetching the record's layer blob is the import's job, so blobs
//! are transferred only for steps that are actually hit.

use builder_store::{Digest, Store};

use crate::cache_index::CacheRecord;

pub trait CacheImport: Send + Sync {
    /// The record for `key` with its layer blob (if any) now in `store`, or None when no imported
    /// record matches or its blob could not be fetched. Imports report such failures themselves
    /// (as warnings): a broken cache source must never fail a build, as with buildx.
    fn fetch(&self, key: &Digest, store: &Store) -> Option<CacheRecord>;
}
