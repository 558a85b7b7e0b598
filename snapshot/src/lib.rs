//! builder-snapshot: how image layers become directories and directories become layers.
//!
//! Every layer is extracted once ([`apply_layer_on`]) into its own directory in
//! *overlay format* (whiteouts are 0/0 char devices, opaque dirs carry
//! `user.overlay.opaque=y`), its entries' parents resolved through the layers
//! below by the rule in [`stack`], which the flattened exports follow too. A build step gets a writable view of its parent
//! layers from [`prepare`] — an overlayfs mount with `userxattr`, or a copy when
//! overlay is unavailable ([`detect_snapshotter`]) — and [`ActiveSnapshot::finish`]
//! yields the step's diff in the same format, which [`write_layer`] turns into a
//! reproducible OCI layer tar.

mod background_hash;
pub mod cancel;
mod cleanup;
mod compress;
mod copy_snapshotter;
mod error;
pub mod ids;
mod incompressible;
mod layer_store;
mod layer_variant;
mod meta;
pub mod overlay_format;
mod parallel_gzip;
mod reader;
mod recompress;
mod safe_path;
mod snapshotter;
pub mod stack;
mod sys;
mod writer;

pub use cleanup::{remove_later, sweep_stale, wait_for_removals};
pub use compress::{
    Compression, LayerEncoder, MEDIA_TYPE_TAR, MEDIA_TYPE_TAR_GZIP, MEDIA_TYPE_TAR_ZSTD,
    ZSTD_MAX_LEVEL, default_threads,
};
pub use error::SnapshotError;
pub use layer_store::LayerStore;
pub use layer_variant::layer_in;
pub use parallel_gzip::{CHUNK_SIZE as GZIP_CHUNK_SIZE, ParallelGzipWriter};
pub use reader::{ApplyStats, apply_layer, apply_layer_on, layer_diff_id, layer_tar};
pub use recompress::recompress_layer;
pub use snapshotter::{ActiveSnapshot, Diff, Snapshotter, detect_snapshotter, prepare};
pub use writer::{LayerDigests, LayerOptions, write_layer};
