//! Small but real images: a gzipped tar layer, a config JSON, an OCI manifest.

use std::io::Write;

use builder_registry::Digest;
use builder_registry::manifest::{OCI_INDEX, OCI_MANIFEST};

use super::store::LayoutStore;

pub struct TestImage {
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    pub config: Digest,
    pub layers: Vec<Digest>,
}

/// A gzipped tar with one file per (name, contents), and its uncompressed digest.
pub fn layer(files: &[(&str, &[u8])]) -> (Vec<u8>, Digest) {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, *data).expect("tar entry");
    }
    let raw = tar.into_inner().expect("tar");
    let diff_id = Digest::of(&raw);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).expect("gzip");
    (gz.finish().expect("gzip"), diff_id)
}

/// Writes an image for `arch` with the given layers into the store.
pub fn build(store: &LayoutStore, arch: &str, layers: &[Vec<(&str, &[u8])>]) -> TestImage {
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut digests = Vec::new();
    for files in layers {
        let (gz, diff_id) = layer(files);
        let d = store.put(&gz);
        layer_descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.to_string(), "size": gz.len()
        }));
        diff_ids.push(diff_id.to_string());
        digests.push(d);
    }
    let config = serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    })
    .to_string();
    let config_digest = store.put(config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": layer_descs
    })
    .to_string()
    .into_bytes();
    let manifest_digest = store.put(&manifest);
    TestImage {
        manifest,
        manifest_digest,
        config: config_digest,
        layers: digests,
    }
}

/// An image whose single layer is `size` bytes of pseudo-random (incompressible) data.
pub fn build_big(store: &LayoutStore, size: usize) -> TestImage {
    let mut data = vec![0u8; size];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    build(store, "amd64", &[vec![("big.bin", &data[..])]])
}

/// An OCI index over (manifest, arch, variant) entries, written to the store.
pub fn index(
    store: &LayoutStore,
    entries: &[(&TestImage, &str, Option<&str>)],
) -> (Vec<u8>, Digest) {
    let manifests: Vec<_> = entries
        .iter()
        .map(|(img, arch, variant)| {
            let mut platform = serde_json::json!({"os": "linux", "architecture": arch});
            if let Some(v) = variant {
                platform["variant"] = serde_json::json!(v);
            }
            serde_json::json!({
                "mediaType": OCI_MANIFEST, "digest": img.manifest_digest.to_string(),
                "size": img.manifest.len(), "platform": platform
            })
        })
        .collect();
    let bytes =
        serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
            .to_string()
            .into_bytes();
    let d = store.put(&bytes);
    (bytes, d)
}
