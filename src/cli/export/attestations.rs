//! `--sbom`, `--provenance` and `--attest`: which attestations a build attaches (buildx's flag
//! forms), and the attestation manifests made for each built platform image.
//!
//! As buildx with a builder that can attach them (docker-container), the attestations ride in
//! the image index of a push or an OCI output, or are written beside the files of a
//! `type=local` / `type=tar` output. builder's image store keeps single-platform images, as
//! docker's classic store, so as buildx's docker driver it refuses attestations for a
//! single-platform build whose only destination is the store (a multi-platform build stores an
//! index, which holds them). As buildx with docker-container, a push gets `mode=min` provenance
//! by default (off with `--provenance=false` or `BUILDX_NO_DEFAULT_ATTESTATIONS=1`); like
//! buildx's default (`inline-only`), it goes into images only, never into local or tar files.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use builder_attest::manifest::{
    Statement, put_attestation_manifest, scan_stored_image, scan_stored_layers,
};
use builder_attest::provenance::{self, BuildFacts, Material, Mode, Step, Version};
use builder_attest::{intoto, spdx};
use builder_solver::BuildRequest;
use builder_store::manifest::Descriptor;
use builder_store::{ImageRecord, Platform};

use crate::cli::UsageError;
use crate::cli::outputs::{OutputRequest, OutputSpec};

mod statements;
pub use statements::{Facts, TarImage, attest_image, started_on, write_local, write_tar};

/// What to attach; `None` from [`decide`] attaches nothing.
#[derive(Clone, Debug, Default)]
pub struct Wanted {
    pub sbom: Option<Sbom>,
    pub provenance: Option<Provenance>,
}

/// The SBOM's `scan-context` / `scan-stage` values: as a global `BUILDKIT_SBOM_SCAN_CONTEXT` /
/// `BUILDKIT_SBOM_SCAN_STAGE` ARG would give them (`true`, `false`, or stage names), which a
/// Dockerfile ARG of that name overrides.
#[derive(Clone, Debug, Default)]
pub struct Sbom {
    pub scan_context: Option<String>,
    pub scan_stage: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Provenance {
    pub mode: Mode,
    pub version: Version,
    pub builder_id: String,
    /// buildx's default provenance: attached to images, never written as a file.
    pub inline_only: bool,
}

impl Wanted {
    /// What `type=local` and `type=tar` outputs write: all but the inline-only provenance.
    fn for_files(&self) -> Option<Wanted> {
        let w = Wanted {
            sbom: self.sbom.clone(),
            provenance: self.provenance.clone().filter(|p| !p.inline_only),
        };
        (w.sbom.is_some() || w.provenance.is_some()).then_some(w)
    }
}

/// The flags as given: what they ask for, and whether they say anything about provenance
/// (`--provenance=false` included), which turns buildx's default off.
pub struct Asked {
    wanted: Option<Wanted>,
    provenance_given: bool,
}

/// `KEY=VALUE,...` pairs of an attestation spec.
fn pairs(spec: &str) -> Vec<(String, String)> {
    spec.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (p.trim().to_string(), String::new()),
        })
        .collect()
}

fn parse_bool(flag: &str, v: &str) -> Result<bool, UsageError> {
    crate::cli::gobool::parse(v).map_err(|e| UsageError(format!("{flag}: {e}")))
}

/// The SBOM keys of `--sbom=...` or `--attest type=sbom,...`; None when disabled.
fn sbom_spec(flag: &str, kv: &[(String, String)]) -> Result<Option<Sbom>, UsageError> {
    let mut on = true;
    let mut sbom = Sbom::default();
    for (k, v) in kv {
        match k.as_str() {
            "type" => {}
            "disabled" => on = !parse_bool(flag, v)?,
            "generator" => {
                return Err(UsageError(format!(
                    "{flag}: generator={v}: builder scans the image itself; a generator image is not run"
                )));
            }
            // `true`, `false` or stage names, as the build args take them.
            "scan-context" => sbom.scan_context = Some(v.clone()),
            "scan-stage" => sbom.scan_stage = Some(v.clone()),
            other => {
                return Err(UsageError(format!(
                    "{flag}: unknown key {other:?} (expected disabled, generator, scan-context, scan-stage)"
                )));
            }
        }
    }
    Ok(on.then_some(sbom))
}

fn provenance_spec(flag: &str, kv: &[(String, String)]) -> Result<Option<Provenance>, UsageError> {
    let (mut mode, mut version, mut id, mut on) = (Mode::Min, Version::V02, String::new(), true);
    for (k, v) in kv {
        match k.as_str() {
            "type" => {}
            "disabled" => on = !parse_bool(flag, v)?,
            "mode" => {
                mode = match v.as_str() {
                    "min" => Mode::Min,
                    "max" => Mode::Max,
                    _ => return Err(UsageError(format!("{flag}: mode={v}: expected min or max"))),
                }
            }
            "version" => {
                version = match v.as_str() {
                    "v0.2" => Version::V02,
                    "v1" => Version::V1,
                    _ => {
                        return Err(UsageError(format!(
                            "{flag}: version={v}: expected v0.2 or v1"
                        )));
                    }
                }
            }
            "builder-id" => id = v.clone(),
            other => {
                return Err(UsageError(format!(
                    "{flag}: unknown key {other:?} (expected mode, version, builder-id, disabled)"
                )));
            }
        }
    }
    Ok(on.then_some(Provenance {
        mode,
        version,
        builder_id: id,
        inline_only: false,
    }))
}

/// A bare boolean (`--sbom=true`) or a spec (`--provenance=mode=max`).
fn flag_spec(flag: &str, value: &str) -> Result<Option<Vec<(String, String)>>, UsageError> {
    if !value.contains('=') {
        return Ok(parse_bool(flag, value)?.then(Vec::new));
    }
    Ok(Some(pairs(value)))
}

pub fn parse(
    sbom: Option<&str>,
    provenance: Option<&str>,
    attest: &[String],
) -> Result<Asked, UsageError> {
    let mut wanted = Wanted::default();
    let mut provenance_given = false;
    if let Some(v) = sbom
        && let Some(kv) = flag_spec(&format!("--sbom={v}"), v)?
    {
        wanted.sbom = sbom_spec(&format!("--sbom={v}"), &kv)?;
    }
    if let Some(v) = provenance {
        provenance_given = true;
        if let Some(kv) = flag_spec(&format!("--provenance={v}"), v)? {
            wanted.provenance = provenance_spec(&format!("--provenance={v}"), &kv)?;
        }
    }
    for spec in attest {
        let flag = format!("--attest {spec}");
        let kv = pairs(spec);
        match kv
            .iter()
            .find(|(k, _)| k == "type")
            .map(|(_, v)| v.as_str())
        {
            Some("sbom") => wanted.sbom = sbom_spec(&flag, &kv)?,
            Some("provenance") => {
                provenance_given = true;
                wanted.provenance = provenance_spec(&flag, &kv)?;
            }
            Some(other) => {
                return Err(UsageError(format!(
                    "{flag}: type={other}: expected sbom or provenance"
                )));
            }
            None => return Err(UsageError(format!("{flag}: type= is required"))),
        }
    }
    Ok(Asked {
        wanted: (wanted.sbom.is_some() || wanted.provenance.is_some()).then_some(wanted),
        provenance_given,
    })
}

/// `BUILDX_NO_DEFAULT_ATTESTATIONS`: set to a true value, no provenance by default (buildx
/// refuses a value that is not a boolean).
const NO_DEFAULT_ENV: &str = "BUILDX_NO_DEFAULT_ATTESTATIONS";

fn no_default_attestations() -> Result<bool, UsageError> {
    match std::env::var(NO_DEFAULT_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(false),
        Err(std::env::VarError::NotUnicode(v)) => Err(UsageError(format!(
            "invalid {NO_DEFAULT_ENV}: {v:?} is not a boolean"
        ))),
        Ok(v) => crate::cli::gobool::parse(&v)
            .map_err(|e| UsageError(format!("invalid {NO_DEFAULT_ENV}: {e}"))),
    }
}

/// Whether the build pushes: `--push`, `type=registry` or `type=image,push=true`.
pub fn pushes(push: bool, outputs: &[OutputRequest]) -> bool {
    push || outputs.iter().any(|o| o.push.is_some())
}

/// The attestations of this build: those asked for (refused with the reason where no output
/// can take them), plus buildx's default `mode=min` provenance when the build pushes and no
/// provenance flag was given. The default never fails a build: where the outputs cannot carry
/// it (a docker archive, Docker media types, push-by-digest), it is left out.
pub fn decide(
    asked: Asked,
    push: bool,
    outputs: &[OutputRequest],
    several_platforms: bool,
) -> Result<Option<Wanted>, UsageError> {
    let mut wanted = asked.wanted;
    if wanted.is_some() {
        check_outputs(push, outputs, several_platforms)?;
    }
    if !asked.provenance_given && pushes(push, outputs) && !no_default_attestations()? {
        let mut with_default = wanted.clone().unwrap_or_default();
        with_default.provenance = Some(Provenance {
            mode: Mode::Min,
            version: Version::V02,
            builder_id: String::new(),
            inline_only: true,
        });
        if check_outputs(push, outputs, several_platforms).is_ok() {
            wanted = Some(with_default);
        }
    }
    Ok(wanted)
}

/// Attestations go into an image index (a push, an OCI output, a multi-platform index in the
/// store) or beside the files of a `type=local` or `type=tar` output.
pub fn check_outputs(
    push: bool,
    outputs: &[OutputRequest],
    several_platforms: bool,
) -> Result<(), UsageError> {
    let refuse = |what: &str, why: &str| {
        Err(UsageError(format!(
            "{what}: attestations (--sbom, --provenance, --attest) {why}"
        )))
    };
    let mut carried = push;
    for out in outputs {
        let what = format!("--output {:?}", out.raw);
        if out.style.as_ref().is_some_and(|s| s.docker_types()) {
            return refuse(&what, "need OCI media types (an OCI image index)");
        }
        if out.push.as_ref().is_some_and(|p| p.by_digest) {
            return refuse(&what, "are not supported with push-by-digest yet");
        }
        match &out.spec {
            Some(OutputSpec::DockerArchive(_)) => {
                return refuse(
                    &what,
                    "cannot go into a docker archive (docker load takes no index): use type=oci",
                );
            }
            Some(_) => carried = true,
            None if out.push.is_some() => carried = true,
            // A multi-platform build keeps its index in the store, attestations included.
            None if several_platforms => carried = true,
            None => {}
        }
    }
    if several_platforms && outputs.is_empty() {
        carried = true;
    }
    if !carried {
        return refuse(
            "-t without --push",
            "need an image index, which the image store cannot hold for a single-platform image (it keeps those as docker's classic store does; buildx's docker driver refuses them too): add --push or --output type=oci",
        );
    }
    Ok(())
}
