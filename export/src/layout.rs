//! What goes into an image archive: the OCI layout (`oci-layout`, `index.json`,
//! `blobs/sha256/*`) and, for docker archives, `manifest.json` and `repositories`.
//!
//! The docker archive matches what `docker save` writes since Docker 25: the
//! legacy files sit next to a full OCI layout and point into `blobs/sha256/`,
//! so both `docker load` and OCI tools (skopeo, umoci, containerd) read it.

use std::collections::{BTreeMap, BTreeSet};

use builder_store::manifest::{Descriptor, Index, Manifest, annotation, media_type};
use builder_store::{BlobStore, Digest};
use serde::Serialize;

use crate::ExportError;
use crate::names::ImageName;
use crate::sink::LayoutSink;

pub(crate) const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// One entry of docker's `manifest.json`. `RepoTags` is `null` for an
/// untagged image, as Go marshals a nil slice.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestItem {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// One requested image, resolved against the store.
struct Resolved {
    name: Option<ImageName>,
    /// Annotations of its index.json descriptor (BuildKit's `manifest-descriptor` ones).
    annotations: BTreeMap<String, String>,
    digest: Digest,
    size: u64,
    media_type: String,
    /// The manifest, when the reference is a single-platform image; `None`
    /// for an image index (multi-platform), which only the OCI layout carries.
    image: Option<Manifest>,
}

/// One image to export: its normalized name (`""` for none), its manifest (or index) digest,
/// and the annotations its descriptor in index.json carries.
#[derive(Debug, Clone)]
pub struct ExportImage {
    pub name: String,
    pub manifest: Digest,
    pub annotations: BTreeMap<String, String>,
}

impl ExportImage {
    pub fn new(name: impl Into<String>, manifest: Digest) -> ExportImage {
        ExportImage {
            name: name.into(),
            manifest,
            annotations: BTreeMap::new(),
        }
    }
}

pub(crate) struct Layout {
    images: Vec<Resolved>,
    /// Every blob reachable from the requested references.
    blobs: BTreeSet<Digest>,
}

/// Indexes nest (an index of indexes is legal) but never deeply in practice;
/// the limit stops a malicious cycle of digests.
const MAX_INDEX_DEPTH: usize = 4;

/// Just enough of a manifest or index to tell which one it is.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
}

pub(crate) fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn parse<T: serde::de::DeserializeOwned>(digest: &Digest, bytes: &[u8]) -> Result<T, ExportError> {
    serde_json::from_slice(bytes).map_err(|source| ExportError::Json {
        what: format!("manifest {digest}"),
        source,
    })
}

/// Reads the manifest or index `digest`, adds it and everything it references
/// to `reachable`, and checks all of it is present, so an archive is never
/// half-written before a missing layer is noticed.
fn resolve_tree(
    blobs: &BlobStore,
    digest: &Digest,
    depth: usize,
    reachable: &mut BTreeSet<Digest>,
) -> Result<(String, u64, Option<Manifest>), ExportError> {
    let bytes = blobs.read(digest)?;
    let probe: Probe = parse(digest, &bytes)?;
    let is_index = match probe.media_type.as_deref() {
        Some(media_type::OCI_INDEX | media_type::DOCKER_MANIFEST_LIST) => true,
        Some(media_type::OCI_MANIFEST | media_type::DOCKER_MANIFEST) => false,
        None => probe.manifests.is_some(),
        Some(other) => {
            return Err(ExportError::UnsupportedManifest {
                digest: *digest,
                media_type: other.to_string(),
            });
        }
    };
    reachable.insert(*digest);
    let size = bytes.len() as u64;
    if is_index {
        let index: Index = parse(digest, &bytes)?;
        let media_type = index
            .media_type
            .clone()
            .unwrap_or_else(|| media_type::OCI_INDEX.to_string());
        if depth >= MAX_INDEX_DEPTH {
            return Err(ExportError::UnsupportedManifest {
                digest: *digest,
                media_type,
            });
        }
        for child in &index.manifests {
            resolve_tree(blobs, &child.digest, depth + 1, reachable)?;
        }
        return Ok((media_type, size, None));
    }
    let manifest: Manifest = parse(digest, &bytes)?;
    for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
        if !blobs.contains(&d.digest) {
            return Err(builder_store::StoreError::BlobNotFound(d.digest).into());
        }
        reachable.insert(d.digest);
    }
    Ok((
        manifest.effective_media_type().to_string(),
        size,
        Some(manifest),
    ))
}

impl Layout {
    pub fn resolve(blobs: &BlobStore, images: &[ExportImage]) -> Result<Layout, ExportError> {
        let mut reachable = BTreeSet::new();
        let mut resolved = Vec::with_capacity(images.len());
        for img in images {
            let name = if img.name.is_empty() {
                None
            } else {
                Some(ImageName::parse(&img.name)?)
            };
            let (media_type, size, image) = resolve_tree(blobs, &img.manifest, 0, &mut reachable)?;
            resolved.push(Resolved {
                name,
                annotations: img.annotations.clone(),
                digest: img.manifest,
                size,
                media_type,
                image,
            });
        }
        Ok(Layout {
            images: resolved,
            blobs: reachable,
        })
    }

    /// `index.json`: one descriptor per requested name, annotated the way
    /// containerd/BuildKit/docker do so `oci:dir:tag` and `umoci --image dir:tag` resolve.
    pub fn index_descriptors(&self) -> Vec<Descriptor> {
        self.images
            .iter()
            .map(|img| {
                let mut d = Descriptor::new(img.media_type.clone(), img.digest, img.size);
                d.annotations = img.annotations.clone();
                if let Some(name) = &img.name {
                    d.annotations.insert(
                        annotation::CONTAINERD_IMAGE_NAME.to_string(),
                        name.full.clone(),
                    );
                    if let Some(tag) = &name.tag {
                        d.annotations
                            .insert(annotation::REF_NAME.to_string(), tag.clone());
                    }
                }
                d
            })
            .collect()
    }

    /// docker's `manifest.json`: one item per distinct image, with all its
    /// tags. `docker load` has no notion of a multi-platform index, so an
    /// index must be narrowed to one platform's manifest by the caller.
    fn docker_manifest(&self) -> Result<Vec<DockerManifestItem>, ExportError> {
        let mut items: Vec<(Digest, DockerManifestItem)> = Vec::new();
        for img in &self.images {
            let Some(manifest) = &img.image else {
                return Err(ExportError::UnsupportedManifest {
                    digest: img.digest,
                    media_type: img.media_type.clone(),
                });
            };
            let tag = img.name.as_ref().and_then(ImageName::familiar_tagged);
            if let Some((_, item)) = items.iter_mut().find(|(d, _)| *d == img.digest) {
                if let Some(tag) = tag {
                    item.repo_tags.get_or_insert_with(Vec::new).push(tag);
                }
                continue;
            }
            let item = DockerManifestItem {
                config: blob_path(&manifest.config.digest),
                repo_tags: tag.map(|t| vec![t]),
                layers: manifest
                    .layers
                    .iter()
                    .map(|l| blob_path(&l.digest))
                    .collect(),
            };
            items.push((img.digest, item));
        }
        Ok(items.into_iter().map(|(_, item)| item).collect())
    }

    /// docker's legacy `repositories`: familiar repo → tag → top layer's hex digest.
    fn repositories(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for img in &self.images {
            let top = img.image.as_ref().and_then(|m| m.layers.last());
            let (Some(name), Some(top)) = (&img.name, top) else {
                continue;
            };
            if let Some(tag) = &name.tag {
                repos
                    .entry(name.familiar_repo.clone())
                    .or_default()
                    .insert(tag.clone(), top.digest.hex());
            }
        }
        repos
    }

    /// Every reachable blob, once each, in digest order.
    pub fn write_blobs(
        &self,
        blobs: &BlobStore,
        sink: &mut dyn LayoutSink,
    ) -> Result<(), ExportError> {
        sink.add_dir("blobs")?;
        sink.add_dir("blobs/sha256")?;
        for d in &self.blobs {
            sink.add_blob(&blob_path(d), blobs, d)?;
        }
        Ok(())
    }

    /// Writes the whole archive in a fixed order: blobs, then metadata files by
    /// name. Everything that can fail on content is computed before the first byte.
    pub fn write_all(
        &self,
        blobs: &BlobStore,
        docker: bool,
        sink: &mut dyn LayoutSink,
    ) -> Result<(), ExportError> {
        let index = to_json("index.json", &index_of(self.index_descriptors()))?;
        let docker_files = if docker {
            let manifest = to_json("manifest.json", &self.docker_manifest()?)?;
            let repos = self.repositories();
            let repos = if repos.is_empty() {
                None
            } else {
                Some(to_json("repositories", &repos)?)
            };
            Some((manifest, repos))
        } else {
            None
        };
        self.write_blobs(blobs, sink)?;
        sink.add_bytes("index.json", &index)?;
        if let Some((manifest, _)) = &docker_files {
            sink.add_bytes("manifest.json", manifest)?;
        }
        sink.add_bytes("oci-layout", OCI_LAYOUT)?;
        if let Some((_, Some(repos))) = &docker_files {
            sink.add_bytes("repositories", repos)?;
        }
        Ok(())
    }
}

pub(crate) fn index_of(manifests: Vec<Descriptor>) -> Index {
    Index {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.to_string()),
        manifests,
        annotations: BTreeMap::new(),
    }
}

pub(crate) fn to_json(what: &str, value: &impl Serialize) -> Result<Vec<u8>, ExportError> {
    serde_json::to_vec(value).map_err(|source| ExportError::Json {
        what: what.to_string(),
        source,
    })
}
