//! Unpacked layers and writable views of them: what RUN and COPY run on, and what `builder
//! run`/`debug` start containers from.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use builder_store::{Digest, LayerRef, Store};

use crate::{ActiveSnapshot, Snapshotter};

/// Unpacked layers and writable snapshots on top of them.
pub struct LayerStore<'a> {
    store: &'a Store,
    /// Found on first use: the probe mounts and unmounts an overlay, and the unmount waits for
    /// the file system to sync (tens of ms on a busy disk), which a fully cached build never needs.
    snapshotter: OnceLock<Snapshotter>,
    work_root: PathBuf,
    /// `Some`: every view is made this way; `None`: the best this host allows, found on first
    /// use.
    forced: Option<Snapshotter>,
}

impl<'a> LayerStore<'a> {
    /// The layer views of `store`'s snapshots. `forced` picks the snapshotter (the chroot
    /// sandbox needs copies: see `builder_solver::sandbox_meta::snapshotter_for`); `None`
    /// detects the best one.
    pub fn new(store: &'a Store, forced: Option<Snapshotter>) -> Result<Self, String> {
        let work_root = store.work_dir();
        fs::create_dir_all(&work_root).map_err(|e| format!("{}: {e}", work_root.display()))?;
        // What killed builds left behind; live snapshots, diffs and blob writes of concurrent
        // builds are locked.
        crate::sweep_stale(&work_root);
        store.remove_abandoned_tmp();
        Ok(LayerStore {
            store,
            snapshotter: OnceLock::new(),
            work_root,
            forced,
        })
    }

    pub fn snapshotter(&self) -> Snapshotter {
        *self.snapshotter.get_or_init(|| {
            self.forced
                .unwrap_or_else(|| crate::detect_snapshotter(&self.work_root))
        })
    }

    /// Where views and step scratch space live (the store's work directory).
    pub fn work_root(&self) -> &Path {
        &self.work_root
    }

    /// The unpacked directory of `layer` on top of `below` (the unpacked layers beneath it,
    /// topmost first, whose OCI chain id is `chain_below`), unpacking its blob the first time.
    ///
    /// A layer that carries every parent directory of its entries (all layers builder writes,
    /// and those of docker and BuildKit) unpacks the same on any stack and is kept under its
    /// diff id. One whose entries reach through what lies below (an entry `esc/pwned` over a
    /// lower symlink `esc`, see `crate::stack`) is kept under a name made of its
    /// diff id and the chain below, since its unpacked form is only right on that stack.
    fn layer_dir(
        &self,
        layer: &LayerRef,
        below: &[PathBuf],
        chain_below: Option<&Digest>,
    ) -> Result<PathBuf, String> {
        let dir = self.store.snapshots_dir().join(layer.diff_id.hex());
        if dir.is_dir() {
            return Ok(dir);
        }
        let on_stack = Digest::of(
            format!(
                "builder unpacked {} on {}",
                layer.diff_id,
                chain_below.map(Digest::to_string).unwrap_or_default()
            )
            .as_bytes(),
        );
        let stacked = self.store.snapshots_dir().join(on_stack.hex());
        if stacked.is_dir() {
            return Ok(stacked);
        }
        let tmp = tempfile::Builder::new()
            .prefix(".unpack-")
            .tempdir_in(self.store.snapshots_dir())
            .map_err(|e| format!("creating unpack dir: {e}"))?;
        let blob = self
            .store
            .blobs()
            .open(&layer.digest)
            .map_err(|e| e.to_string())?;
        let stats = crate::apply_layer_on(std::io::BufReader::new(blob), tmp.path(), below)
            .map_err(|e| format!("unpacking layer {}: {e}", layer.digest))?;
        let dir = if stats.depends_on_lowers {
            stacked
        } else {
            dir
        };
        let tmp = tmp.keep();
        if let Err(e) = fs::rename(&tmp, &dir) {
            // Another build unpacked the same layer first; theirs is as good as ours.
            let _ = fs::remove_dir_all(&tmp);
            if !dir.is_dir() {
                return Err(format!("storing unpacked layer {}: {e}", layer.diff_id));
            }
        }
        Ok(dir)
    }

    /// Lower directories for a rootfs, topmost first, as overlayfs wants them.
    fn lowers(&self, layers: &[LayerRef]) -> Result<Vec<PathBuf>, String> {
        let mut lowers: Vec<PathBuf> = Vec::with_capacity(layers.len());
        let mut chain: Option<Digest> = None;
        for layer in layers {
            let dir = self.layer_dir(layer, &lowers, chain.as_ref())?;
            lowers.insert(0, dir);
            // The OCI chain id: the bottom layer's diff id, then sha256("<chain> <diff id>").
            chain = Some(match chain {
                None => layer.diff_id,
                Some(c) => Digest::of(format!("{c} {}", layer.diff_id).as_bytes()),
            });
        }
        Ok(lowers)
    }

    /// A writable rootfs made of `layers` (bottom first); dropped, it disappears.
    pub fn prepare(&self, layers: &[LayerRef]) -> Result<ActiveSnapshot, String> {
        let lowers = self.lowers(layers)?;
        crate::prepare(self.snapshotter(), &lowers, &self.work_root).map_err(|e| e.to_string())
    }

    /// Like `prepare`, for a RUN: below the image's layers lies a layer holding the
    /// mount points the sandbox needs (`/proc`, `/sys`, `/dev`, `/etc/hosts`...). Where the
    /// image lacks them, the sandbox then finds them instead of creating them in the step's
    /// upper directory and deleting them afterwards — which cost more than the rest of a
    /// `RUN true` on ext4 (see BENCHMARKS.md).
    pub fn prepare_for_run(&self, layers: &[LayerRef]) -> Result<ActiveSnapshot, String> {
        let mut lowers = self.lowers(layers)?;
        // Both snapshotters: with the copy one, stubs created and removed in `/etc` would
        // leave `/etc` touched and in the diff — a layer that differs from overlay's for the
        // same step (seen inside docker containers, where overlay mounts are refused).
        lowers.push(self.mount_point_layer()?);
        crate::prepare(self.snapshotter(), &lowers, &self.work_root).map_err(|e| e.to_string())
    }

    /// Like `prepare_for_run`, with `top` (a diff in overlay format, as a kept failed step's)
    /// above `layers`: the rootfs as that step left it.
    pub fn prepare_for_run_on(
        &self,
        layers: &[LayerRef],
        top: &Path,
    ) -> Result<ActiveSnapshot, String> {
        let mut lowers = self.lowers(layers)?;
        lowers.insert(0, top.to_path_buf());
        lowers.push(self.mount_point_layer()?);
        crate::prepare(self.snapshotter(), &lowers, &self.work_root).map_err(|e| e.to_string())
    }

    fn mount_point_layer(&self) -> Result<PathBuf, String> {
        let dir = self.work_root.join("mountpoints-v1");
        if dir.is_dir() {
            return Ok(dir);
        }
        let tmp = tempfile::Builder::new()
            .prefix(".mountpoints-")
            .tempdir_in(&self.work_root)
            .map_err(|e| e.to_string())?;
        for d in ["proc", "sys", "dev", "etc"] {
            fs::create_dir(tmp.path().join(d)).map_err(|e| e.to_string())?;
        }
        for f in ["etc/hosts", "etc/resolv.conf", "etc/hostname"] {
            fs::write(tmp.path().join(f), b"").map_err(|e| e.to_string())?;
        }
        let tmp = tmp.keep();
        if fs::rename(&tmp, &dir).is_err() {
            // Another build made it first.
            let _ = fs::remove_dir_all(&tmp);
        }
        Ok(dir)
    }
}

impl Drop for LayerStore<'_> {
    /// Scratch directories are deleted in the background while later steps run; a build is
    /// over only when they are gone.
    fn drop(&mut self) {
        crate::wait_for_removals();
    }
}
