//! An image index kept in the store under a name (`builder build --platform a,b -t name`):
//! the name's record points at the index blob (its id is the index digest, as in docker's
//! containerd image store), and each command that needs one image picks the platform's
//! manifest from it.

use crate::manifest::{Descriptor, Index, media_type};
use crate::{Digest, ImageRecord, Platform, Store, StoreError, read_manifest};

/// The index stored at `digest`, or None when that blob is an image manifest.
pub fn read_index(store: &Store, digest: &Digest) -> Result<Option<Index>, StoreError> {
    let bytes = store.blobs().read(digest)?;
    // Only the fields that tell the two apart: an index has `manifests` and no `config`.
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let shape: Shape = serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
        path: format!("manifest {digest}"),
        source,
    })?;
    let is_index = match shape.media_type.as_deref() {
        Some(media_type::OCI_INDEX) | Some(media_type::DOCKER_MANIFEST_LIST) => true,
        _ => shape.manifests.is_some() && shape.config.is_none(),
    };
    if !is_index {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StoreError::Json {
            path: format!("image index {digest}"),
            source,
        })
}

/// The platforms of an index's image entries, normalized, in index order.
pub fn platforms(index: &Index) -> Vec<Platform> {
    index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| Platform::normalized(&p.os, &p.architecture, p.variant.as_deref()))
        // BuildKit's attestation manifests say `unknown/unknown`.
        .filter(|p| p.os != "unknown")
        .collect()
}

/// The index's entry for `platform` (both sides normalized; a missing variant matches).
pub fn entry_for<'i>(index: &'i Index, platform: &Platform) -> Option<&'i Descriptor> {
    index.manifests.iter().find(|d| {
        d.platform.as_ref().is_some_and(|p| {
            platform.matches(&Platform::normalized(
                &p.os,
                &p.architecture,
                p.variant.as_deref(),
            ))
        })
    })
}

/// The single image `record` stands for on `platform`: itself when it is an image, the
/// matching entry (present in the store) when it is an index; None when the index has no
/// entry for that platform.
pub fn image_for_platform(
    store: &Store,
    record: &ImageRecord,
    platform: &Platform,
) -> Result<Option<ImageRecord>, StoreError> {
    let Some(index) = read_index(store, &record.manifest)? else {
        return Ok(Some(record.clone()));
    };
    let Some(entry) = entry_for(&index, platform) else {
        return Ok(None);
    };
    let manifest = read_manifest(store.blobs(), &entry.digest)?;
    Ok(Some(ImageRecord {
        manifest: entry.digest,
        config: manifest.config.digest,
        created: record.created.clone(),
    }))
}
