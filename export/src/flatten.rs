//! The final filesystem of an image (`--output type=local` / `type=tar`).
//!
//! Two passes over the layers. The apply pass builds the merged tree in memory,
//! bottom layer first, by the same rule the unpacked layers of a `RUN` step
//! follow (`builder_snapshot::stack`): each entry's parent is resolved in the
//! tree built so far, following its symlinks inside the root, so an entry
//! `esc/pwned` over a lower symlink `esc -> /tmp/x` lands at `tmp/x/pwned`;
//! whiteouts (`.wh.<name>`) delete, opaque markers (`.wh..wh..opq`) hide what
//! lower layers put in the directory, a non-directory replaces a whole
//! directory tree, a directory over a directory merges. Each node remembers the
//! entry (layer, ordinal) that provides it. The emit pass then walks layers
//! bottom-up writing only those entries, at their resolved paths, so no
//! whiteout is ever "applied" and nothing is written only to be deleted.
//! Memory is one tree of paths, not file contents.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::io::{BufReader, Read};
use std::ops::Bound;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use builder_snapshot::stack::{Node, StackView, resolve_parent};
use builder_store::manifest::{BlobCompression, Descriptor, media_type};
use builder_store::{BlobStore, Digest, Store, read_manifest};

use crate::ExportError;
use builder_rootpath::clean_entry_path;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

pub(crate) type LayerArchive = tar::Archive<Box<dyn Read>>;

/// Something a surviving layer entry is written to.
pub(crate) trait RootfsSink {
    /// `link_to` overrides a hard link's target (its resolved path, or the entry that took
    /// over a hidden target's data).
    fn entry(
        &mut self,
        layer: &Digest,
        path: &Path,
        entry: &mut tar::Entry<'_, Box<dyn Read>>,
        link_to: Option<&Path>,
    ) -> Result<(), ExportError>;

    /// A directory no layer has an entry for, made as the parent of others (mode 0755,
    /// owned by root), written before any entry.
    fn implicit_dir(&mut self, path: &Path) -> Result<(), ExportError>;
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
    let reader: Box<dyn Read> = match BlobCompression::of_layer_media_type(&layer.media_type)
        .ok_or_else(unsupported)?
    {
        BlobCompression::None => Box::new(file),
        BlobCompression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        BlobCompression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(
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

/// What the merged tree holds at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    Symlink(Vec<u8>),
    Other,
}

/// (layer index, entry ordinal in that layer's tar).
type EntryId = (usize, usize);

#[derive(Debug)]
struct TreeNode {
    kind: Kind,
    /// The entry written for this path; None for a directory no layer has an entry for
    /// (created as a parent, like tar and the unpacked layers do, mode 0755).
    src: Option<EntryId>,
    /// The last layer that wrote here (an entry, or a parent made for one): an opaque marker
    /// of that layer keeps the node, as overlayfs keeps what the opaque directory itself holds.
    layer: usize,
    /// For a hard link: the resolved path and entry of its target.
    link: Option<(PathBuf, EntryId)>,
}

/// The merged filesystem, by resolved path. Path order is component-wise, so a directory's
/// descendants follow it contiguously.
#[derive(Default)]
struct Tree {
    nodes: BTreeMap<PathBuf, TreeNode>,
}

impl StackView for Tree {
    fn node(&mut self, path: &[OsString]) -> std::io::Result<Node> {
        let key: PathBuf = path.iter().collect();
        Ok(match self.nodes.get(&key).map(|n| &n.kind) {
            None => Node::Missing,
            Some(Kind::Dir) => Node::Dir,
            Some(Kind::Symlink(t)) => Node::Symlink(t.clone()),
            Some(Kind::Other) => Node::Other,
        })
    }
}

impl Tree {
    /// Removes `path` and everything below it; with `keep_layer`, only the strict
    /// descendants not written by that layer (an opaque marker).
    fn remove_below(&mut self, path: &Path, keep_layer: Option<usize>) {
        let doomed: Vec<PathBuf> = self
            .nodes
            .range::<Path, _>((Bound::Included(path), Bound::Unbounded))
            .take_while(|(p, _)| p.starts_with(path))
            .filter(|(p, n)| match keep_layer {
                None => true,
                Some(layer) => p.as_path() != path && n.layer != layer,
            })
            .map(|(p, _)| p.clone())
            .collect();
        for p in doomed {
            self.nodes.remove(&p);
        }
    }

    /// Resolves the parent `comps` on the tree and, with `create`, makes each directory on the
    /// way exist as written by `layer`. None when `create` is off and the directory is missing.
    fn resolve_dir(
        &mut self,
        comps: &[OsString],
        layer: usize,
        create: bool,
    ) -> std::io::Result<Option<PathBuf>> {
        let resolved = resolve_parent(self, comps)?;
        let mut path = PathBuf::new();
        for c in resolved {
            path.push(c);
            match self.nodes.get_mut(&path) {
                Some(n) if create => n.layer = layer,
                Some(_) => {}
                None if create => {
                    self.nodes.insert(
                        path.clone(),
                        TreeNode {
                            kind: Kind::Dir,
                            src: None,
                            layer,
                            link: None,
                        },
                    );
                }
                None => return Ok(None),
            }
        }
        Ok(Some(path))
    }
}

/// What to write: every entry that survives, at its resolved path, and the directories no
/// entry provides.
#[derive(Default)]
struct Plan {
    /// Surviving entries → resolved path and, for hard links, what to link to (None: the link
    /// was turned into the data of its hidden target, see `materialize_as`).
    keep: HashMap<EntryId, (PathBuf, Option<Option<PathBuf>>)>,
    /// Hidden entries whose content a surviving hard link still needs: the data is written
    /// under the link's path instead.
    materialize_as: HashMap<EntryId, PathBuf>,
    /// Directories only made as parents, parents first.
    implicit_dirs: Vec<PathBuf>,
}

fn components(path: &Path) -> Vec<OsString> {
    path.iter().map(|c| c.to_os_string()).collect()
}

fn split(path: &Path) -> (Vec<OsString>, OsString) {
    let mut comps = components(path);
    let name = comps.pop().unwrap_or_default();
    (comps, name)
}

/// Applies every layer, bottom first, to an in-memory tree; returns what to write.
fn plan(blobs: &BlobStore, layers: &[Descriptor]) -> Result<Plan, ExportError> {
    let mut tree = Tree::default();
    for (idx, layer) in layers.iter().enumerate() {
        let mut archive = open_layer(blobs, layer)?;
        let tar_err = |source| ExportError::LayerTar {
            layer: layer.digest,
            source,
        };
        for (ordinal, entry) in archive.entries().map_err(tar_err)?.enumerate() {
            let entry = entry.map_err(tar_err)?;
            let item = classify(&layer.digest, &entry)?;
            let raw_path = match &item {
                Item::Whiteout(p) | Item::Opaque(p) | Item::Entry { path: p, .. } => p.clone(),
                Item::Ignore => continue,
            };
            let unresolvable = |e: std::io::Error| ExportError::Io {
                op: "resolve parent directory of",
                path: raw_path.clone(),
                source: e,
            };
            match item {
                Item::Opaque(dir) => {
                    let dir = tree
                        .resolve_dir(&components(&dir), idx, true)
                        .map_err(unresolvable)?
                        .unwrap_or_default();
                    tree.remove_below(&dir, Some(idx));
                }
                Item::Whiteout(_) => {
                    let (parent, name) = split(&raw_path);
                    let dir = tree
                        .resolve_dir(&parent, idx, true)
                        .map_err(unresolvable)?
                        .unwrap_or_default();
                    tree.remove_below(&dir.join(name), None);
                }
                Item::Entry { path, is_dir } => {
                    let (parent, name) = split(&path);
                    let dir = tree
                        .resolve_dir(&parent, idx, true)
                        .map_err(unresolvable)?
                        .unwrap_or_default();
                    let at = dir.join(name);
                    let ty = entry.header().entry_type();
                    let link = if ty.is_hard_link() {
                        Some(link_target(&mut tree, layer, &entry, idx)?)
                    } else {
                        None
                    };
                    let kind = if is_dir {
                        Kind::Dir
                    } else if ty.is_symlink() {
                        let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                        Kind::Symlink(target)
                    } else {
                        Kind::Other
                    };
                    let merges = is_dir && tree.nodes.get(&at).is_some_and(|n| n.kind == Kind::Dir);
                    if !merges {
                        tree.remove_below(&at, None);
                    }
                    tree.nodes.insert(
                        at,
                        TreeNode {
                            kind,
                            src: Some((idx, ordinal)),
                            layer: idx,
                            link,
                        },
                    );
                }
                Item::Ignore => {}
            }
        }
    }
    let mut plan = Plan::default();
    for (path, node) in &tree.nodes {
        let Some(src) = node.src else {
            plan.implicit_dirs.push(path.clone());
            continue;
        };
        let relink = match &node.link {
            None => None,
            // The target is still there as written: link to it.
            Some((target, tsrc)) if tree.nodes.get(target).and_then(|n| n.src) == Some(*tsrc) => {
                Some(Some(target.clone()))
            }
            // The target lost to a later entry or layer, but the link still means its old
            // content: the first such link takes over the data, later ones link to it.
            Some((_, tsrc)) => match plan.materialize_as.get(tsrc) {
                Some(first) => Some(Some(first.clone())),
                None => {
                    plan.materialize_as.insert(*tsrc, path.clone());
                    Some(None)
                }
            },
        };
        plan.keep.insert(src, (path.clone(), relink));
    }
    Ok(plan)
}

/// Where a hard link entry of layer `idx` points: resolved like any path, and it must name an
/// entry this same layer wrote (links cannot reach into other layers or outside).
fn link_target(
    tree: &mut Tree,
    layer: &Descriptor,
    entry: &tar::Entry<'_, Box<dyn Read>>,
    idx: usize,
) -> Result<(PathBuf, EntryId), ExportError> {
    let target = hard_link_target(&layer.digest, entry)?;
    let outside = || ExportError::UnsafeEntry {
        layer: layer.digest,
        path: target.display().to_string(),
        reason: "is a hard link target outside the layer",
    };
    let (parent, name) = split(&target);
    let dir = tree
        .resolve_dir(&parent, idx, false)
        .map_err(|_| outside())?
        .ok_or_else(outside)?;
    let at = dir.join(name);
    match tree.nodes.get(&at) {
        Some(TreeNode {
            kind: Kind::Other,
            src: Some(src),
            ..
        }) if src.0 == idx => Ok((at.clone(), *src)),
        _ => Err(outside()),
    }
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
    let plan = plan(blobs, layers)?;
    for dir in &plan.implicit_dirs {
        sink.implicit_dir(dir)?;
    }
    for (idx, layer) in layers.iter().enumerate() {
        let mut archive = open_layer(blobs, layer)?;
        let tar_err = |source| ExportError::LayerTar {
            layer: layer.digest,
            source,
        };
        for (ordinal, entry) in archive.entries().map_err(tar_err)?.enumerate() {
            let mut entry = entry.map_err(tar_err)?;
            if let Some(path) = plan.materialize_as.get(&(idx, ordinal)) {
                sink.entry(&layer.digest, path, &mut entry, None)?;
                continue;
            }
            let Some((path, relink)) = plan.keep.get(&(idx, ordinal)) else {
                continue;
            };
            let link_to = match relink {
                Some(None) => continue,
                Some(Some(p)) => Some(p.as_path()),
                None => None,
            };
            sink.entry(&layer.digest, path, &mut entry, link_to)?;
        }
    }
    Ok(())
}
