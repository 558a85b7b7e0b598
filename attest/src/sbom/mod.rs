//! The packages an image holds, read from its layer tars.
//!
//! Each layer is streamed once (decompressed by `builder_snapshot::layer_tar`, never
//! unpacked): the files a scanner knows by path (package databases, `METADATA`,
//! `package.json`, `os-release`) and executable ELF files are read and scanned; every other
//! entry is only remembered by path, because a later layer's file, symlink or whiteout at the
//! same path hides what an earlier one held. The layers are applied bottom to top over one
//! map of path → packages, the way the image's file system is.
//!
//! Each layer's scan ([`LayerScan`]) depends on that layer's content alone, so it can be kept
//! and reused by the layer's diff id ([`LayerScan::to_bytes`]; the CLI stores them in the
//! store's `sbom-scans/`, swept with the layer): an unchanged base is scanned once.

mod apk;
mod dpkg;
mod gobin;
mod layers;
mod node;
mod os_release;
mod path_bytes;
mod purl;
mod python;
mod rpm;
mod rustbin;

use std::path::PathBuf;

pub use gobin::parse_build_info;
pub use layers::{
    LAYER_SCAN_FORMAT, LayerInput, LayerScan, merge_layers, scan_dir, scan_layer, scan_layers,
};
pub use os_release::Distro;
pub use rustbin::parse_dep_v0;

/// The ecosystem a package belongs to: its purl type and where it was found.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Kind {
    Deb,
    Apk,
    Rpm,
    Python,
    Npm,
    Go,
    Cargo,
}

impl Kind {
    /// The package URL type (purl-spec's registered types).
    pub fn purl_type(self) -> &'static str {
        match self {
            Kind::Deb => "deb",
            Kind::Apk => "apk",
            Kind::Rpm => "rpm",
            Kind::Python => "pypi",
            Kind::Npm => "npm",
            Kind::Go => "golang",
            Kind::Cargo => "cargo",
        }
    }

    /// How the package was found, for the SBOM's `sourceInfo`.
    pub fn found_in(self) -> &'static str {
        match self {
            Kind::Deb => "the dpkg database",
            Kind::Apk => "the apk database",
            Kind::Rpm => "the rpm database",
            Kind::Python => "Python package metadata",
            Kind::Npm => "a node_modules package.json",
            Kind::Go => "a Go binary's embedded build info",
            Kind::Cargo => "a Rust binary's cargo-auditable dependency list",
        }
    }
}

/// One package found in the image.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Package {
    pub kind: Kind,
    pub name: String,
    pub version: String,
    /// The license the package declares, as written there (not yet an SPDX expression).
    pub license: Option<String>,
    /// The file that listed the package: an absolute path in the image.
    #[serde(with = "path_bytes")]
    pub source: PathBuf,
    /// purl qualifiers the scanner knows (`arch`, `epoch`); the distro is added from the
    /// image's os-release when the purl is made.
    pub qualifiers: Vec<(String, String)>,
}

impl Package {
    /// The package URL (purl-spec), namespaced by the distro for OS packages.
    pub fn purl(&self, distro: Option<&Distro>) -> String {
        purl::package_url(self, distro)
    }
}

/// What the scan of an image found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Sorted by kind, name, version and source.
    pub packages: Vec<Package>,
    /// From `/etc/os-release` (or `/usr/lib/os-release`).
    pub distro: Option<Distro>,
    /// Files that looked like a package source but could not be read as one, with why.
    pub warnings: Vec<String>,
}
