//! The final filesystem of an image (`--output type=local` / `type=tar`).
//!
//! Two passes over the layers. The plan pass walks layers top-down and
//! records, per layer, which tar entries survive: an entry loses to the same
//! path in a higher layer, to a whiteout (`.wh.<name>`) or opaque marker
//! (`.wh..wh..opq`) in a higher layer, and to a higher non-directory at any
//! ancestor path. The emit pass then walks layers bottom-up writing only the
//! survivors, so no whiteout is ever "applied" and nothing is written only to
//! be deleted. Memory is one set of paths, not file contents.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::{BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use builder_cache::manifest::{Compression, Descriptor, media_type};
use builder_cache::{BlobStore, Digest, Store, read_manifest};

use crate::ExportError;
use crate::paths::clean_entry_path;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

pub(crate) type LayerArchive = tar::Archive<Box<dyn Read>>;

/// Something a surviving layer entry is written to.
pub(crate) trait RootfsSink {
    /// `link_to` overrides a hard link's target (see `LayerPlan::relink`).
    fn entry(
        &mut self,
        layer: &Digest,
        path: &Path,
        entry: &mut tar::Entry<'_, Box<dyn Read>>,
        link_to: Option<&Path>,
    ) -> Result<(), ExportError>;
}

/// The layers of the image with manifest `manifest`, bottom first. A
/// multi-platform index is refused by name: the caller must pick a platform.
pub(crate) fn image_layers(
    store: &Store,
    manifest: &Digest,
) -> Result<Vec<Descriptor>, ExportError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let bytes = store.blobs().read(manifest)?;
    let probe: Probe = serde_json::from_slice(&bytes).map_err(|source| ExportError::Json {
        what: format!("manifest {manifest}"),
        source,
    })?;
    let is_image = matches!(
        probe.media_type.as_deref(),
        Some(media_type::OCI_MANIFEST | media_type::DOCKER_MANIFEST)
    ) || (probe.media_type.is_none() && probe.manifests.is_none());
    if !is_image {
        let media_type = probe
            .media_type
            .unwrap_or_else(|| media_type::OCI_INDEX.to_string());
        return Err(ExportError::UnsupportedManifest {
            digest: *manifest,
            media_type,
        });
    }
    Ok(read_manifest(store.blobs(), manifest)?.layers)
}

pub(crate) fn open_layer(
    blobs: &BlobStore,
    layer: &Descriptor,
) -> Result<LayerArchive, ExportError> {
    let unsupported = || ExportError::UnsupportedLayer {
        digest: layer.digest,
        media_type: layer.media_type.clone(),
    };
    let file = BufReader::new(blobs.open(&layer.digest)?);
    let reader: Box<dyn Read> =
        match Compression::of_layer_media_type(&layer.media_type).ok_or_else(unsupported)? {
            Compression::None => Box::new(file),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(
                |source| ExportError::LayerTar {
                    layer: layer.digest,
                    source,
                },
            )?),
        };
    Ok(tar::Archive::new(reader))
}

/// What a layer entry means for the merged view.
enum Item {
    Whiteout(PathBuf),
    Opaque(PathBuf),
    Entry {
        path: PathBuf,
        is_dir: bool,
    },
    /// The root directory itself, or aufs bookkeeping (`.wh..wh.plnk` etc.).
    Ignore,
}

fn classify(layer: &Digest, entry: &tar::Entry<'_, Box<dyn Read>>) -> Result<Item, ExportError> {
    let raw = entry.path().map_err(|source| ExportError::LayerTar {
        layer: *layer,
        source,
    })?;
    let unsafe_entry = |reason| ExportError::UnsafeEntry {
        layer: *layer,
        path: raw.display().to_string(),
        reason,
    };
    let Some(path) = clean_entry_path(&raw).map_err(unsafe_entry)? else {
        return Ok(Item::Ignore);
    };
    // As bytes: the whiteout of a name that is not UTF-8 is not UTF-8 either, and must still
    // delete it.
    let name = path.file_name().map_or(&b""[..], |n| n.as_bytes());
    let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
    if name == OPAQUE_MARKER.as_bytes() {
        return Ok(Item::Opaque(parent));
    }
    if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        if target.starts_with(WHITEOUT_PREFIX.as_bytes()) || target.is_empty() {
            return Ok(Item::Ignore);
        }
        return Ok(Item::Whiteout(parent.join(OsStr::from_bytes(target))));
    }
    Ok(Item::Entry {
        path,
        is_dir: entry.header().entry_type().is_dir(),
    })
}

/// State accumulated from the layers above the one being planned.
#[derive(Default)]
struct Upper {
    /// Paths removed by whiteouts (with everything below them).
    deleted: HashSet<PathBuf>,
    /// Directories whose lower content is hidden.
    opaque: HashSet<PathBuf>,
    /// Paths already provided, and whether as a directory.
    claimed: HashMap<PathBuf, bool>,
}

impl Upper {
    fn hides(&self, path: &Path) -> bool {
        if self.deleted.contains(path) || self.claimed.contains_key(path) {
            return true;
        }
        path.ancestors().skip(1).any(|a| {
            self.deleted.contains(a)
                || self.opaque.contains(a)
                || self.claimed.get(a) == Some(&false)
        })
    }
}

/// What to write from one layer.
#[derive(Default)]
struct LayerPlan {
    /// Ordinals of entries that survive as they are.
    keep: HashSet<usize>,
    /// Hidden entries whose content a surviving hard link still needs: the
    /// data is written under the link's path instead (ordinal → link path).
    materialize_as: HashMap<usize, PathBuf>,
    /// Surviving hard links to hidden targets: `None` = already written by
    /// `materialize_as`; `Some(p)` = link to `p` instead.
    relink: HashMap<usize, Option<PathBuf>>,
}

impl LayerPlan {
    /// A hard link in a layer tar refers to an earlier entry of the same tar.
    /// If that entry lost to an upper layer (e.g. the file was rewritten), the
    /// link still means the old content, so it must not dangle or pick up the
    /// new file: the first such link takes over the target's data.
    fn fix_hard_links(
        &mut self,
        links: &[(usize, PathBuf, PathBuf)],
        last_at: &HashMap<PathBuf, usize>,
    ) {
        for (ordinal, path, target) in links {
            if !self.keep.contains(ordinal) {
                continue;
            }
            let Some(target_ordinal) = last_at.get(target).filter(|t| *t < ordinal) else {
                continue;
            };
            if self.keep.contains(target_ordinal) {
                continue;
            }
            match self.materialize_as.get(target_ordinal) {
                Some(first) => {
                    self.relink.insert(*ordinal, Some(first.clone()));
                }
                None => {
                    self.materialize_as.insert(*target_ordinal, path.clone());
                    self.relink.insert(*ordinal, None);
                }
            }
        }
    }
}

/// For each layer (bottom first), what survives into the merged view.
fn plan(blobs: &BlobStore, layers: &[Descriptor]) -> Result<Vec<LayerPlan>, ExportError> {
    let mut upper = Upper::default();
    let mut plans: Vec<LayerPlan> = layers.iter().map(|_| LayerPlan::default()).collect();
    for (idx, layer) in layers.iter().enumerate().rev() {
        let mut archive = open_layer(blobs, layer)?;
        let tar_err = |source| ExportError::LayerTar {
            layer: layer.digest,
            source,
        };
        // Within one layer the last entry for a path wins, as when extracting.
        let mut entries: HashMap<PathBuf, (usize, bool)> = HashMap::new();
        let mut last_at: HashMap<PathBuf, usize> = HashMap::new();
        let mut links = Vec::new();
        let (mut whiteouts, mut opaques) = (Vec::new(), Vec::new());
        for (ordinal, entry) in archive.entries().map_err(tar_err)?.enumerate() {
            let entry = entry.map_err(tar_err)?;
            match classify(&layer.digest, &entry)? {
                Item::Whiteout(p) => whiteouts.push(p),
                Item::Opaque(p) => opaques.push(p),
                Item::Entry { path, is_dir } => {
                    if entry.header().entry_type().is_hard_link() {
                        let target = hard_link_target(&layer.digest, &entry)?;
                        links.push((ordinal, path.clone(), target));
                    }
                    last_at.insert(path.clone(), ordinal);
                    if !upper.hides(&path) {
                        entries.insert(path, (ordinal, is_dir));
                    }
                }
                Item::Ignore => {}
            }
        }
        let plan = &mut plans[idx];
        for (path, (ordinal, is_dir)) in entries {
            plan.keep.insert(ordinal);
            upper.claimed.insert(path, is_dir);
        }
        plan.fix_hard_links(&links, &last_at);
        upper.deleted.extend(whiteouts);
        upper.opaque.extend(opaques);
    }
    Ok(plans)
}

/// The cleaned path a hard link entry points at.
pub(crate) fn hard_link_target(
    layer: &Digest,
    entry: &tar::Entry<'_, Box<dyn Read>>,
) -> Result<PathBuf, ExportError> {
    let raw = entry
        .link_name()
        .map_err(|source| ExportError::LayerTar {
            layer: *layer,
            source,
        })?
        .unwrap_or_default();
    let unsafe_link = |reason| ExportError::UnsafeEntry {
        layer: *layer,
        path: raw.display().to_string(),
        reason,
    };
    clean_entry_path(&raw)
        .map_err(unsafe_link)?
        .ok_or_else(|| unsafe_link("is a hard link to the root"))
}

/// Writes the merged filesystem of `layers` to `sink`, lower layers first.
pub(crate) fn flatten(
    blobs: &BlobStore,
    layers: &[Descriptor],
    sink: &mut dyn RootfsSink,
) -> Result<(), ExportError> {
    let plans = plan(blobs, layers)?;
    for (layer, plan) in layers.iter().zip(plans) {
        let mut archive = open_layer(blobs, layer)?;
        let tar_err = |source| ExportError::LayerTar {
            layer: layer.digest,
            source,
        };
        for (ordinal, entry) in archive.entries().map_err(tar_err)?.enumerate() {
            let mut entry = entry.map_err(tar_err)?;
            if let Some(path) = plan.materialize_as.get(&ordinal) {
                sink.entry(&layer.digest, path, &mut entry, None)?;
                continue;
            }
            if !plan.keep.contains(&ordinal) {
                continue;
            }
            let relink = match plan.relink.get(&ordinal) {
                Some(None) => continue,
                Some(Some(p)) => Some(p.as_path()),
                None => None,
            };
            if let Item::Entry { path, .. } = classify(&layer.digest, &entry)? {
                sink.entry(&layer.digest, &path, &mut entry, relink)?;
            }
        }
    }
    Ok(())
}
