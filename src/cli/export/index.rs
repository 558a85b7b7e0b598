//! A multi-platform build's images: an OCI index of every platform's image (then their
//! attestation manifests), written to each output, kept in the store under the names a load
//! gives it, and pushed; `type=local` and `type=tar` outputs get one directory per platform.

use anyhow::Context as _;
use builder_store::manifest::{Descriptor, Index, media_type};
use builder_store::{Digest, ImageRecord, Platform};

use super::attestations::{self, Facts};
use super::{Exported, Exporter};
use crate::cli::outputs::{OutputRequest, OutputSpec};

/// One platform's image, as its build made it.
pub struct PlatformImage {
    pub platform: Platform,
    pub record: ImageRecord,
    /// What the attestations say of this platform's build; present when they are wanted.
    pub facts: Option<Facts>,
}

impl Exporter<'_> {
    pub fn index(&self, built: &[PlatformImage]) -> anyhow::Result<Exported> {
        let store = self.store;
        let tags = self.tags;
        let Some(first) = built.first() else {
            anyhow::bail!("a multi-platform build made no image");
        };
        let mut attestation_manifests = Vec::new();
        if let Some(wanted) = self.wanted {
            for b in built {
                if let Some(facts) = &b.facts {
                    attestation_manifests.push(attestations::attest_image(
                        store,
                        wanted,
                        &b.record,
                        &b.platform,
                        tags,
                        facts,
                    )?);
                }
            }
        }
        let pairs: Vec<(Platform, ImageRecord)> = built
            .iter()
            .map(|b| (b.platform.clone(), b.record.clone()))
            .collect();
        let index = put_index(store, &pairs, &attestation_manifests)?;
        for out in self.outputs {
            match &out.spec {
                Some(OutputSpec::Local(dest)) => {
                    for b in built {
                        let dir = dest.join(platform_dir(&b.platform));
                        super::write_output(
                            store,
                            &OutputSpec::Local(dir.clone()),
                            &[],
                            &b.record,
                            &Default::default(),
                            self.renderer,
                        )
                        .with_context(|| {
                            format!("exporting {} to {}", b.platform, dest.display())
                        })?;
                        if let (Some(wanted), Some(facts)) = (self.wanted, &b.facts) {
                            attestations::write_local(
                                store,
                                wanted,
                                &b.record,
                                &b.platform,
                                &dir,
                                facts,
                            )
                            .with_context(|| {
                                format!("writing attestations to {}", dir.display())
                            })?;
                        }
                    }
                }
                // One directory per platform in the tar, as BuildKit's tar exporter.
                Some(OutputSpec::RootfsTar(dest)) => {
                    let parts: Vec<attestations::TarImage> = built
                        .iter()
                        .map(|b| attestations::TarImage {
                            dir: Some(platform_dir(&b.platform).into()),
                            image: &b.record,
                            platform: &b.platform,
                            facts: b.facts.as_ref(),
                        })
                        .collect();
                    attestations::write_tar(store, self.wanted, &parts, dest)
                        .with_context(|| format!("exporting to {}", dest.display()))?;
                }
                Some(spec) => {
                    let mut names = tags.to_vec();
                    names.extend(out.names.iter().filter(|n| !tags.contains(n)).cloned());
                    let record = ImageRecord {
                        manifest: index,
                        config: first.record.config,
                        created: first.record.created.clone(),
                    };
                    super::write_output(
                        store,
                        spec,
                        &names,
                        &record,
                        &Default::default(),
                        self.renderer,
                    )
                    .with_context(|| format!("exporting to {}", spec.describe()))?;
                }
                None => {}
            }
        }
        store_index(store, tags, self.push, self.outputs, index, &pairs)?;
        // Pushes: --push to every -t; push=true outputs to their names and the tags.
        let mut targets: Vec<String> = Vec::new();
        if self.push {
            targets.extend(tags.iter().cloned());
        }
        for out in self.outputs.iter().filter(|o| o.push.is_some()) {
            for name in tags.iter().chain(&out.names) {
                if !targets.contains(name) {
                    targets.push(name.clone());
                }
            }
        }
        for b in built {
            self.remember_pushed(&targets, &b.record);
        }
        let mut pushed = Vec::new();
        for name in &targets {
            let digest = crate::cli::registry::push_manifest(
                store,
                name,
                index,
                media_type::OCI_INDEX,
                self.renderer,
            )?;
            pushed.push((name.clone(), digest));
        }
        let names: Vec<&str> = pushed.iter().map(|(n, _)| n.as_str()).collect();
        let metadata = serde_json::json!({
            "containerimage.digest": index.to_string(),
            "containerimage.descriptor": {
                "mediaType": media_type::OCI_INDEX,
                "digest": index.to_string(),
                "size": store.blobs().size(&index)?,
            },
            "image.name": names.join(","),
        });
        let platforms = built
            .iter()
            .map(|b| b.platform.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let mut summary = vec![format!("writing image index {index} ({platforms})")];
        summary.extend(pushed.iter().map(|(name, _)| format!("pushed {name}")));
        Ok(Exported {
            id: index.to_string(),
            metadata,
            summary,
            id_when_quiet: false,
        })
    }
}

/// The directory a platform's files go to in `type=local` and `type=tar` outputs, as BuildKit
/// names it: `linux_amd64`, `linux_arm_v7`.
fn platform_dir(platform: &Platform) -> String {
    platform.to_string().replace('/', "_")
}
/// Keeps the index in the store under the names an image load gets: the tags of a build with
/// no output and no push, and the names (and tags) of a `type=image` output that does not
/// push. Its id is the index digest, as in docker's containerd image store; the platforms'
/// images, kept untagged during the build, are then held by the index alone.
fn store_index(
    store: &builder_store::Store,
    tags: &[String],
    push: bool,
    outputs: &[OutputRequest],
    index: Digest,
    built: &[(Platform, ImageRecord)],
) -> anyhow::Result<()> {
    let mut names: Vec<String> = Vec::new();
    if outputs.is_empty() && !push {
        names.extend(tags.iter().cloned());
    }
    for out in outputs
        .iter()
        .filter(|o| o.spec.is_none() && o.push.is_none())
    {
        for name in tags.iter().chain(&out.names) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    if names.is_empty() {
        return Ok(());
    }
    let record = ImageRecord {
        manifest: index,
        config: index,
        created: built[0].1.created.clone(),
    };
    for name in &names {
        store.images().set(name, record.clone())?;
    }
    for (_, image) in built {
        let untagged = store
            .images()
            .get_by_id(&image.config)?
            .is_some_and(|e| e.names.is_empty());
        if untagged {
            store.images().rmi_id(&image.config.to_string(), false)?;
        }
    }
    Ok(())
}

/// The OCI index of the platforms' images, then their attestation manifests (as BuildKit orders
/// them), stored as a blob; returns its digest.
pub(super) fn put_index(
    store: &builder_store::Store,
    built: &[(Platform, ImageRecord)],
    attestations: &[Descriptor],
) -> anyhow::Result<Digest> {
    let mut manifests = Vec::new();
    for (platform, record) in built {
        let bytes = store.blobs().read(&record.manifest)?;
        let manifest: builder_store::manifest::Manifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("reading the {platform} manifest"))?;
        let mut d = Descriptor::new(
            manifest.effective_media_type(),
            record.manifest,
            bytes.len() as u64,
        );
        d.platform = Some(platform.into());
        manifests.push(d);
    }
    manifests.extend(attestations.iter().cloned());
    let index = Index {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.into()),
        manifests,
        annotations: Default::default(),
    };
    Ok(store.blobs().put_bytes(&serde_json::to_vec(&index)?)?)
}
