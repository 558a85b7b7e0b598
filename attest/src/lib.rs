//! builder-attest: the attestations `builder build --sbom/--provenance/--attest` attaches to an
//! image, as BuildKit attaches them.
//!
//! - [`sbom`]: the packages an image holds, scanned from its layer tars (no unpack; later
//!   layers' whiteouts hide earlier files), one scanner per package database or binary format.
//! - [`spdx`]: those packages as an SPDX 2.3 JSON document.
//! - [`provenance`]: SLSA provenance v0.2 (BuildKit's field shape) or v1, from what the CLI
//!   knows of the build.
//! - [`intoto`]: the in-toto statement wrapping a predicate, with the image as its subject.
//!
//! Nothing here knows the CLI or the solver: the build's facts come in as plain data.

mod error;
pub mod intoto;
pub mod manifest;
pub mod provenance;
pub mod sbom;
pub mod spdx;

pub use error::AttestError;
