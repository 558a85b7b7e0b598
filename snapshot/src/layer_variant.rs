//! `layer_in`: a step's layer in the compression an image or an export asks for.
//!
//! A step whose layer the built image holds stores it in the image's compression; every other
//! step (a multi-stage build's compile stages) stores a plain tar: its digest is its diff id,
//! computed anyway, and no CPU goes into compressing a layer no image holds. When an image,
//! an output or a cache export takes a step's layer in another compression than it was stored
//! in (a compile stage's tar exported with `mode=max`, a layer cached by a gzip build taken
//! by a zstd one), it is converted here, once per layer and compression kind: the result is
//! remembered in the store (`builder_store::layer_variants`). BuildKit too keeps a step's
//! result as a snapshot and makes a blob only when an exporter asks for one.
//!
//! Measured (BENCHMARKS.md, "Issue #17: layers compressed when needed"): gzip at level 6
//! costs ~22 s of CPU per GB of layer on the benchmark machine, writing the plain tar ~1 s.

use builder_store::layer_variants::{LayerVariants, Variant};
use builder_store::manifest::BlobCompression;
use builder_store::{LayerRef, Store};

use crate::compress::Compression;
use crate::error::{DiffIdMismatch, SnapshotError};
use crate::recompress::recompress_layer;

/// A build's own `layer` (a step's) in `compression`: itself when its blob already is of that
/// kind (any level serves, as for the cache key), else a blob converted from it, made now or
/// found from an earlier build. Base image layers are not for this: they keep their blobs
/// unless an output forces a compression (the CLI's `force-compression`), as in BuildKit.
pub fn layer_in(
    store: &Store,
    layer: &LayerRef,
    compression: Compression,
) -> Result<LayerRef, SnapshotError> {
    let kind = match compression {
        Compression::Gzip { .. } => BlobCompression::Gzip,
        Compression::Zstd { .. } => BlobCompression::Zstd,
        Compression::Uncompressed => BlobCompression::None,
    };
    if BlobCompression::of_layer_media_type(&layer.media_type) == Some(kind) {
        return Ok(layer.clone());
    }
    let variants = LayerVariants::new(store);
    let stored = |v: Variant| LayerRef {
        diff_id: layer.diff_id,
        digest: v.digest,
        size: v.size,
        media_type: compression.media_type().into(),
    };
    let remembered = variants
        .get(&layer.diff_id, kind)
        .map_err(|e| store_err("reading the layer's variants", e))?;
    if let Some(v) = remembered {
        return Ok(stored(v));
    }
    let input = store
        .blobs()
        .open(&layer.digest)
        .map_err(|e| store_err("opening the layer", e))?;
    // recompress_layer hashes what it writes: the store need not hash it again.
    let mut out = store
        .blobs()
        .prehashed_writer()
        .map_err(|e| store_err("storing the compressed layer", e))?;
    let written = recompress_layer(std::io::BufReader::new(input), &mut out, compression)?;
    if written.diff_id != layer.diff_id {
        return Err(SnapshotError::DiffIdMismatch(Box::new(DiffIdMismatch {
            digest: layer.digest,
            read: written.diff_id,
            diff_id: layer.diff_id,
        })));
    }
    let (digest, size) = out
        .commit_as(written.digest)
        .map_err(|e| store_err("storing the compressed layer", e))?;
    let v = Variant { digest, size };
    variants
        .put(&layer.diff_id, kind, v)
        .map_err(|e| store_err("remembering the compressed layer", e))?;
    Ok(stored(v))
}

fn store_err(what: &'static str, e: builder_store::StoreError) -> SnapshotError {
    SnapshotError::Store {
        what,
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use builder_store::Digest;
    use std::io::Write;

    fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
        b.into_inner().unwrap()
    }

    /// A plain-tar layer stored the way a step outside the image stores it.
    fn stored_tar(store: &Store, tar: &[u8]) -> LayerRef {
        let mut w = store.blobs().writer().unwrap();
        w.write_all(tar).unwrap();
        let (digest, size) = w.commit().unwrap();
        LayerRef {
            diff_id: Digest::of(tar),
            digest,
            size,
            media_type: Compression::Uncompressed.media_type().into(),
        }
    }

    fn blob_count(store: &Store) -> usize {
        store.blobs().list().unwrap().count()
    }

    #[test]
    fn a_tar_layer_is_compressed_once_and_the_blob_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tar = tar_of("f", &b"some layer content\n".repeat(10_000));
        let layer = stored_tar(&store, &tar);

        let gz = layer_in(&store, &layer, Compression::GZIP_DEFAULT).unwrap();
        assert_eq!(gz.media_type, crate::MEDIA_TYPE_TAR_GZIP);
        assert_eq!(gz.diff_id, layer.diff_id);
        assert!(gz.size < layer.size / 10, "{} of {}", gz.size, layer.size);
        let blobs = blob_count(&store);
        // The same bytes as gzipping the tar directly (the encoder a step writing gzip at once
        // uses): whether a layer was converted or not, the image is the same.
        let mut direct = Vec::new();
        crate::recompress_layer(&tar[..], &mut direct, Compression::GZIP_DEFAULT).unwrap();
        assert_eq!(gz.digest, Digest::of(&direct));

        // Asked again (another build, a level that differs): the remembered blob, nothing new.
        let again = layer_in(&store, &layer, Compression::Gzip { level: 9 }).unwrap();
        assert_eq!(again, gz);
        assert_eq!(blob_count(&store), blobs);

        // A gzip layer asked for as zstd is converted too; one already zstd is itself.
        let zst = layer_in(&store, &gz, Compression::ZSTD_DEFAULT).unwrap();
        assert_eq!(zst.media_type, crate::MEDIA_TYPE_TAR_ZSTD);
        assert_eq!(
            layer_in(&store, &zst, Compression::ZSTD_DEFAULT).unwrap(),
            zst
        );
        // And back to the plain tar: the step's own blob.
        let plain = layer_in(&store, &zst, Compression::Uncompressed).unwrap();
        assert_eq!((plain.digest, plain.size), (layer.digest, layer.size));

        // The compressed blob pruned: made again.
        store.blobs().delete(&gz.digest).unwrap();
        assert_eq!(
            layer_in(&store, &layer, Compression::GZIP_DEFAULT).unwrap(),
            gz
        );
    }

    #[test]
    fn a_layer_that_is_not_its_diff_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut layer = stored_tar(&store, &tar_of("f", b"real"));
        layer.diff_id = Digest::of(b"what the record claims");
        let err = layer_in(&store, &layer, Compression::GZIP_DEFAULT).unwrap_err();
        assert!(matches!(err, SnapshotError::DiffIdMismatch(_)), "{err}");
        assert!(err.to_string().contains("cache verify --repair"), "{err}");
    }
}
