//! The build cache as `builder du`, `cache ls` and `prune` see it, and the prune itself: every
//! step record (this crate's cache index) with the named images that use its layer, and the
//! cache mounts, which no image uses. What images keep alive and the sweep of unreferenced
//! blobs and snapshots are the store's (`builder_store::gc`); the CLI only renders the result.

use std::time::SystemTime;

use builder_store::gc::{self, CacheItem, CacheMount, GcError, PrunePolicy, Roots};
use builder_store::{Digest, Store, StoreError};

use crate::cache_index::{CacheEntry, CacheIndex, CacheIndexError};

#[derive(Debug, thiserror::Error)]
pub enum CacheUsageError {
    #[error("the build cache index: {0}")]
    Index(#[from] CacheIndexError),
    #[error(transparent)]
    Gc(#[from] GcError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The step records and cache mounts of a store, with the images that use each record.
pub struct CacheUsage {
    pub entries: Vec<CacheEntry>,
    pub mounts: Vec<CacheMount>,
    /// (names, what that image references) for each named image.
    images: Vec<(Vec<String>, Roots)>,
}

impl CacheUsage {
    pub fn load(store: &Store) -> Result<CacheUsage, CacheUsageError> {
        let entries = open_index(store)?.list()?;
        let mut images = Vec::new();
        for image in store.images().list()? {
            if image.names.is_empty() {
                continue;
            }
            let id = image.record.config;
            let roots = gc::image_roots(store, |e| e.record.config == id)?;
            images.push((image.names.iter().cloned().collect(), roots));
        }
        let mounts = gc::cache_mounts(store)?;
        Ok(CacheUsage {
            entries,
            mounts,
            images,
        })
    }

    /// Names of the images whose layers include the record's layer.
    pub fn users(&self, entry: &CacheEntry) -> Vec<String> {
        let Some(layer) = &entry.record.layer else {
            return Vec::new();
        };
        self.images
            .iter()
            .filter(|(_, roots)| roots.blobs.contains(&layer.digest))
            .flat_map(|(names, _)| names.iter().cloned())
            .collect()
    }

    pub fn reclaimable(&self, entry: &CacheEntry) -> bool {
        self.users(entry).is_empty()
    }

    /// Records first, then cache mounts: an index past the records is a mount.
    fn items(&self) -> Vec<CacheItem> {
        let records = self.entries.iter().map(|e| CacheItem {
            blob: e.record.layer.as_ref().map(|l| l.digest),
            size: e.size,
            last_used: e.last_used,
            in_use: !self.reclaimable(e),
        });
        let mounts = self.mounts.iter().map(|m| CacheItem {
            blob: None,
            size: m.size,
            last_used: m.last_used,
            in_use: false,
        });
        records.chain(mounts).collect()
    }

    /// (reclaimable bytes, total bytes), each blob counted once.
    pub fn totals(&self) -> (u64, u64) {
        let items = self.items();
        let all: Vec<&CacheItem> = items.iter().collect();
        let free: Vec<&CacheItem> = items.iter().filter(|i| !i.in_use).collect();
        (gc::storage(&free), gc::storage(&all))
    }
}

/// The store's cache index (the step records).
pub fn open_index(store: &Store) -> Result<CacheIndex, CacheIndexError> {
    CacheIndex::open(&store.cache_index_dir())
}

/// What one prune removed.
#[derive(Debug, Default)]
pub struct Pruned {
    pub records: Vec<Digest>,
    pub mounts: Vec<String>,
    pub mount_bytes: u64,
    pub images: Vec<Digest>,
    pub sweep: gc::SweepReport,
}

/// Removes the records and cache mounts the policy selects and the nameless images it allows,
/// then sweeps every blob and snapshot that neither a remaining record nor a remaining image
/// references. The caller holds the store's exclusive GC lease.
pub fn prune(
    store: &Store,
    policy: &PrunePolicy,
    now: SystemTime,
) -> Result<Pruned, CacheUsageError> {
    let index = open_index(store)?;
    let usage = CacheUsage::load(store)?;
    let mut pruned = Pruned::default();
    for n in gc::select(&usage.items(), policy, now) {
        match usage.entries.get(n) {
            Some(entry) => {
                if index.remove(&entry.key)? {
                    pruned.records.push(entry.key);
                }
            }
            None => {
                let mount = &usage.mounts[n - usage.entries.len()];
                // A mount a build still holds is skipped, not waited for.
                if gc::remove_cache_mount(mount)? {
                    pruned.mounts.push(mount.name.clone());
                    pruned.mount_bytes += mount.size;
                }
            }
        }
    }
    let dangling = gc::dangling_images(store, policy, now)?;
    pruned.images = gc::remove_dangling(store, &dangling)?;
    // Roots are read after the removals: whatever still names a blob or layer keeps it.
    let mut roots = gc::image_roots(store, |_| true)?;
    for entry in index.list()? {
        if let Some(layer) = entry.record.layer {
            roots.add_layer(layer.digest, layer.diff_id);
        }
    }
    pruned.sweep = gc::sweep(store, &roots, now)?;
    Ok(pruned)
}
