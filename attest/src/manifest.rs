//! Attestation manifests as BuildKit's image exporter writes them (docs/attestations/
//! attestation-storage.md, the image-config form): an image manifest whose layers are in-toto
//! statements (`application/vnd.in-toto+json`, annotated with their predicate type) and whose
//! config is an `unknown/unknown` image config, referred to from the index by a descriptor
//! naming the image manifest it is about.

use builder_store::layer_scans::LayerScans;
use builder_store::manifest::{Descriptor, Manifest, Platform, media_type};
use builder_store::{BlobStore, Digest, Store, StoreError};

use crate::sbom::LayerScan;
use serde_json::json;

use crate::intoto;

/// The index descriptor annotation saying what the manifest is.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// Its value for attestation manifests.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";
/// The index descriptor annotation naming the image manifest attested.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// One serialized in-toto statement and its predicate type.
pub struct Statement {
    pub predicate_type: String,
    pub bytes: Vec<u8>,
}

/// Stores the statements, their config and manifest; returns the manifest's index descriptor.
pub fn put_attestation_manifest(
    blobs: &BlobStore,
    subject: &Digest,
    statements: &[Statement],
) -> Result<Descriptor, StoreError> {
    let mut layers = Vec::new();
    for s in statements {
        let digest = blobs.put_bytes(&s.bytes)?;
        let mut d = Descriptor::new(intoto::MEDIA_TYPE, digest, s.bytes.len() as u64);
        d.annotations.insert(
            intoto::PREDICATE_ANNOTATION.into(),
            s.predicate_type.clone(),
        );
        layers.push(d);
    }
    // The statements are not compressed: their digests are their diff ids.
    let config = json!({
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>(),
        },
    });
    let config_bytes = serde_json::to_vec(&config).map_err(|source| StoreError::Json {
        path: "attestation config".into(),
        source,
    })?;
    let config_digest = blobs.put_bytes(&config_bytes)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        config: Descriptor::new(
            media_type::OCI_CONFIG,
            config_digest,
            config_bytes.len() as u64,
        ),
        layers,
        annotations: Default::default(),
    };
    let bytes = serde_json::to_vec(&manifest).map_err(|source| StoreError::Json {
        path: "attestation manifest".into(),
        source,
    })?;
    let digest = blobs.put_bytes(&bytes)?;
    let mut d = Descriptor::new(media_type::OCI_MANIFEST, digest, bytes.len() as u64);
    d.annotations
        .insert(REFERENCE_TYPE.into(), ATTESTATION_MANIFEST.into());
    d.annotations
        .insert(REFERENCE_DIGEST.into(), subject.to_string());
    d.platform = Some(Platform {
        architecture: "unknown".into(),
        os: "unknown".into(),
        os_version: None,
        os_features: Vec::new(),
        variant: None,
    });
    Ok(d)
}

/// Scans the layers of a stored image manifest (see [`crate::sbom::scan_layers`]), reusing the
/// scan of each layer already scanned by an earlier build (kept by diff id in `scans`) and
/// keeping the new ones. Returns the inventory and how many layers were read.
pub fn scan_stored_image(
    store: &Store,
    manifest: &Digest,
) -> Result<(crate::sbom::Inventory, usize), crate::AttestError> {
    let blobs = store.blobs();
    let m = builder_store::read_manifest(blobs, manifest)?;
    let config = builder_store::read_config(blobs, &m.config.digest)?;
    let scans = LayerScans::new(store);
    let format = crate::sbom::LAYER_SCAN_FORMAT;
    let mut layers = Vec::new();
    let mut read = 0;
    for (i, layer) in m.layers.iter().enumerate() {
        // The config names each layer's diff id; a config that does not (foreign, truncated)
        // only loses the reuse.
        let diff_id = config.rootfs.diff_ids.get(i).copied();
        let stored = match &diff_id {
            Some(id) => scans.get(id, format)?,
            None => None,
        };
        if let Some(scan) = stored.as_deref().and_then(LayerScan::from_bytes) {
            layers.push(scan);
            continue;
        }
        let scan = crate::sbom::scan_layer(&layer.digest.to_string(), blobs.open(&layer.digest)?)?;
        read += 1;
        if let Some(id) = &diff_id {
            scans.put(id, format, &scan.to_bytes()?)?;
        }
        layers.push(scan);
    }
    Ok((crate::sbom::merge_layers(&layers), read))
}

/// Scans the layers of an image given as layer blobs of the store, bottom first (a stage's
/// file system, for `scan-stage`), reusing stored scans as [`scan_stored_image`] does.
pub fn scan_stored_layers(
    store: &Store,
    layers: &[(Digest, Digest)],
) -> Result<crate::sbom::Inventory, crate::AttestError> {
    let scans = LayerScans::new(store);
    let format = crate::sbom::LAYER_SCAN_FORMAT;
    let mut out = Vec::new();
    for (blob, diff_id) in layers {
        if let Some(scan) = scans
            .get(diff_id, format)?
            .as_deref()
            .and_then(LayerScan::from_bytes)
        {
            out.push(scan);
            continue;
        }
        let scan = crate::sbom::scan_layer(&blob.to_string(), store.blobs().open(blob)?)?;
        scans.put(diff_id, format, &scan.to_bytes()?)?;
        out.push(scan);
    }
    Ok(crate::sbom::merge_layers(&out))
}
