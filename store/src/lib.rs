//! builder-store: the content-addressed store under a builder root.
//!
//! # On-disk layout
//!
//! ```text
//! <root>/                    $BUILDER_ROOT, --root, or default_root(); mode 0700
//!                            (see private_root: it is what keeps other users out)
//!   blobs/sha256/<hex>       immutable, read-only blobs named by their sha256
//!   tmp/                     in-flight writes; same file system as blobs/ so
//!                            committing is an atomic link. Leftovers from a
//!                            crash are ignored and removed by Store::clean_tmp.
//!   images.json              the name index (see images)
//!   snapshots/               unpacked layers, owned by builder-snapshot
//!   cache/index.db           the solver's cache records (SQLite, WAL mode)
//!   cache-mounts/            `RUN --mount=type=cache` directories
//!   work/                    snapshots of running steps, scratch of COPY/ADD
//!   locks/                   the solver's per-step locks (flock), shared across processes
//!   context-cache/           the build context's stat cache
//!   http-cache/              `ADD <url>` downloads
//!   git/mirrors/             bare mirrors of git sources, one per remote URL
//!   debug/<id>/              failed RUN steps kept by `--on-error=keep` (step.json, upper/)
//!   sbom-scans/              per-layer SBOM scan results (see layer_scans)
//!   layer-variants/          which blob holds a layer in another compression (layer_variants)
//!   lock                     flock target serializing index updates
//!   gc.lock                  build (shared) / prune and verify (exclusive) leases
//! ```
//!
//! - [`digest`]: sha256 digests and hashing readers/writers.
//! - [`blobs`]: blobs stored by digest, written atomically and verified.
//! - [`images`]: the named image index (`builder images`, `tag`, `rmi`).
//! - [`image`]: the docker-compatible image config.
//! - [`manifest`]: manifests, indexes, descriptors and media types.
//! - [`assemble`]: storing a config + layers as an image.
//! - [`gc`]: image roots, prune selection and the sweep of unreferenced blobs and snapshots.
//! - [`verify`]: checking blobs, snapshots and images against what they claim, and repairing.

pub mod assemble;
pub mod blobs;
pub mod digest;
mod direct_write;
mod error;
mod fsutil;
pub mod gc;
pub mod image;
pub mod images;
mod layer_ref;
pub mod layer_scans;
pub mod layer_variants;
pub mod manifest;
pub mod platform;
pub mod private_root;
pub mod stored_index;
pub mod time;
pub mod units;
pub mod verify;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use assemble::{StoredImage, put_image, put_manifest_variant, read_config, read_manifest};
pub use blobs::{BlobStore, BlobWriter, PrehashedBlobWriter};
pub use digest::{Digest, DigestParseError, Hasher, HashingReader, HashingWriter};
pub use error::StoreError;
pub use images::{ImageEntry, ImageIndex, ImageRecord, RmiReport};
pub use layer_ref::LayerRef;
pub use platform::{InvalidPlatform, Platform};

/// The store root when neither `$BUILDER_ROOT` nor `--root` is given:
/// `$XDG_DATA_HOME/builder`, else `~/.local/share/builder`, per the XDG base
/// directory spec (a rootless tool keeps its data in the user's home).
pub fn default_root() -> PathBuf {
    let non_empty = |v: std::ffi::OsString| (!v.is_empty()).then(|| PathBuf::from(v));
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").and_then(non_empty) {
        return xdg.join("builder");
    }
    let home = std::env::var_os("HOME")
        .and_then(non_empty)
        .unwrap_or_else(|| PathBuf::from("/"));
    home.join(".local/share/builder")
}

/// The store root for one invocation: `--root` if given, else a non-empty
/// `$BUILDER_ROOT`, else [`default_root`].
pub fn resolve_root(cli_root: Option<&Path>) -> PathBuf {
    if let Some(root) = cli_root {
        return root.to_path_buf();
    }
    match std::env::var_os("BUILDER_ROOT") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => default_root(),
    }
}

// The store's layout, spelled once (see the module docs). Free functions too, for the sweeps
// and lock code that hold only a root path.
pub fn cache_index_dir(root: &Path) -> PathBuf {
    root.join("cache")
}
pub fn cache_mounts_dir(root: &Path) -> PathBuf {
    root.join("cache-mounts")
}
pub fn work_dir(root: &Path) -> PathBuf {
    root.join("work")
}
pub fn locks_dir(root: &Path) -> PathBuf {
    root.join("locks")
}
pub fn context_cache_dir(root: &Path) -> PathBuf {
    root.join("context-cache")
}
pub fn http_cache_dir(root: &Path) -> PathBuf {
    root.join("http-cache")
}
pub fn git_dir(root: &Path) -> PathBuf {
    root.join("git")
}
pub fn debug_dir(root: &Path) -> PathBuf {
    root.join("debug")
}
pub fn blobs_dir(root: &Path) -> PathBuf {
    root.join("blobs").join("sha256")
}
pub fn snapshots_dir(root: &Path) -> PathBuf {
    root.join("snapshots")
}
pub fn tmp_dir(root: &Path) -> PathBuf {
    root.join("tmp")
}
/// The image names file and the lock writers of it hold.
pub fn images_file(root: &Path) -> (PathBuf, PathBuf) {
    (root.join("images.json"), root.join("lock"))
}
/// Held shared by builds, exclusive by a prune (see [`gc`]).
pub fn gc_lock_file(root: &Path) -> PathBuf {
    root.join("gc.lock")
}
pub fn layer_scans_dir(root: &Path) -> PathBuf {
    root.join("sbom-scans")
}
pub fn layer_variants_dir(root: &Path) -> PathBuf {
    root.join("layer-variants")
}

/// An opened store root.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    blobs: BlobStore,
    images: ImageIndex,
}

impl Store {
    /// Opens the store at `root`, creating the layout if missing. The root is made (or
    /// tightened to) `0700`: see [`private_root`].
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        private_root::make_private(root)?;
        let blob_dir = blobs_dir(root);
        let tmp = tmp_dir(root);
        for dir in [&blob_dir, &tmp, &snapshots_dir(root)] {
            fsutil::ensure_dir(dir)?;
        }
        let (images, images_lock) = images_file(root);
        Ok(Store {
            root: root.to_path_buf(),
            blobs: BlobStore::new(blob_dir, tmp),
            images: ImageIndex::new(images, images_lock),
        })
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub fn images(&self) -> &ImageIndex {
        &self.images
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn snapshots_dir(&self) -> PathBuf {
        snapshots_dir(&self.root)
    }

    pub fn tmp_dir(&self) -> PathBuf {
        tmp_dir(&self.root)
    }

    /// Where the solver keeps its cache index (`index.db`).
    pub fn cache_index_dir(&self) -> PathBuf {
        cache_index_dir(&self.root)
    }

    /// `RUN --mount=type=cache` directories, one per cache id (and seed).
    pub fn cache_mounts_dir(&self) -> PathBuf {
        cache_mounts_dir(&self.root)
    }

    /// Snapshots of running steps and COPY/ADD scratch space.
    pub fn work_dir(&self) -> PathBuf {
        work_dir(&self.root)
    }

    /// Per-step locks (flock) shared by concurrent builds.
    pub fn locks_dir(&self) -> PathBuf {
        locks_dir(&self.root)
    }

    /// The build context's stat cache (file checksums by path, size and times).
    pub fn context_cache_dir(&self) -> PathBuf {
        context_cache_dir(&self.root)
    }

    /// `ADD <url>` downloads and their validators (ETag, Last-Modified).
    pub fn http_cache_dir(&self) -> PathBuf {
        http_cache_dir(&self.root)
    }

    /// Git sources: one bare mirror per remote URL (`git/mirrors/<sha256 of the URL>`), so a
    /// rebuild of a commit already fetched fetches nothing.
    pub fn git_dir(&self) -> PathBuf {
        git_dir(&self.root)
    }

    /// Failed RUN steps kept by `builder build --on-error=keep` for `builder debug`.
    pub fn debug_dir(&self) -> PathBuf {
        debug_dir(&self.root)
    }

    /// Per-layer SBOM scan results by diff id (see [`layer_scans`]).
    pub fn layer_scans_dir(&self) -> PathBuf {
        layer_scans_dir(&self.root)
    }

    /// Compressed blobs of layers stored as plain tars, by diff id (see [`layer_variants`]).
    pub fn layer_variants_dir(&self) -> PathBuf {
        layer_variants_dir(&self.root)
    }

    /// Removes the blob temp files (`tmp/blob-*`) of writers that died: each live
    /// [`BlobWriter`] holds a flock on its file, so one whose lock can be taken has no owner in
    /// any process (a killed build's). Safe while other builds write blobs; other temp files
    /// are left to [`Store::clean_tmp`]'s age rule. Returns how many were removed.
    pub fn remove_abandoned_tmp(&self) -> usize {
        let tmp = self.tmp_dir();
        let Ok(entries) = fs::read_dir(&tmp) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let is_blob = entry
                .file_name()
                .as_encoded_bytes()
                .starts_with(blobs::TMP_BLOB_PREFIX.as_bytes());
            if !is_blob || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let path = entry.path();
            let Ok(file) = fs::File::open(&path) else {
                continue;
            };
            // Held while unlinking, so a writer that loses the race sees its name gone
            // (BlobStore::writer checks) rather than writing into a deleted file.
            if fs2::FileExt::try_lock_exclusive(&file).is_ok() && fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Removes temp files not modified for `older_than`. Age is the only safe
    /// test: a younger file may belong to a writer in another process.
    /// Returns how many entries were removed.
    pub fn clean_tmp(&self, older_than: Duration) -> Result<usize, StoreError> {
        let tmp = self.tmp_dir();
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in fs::read_dir(&tmp).map_err(StoreError::io("list", &tmp))? {
            let entry = entry.map_err(StoreError::io("list", &tmp))?;
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            if age < older_than {
                continue;
            }
            let result = if meta.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match result {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("remove", path)(e)),
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_precedence_cli_env_xdg_home() {
        // Both variables are read in one test so parallel tests cannot interleave.
        // SAFETY: no other test in this crate reads or writes these variables.
        unsafe {
            std::env::set_var("XDG_DATA_HOME", "/xdg");
            assert_eq!(default_root(), PathBuf::from("/xdg/builder"));
            std::env::set_var("XDG_DATA_HOME", "");
            std::env::set_var("HOME", "/home/u");
            assert_eq!(
                default_root(),
                PathBuf::from("/home/u/.local/share/builder")
            );
            std::env::remove_var("BUILDER_ROOT");
            assert_eq!(resolve_root(None), default_root());
            std::env::set_var("BUILDER_ROOT", "/env/root");
            assert_eq!(resolve_root(None), PathBuf::from("/env/root"));
            assert_eq!(resolve_root(Some(Path::new("/cli"))), PathBuf::from("/cli"));
        }
    }
}
