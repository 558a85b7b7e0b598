//! A single-platform build's image: each output gets its own manifest (media types,
//! annotations, forced compression), the store keeps one under every name, outputs write
//! theirs, pushes send theirs, and each image written or pushed goes out as an index of it and
//! its attestation manifest when attestations are wanted.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use builder_snapshot::Compression;
use builder_store::manifest::{ManifestFormat, media_type};
use builder_store::{Digest, ImageRecord, Platform};

use super::attestations::{self, Facts};
use super::{Exported, Exporter};
use crate::cli::UsageError;
use crate::cli::outputs::{AnnotationTarget, ImageStyle, OutputSpec};

/// The solver's image and what the export stage needs to know of its build.
pub struct BuiltImage {
    pub record: ImageRecord,
    pub platform: Platform,
    /// The compression the build's layers were asked for (outputs may force it on every layer).
    pub compression: Compression,
    /// How the store keeps the image when no output loads it: the `--annotation` flags' style.
    pub store_style: ImageStyle,
    /// What the attestations say of the build; present when attestations are wanted.
    pub facts: Option<Facts>,
}

impl Exporter<'_> {
    pub fn image(&self, built: BuiltImage) -> anyhow::Result<Exported> {
        let store = self.store;
        let tags = self.tags;
        let BuiltImage {
            record: built,
            platform,
            compression,
            store_style,
            facts,
        } = built;
        // Variant manifests are blobs no name holds until the end: keep a prune from sweeping
        // them.
        let _lease = builder_store::gc::build_lease(store.root())?;
        // Each image output's own manifest (media types, annotations); the store keeps, for
        // -t, the first loading output's, as buildx names that one with the tags.
        let images = self
            .outputs
            .iter()
            .map(|p| {
                p.style
                    .as_ref()
                    .map(|s| styled_image(store, &built, s, compression))
                    .transpose()
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let stored = match self.outputs.iter().zip(&images).find(|(p, _)| p.loads()) {
            Some((_, Some(image))) => image.clone(),
            _ => styled_image(store, &built, &store_style, compression)?,
        };
        // Every name the image gets in the store: -t and each output's name= (NAME@DIGEST too
        // for name-canonical=true). The store keeps one manifest per image id, and outputs'
        // styles share the id (same config), so every name holds the stored manifest; outputs
        // still push and write their own.
        let mut names: Vec<String> = tags.to_vec();
        for (p, image) in self.outputs.iter().zip(&images) {
            for name in &p.names {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
            if p.name_canonical {
                let record = image.as_ref().unwrap_or(&built);
                if record.manifest != stored.manifest {
                    bail!(UsageError(format!(
                        "--output {:?}: name-canonical=true names the stored image by its digest, but this output's media types or annotations differ from the stored image's ({}); give it the same ones as the first image output",
                        p.raw, stored.manifest
                    )));
                }
                for name in tags.iter().chain(&p.names) {
                    names.push(format!("{name}@{}", record.manifest));
                }
            }
        }
        if names.is_empty() {
            store.images().add_untagged(stored.clone())?;
        }
        for name in &names {
            store.images().set(name, stored.clone())?;
        }
        // With attestations, each image written or pushed goes as an index of it and its
        // attestation manifest (one per distinct manifest, made once).
        let mut indexes: BTreeMap<Digest, Digest> = BTreeMap::new();
        let mut with_attestations = |record: &ImageRecord| -> anyhow::Result<Option<Digest>> {
            let (Some(wanted), Some(facts)) = (self.wanted, &facts) else {
                return Ok(None);
            };
            if let Some(index) = indexes.get(&record.manifest) {
                return Ok(Some(*index));
            }
            let d = attestations::attest_image(store, wanted, record, &platform, &names, facts)?;
            let index =
                super::index::put_index(store, &[(platform.clone(), record.clone())], &[d])?;
            indexes.insert(record.manifest, index);
            Ok(Some(index))
        };
        let push_one = |target: &str, record: &ImageRecord, index: Option<Digest>| match index {
            Some(index) => crate::cli::registry::push_manifest(
                store,
                target,
                index,
                media_type::OCI_INDEX,
                self.renderer,
            ),
            None => crate::cli::registry::push_image(store, target, record, self.renderer),
        };
        for (p, image) in self.outputs.iter().zip(&images) {
            let Some(out) = &p.spec else { continue };
            let mut archive_names = tags.to_vec();
            archive_names.extend(p.names.iter().filter(|n| !tags.contains(n)).cloned());
            let descriptor = p
                .style
                .as_ref()
                .map(|s| s.annotations_for(AnnotationTarget::ManifestDescriptor))
                .unwrap_or_default();
            let mut record = image.as_ref().unwrap_or(&built).clone();
            let image_record = record.clone();
            let files = matches!(out, OutputSpec::Local(_) | OutputSpec::RootfsTar(_));
            if let (OutputSpec::RootfsTar(dest), Some(wanted)) = (out, self.wanted) {
                // The statements go into the tar after the tree, as BuildKit's tar exporter.
                let part = attestations::TarImage {
                    dir: None,
                    image: &image_record,
                    platform: &platform,
                    facts: facts.as_ref(),
                };
                attestations::write_tar(store, Some(wanted), &[part], dest)
                    .with_context(|| format!("exporting to {}", out.describe()))?;
                continue;
            }
            if !files && let Some(index) = with_attestations(&record)? {
                record.manifest = index;
            }
            super::write_output(
                store,
                out,
                &archive_names,
                &record,
                &descriptor,
                self.renderer,
            )
            .with_context(|| format!("exporting to {}", out.describe()))?;
            if let (OutputSpec::Local(dir), Some(wanted), Some(facts)) = (out, self.wanted, &facts)
            {
                attestations::write_local(store, wanted, &image_record, &platform, dir, facts)
                    .with_context(|| format!("writing attestations to {}", dir.display()))?;
            }
        }
        // (name pushed, digest): `--push` pushes the stored image under every -t, each
        // push=true output its own image under its names and the tags.
        let mut pushed: Vec<(String, Digest)> = Vec::new();
        let mut primary: Option<(Vec<String>, ImageRecord)> = None;
        if self.push {
            self.remember_pushed(tags, &stored);
            let index = with_attestations(&stored)?;
            for tag in tags {
                let digest = push_one(tag, &stored, index)?;
                pushed.push((tag.clone(), digest));
            }
            primary = Some((tags.to_vec(), stored.clone()));
        }
        for (p, image) in self.outputs.iter().zip(&images) {
            let (Some(push), Some(record)) = (&p.push, image) else {
                continue;
            };
            let mut targets = tags.to_vec();
            targets.extend(p.names.iter().filter(|n| !tags.contains(n)).cloned());
            self.remember_pushed(&targets, record);
            for name in &targets {
                let target = if push.by_digest {
                    let r: builder_registry::Reference = name.parse()?;
                    format!("{}/{}@{}", r.registry, r.repository, record.manifest)
                } else {
                    name.clone()
                };
                let index = with_attestations(record)?;
                let digest = push_one(&target, record, index)?;
                if push.by_digest {
                    errln!("pushed {target}");
                }
                pushed.push((target, digest));
            }
            if primary.is_none() {
                primary = Some((targets, record.clone()));
            }
        }
        let id = built.config.to_string();
        // As buildx: the digest of the image pushed (else the one stored), and its names; the
        // index's when the image went out in one with its attestations.
        let (meta_names, meta_image) = primary.unwrap_or_else(|| (tags.to_vec(), stored.clone()));
        let top = indexes
            .get(&meta_image.manifest)
            .copied()
            .unwrap_or(meta_image.manifest);
        let manifest = store.blobs().read(&top)?;
        let top_media_type = if top != meta_image.manifest {
            media_type::OCI_INDEX.to_string()
        } else {
            serde_json::from_slice::<builder_store::manifest::Manifest>(&manifest)
                .map(|m| m.effective_media_type().to_string())
                .unwrap_or_default()
        };
        let metadata = serde_json::json!({
            "containerimage.config.digest": meta_image.config.to_string(),
            "containerimage.digest": top.to_string(),
            "containerimage.descriptor": {
                "mediaType": top_media_type,
                "digest": top.to_string(),
                "size": manifest.len(),
            },
            "image.name": meta_names.join(","),
            "containerimage.pushed": pushed.iter().map(|(n, d)| if n.contains('@') { n.clone() } else { format!("{n}@{d}") }).collect::<Vec<_>>(),
        });
        let mut summary = vec![format!("writing image {id}")];
        summary.extend(names.iter().map(|name| format!("naming to {name}")));
        Ok(Exported {
            id,
            metadata,
            summary,
            id_when_quiet: true,
        })
    }
}

/// The built image as `style` writes it: the stored manifest itself for OCI types without
/// annotations or recompressed layers, else a manifest made for it (same config).
fn styled_image(
    store: &builder_store::Store,
    built: &ImageRecord,
    style: &ImageStyle,
    compression: Compression,
) -> anyhow::Result<ImageRecord> {
    let annotations = style.annotations_for(AnnotationTarget::Manifest);
    let layers = if style.force_compression {
        crate::cli::recompress::forced_layers(store, built, compression)?
    } else {
        None
    };
    if !style.docker_types() && annotations.is_empty() && layers.is_none() {
        return Ok(built.clone());
    }
    let format = if style.docker_types() {
        ManifestFormat::Docker
    } else {
        ManifestFormat::Oci
    };
    let variant = builder_store::put_manifest_variant(
        store.blobs(),
        &built.manifest,
        format,
        &annotations,
        layers.as_deref(),
    )
    .context("writing the image manifest")?;
    Ok(ImageRecord {
        manifest: variant.manifest,
        config: variant.config,
        created: built.created.clone(),
    })
}
