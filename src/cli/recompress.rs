//! `force-compression=true`: every layer of an image in the compression the build asked for,
//! including those it did not make (a base image's), as BuildKit converts them.

use anyhow::{Context as _, bail};
use builder_snapshot::{Compression, recompress_layer};
use builder_store::manifest::{BlobCompression as LayerKind, Descriptor};
use builder_store::{ImageRecord, Store, read_config, read_manifest};

/// The image's layers with each one in another compression than `compression` recompressed
/// into the store (its diff id checked against the config's); `None` when all already are.
pub fn forced_layers(
    store: &Store,
    image: &ImageRecord,
    compression: Compression,
) -> anyhow::Result<Option<Vec<Descriptor>>> {
    let manifest = read_manifest(store.blobs(), &image.manifest)?;
    let config = read_config(store.blobs(), &image.config)?;
    let want = match compression {
        Compression::Gzip { .. } => LayerKind::Gzip,
        Compression::Zstd { .. } => LayerKind::Zstd,
        Compression::Uncompressed => LayerKind::None,
    };
    let mut changed = false;
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for (i, layer) in manifest.layers.iter().enumerate() {
        // Same compression kind: kept, as BuildKit converts only across kinds.
        if LayerKind::of_layer_media_type(&layer.media_type) == Some(want) {
            layers.push(layer.clone());
            continue;
        }
        let Some(diff_id) = config.rootfs.diff_ids.get(i) else {
            bail!("image {} has more layers than diff ids", image.manifest);
        };
        let input = store.blobs().open(&layer.digest)?;
        let mut out = store.blobs().writer()?;
        let written = recompress_layer(input, &mut out, compression)
            .with_context(|| format!("recompressing layer {}", layer.digest))?;
        if written.diff_id != *diff_id {
            bail!(
                "layer {} decompresses to {}, not to the image's diff id {diff_id}",
                layer.digest,
                written.diff_id
            );
        }
        let (digest, size) = out.commit()?;
        let mut d = Descriptor::new(compression.media_type(), digest, size);
        d.annotations = layer.annotations.clone();
        layers.push(d);
        changed = true;
    }
    Ok(changed.then_some(layers))
}
