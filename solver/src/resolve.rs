//! Resolving base images from the local image store.

use builder_store::image::ImageConfig;
use builder_store::{Digest, Store, read_config, read_manifest};

use crate::image_json::spec_from_config;
use builder_dockerfile2graph::{GitCheckout, ImageResolver, RemoteFile, ResolvedImage};
use builder_graph::LayerRef;
use builder_graph::image::Platform;

/// Turns a user-written reference into the store's key (`busybox` → `docker.io/library/busybox:latest`).
pub type Normalizer = dyn Fn(&str) -> Result<String, String> + Send + Sync;
/// Makes an image available in the store (a registry pull), given its normalized name. It may
/// borrow (the build's progress display, say) for `'f`.
pub type Fetcher<'f> = dyn Fn(&str, &Platform) -> Result<(), String> + Send + Sync + 'f;
/// Downloads an `ADD <url>` file into the store's blobs.
pub type UrlFetcher = dyn Fn(&str) -> Result<RemoteFile, String> + Send + Sync;
/// Checks out `ADD <git URL>` sources: (url, keep .git) → the checkout.
pub type GitFetcher = dyn Fn(&str, bool) -> Result<GitCheckout, String> + Send + Sync;

pub struct StoreResolver<'a> {
    pub store: &'a Store,
    pub normalize: &'a Normalizer,
    /// Called when the image is not in the store (or always, with `--pull`).
    pub fetch: Option<&'a Fetcher<'a>>,
    pub always_fetch: bool,
    /// Downloads `ADD <url>` files; None refuses them.
    pub fetch_url: Option<&'a UrlFetcher>,
    /// Checks out `ADD <git URL>` sources; None refuses them.
    pub fetch_git: Option<&'a GitFetcher>,
}

impl StoreResolver<'_> {
    fn lookup(&self, name: &str) -> Result<Option<Digest>, String> {
        if let Some(record) = self.store.images().get(name).map_err(|e| e.to_string())? {
            return Ok(Some(record.manifest));
        }
        if let Some(digest) = stored_pinned_manifest(self.store, name) {
            return Ok(Some(digest));
        }
        Ok(None)
    }
}

/// A reference pinned by digest (`name@sha256:…`) whose manifest blob is in the store: those
/// bytes are the image whatever name brought them (a pull under another name, an
/// `oci-layout://` context), so neither a name record nor the network is needed.
fn stored_pinned_manifest(store: &Store, name: &str) -> Option<Digest> {
    let (_, digest) = name.rsplit_once('@')?;
    let digest: Digest = digest.parse().ok()?;
    // An image manifest, not an index: a multi-platform digest still goes to the fetcher,
    // which picks the platform's manifest.
    (store.blobs().contains(&digest) && read_manifest(store.blobs(), &digest).is_ok())
        .then_some(digest)
}

impl ImageResolver for StoreResolver<'_> {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, String> {
        let name = (self.normalize)(reference)?;
        let pinned = stored_pinned_manifest(self.store, &name);
        let mut manifest_digest = if self.always_fetch && pinned.is_none() {
            None
        } else {
            self.lookup(&name)?
        };
        if manifest_digest.is_none() {
            match self.fetch {
                Some(fetch) => {
                    fetch(&name, platform)?;
                    manifest_digest = self.lookup(&name)?;
                }
                None => {
                    return Err(format!(
                        "base image {reference:?} ({name}) is not in the local store; build or pull it first (builder pull {reference})"
                    ));
                }
            }
        }
        let manifest_digest =
            manifest_digest.ok_or_else(|| format!("image {name} not found after pulling it"))?;
        let manifest_digest = platform_manifest(self.store, manifest_digest, platform, &name)?;
        let (config, layers) =
            image_layers(self.store, &manifest_digest).map_err(|e| format!("image {name}: {e}"))?;
        Ok(ResolvedImage {
            reference: name,
            manifest_digest,
            spec: spec_from_config(&config, layers),
        })
    }

    fn fetch_url(&self, url: &str) -> Result<RemoteFile, String> {
        match self.fetch_url {
            Some(fetch) => fetch(url),
            None => Err(format!(
                "ADD {url}: downloading files is not available in this build"
            )),
        }
    }

    fn fetch_git(&self, url: &str, keep_git_dir: bool) -> Result<GitCheckout, String> {
        match self.fetch_git {
            Some(fetch) => fetch(url, keep_git_dir),
            None => Err(format!(
                "ADD {url}: git sources are not available in this build"
            )),
        }
    }
}

/// A name holding an image index (a `--platform a,b` build kept in the store) stands for the
/// target platform's manifest in it.
fn platform_manifest(
    store: &Store,
    digest: Digest,
    platform: &Platform,
    name: &str,
) -> Result<Digest, String> {
    use builder_store::stored_index::{entry_for, platforms, read_index};
    let Some(index) = read_index(store, &digest).map_err(|e| format!("image {name}: {e}"))? else {
        return Ok(digest);
    };
    entry_for(&index, platform)
        .map(|d| d.digest)
        .ok_or_else(|| {
            let held: Vec<String> = platforms(&index).iter().map(|p| p.to_string()).collect();
            format!(
                "image {name} has no {platform} image (its index holds {})",
                held.join(", ")
            )
        })
}

/// The config and layers of a stored image.
pub fn image_layers(
    store: &Store,
    manifest_digest: &Digest,
) -> Result<(ImageConfig, Vec<LayerRef>), String> {
    let blobs = store.blobs();
    let manifest = read_manifest(blobs, manifest_digest).map_err(|e| e.to_string())?;
    let config = read_config(blobs, &manifest.config.digest).map_err(|e| e.to_string())?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(format!(
            "inconsistent image: its config lists {} layers, its manifest {}",
            config.rootfs.diff_ids.len(),
            manifest.layers.len()
        ));
    }
    let layers = manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(d, diff_id)| LayerRef {
            diff_id: *diff_id,
            digest: d.digest,
            size: d.size,
            media_type: d.media_type.clone(),
        })
        .collect();
    Ok((config, layers))
}
