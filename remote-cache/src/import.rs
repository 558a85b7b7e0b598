//! Reading cache exports. The records are read when the build starts; a record's layer blob is
//! copied (directory) or downloaded (registry) into the local store only when a step hits it.
//! As with buildx, an import that cannot be read, or a blob that cannot be fetched, is a warning
//! and the build goes on without it.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use builder_graph::LayerRef;
use builder_registry::Reference;
use builder_registry::manifest::{MANIFEST_SIZE_LIMIT, ManifestKind};
use builder_solver::cache_import::CacheImport;
use builder_solver::cache_index::CacheRecord;
use builder_store::manifest::{Index, Manifest, media_type};
use builder_store::{Digest, Store};

use crate::format::{CACHE_CONFIG, CacheConfig, INLINE_KEY, Record};
use crate::spec::ImportSpec;
use crate::{Remote, RemoteCacheError};

/// Where a source's layer blobs are.
enum Blobs {
    /// `blobs/sha256/` of an OCI image layout.
    Dir(PathBuf),
    Registry {
        remote: Remote,
        reference: Reference,
    },
}

struct Source {
    name: String,
    records: HashMap<Digest, Record>,
    mounts: Vec<crate::mounts::MountRecord>,
    blobs: Blobs,
}

/// Every `--cache-from` source that could be read, consulted in the order given.
pub struct Imports {
    sources: Vec<Source>,
    warnings: Mutex<Vec<String>>,
    /// Cache mounts restored into the store from `mounts=true` exports.
    restored_mounts: usize,
}

impl Imports {
    /// Reads the records of every source; `remote` is needed for registry sources. A source
    /// that fails to load is left out with a warning.
    pub fn load(specs: &[ImportSpec], store: &Store, remote: Option<&Remote>) -> Imports {
        let mut sources = Vec::new();
        let mut warnings = Vec::new();
        for spec in specs {
            match load_source(spec, store, remote) {
                Ok(source) => sources.push(source),
                Err(e) => warnings.push(format!("importing {}: {e}", spec.describe())),
            }
        }
        // Cache mounts come back before any step runs; the first source that has one wins
        // (restore leaves a non-empty mount alone).
        let mut restored_mounts = 0;
        for source in &sources {
            for mount in &source.mounts {
                let fetch = |chunk: &LayerRef| source.fetch_layer(chunk, store);
                match crate::mounts::restore(store, mount, &fetch) {
                    Ok(true) => restored_mounts += 1,
                    Ok(false) => {}
                    Err(e) => warnings.push(format!(
                        "{}: cache mount {:?} not restored: {e}",
                        source.name,
                        mount.id.split('\0').next().unwrap_or_default()
                    )),
                }
            }
        }
        Imports {
            sources,
            warnings: Mutex::new(warnings),
            restored_mounts,
        }
    }

    /// How many cache mounts were restored from the sources.
    pub fn restored_mounts(&self) -> usize {
        self.restored_mounts
    }

    /// Number of records read from all sources.
    pub fn len(&self) -> usize {
        self.sources.iter().map(|s| s.records.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The warnings gathered so far (each is returned once).
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn warn(&self, message: String) {
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message);
    }
}

impl CacheImport for Imports {
    fn fetch(&self, key: &Digest, store: &Store) -> Option<CacheRecord> {
        for source in &self.sources {
            let Some(record) = source.records.get(key) else {
                continue;
            };
            let fetched = match &record.layer {
                Some(layer) if !store.blobs().contains(&layer.digest) => {
                    source.fetch_layer(layer, store)
                }
                _ => Ok(()),
            };
            match fetched {
                Ok(()) => return Some(record.to_cache_record()),
                Err(e) => self.warn(format!(
                    "{}: layer of {:?} could not be fetched, so the step runs: {e}",
                    source.name, record.description
                )),
            }
        }
        None
    }
}

impl Source {
    fn fetch_layer(&self, layer: &LayerRef, store: &Store) -> Result<(), RemoteCacheError> {
        match &self.blobs {
            Blobs::Dir(blobs) => {
                let path = blobs.join(layer.digest.hex());
                let mut file =
                    fs::File::open(&path).map_err(RemoteCacheError::io("open", &path))?;
                let mut writer = store.blobs().writer()?;
                std::io::copy(&mut file, &mut writer)
                    .map_err(RemoteCacheError::io("copy", &path))?;
                writer.commit_expecting(&layer.digest)?;
                Ok(())
            }
            Blobs::Registry { remote, reference } => {
                let desc = registry_descriptor(&layer.media_type, layer.digest, layer.size);
                Ok(remote.block_on(remote.client.fetch_blob(reference, &desc, store, &|_| {}))?)
            }
        }
    }
}

fn registry_descriptor(
    media_type: &str,
    digest: Digest,
    size: u64,
) -> builder_registry::Descriptor {
    builder_registry::Descriptor {
        media_type: media_type.to_string(),
        digest,
        size,
        platform: None,
    }
}

fn load_source(
    spec: &ImportSpec,
    store: &Store,
    remote: Option<&Remote>,
) -> Result<Source, RemoteCacheError> {
    let (config, blobs) = match spec {
        ImportSpec::Local(dir) => (load_dir(dir)?, Blobs::Dir(dir.join("blobs").join("sha256"))),
        ImportSpec::Registry(r) => {
            let remote = remote.ok_or_else(|| {
                RemoteCacheError::Spec("importing from a registry needs a registry client".into())
            })?;
            let config = load_registry(remote, r, store)?;
            let blobs = Blobs::Registry {
                remote: remote.clone(),
                reference: r.clone(),
            };
            (config, blobs)
        }
    };
    Ok(Source {
        name: spec.describe(),
        records: config.records.into_iter().map(|r| (r.key, r)).collect(),
        mounts: config.mounts,
        blobs,
    })
}

/// The cache manifest an OCI layout's index names (the first one whose config is ours).
fn load_dir(dir: &Path) -> Result<CacheConfig, RemoteCacheError> {
    let index_path = dir.join("index.json");
    let index_bytes = fs::read(&index_path).map_err(RemoteCacheError::io("read", &index_path))?;
    let index: Index = serde_json::from_slice(&index_bytes)
        .map_err(|e| RemoteCacheError::invalid(index_path.display().to_string(), e))?;
    let blobs = dir.join("blobs").join("sha256");
    for entry in &index.manifests {
        if entry.media_type != media_type::OCI_MANIFEST {
            continue;
        }
        let bytes = read_verified(&blobs, &entry.digest)?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| RemoteCacheError::invalid(format!("manifest {}", entry.digest), e))?;
        if manifest.config.media_type == CACHE_CONFIG {
            let config = read_verified(&blobs, &manifest.config.digest)?;
            return CacheConfig::parse(
                &config,
                &format!("cache config {}", manifest.config.digest),
            );
        }
    }
    Err(RemoteCacheError::invalid(
        index_path.display().to_string(),
        "names no builder cache manifest",
    ))
}

/// A small blob of a layout (manifest or config), checked against its digest.
fn read_verified(blobs: &Path, d: &Digest) -> Result<Vec<u8>, RemoteCacheError> {
    let path = blobs.join(d.hex());
    let file = fs::File::open(&path).map_err(RemoteCacheError::io("open", &path))?;
    let mut bytes = Vec::new();
    file.take(MANIFEST_SIZE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(RemoteCacheError::io("read", &path))?;
    if bytes.len() as u64 > MANIFEST_SIZE_LIMIT || Digest::of(&bytes) != *d {
        return Err(RemoteCacheError::invalid(
            path.display().to_string(),
            format!("content does not match its digest {d}"),
        ));
    }
    Ok(bytes)
}

/// The records of a registry cache manifest, or the inline records of an image.
fn load_registry(
    remote: &Remote,
    r: &Reference,
    store: &Store,
) -> Result<CacheConfig, RemoteCacheError> {
    let (_, kind, bytes) = remote.block_on(remote.client.resolve(r))?;
    match ManifestKind::of(&kind) {
        Some(ManifestKind::Image) => load_registry_image(remote, r, store, &bytes),
        Some(ManifestKind::Index) => load_registry_index(remote, r, store, &bytes),
        None => Err(RemoteCacheError::invalid(
            r.to_string(),
            format!("{kind} is not an image or cache manifest"),
        )),
    }
}

/// The inline records of every platform's image in an index (a multi-platform build with
/// `--cache-to type=inline` puts each platform's records in its own config, as BuildKit). The
/// records' keys include the platform, so they join without clashing. Entries with no inline
/// cache (attestation manifests, images built without it) are passed over; an index where no
/// image has any is refused.
fn load_registry_index(
    remote: &Remote,
    r: &Reference,
    store: &Store,
    bytes: &[u8],
) -> Result<CacheConfig, RemoteCacheError> {
    let index: Index =
        serde_json::from_slice(bytes).map_err(|e| RemoteCacheError::invalid(r.to_string(), e))?;
    let mut joined: Option<CacheConfig> = None;
    for entry in &index.manifests {
        if ManifestKind::of(&entry.media_type) != Some(ManifestKind::Image) {
            continue;
        }
        let at = r.with_digest(entry.digest);
        let (_, _, bytes) = remote.block_on(remote.client.resolve(&at))?;
        let config = match load_registry_image(remote, &at, store, &bytes) {
            Ok(config) => config,
            // Not an image with inline cache (an attestation manifest, say): passed over.
            // A registry or network failure still fails the import.
            Err(RemoteCacheError::Invalid { .. }) => continue,
            Err(e) => return Err(e),
        };
        match &mut joined {
            None => joined = Some(config),
            Some(all) => {
                all.records.extend(config.records);
                all.mounts.extend(config.mounts);
            }
        }
    }
    joined.ok_or_else(|| {
        RemoteCacheError::invalid(
            r.to_string(),
            "is an image index none of whose images carries inline cache (--cache-to type=inline)",
        )
    })
}

/// The records of one registry manifest: a cache manifest's, or an image's inline ones.
fn load_registry_image(
    remote: &Remote,
    r: &Reference,
    store: &Store,
    bytes: &[u8],
) -> Result<CacheConfig, RemoteCacheError> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| RemoteCacheError::invalid(r.to_string(), e))?;
    let c = &manifest.config;
    let desc = registry_descriptor(&c.media_type, c.digest, c.size);
    remote.block_on(remote.client.fetch_blob(r, &desc, store, &|_| {}))?;
    let config_bytes = store.blobs().read(&c.digest)?;
    let what = format!("config of {r}");
    if c.media_type == CACHE_CONFIG {
        return CacheConfig::parse(&config_bytes, &what);
    }
    let mut image: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&config_bytes).map_err(|e| RemoteCacheError::invalid(&what, e))?;
    match image.remove(INLINE_KEY) {
        Some(records) => CacheConfig::from_value(records, &what),
        None => Err(RemoteCacheError::invalid(
            r.to_string(),
            "is neither a cache manifest nor an image with inline cache (--cache-to type=inline)",
        )),
    }
}
