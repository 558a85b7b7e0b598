//! `--sbom`, `--provenance` and `--attest`: which attestations a build attaches (buildx's flag
//! forms), and the attestation manifests made for each built platform image.
//!
//! As buildx with a builder that can attach them (docker-container), the attestations ride in
//! the image index of a push or an OCI output. builder's image store keeps single-platform
//! images, as docker's classic store, so as buildx's docker driver it refuses attestations
//! for a build whose only destination is the store. Unlike buildx with docker-container, no
//! provenance is attached by default (buildx's docker driver default): a push stays a plain
//! image manifest unless attestations are asked for.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context as _;
use builder_attest::manifest::{Statement, put_attestation_manifest, scan_stored_image};
use builder_attest::provenance::{self, BuildFacts, Material, Mode, Step, Version};
use builder_attest::{intoto, spdx};
use builder_cache::manifest::Descriptor;
use builder_cache::{ImageRecord, Platform};
use builder_solver::BuildRequest;

use super::super::outputs::{OutputRequest, OutputSpec};
use crate::cli::UsageError;

/// What to attach; `None` from [`parse`] attaches nothing.
#[derive(Clone, Debug, Default)]
pub struct Wanted {
    pub sbom: bool,
    pub provenance: Option<(Mode, Version, String)>,
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

/// The SBOM keys of `--sbom=...` or `--attest type=sbom,...`; false when disabled.
fn sbom_spec(flag: &str, kv: &[(String, String)]) -> Result<bool, UsageError> {
    let mut on = true;
    for (k, v) in kv {
        match k.as_str() {
            "type" => {}
            "disabled" => on = !parse_bool(flag, v)?,
            "generator" => {
                return Err(UsageError(format!(
                    "{flag}: generator={v}: builder scans the image itself; a generator image is not run"
                )));
            }
            "scan-context" | "scan-stage" if !parse_bool(flag, v)? => {}
            "scan-context" | "scan-stage" => {
                return Err(UsageError(format!(
                    "{flag}: {k}=true is not supported yet: the SBOM lists the final image's packages only"
                )));
            }
            other => {
                return Err(UsageError(format!(
                    "{flag}: unknown key {other:?} (expected disabled, generator, scan-context, scan-stage)"
                )));
            }
        }
    }
    Ok(on)
}

fn provenance_spec(
    flag: &str,
    kv: &[(String, String)],
) -> Result<Option<(Mode, Version, String)>, UsageError> {
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
    Ok(on.then_some((mode, version, id)))
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
) -> Result<Option<Wanted>, UsageError> {
    let mut wanted = Wanted::default();
    if let Some(v) = sbom
        && let Some(kv) = flag_spec(&format!("--sbom={v}"), v)?
    {
        wanted.sbom = sbom_spec(&format!("--sbom={v}"), &kv)?;
    }
    if let Some(v) = provenance
        && let Some(kv) = flag_spec(&format!("--provenance={v}"), v)?
    {
        wanted.provenance = provenance_spec(&format!("--provenance={v}"), &kv)?;
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
            Some("provenance") => wanted.provenance = provenance_spec(&flag, &kv)?,
            Some(other) => {
                return Err(UsageError(format!(
                    "{flag}: type={other}: expected sbom or provenance"
                )));
            }
            None => return Err(UsageError(format!("{flag}: type= is required"))),
        }
    }
    Ok((wanted.sbom || wanted.provenance.is_some()).then_some(wanted))
}

/// Attestations go into an image index (a push, an OCI output) or, for type=local, beside the
/// tree as files.
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
            Some(OutputSpec::RootfsTar(_)) => {
                return refuse(
                    &what,
                    "are not written into type=tar archives yet: use type=local, type=oci or push",
                );
            }
            Some(OutputSpec::Local(_)) if several_platforms => {
                return refuse(
                    &what,
                    "are not written into type=local directories of several platforms yet: use type=oci or push",
                );
            }
            Some(OutputSpec::Local(_)) => carried = true,
            Some(_) => carried = true,
            None if out.push.is_some() => carried = true,
            None => {}
        }
    }
    if !carried {
        return refuse(
            "-t without --push",
            "need an image index, which the image store cannot hold (it keeps single-platform images, as docker's classic store; buildx's docker driver refuses them too): add --push or --output type=oci",
        );
    }
    Ok(())
}

/// What the CLI knows of one platform's build, for the provenance.
pub struct Facts<'a> {
    pub request: &'a BuildRequest,
    pub steps: &'a [builder_solver::StepRecord],
    pub bases: Vec<(Platform, builder_dockerfile2graph::ResolvedImage)>,
    /// `ADD <url>` and `ADD <git>` sources.
    pub fetched: Vec<crate::cli::checks::Fetched>,
    /// A git context: its URL and commit.
    pub git: Option<(String, String)>,
    pub started_on: String,
    pub finished_on: String,
}

fn now_or_epoch(request: &BuildRequest) -> String {
    match request.source_date_epoch {
        Some(s) => builder_cache::time::rfc3339_from_unix(s),
        None => builder_cache::time::rfc3339_now(),
    }
}

fn build_facts(f: &Facts<'_>, platform: &Platform, builder_id: &str) -> BuildFacts {
    let r = f.request;
    let mut args = BTreeMap::new();
    for (k, v) in &r.build_args {
        args.insert(format!("build-arg:{k}"), v.clone());
    }
    for (k, v) in &r.labels {
        args.insert(format!("label:{k}"), v.clone());
    }
    if let Some(t) = &r.target {
        args.insert("target".into(), t.clone());
    }
    let mut locals = vec!["context".to_string(), "dockerfile".to_string()];
    for name in r.build_contexts.keys() {
        locals.push(name.clone());
    }
    let mut materials: Vec<Material> = f
        .bases
        .iter()
        .map(|(p, img)| Material {
            uri: intoto::docker_purl(&img.reference, Some(&p.to_string())),
            digest: [("sha256".to_string(), img.manifest_digest.hex())].into(),
        })
        .collect();
    for f in &f.fetched {
        use crate::cli::checks::Fetched;
        materials.push(match f {
            Fetched::Url { url, sha256 } => Material {
                uri: url.clone(),
                digest: [("sha256".to_string(), sha256.clone())].into(),
            },
            // A commit id is a sha1 (or sha256 in a sha256 repository), as BuildKit records it.
            Fetched::Git { url, commit } => Material {
                uri: url.clone(),
                digest: [(
                    if commit.len() == 64 { "sha256" } else { "sha1" }.to_string(),
                    commit.clone(),
                )]
                .into(),
            },
        });
    }
    materials.sort_by(|a, b| a.uri.cmp(&b.uri));
    materials.dedup();
    let steps = f
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| Step {
            id: format!("step{i}"),
            name: s.record.description.clone(),
            cache_key: s.key.to_string(),
            in_image: s.in_image,
        })
        .collect();
    let invocation_id = builder_cache::Digest::of(
        format!("{}{}{}", f.started_on, platform, std::process::id()).as_bytes(),
    )
    .hex()[..26]
        .to_string();
    BuildFacts {
        builder_id: builder_id.to_string(),
        entry_point: r.dockerfile_name.clone(),
        config_source: f.git.as_ref().map(|(url, commit)| Material {
            uri: url.clone(),
            digest: [(
                if commit.len() == 64 { "sha256" } else { "sha1" }.to_string(),
                commit.clone(),
            )]
            .into(),
        }),
        args,
        secret_ids: r.secrets.keys().cloned().collect(),
        ssh_ids: r.ssh.keys().cloned().collect(),
        locals,
        platform: platform.to_string(),
        materials,
        invocation_id,
        started_on: f.started_on.clone(),
        finished_on: f.finished_on.clone(),
        vcs: f
            .git
            .iter()
            .flat_map(|(url, commit)| {
                [
                    ("source".to_string(), url.clone()),
                    ("revision".to_string(), commit.clone()),
                ]
            })
            .collect(),
        steps,
        dockerfile: Some((r.dockerfile_name.clone(), r.dockerfile.clone())),
    }
}

pub fn started_on(request: &BuildRequest) -> String {
    now_or_epoch(request)
}

/// The in-toto statements wanted for one platform's image, about `subjects`.
fn statements(
    store: &builder_cache::Store,
    wanted: &Wanted,
    image: &ImageRecord,
    platform: &Platform,
    names: &[String],
    subjects: &[intoto::Subject],
    facts: &Facts<'_>,
) -> anyhow::Result<Vec<Statement>> {
    let mut statements = Vec::new();
    if wanted.sbom {
        let inventory = scan_stored_image(store.blobs(), &image.manifest)
            .with_context(|| format!("scanning the {platform} image for the SBOM"))?;
        for w in &inventory.warnings {
            errln!("WARNING: SBOM: {w}");
        }
        let name = names.first().map(String::as_str).unwrap_or("image");
        let created = now_or_epoch(facts.request);
        let tool = format!("builder-{}", env!("CARGO_PKG_VERSION"));
        let doc = spdx::document(
            &inventory,
            &spdx::DocumentInfo {
                name,
                created: &created,
                tool: &tool,
            },
        );
        let stmt = intoto::statement(spdx::PREDICATE_TYPE, subjects, doc);
        statements.push(Statement {
            predicate_type: spdx::PREDICATE_TYPE.into(),
            bytes: serde_json::to_vec(&stmt)?,
        });
    }
    if let Some((mode, version, id)) = &wanted.provenance {
        let bf = build_facts(facts, platform, id);
        let pred = provenance::predicate(&bf, *mode, *version);
        let stmt = intoto::statement(version.predicate_type(), subjects, pred);
        statements.push(Statement {
            predicate_type: version.predicate_type().into(),
            bytes: serde_json::to_vec(&stmt)?,
        });
    }
    Ok(statements)
}

/// The attestation manifest of one platform's image, stored; its index descriptor. The
/// subjects are the image manifest under each name (`_` without one), as BuildKit's.
pub fn attest_image(
    store: &builder_cache::Store,
    wanted: &Wanted,
    image: &ImageRecord,
    platform: &Platform,
    names: &[String],
    facts: &Facts<'_>,
) -> anyhow::Result<Descriptor> {
    let subjects: Vec<intoto::Subject> = if names.is_empty() {
        vec![intoto::Subject {
            name: "_".into(),
            sha256: image.manifest.hex(),
        }]
    } else {
        names
            .iter()
            .map(|n| intoto::Subject {
                name: intoto::docker_purl(n, Some(&platform.to_string())),
                sha256: image.manifest.hex(),
            })
            .collect()
    };
    let statements = statements(store, wanted, image, platform, names, &subjects, facts)?;
    Ok(put_attestation_manifest(
        store.blobs(),
        &image.manifest,
        &statements,
    )?)
}

/// `type=local`: the statements as files beside the exported tree, as BuildKit's local
/// exporter writes them (`sbom.spdx.json`, `provenance.json`, mode 0600), their subjects every
/// regular file of the tree with its sha256. Subject names are JSON strings: a file name that
/// is not UTF-8 is written with replacement characters there (the file itself is untouched).
pub fn write_local(
    store: &builder_cache::Store,
    wanted: &Wanted,
    image: &ImageRecord,
    platform: &Platform,
    dir: &Path,
    facts: &Facts<'_>,
) -> anyhow::Result<()> {
    let mut subjects = Vec::new();
    collect_subjects(dir, dir, &mut subjects)?;
    subjects.sort_by(|a, b| a.name.cmp(&b.name));
    let statements = statements(store, wanted, image, platform, &[], &subjects, facts)?;
    for s in statements {
        let name = if s.predicate_type == spdx::PREDICATE_TYPE {
            "sbom.spdx.json"
        } else {
            "provenance.json"
        };
        let value: serde_json::Value = serde_json::from_slice(&s.bytes)?;
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        file.write_all(&serde_json::to_vec_pretty(&value)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn collect_subjects(root: &Path, dir: &Path, out: &mut Vec<intoto::Subject>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            collect_subjects(root, &path, out)?;
        } else if kind.is_file() {
            let mut file = std::fs::File::open(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let mut hasher = builder_cache::HashingReader::new(&mut file);
            std::io::copy(&mut hasher, &mut std::io::sink())
                .with_context(|| format!("reading {}", path.display()))?;
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(intoto::Subject {
                name: rel.to_string_lossy().into_owned(),
                sha256: hasher.finish().0.hex(),
            });
        }
    }
    Ok(())
}
