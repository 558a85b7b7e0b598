//! Turning a config plus already-stored layer blobs into a stored image.

use std::collections::BTreeMap;

use crate::image::ImageConfig;
use crate::manifest::{Descriptor, Manifest, ManifestFormat, media_type};
use crate::{BlobStore, Digest, StoreError};

/// The digests of a stored image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    pub manifest: Digest,
    pub manifest_size: u64,
    pub manifest_media_type: &'static str,
    /// The config digest: the image id.
    pub config: Digest,
}

/// Writes `config` and a manifest listing `layers` (whose blobs must already
/// be in the store) and returns their digests. The layer count must match the
/// config's `diff_ids`, or the image would be unloadable.
pub fn put_image(
    blobs: &BlobStore,
    config: &ImageConfig,
    layers: &[Descriptor],
    format: ManifestFormat,
) -> Result<StoredImage, StoreError> {
    if config.rootfs.diff_ids.len() != layers.len() {
        return Err(StoreError::LayerCountMismatch {
            diff_ids: config.rootfs.diff_ids.len(),
            layers: layers.len(),
        });
    }
    if let Some(missing) = layers.iter().find(|l| !blobs.contains(&l.digest)) {
        return Err(StoreError::BlobNotFound(missing.digest));
    }
    let config_bytes = config.to_json().map_err(|source| StoreError::Json {
        path: "image config".to_string(),
        source,
    })?;
    let config_digest = blobs.put_bytes(&config_bytes)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(format.manifest_media_type().to_string()),
        config: Descriptor::new(
            format.config_media_type(),
            config_digest,
            config_bytes.len() as u64,
        ),
        layers: layers.to_vec(),
        annotations: Default::default(),
    };
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|source| StoreError::Json {
        path: "image manifest".to_string(),
        source,
    })?;
    let manifest_digest = blobs.put_bytes(&manifest_bytes)?;
    Ok(StoredImage {
        manifest: manifest_digest,
        manifest_size: manifest_bytes.len() as u64,
        manifest_media_type: format.manifest_media_type(),
        config: config_digest,
    })
}

/// The stored image `manifest` under `format`'s media types (manifest, config and layers) and
/// with `annotations` as its manifest annotations, written as a new manifest blob; the config
/// blob is shared, so the image id stays the same. `layers`, when given, replace the
/// manifest's (the same diff ids in other blobs: a recompression). An export asks for this
/// when it wants Docker schema2 types (`oci-mediatypes=false`), annotations or forced
/// compression; other exports use the stored manifest as it is.
pub fn put_manifest_variant(
    blobs: &BlobStore,
    manifest: &Digest,
    format: ManifestFormat,
    annotations: &BTreeMap<String, String>,
    layers: Option<&[Descriptor]>,
) -> Result<StoredImage, StoreError> {
    let mut m = read_manifest(blobs, manifest)?;
    if let Some(layers) = layers {
        if layers.len() != m.layers.len() {
            return Err(StoreError::LayerCountMismatch {
                diff_ids: m.layers.len(),
                layers: layers.len(),
            });
        }
        if let Some(missing) = layers.iter().find(|l| !blobs.contains(&l.digest)) {
            return Err(StoreError::BlobNotFound(missing.digest));
        }
        m.layers = layers.to_vec();
    }
    m.media_type = Some(format.manifest_media_type().to_string());
    m.config.media_type = format.config_media_type().to_string();
    for layer in &mut m.layers {
        layer.media_type = layer_media_type(&layer.media_type, format).ok_or_else(|| {
            StoreError::NoDockerMediaType {
                digest: layer.digest,
                media_type: layer.media_type.clone(),
            }
        })?;
    }
    m.annotations = annotations.clone();
    let bytes = serde_json::to_vec(&m).map_err(|source| StoreError::Json {
        path: "image manifest".to_string(),
        source,
    })?;
    let digest = blobs.put_bytes(&bytes)?;
    Ok(StoredImage {
        manifest: digest,
        manifest_size: bytes.len() as u64,
        manifest_media_type: format.manifest_media_type(),
        config: m.config.digest,
    })
}

/// A layer's media type in `format`: the same bytes have both an OCI and a Docker name for
/// plain and gzip tars; zstd (and anything else) exists only as OCI.
fn layer_media_type(mt: &str, format: ManifestFormat) -> Option<String> {
    use media_type::*;
    let (oci, docker) = match mt {
        OCI_LAYER | DOCKER_LAYER => (OCI_LAYER, DOCKER_LAYER),
        OCI_LAYER_GZIP | DOCKER_LAYER_GZIP => (OCI_LAYER_GZIP, DOCKER_LAYER_GZIP),
        // Foreign layers keep their type: only Docker names them, and OCI tools read it.
        DOCKER_FOREIGN_LAYER_GZIP => return Some(mt.to_string()),
        other if format == ManifestFormat::Oci => return Some(other.to_string()),
        _ => return None,
    };
    Some(match format {
        ManifestFormat::Oci => oci.to_string(),
        ManifestFormat::Docker => docker.to_string(),
    })
}

/// Reads and parses a manifest blob.
pub fn read_manifest(blobs: &BlobStore, digest: &Digest) -> Result<Manifest, StoreError> {
    let bytes = blobs.read(digest)?;
    serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
        path: format!("manifest {digest}"),
        source,
    })
}

/// Reads and parses an image config blob.
pub fn read_config(blobs: &BlobStore, digest: &Digest) -> Result<ImageConfig, StoreError> {
    let bytes = blobs.read(digest)?;
    ImageConfig::from_json(&bytes).map_err(|source| StoreError::Json {
        path: format!("config {digest}"),
        source,
    })
}
