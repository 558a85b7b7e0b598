//! What goes into an image archive: the OCI layout (`oci-layout`, `index.json`,
//! `blobs/sha256/*`) and, for docker archives, `manifest.json` and `repositories`.
//!
//! The docker archive matches what `docker save` writes since Docker 25: the
//! legacy files sit next to a full OCI layout and point into `blobs/sha256/`,
//! so both `docker load` and OCI tools (skopeo, umoci, containerd) read it.

use std::collections::{BTreeMap, BTreeSet};

use builder_cache::manifest::{Descriptor, Index, Manifest, annotation, media_type};
use builder_cache::{BlobStore, Digest};
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
    manifest_digest: Digest,
    manifest_size: u64,
    manifest: Manifest,
}

pub(crate) struct Layout {
    images: Vec<Resolved>,
}

pub(crate) fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

impl Layout {
    /// Reads every manifest and checks that all referenced blobs are present,
    /// so an archive is never half-written before a missing layer is noticed.
    pub fn resolve(blobs: &BlobStore, images: &[(String, Digest)]) -> Result<Layout, ExportError> {
        let mut resolved = Vec::with_capacity(images.len());
        for (name, digest) in images {
            let name = if name.is_empty() {
                None
            } else {
                Some(ImageName::parse(name)?)
            };
            let bytes = blobs.read(digest)?;
            let manifest: Manifest =
                serde_json::from_slice(&bytes).map_err(|source| ExportError::Json {
                    what: format!("manifest {digest}"),
                    source,
                })?;
            let mt = manifest.effective_media_type();
            if mt != media_type::OCI_MANIFEST && mt != media_type::DOCKER_MANIFEST {
                return Err(ExportError::UnsupportedManifest {
                    digest: *digest,
                    media_type: mt.to_string(),
                });
            }
            for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
                if !blobs.contains(&d.digest) {
                    return Err(builder_cache::StoreError::BlobNotFound(d.digest).into());
                }
            }
            resolved.push(Resolved {
                name,
                manifest_digest: *digest,
                manifest_size: bytes.len() as u64,
                manifest,
            });
        }
        Ok(Layout { images: resolved })
    }

    /// Every blob the layout needs, each once, in digest order.
    fn blobs(&self) -> BTreeSet<Digest> {
        let mut all = BTreeSet::new();
        for img in &self.images {
            all.insert(img.manifest_digest);
            all.insert(img.manifest.config.digest);
            all.extend(img.manifest.layers.iter().map(|l| l.digest));
        }
        all
    }

    /// `index.json`: one descriptor per requested name, annotated the way
    /// containerd/BuildKit/docker do so `oci:dir:tag` and `umoci --image dir:tag` resolve.
    pub fn index_descriptors(&self) -> Vec<Descriptor> {
        self.images
            .iter()
            .map(|img| {
                let mut d = Descriptor::new(
                    img.manifest.effective_media_type(),
                    img.manifest_digest,
                    img.manifest_size,
                );
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

    /// docker's `manifest.json`: one item per distinct image, with all its tags.
    fn docker_manifest(&self) -> Vec<DockerManifestItem> {
        let mut items: Vec<(Digest, DockerManifestItem)> = Vec::new();
        for img in &self.images {
            let tag = img.name.as_ref().and_then(ImageName::familiar_tagged);
            if let Some((_, item)) = items.iter_mut().find(|(d, _)| *d == img.manifest_digest) {
                if let Some(tag) = tag {
                    item.repo_tags.get_or_insert_with(Vec::new).push(tag);
                }
                continue;
            }
            items.push((
                img.manifest_digest,
                DockerManifestItem {
                    config: blob_path(&img.manifest.config.digest),
                    repo_tags: tag.map(|t| vec![t]),
                    layers: img
                        .manifest
                        .layers
                        .iter()
                        .map(|l| blob_path(&l.digest))
                        .collect(),
                },
            ));
        }
        items.into_iter().map(|(_, item)| item).collect()
    }

    /// docker's legacy `repositories`: familiar repo → tag → top layer's hex digest.
    fn repositories(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for img in &self.images {
            let (Some(name), Some(top)) = (&img.name, img.manifest.layers.last()) else {
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

    pub fn write_blobs(
        &self,
        blobs: &BlobStore,
        sink: &mut dyn LayoutSink,
    ) -> Result<(), ExportError> {
        sink.add_dir("blobs")?;
        sink.add_dir("blobs/sha256")?;
        for d in self.blobs() {
            sink.add_blob(&blob_path(&d), blobs, &d)?;
        }
        Ok(())
    }

    /// Writes the whole archive in a fixed order: blobs, then metadata files by name.
    pub fn write_all(
        &self,
        blobs: &BlobStore,
        docker: bool,
        sink: &mut dyn LayoutSink,
    ) -> Result<(), ExportError> {
        self.write_blobs(blobs, sink)?;
        sink.add_bytes(
            "index.json",
            &to_json("index.json", &index_of(self.index_descriptors()))?,
        )?;
        if docker {
            sink.add_bytes(
                "manifest.json",
                &to_json("manifest.json", &self.docker_manifest())?,
            )?;
        }
        sink.add_bytes("oci-layout", OCI_LAYOUT)?;
        let repos = self.repositories();
        if docker && !repos.is_empty() {
            sink.add_bytes("repositories", &to_json("repositories", &repos)?)?;
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
