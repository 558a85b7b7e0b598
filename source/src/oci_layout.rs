//! `--build-context NAME=oci-layout:///DIR[:TAG|@sha256:…]`: an image from an OCI image layout
//! directory (what `skopeo copy … oci:DIR`, `umoci` and `--output type=oci,tar=false` write),
//! as BuildKit's `oci-layout://` contexts. Its manifest, config and layers are copied into the
//! store's blobs, each checked against its digest; the build then refers to the image by its
//! manifest digest, which names exactly those bytes whatever the layout called it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use builder_store::manifest::{Descriptor, Index, Manifest};
use builder_store::{Digest, Platform, Store};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, thiserror::Error)]
pub enum OciLayoutError {
    #[error("oci-layout://{dir}: {reason}")]
    Invalid { dir: String, reason: String },
    #[error("oci-layout://{dir}: {context}: {source}")]
    Io {
        dir: String,
        context: String,
        source: io::Error,
    },
}

/// Which image of the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Tag(String),
    Digest(Digest),
    /// Nothing named: the layout's only image (or the one tagged `latest`).
    Default,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRef {
    pub dir: PathBuf,
    pub selector: Selector,
}

impl LayoutRef {
    /// `Ok(None)` when `value` is not an `oci-layout://` reference.
    pub fn parse(value: &str) -> Result<Option<LayoutRef>, OciLayoutError> {
        let Some(rest) = value.strip_prefix("oci-layout://") else {
            return Ok(None);
        };
        let invalid = |reason: &str| OciLayoutError::Invalid {
            dir: rest.to_string(),
            reason: reason.to_string(),
        };
        if let Some((dir, digest)) = rest.rsplit_once('@') {
            let digest = digest
                .parse::<Digest>()
                .map_err(|_| invalid("expected @sha256:<64 hex digits>"))?;
            return Ok(Some(LayoutRef {
                dir: PathBuf::from(dir),
                selector: Selector::Digest(digest),
            }));
        }
        // A tag follows the last `:` after the last `/` (the directory may contain neither).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (dir, selector) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Selector::Tag(rest[at + 1..].to_string()))
            }
            None => (rest, Selector::Default),
        };
        if dir.is_empty() {
            return Err(invalid("no layout directory"));
        }
        Ok(Some(LayoutRef {
            dir: PathBuf::from(dir),
            selector,
        }))
    }

    fn shown(&self) -> String {
        self.dir.display().to_string()
    }

    fn invalid(&self, reason: impl Into<String>) -> OciLayoutError {
        OciLayoutError::Invalid {
            dir: self.shown(),
            reason: reason.into(),
        }
    }

    fn io(&self, context: impl Into<String>, source: io::Error) -> OciLayoutError {
        OciLayoutError::Io {
            dir: self.shown(),
            context: context.into(),
            source,
        }
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(d.hex())
    }

    fn read_json<T: serde::de::DeserializeOwned>(&self, path: &Path) -> Result<T, OciLayoutError> {
        let bytes =
            fs::read(path).map_err(|e| self.io(format!("reading {}", path.display()), e))?;
        serde_json::from_slice(&bytes).map_err(|e| self.invalid(format!("{}: {e}", path.display())))
    }

    /// Copies the selected image (for `platform`, when it is an index) into `store` and returns
    /// its manifest digest.
    pub fn import(&self, store: &Store, platform: &Platform) -> Result<Digest, OciLayoutError> {
        let index: Index = self.read_json(&self.dir.join("index.json"))?;
        let mut desc = self.select(&index)?.clone();
        // A multi-platform image: its own index, whose entry for `platform` is the manifest.
        for _ in 0..2 {
            if !is_index(&desc.media_type) {
                break;
            }
            self.copy_blob(store, &desc.digest)?;
            let nested: Index = self.read_json(&self.blob_path(&desc.digest))?;
            desc = nested
                .manifests
                .iter()
                .find(|d| {
                    d.platform.as_ref().is_some_and(|p| {
                        platform.matches(&Platform {
                            os: p.os.clone(),
                            architecture: p.architecture.clone(),
                            variant: p.variant.clone(),
                        })
                    })
                })
                .ok_or_else(|| self.invalid(format!("no image for platform {platform}")))?
                .clone();
        }
        self.copy_blob(store, &desc.digest)?;
        let manifest: Manifest = self.read_json(&self.blob_path(&desc.digest))?;
        self.copy_blob(store, &manifest.config.digest)?;
        for layer in &manifest.layers {
            self.copy_blob(store, &layer.digest)?;
        }
        Ok(desc.digest)
    }

    fn select<'a>(&self, index: &'a Index) -> Result<&'a Descriptor, OciLayoutError> {
        let tagged = |tag: &str| {
            index
                .manifests
                .iter()
                .find(|d| d.annotations.get(REF_NAME).is_some_and(|n| n == tag))
        };
        let found = match &self.selector {
            Selector::Digest(d) => index.manifests.iter().find(|m| m.digest == *d),
            Selector::Tag(t) => tagged(t),
            Selector::Default if index.manifests.len() == 1 => index.manifests.first(),
            Selector::Default => tagged("latest"),
        };
        found.ok_or_else(|| {
            let tags: Vec<&str> = index
                .manifests
                .iter()
                .filter_map(|d| d.annotations.get(REF_NAME).map(String::as_str))
                .collect();
            self.invalid(format!(
                "no image {} in the layout (its tags: {})",
                match &self.selector {
                    Selector::Digest(d) => d.to_string(),
                    Selector::Tag(t) => format!("tagged {t:?}"),
                    Selector::Default => "tagged \"latest\", and more than one image".into(),
                },
                if tags.is_empty() {
                    "none".into()
                } else {
                    tags.join(", ")
                }
            ))
        })
    }

    fn copy_blob(&self, store: &Store, d: &Digest) -> Result<(), OciLayoutError> {
        if store.blobs().contains(d) {
            return Ok(());
        }
        let path = self.blob_path(d);
        let mut from =
            fs::File::open(&path).map_err(|e| self.io(format!("opening blob {d}"), e))?;
        let mut writer = store
            .blobs()
            .writer()
            .map_err(|e| self.invalid(format!("storing blob {d}: {e}")))?;
        io::copy(&mut from, &mut writer).map_err(|e| self.io(format!("copying blob {d}"), e))?;
        writer
            .commit_expecting(d)
            .map_err(|e| self.invalid(format!("blob {d}: {e}")))?;
        Ok(())
    }
}

fn is_index(media_type: &str) -> bool {
    use builder_store::manifest::media_type::{DOCKER_MANIFEST_LIST, OCI_INDEX};
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_directory_and_a_tag_or_digest() {
        let p = |s: &str| LayoutRef::parse(s).unwrap().unwrap();
        assert_eq!(p("oci-layout:///a/b").dir, PathBuf::from("/a/b"));
        assert_eq!(p("oci-layout:///a/b").selector, Selector::Default);
        assert_eq!(
            p("oci-layout:///a:x/b:v1").selector,
            Selector::Tag("v1".into())
        );
        assert_eq!(p("oci-layout:///a:x/b:v1").dir, PathBuf::from("/a:x/b"));
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(matches!(
            p(&format!("oci-layout:///l@{d}")).selector,
            Selector::Digest(_)
        ));
        assert!(LayoutRef::parse("oci-layout:///l@sha256:zz").is_err());
        assert!(LayoutRef::parse("/plain/dir").unwrap().is_none());
    }
}
