//! A reference to one stored layer: what a rootfs state, an image's layer list and a cache
//! record are made of.

use serde::{Deserialize, Serialize};

use crate::Digest;

/// One layer of an image: what a rootfs state is made of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    /// sha256 of the uncompressed tar (what image configs list in `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Digest of the blob as stored (compressed).
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}
