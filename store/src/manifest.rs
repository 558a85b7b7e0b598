//! Manifests, indexes and descriptors, in both the OCI and Docker schema2 flavours.
//!
//! Small own serde types instead of `oci-spec`'s: the JSON we write must be
//! byte-stable (its digest is the image's manifest digest), and both flavours
//! share one shape that differs only in media types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Digest;

pub mod media_type {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
}

/// OCI annotation keys we read and write.
pub mod annotation {
    /// The tag of an image in an OCI layout's index.json.
    pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
    /// The full image name, as containerd and docker write it.
    pub const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";
}

/// How a stored layer blob is compressed, as its media type says (what a reader must undo);
/// the choice of how to compress a new layer, with its level, is `builder_snapshot::Compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobCompression {
    None,
    Gzip,
    Zstd,
}

impl BlobCompression {
    pub fn of_layer_media_type(mt: &str) -> Option<BlobCompression> {
        use media_type::*;
        match mt {
            OCI_LAYER | DOCKER_LAYER => Some(BlobCompression::None),
            OCI_LAYER_GZIP | DOCKER_LAYER_GZIP | DOCKER_FOREIGN_LAYER_GZIP => {
                Some(BlobCompression::Gzip)
            }
            OCI_LAYER_ZSTD => Some(BlobCompression::Zstd),
            _ => None,
        }
    }
}

/// Which manifest flavour to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    Oci,
    Docker,
}

impl ManifestFormat {
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci => media_type::OCI_MANIFEST,
            ManifestFormat::Docker => media_type::DOCKER_MANIFEST,
        }
    }
    pub fn config_media_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci => media_type::OCI_CONFIG,
            ManifestFormat::Docker => media_type::DOCKER_CONFIG,
        }
    }
    pub fn gzip_layer_media_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci => media_type::OCI_LAYER_GZIP,
            ManifestFormat::Docker => media_type::DOCKER_LAYER_GZIP,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
        }
    }
}

/// An index entry's `platform` object as it is written on the wire (the store's, the
/// registry client's and the exporters' one spelling of it). It keeps what a registry sent,
/// unnormalized and with `os.version`/`os.features`, so a re-serialized index is the same bytes;
/// selection and display go through [`crate::platform::Platform`] (normalized), the one type
/// that means a platform, via the `From` conversions below.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// Normalized, so that an entry spelling `arm64/v8` is the `linux/arm64` asked for.
impl From<&Platform> for crate::platform::Platform {
    fn from(p: &Platform) -> crate::platform::Platform {
        crate::platform::Platform::normalized(&p.os, &p.architecture, p.variant.as_deref())
    }
}

/// An index entry's platform for a platform builder built (no OS version or features).
impl From<&crate::platform::Platform> for Platform {
    fn from(p: &crate::platform::Platform) -> Platform {
        Platform {
            architecture: p.architecture.clone(),
            os: p.os.clone(),
            os_version: None,
            os_features: Vec::new(),
            variant: p.variant.clone(),
        }
    }
}

/// An image manifest (OCI or Docker schema2: same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image index or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    /// The manifest's media type; an OCI manifest may omit the field, in which
    /// case the OCI type is implied.
    pub fn effective_media_type(&self) -> &str {
        self.media_type
            .as_deref()
            .unwrap_or(media_type::OCI_MANIFEST)
    }
}
