//! The cache document: the records, serialized as the config of an OCI image manifest whose
//! layers are the records' layer blobs. The same records, without the manifest, are what
//! `type=inline` puts into an image config under [`INLINE_KEY`].

use std::collections::{BTreeMap, HashSet};

use builder_graph::LayerRef;
use builder_solver::StepRecord;
use builder_solver::cache_index::CacheRecord;
use builder_store::Digest;
use builder_store::manifest::{Descriptor, Manifest, media_type};
use serde::{Deserialize, Serialize};

use crate::RemoteCacheError;
use crate::spec::Mode;

/// Media type of the records document (the config blob of a cache manifest).
pub const CACHE_CONFIG: &str = "application/vnd.builder.cache.config.v1+json";

/// The image config field holding inline cache records.
pub const INLINE_KEY: &str = "builder.cache.v1";

const VERSION: u32 = 1;

/// One record: a step's cache key, the layer it added and the step as written, for listings.
/// `layer` is None only in records of older builders, which left out steps that changed
/// nothing; importing builds read those as misses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub key: Digest,
    pub layer: Option<LayerRef>,
    pub description: String,
}

impl Record {
    pub fn to_cache_record(&self) -> CacheRecord {
        CacheRecord {
            layer: self.layer.clone(),
            description: self.description.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheConfig {
    pub version: u32,
    pub records: Vec<Record>,
    /// `mounts=true`: the contents of the build's cache mounts, as chunk blobs (see `mounts`).
    /// Absent from exports without it, so their documents are what they were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<crate::mounts::MountRecord>,
}

impl CacheConfig {
    /// The records of `steps` that `mode` keeps, sorted by key (so the same build exports the
    /// same document).
    pub fn from_steps(steps: &[StepRecord], mode: Mode) -> CacheConfig {
        let mut seen = HashSet::new();
        let mut records: Vec<Record> = steps
            .iter()
            .filter(|s| mode == Mode::Max || s.in_image)
            .filter(|s| seen.insert(s.key))
            .map(|s| Record {
                key: s.key,
                layer: s.record.layer.clone(),
                description: s.record.description.clone(),
            })
            .collect();
        records.sort_by_key(|r| r.key);
        CacheConfig {
            version: VERSION,
            records,
            mounts: Vec::new(),
        }
    }

    /// Each record's layer in the blob an export ships: in `compression`, the build's, as its
    /// image's own layers are (the same blobs for the records of those layers, which is what
    /// lets `type=inline` records name the image's layers). A compile stage's plain tar is
    /// compressed here, when an export first needs it.
    pub fn compress_layers(
        &mut self,
        store: &builder_store::Store,
        compression: builder_snapshot::Compression,
    ) -> Result<(), RemoteCacheError> {
        for layer in self.records.iter_mut().filter_map(|r| r.layer.as_mut()) {
            *layer = builder_snapshot::layer_in(store, layer, compression)
                .map_err(|e| RemoteCacheError::Compress(layer.diff_id, e))?;
        }
        Ok(())
    }

    pub fn parse(bytes: &[u8], what: &str) -> Result<CacheConfig, RemoteCacheError> {
        let config: CacheConfig =
            serde_json::from_slice(bytes).map_err(|e| RemoteCacheError::invalid(what, e))?;
        config.check(what)
    }

    pub fn from_value(
        value: serde_json::Value,
        what: &str,
    ) -> Result<CacheConfig, RemoteCacheError> {
        let config: CacheConfig =
            serde_json::from_value(value).map_err(|e| RemoteCacheError::invalid(what, e))?;
        config.check(what)
    }

    fn check(self, what: &str) -> Result<CacheConfig, RemoteCacheError> {
        if self.version != VERSION {
            return Err(RemoteCacheError::invalid(
                what,
                format!("cache format version {} is not supported", self.version),
            ));
        }
        Ok(self)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serializing plain data to JSON cannot fail")
    }

    /// The distinct blobs the records and cache mounts name, in record order, then the
    /// mounts' chunks.
    pub fn layers(&self) -> Vec<&LayerRef> {
        let mut seen = HashSet::new();
        self.records
            .iter()
            .filter_map(|r| r.layer.as_ref())
            .chain(crate::mounts::chunk_refs(&self.mounts))
            .filter(|l| seen.insert(l.digest))
            .collect()
    }

    /// An OCI manifest for these records, whose config (`config_bytes`) is [`Self::to_json`].
    pub fn manifest(&self, config_bytes: &[u8]) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.into()),
            config: Descriptor::new(
                CACHE_CONFIG,
                Digest::of(config_bytes),
                config_bytes.len() as u64,
            ),
            layers: self
                .layers()
                .into_iter()
                .map(|l| Descriptor::new(l.media_type.clone(), l.digest, l.size))
                .collect(),
            annotations: BTreeMap::new(),
        }
    }
}

/// Encodes a manifest; it is what gets stored and pushed, so its digest is of these bytes.
pub fn manifest_bytes(m: &Manifest) -> Vec<u8> {
    serde_json::to_vec(m).expect("serializing plain data to JSON cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(n: u8, layer: bool, in_image: bool) -> StepRecord {
        StepRecord {
            key: Digest::of(&[n]),
            record: CacheRecord {
                layer: layer.then(|| LayerRef {
                    diff_id: Digest::of(&[n, 1]),
                    digest: Digest::of(&[n, 2]),
                    size: 10 + u64::from(n),
                    media_type: media_type::OCI_LAYER_GZIP.into(),
                }),
                description: format!("step {n}"),
            },
            in_image,
        }
    }

    #[test]
    fn modes_select_steps_and_manifest_lists_layers_once() {
        let steps = [
            step(1, true, true),
            step(2, false, true),
            step(3, true, false),
        ];
        let min = CacheConfig::from_steps(&steps, Mode::Min);
        assert_eq!(min.records.len(), 2);
        let max = CacheConfig::from_steps(&steps, Mode::Max);
        assert_eq!(max.records.len(), 3);
        let bytes = max.to_json();
        let m = max.manifest(&bytes);
        assert_eq!(m.config.media_type, CACHE_CONFIG);
        assert_eq!(m.config.digest, Digest::of(&bytes));
        assert_eq!(m.layers.len(), 2);
        assert_eq!(CacheConfig::parse(&bytes, "x").unwrap(), max);
    }

    #[test]
    fn rejects_other_versions_and_garbage() {
        let mut c = CacheConfig::from_steps(&[step(1, true, true)], Mode::Min);
        c.version = 99;
        let err = CacheConfig::parse(&c.to_json(), "cache")
            .unwrap_err()
            .to_string();
        assert!(err.contains("version 99"), "{err}");
        assert!(CacheConfig::parse(b"{", "cache").is_err());
    }
}
