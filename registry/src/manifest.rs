//! The parts of OCI / Docker schema2 manifests and indexes the client needs:
//! descriptors to fetch or push, and platform selection in an index.

use builder_store::Digest;
use builder_store::manifest::Platform as ManifestPlatform;
use serde::{Deserialize, Serialize};

use crate::error::RegistryError;
use crate::platform::Platform;

pub use builder_store::manifest::media_type::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST,
};

/// The Accept header for manifest requests: every format we can read, nothing older.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Manifests are small documents; anything bigger is refused rather than buffered.
pub const MANIFEST_SIZE_LIMIT: u64 = 4 * 1024 * 1024;

/// Which of the two shapes a manifest media type has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestKind {
    Image,
    Index,
}

impl ManifestKind {
    pub fn of(media_type: &str) -> Option<ManifestKind> {
        match media_type {
            OCI_MANIFEST | DOCKER_MANIFEST => Some(ManifestKind::Image),
            OCI_INDEX | DOCKER_MANIFEST_LIST => Some(ManifestKind::Index),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The wire form of an index entry's platform, shared with the store's manifests (it keeps
    /// `os.version` and `os.features`); compare it as a `Platform` (normalized).
    pub platform: Option<ManifestPlatform>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// A parsed manifest of either shape.
#[derive(Clone, Debug)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

impl Manifest {
    /// Parses `bytes` as the shape its media type says. The media type comes
    /// from the Content-Type header, falling back to the document's own field.
    pub fn parse(
        bytes: &[u8],
        media_type: &str,
        reference: &str,
    ) -> Result<Manifest, RegistryError> {
        let parse_err = |source| RegistryError::ManifestParse {
            reference: reference.to_string(),
            source,
        };
        let kind =
            ManifestKind::of(media_type).ok_or_else(|| RegistryError::UnsupportedMediaType {
                media_type: media_type.to_string(),
                reference: reference.to_string(),
            })?;
        Ok(match kind {
            ManifestKind::Image => {
                Manifest::Image(serde_json::from_slice(bytes).map_err(parse_err)?)
            }
            ManifestKind::Index => {
                Manifest::Index(serde_json::from_slice(bytes).map_err(parse_err)?)
            }
        })
    }
}

/// The media type when the server's Content-Type is missing or generic:
/// the document's `mediaType`, else guessed from its shape.
pub fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).ok()?;
    match probe {
        Probe {
            media_type: Some(m),
            ..
        } => Some(m),
        Probe {
            manifests: Some(_), ..
        } => Some(OCI_INDEX.to_string()),
        Probe {
            config: Some(_), ..
        } => Some(OCI_MANIFEST.to_string()),
        _ => None,
    }
}

impl ImageIndex {
    /// The entry for `wanted`, or an error listing what the index offers.
    pub fn select(&self, wanted: &Platform, reference: &str) -> Result<&Descriptor, RegistryError> {
        let image_entries = || {
            self.manifests
                .iter()
                .filter(|d| ManifestKind::of(&d.media_type) == Some(ManifestKind::Image))
        };
        let exact = image_entries().find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| Platform::from(p) == *wanted)
        });
        let loose = || {
            image_entries().find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| wanted.matches(&p.into()))
            })
        };
        exact
            .or_else(loose)
            .ok_or_else(|| RegistryError::PlatformNotFound {
                reference: reference.to_string(),
                wanted: wanted.to_string(),
                available: self
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref())
                    .map(|p| Platform::from(p).to_string())
                    .collect(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_json() -> String {
        let d1 = Digest::of(b"amd");
        let d2 = Digest::of(b"arm");
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"{d1}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{d2}","size":2,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        )
    }

    #[test]
    fn selects_platform_or_lists_available() {
        let Manifest::Index(idx) =
            Manifest::parse(index_json().as_bytes(), OCI_INDEX, "r").unwrap()
        else {
            panic!("expected index")
        };
        let arm = idx.select(&"linux/arm64".parse().unwrap(), "r").unwrap();
        assert_eq!(arm.digest, Digest::of(b"arm"));
        let amd = idx.select(&"linux/amd64".parse().unwrap(), "r").unwrap();
        assert_eq!(amd.digest, Digest::of(b"amd"));
        let err = idx
            .select(&"linux/s390x".parse().unwrap(), "r")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("linux/amd64")
                && err.contains("linux/arm64")
                && err.contains("linux/s390x"),
            "{err}"
        );
    }

    #[test]
    fn rejects_unknown_media_types_and_sniffs() {
        let err = Manifest::parse(
            b"{}",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "r",
        )
        .unwrap_err();
        assert!(matches!(err, RegistryError::UnsupportedMediaType { .. }));
        assert_eq!(
            sniff_media_type(index_json().as_bytes()).as_deref(),
            Some(OCI_INDEX)
        );
        assert_eq!(
            sniff_media_type(br#"{"config":{}}"#).as_deref(),
            Some(OCI_MANIFEST)
        );
        assert!(Manifest::parse(b"not json", OCI_MANIFEST, "r").is_err());
    }
}
