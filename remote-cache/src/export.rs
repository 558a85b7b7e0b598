//! Writing cache exports: an OCI image layout directory, a registry manifest, or records
//! embedded in the built image's config.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use builder_registry::{ProgressEvent, Reference};
use builder_snapshot::Compression;
use builder_solver::StepRecord;
use builder_solver::UsedCacheMount;
use builder_store::image::ImageConfig;
use builder_store::manifest::{Descriptor, Index, ManifestFormat, annotation, media_type};
use builder_store::{Digest, Store, StoredImage, put_image, read_manifest};

use crate::format::{CacheConfig, manifest_bytes};
use crate::spec::{ExportSpec, ExportTarget, Mode};
use crate::{Remote, RemoteCacheError};

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSummary {
    pub records: usize,
    pub layers: usize,
    /// Digest of the cache manifest.
    pub manifest: Digest,
    /// Registry exports: blobs (layers and config) sent, linked from another repository of the
    /// registry, or already there.
    pub uploaded: usize,
    pub mounted: usize,
    pub existing: usize,
    /// `mounts=true`: cache mounts exported, and why any was left out.
    pub cache_mounts: usize,
    pub warnings: Vec<String>,
}

impl std::fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} cache records ({} layers)", self.records, self.layers)?;
        if self.cache_mounts > 0 {
            write!(f, ", {} cache mounts", self.cache_mounts)?;
        }
        if self.uploaded + self.mounted + self.existing > 0 {
            write!(
                f,
                "; blobs: {} uploaded, {} mounted, {} already there",
                self.uploaded, self.mounted, self.existing
            )?;
        }
        Ok(())
    }
}

/// Exports the records of `steps` that the spec's mode keeps, with their layer blobs in
/// `compression` (the build's). `remote` is needed for `type=registry`.
pub fn export(
    spec: &ExportSpec,
    store: &Store,
    steps: &[StepRecord],
    cache_mounts: &[UsedCacheMount],
    remote: Option<&Remote>,
    compression: Compression,
) -> Result<ExportSummary, RemoteCacheError> {
    let mut config = CacheConfig::from_steps(steps, spec.mode);
    config.compress_layers(store, compression)?;
    let mut warnings = Vec::new();
    if spec.mounts {
        let (records, w) = crate::mounts::pack(store, cache_mounts, spec.mounts_max_size)?;
        config.mounts = records;
        warnings = w;
    }
    let summary = match &spec.target {
        ExportTarget::Local(dir) => export_local(dir, store, &config),
        ExportTarget::Registry(r) => {
            let remote = remote.ok_or_else(|| {
                RemoteCacheError::Spec("exporting to a registry needs a registry client".into())
            })?;
            export_registry(remote, r, store, &config)
        }
        ExportTarget::Inline => Err(RemoteCacheError::Spec(
            "inline cache goes into the image config (embed_inline), not to a destination".into(),
        )),
    }?;
    Ok(ExportSummary {
        cache_mounts: config.mounts.len(),
        warnings,
        ..summary
    })
}

/// The directory becomes an OCI image layout whose index names the cache manifest. Blobs
/// already there are kept (they are content-addressed), so exporting again to the same
/// directory only adds what is new; the index is replaced last, atomically, so a reader sees
/// the old export or the new one.
fn export_local(
    dir: &Path,
    store: &Store,
    config: &CacheConfig,
) -> Result<ExportSummary, RemoteCacheError> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(RemoteCacheError::io("create", &blobs))?;
    for layer in config.layers() {
        copy_blob_out(store, &layer.digest, &blobs)?;
    }
    let config_bytes = config.to_json();
    write_blob(&blobs, &config_bytes)?;
    let manifest = config.manifest(&config_bytes);
    let bytes = manifest_bytes(&manifest);
    let digest = write_blob(&blobs, &bytes)?;
    write_atomic(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let mut entry = Descriptor::new(media_type::OCI_MANIFEST, digest, bytes.len() as u64);
    entry
        .annotations
        .insert(annotation::REF_NAME.into(), "latest".into());
    let index = Index {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.into()),
        manifests: vec![entry],
        annotations: Default::default(),
    };
    let index_bytes = serde_json::to_vec(&index).expect("serializing plain data cannot fail");
    write_atomic(&dir.join("index.json"), &index_bytes)?;
    Ok(ExportSummary {
        records: config.records.len(),
        layers: manifest.layers.len(),
        manifest: digest,
        uploaded: 0,
        mounted: 0,
        existing: 0,
        cache_mounts: 0,
        warnings: Vec::new(),
    })
}

/// Copies a store blob into a layout's blob directory unless it is there already.
fn copy_blob_out(store: &Store, d: &Digest, blobs: &Path) -> Result<(), RemoteCacheError> {
    let dest = blobs.join(d.hex());
    if dest.is_file() {
        return Ok(());
    }
    let mut src = store.blobs().open(d)?;
    let mut tmp = tempfile::NamedTempFile::new_in(blobs)
        .map_err(RemoteCacheError::io("create temp file in", blobs))?;
    std::io::copy(&mut src, &mut tmp).map_err(RemoteCacheError::io("write", tmp.path()))?;
    tmp.persist(&dest)
        .map_err(|e| RemoteCacheError::io("rename to", &dest)(e.error))?;
    Ok(())
}

fn write_blob(blobs: &Path, bytes: &[u8]) -> Result<Digest, RemoteCacheError> {
    let d = Digest::of(bytes);
    let dest = blobs.join(d.hex());
    if !dest.is_file() {
        write_atomic(&dest, bytes)?;
    }
    Ok(d)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RemoteCacheError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(RemoteCacheError::io("create temp file in", dir))?;
    tmp.write_all(bytes)
        .map_err(RemoteCacheError::io("write", tmp.path()))?;
    tmp.persist(path)
        .map_err(|e| RemoteCacheError::io("rename to", path)(e.error))?;
    Ok(())
}

/// Pushes the cache manifest (config from the store, layers from the store) to `r`. The
/// registry client skips blobs the repository has and mounts those it knows in a sibling.
fn export_registry(
    remote: &Remote,
    r: &Reference,
    store: &Store,
    config: &CacheConfig,
) -> Result<ExportSummary, RemoteCacheError> {
    let config_bytes = config.to_json();
    store.blobs().put_bytes(&config_bytes)?;
    let manifest = config.manifest(&config_bytes);
    let bytes = manifest_bytes(&manifest);
    let [uploaded, mounted, existing] = [(); 3].map(|_| AtomicUsize::new(0));
    let count = |event: ProgressEvent| {
        let counter = match event {
            ProgressEvent::UploadComplete { .. } => &uploaded,
            ProgressEvent::BlobMounted { .. } => &mounted,
            ProgressEvent::BlobExists { .. } => &existing,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    };
    let push = remote
        .client
        .push(r, &bytes, media_type::OCI_MANIFEST, store, &count);
    let digest = remote.block_on(push)?;
    Ok(ExportSummary {
        records: config.records.len(),
        layers: manifest.layers.len(),
        manifest: digest,
        uploaded: uploaded.into_inner(),
        mounted: mounted.into_inner(),
        existing: existing.into_inner(),
        cache_mounts: 0,
        warnings: Vec::new(),
    })
}

/// The built image again, with the records of its own layers in its config
/// (`--cache-to type=inline`): pushed, it serves as `--cache-from` for later builds. Its layers
/// were compressed with `compression` when it was made: the records name those blobs.
pub fn embed_inline(
    store: &Store,
    image: &StoredImage,
    config: &ImageConfig,
    steps: &[StepRecord],
    compression: Compression,
) -> Result<(StoredImage, ImageConfig), RemoteCacheError> {
    let mut records = CacheConfig::from_steps(steps, Mode::Min);
    records.compress_layers(store, compression)?;
    let mut config = config.clone();
    config.inline_cache =
        Some(serde_json::to_value(&records).expect("serializing plain data to JSON cannot fail"));
    let manifest = read_manifest(store.blobs(), &image.manifest)?;
    let format = match manifest.effective_media_type() {
        media_type::DOCKER_MANIFEST => ManifestFormat::Docker,
        _ => ManifestFormat::Oci,
    };
    let stored = put_image(store.blobs(), &config, &manifest.layers, format)?;
    Ok((stored, config))
}
