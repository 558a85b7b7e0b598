//! Which blob holds a layer in another compression than the one it was stored in.
//!
//! A build stores each step's layer as a plain tar (see `builder_snapshot::layer_variant`)
//! and compresses it only when an image, an output or a cache export needs it, as BuildKit
//! does. The compressed blob is remembered here by the layer's diff id and the compression's
//! kind, so the next build of the same layer (a cache hit) finds it instead of compressing
//! the layer again.
//!
//! One file per layer and kind: `layer-variants/<diff id hex>-<kind>`, holding the blob's
//! digest and size as JSON. Written as every store file is (temp file, fsync, rename), so a
//! crash leaves the old file or none; a file that does not parse, or whose blob a prune
//! removed since, reads as missing. `builder prune` removes the file of a layer it removes
//! (see [`crate::gc::sweep`]).

use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::manifest::BlobCompression;
use crate::{Digest, Store, StoreError, fsutil};

/// The remembered variants of one store's layers.
pub struct LayerVariants<'s> {
    store: &'s Store,
    dir: PathBuf,
}

/// A stored blob holding a layer's tar in some compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    pub digest: Digest,
    pub size: u64,
}

impl<'s> LayerVariants<'s> {
    pub fn new(store: &'s Store) -> LayerVariants<'s> {
        LayerVariants {
            store,
            dir: store.layer_variants_dir(),
        }
    }

    fn path(&self, diff_id: &Digest, kind: BlobCompression) -> PathBuf {
        self.dir
            .join(fsutil::per_layer_file_name(diff_id, kind_name(kind)))
    }

    /// The blob holding the layer `diff_id` compressed as `kind`, if one was made and is still
    /// stored.
    pub fn get(
        &self,
        diff_id: &Digest,
        kind: BlobCompression,
    ) -> Result<Option<Variant>, StoreError> {
        let path = self.path(diff_id, kind);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("read", path)(e)),
        };
        let Ok(variant) = serde_json::from_slice::<Variant>(&bytes) else {
            return Ok(None);
        };
        Ok(self
            .store
            .blobs()
            .contains(&variant.digest)
            .then_some(variant))
    }

    /// Remembers that `variant` holds the layer `diff_id` compressed as `kind`.
    pub fn put(
        &self,
        diff_id: &Digest,
        kind: BlobCompression,
        variant: Variant,
    ) -> Result<(), StoreError> {
        fsutil::ensure_dir(&self.dir)?;
        let bytes = serde_json::to_vec(&variant).expect("serializing plain data cannot fail");
        fsutil::write_atomic(&self.path(diff_id, kind), &bytes)
    }
}

fn kind_name(kind: BlobCompression) -> &'static str {
    match kind {
        BlobCompression::None => "tar",
        BlobCompression::Gzip => "gzip",
        BlobCompression::Zstd => "zstd",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variant_is_found_by_diff_id_and_kind_while_its_blob_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let variants = LayerVariants::new(&store);
        let id = Digest::of(b"layer tar");
        let digest = store.blobs().put_bytes(b"compressed layer").unwrap();
        let v = Variant { digest, size: 16 };
        assert_eq!(variants.get(&id, BlobCompression::Gzip).unwrap(), None);
        variants.put(&id, BlobCompression::Gzip, v).unwrap();
        assert_eq!(variants.get(&id, BlobCompression::Gzip).unwrap(), Some(v));
        assert_eq!(variants.get(&id, BlobCompression::Zstd).unwrap(), None);

        // Its blob pruned: the variant must be made again.
        store.blobs().delete(&digest).unwrap();
        assert_eq!(variants.get(&id, BlobCompression::Gzip).unwrap(), None);
        // A torn or foreign file reads as missing too.
        fs::write(variants.path(&id, BlobCompression::Zstd), b"{").unwrap();
        assert_eq!(variants.get(&id, BlobCompression::Zstd).unwrap(), None);
    }
}
