//! The statements themselves: provenance facts and SBOMs of each built platform image, as
//! attestation manifests in the store, or as files beside a `type=local` / `type=tar` output.

use super::*;

/// What the CLI knows of one platform's build, for the provenance and the SBOM's extra scans.
#[derive(Clone)]
pub struct Facts {
    pub request: BuildRequest,
    pub steps: Vec<builder_solver::StepRecord>,
    /// The stages built, for `scan-stage`.
    pub stages: Vec<builder_solver::BuiltStageLayers>,
    pub bases: Vec<(Platform, builder_dockerfile2graph::ResolvedImage)>,
    /// `ADD <url>` and `ADD <git>` sources.
    pub fetched: Vec<crate::cli::checks::Fetched>,
    /// A git context: its URL and commit.
    pub git: Option<(String, String)>,
    pub started_on: String,
    pub finished_on: String,
}

fn now_or_epoch(request: &BuildRequest) -> String {
    match request.solve.layer_options.source_date_epoch {
        Some(s) => builder_store::time::rfc3339_from_unix(s),
        None => builder_store::time::rfc3339_now(),
    }
}

fn build_facts(f: &Facts, platform: &Platform, builder_id: &str) -> BuildFacts {
    let r = &f.request;
    let mut args = BTreeMap::new();
    for (k, v) in &r.convert.build_args {
        args.insert(format!("build-arg:{k}"), v.clone());
    }
    for (k, v) in &r.convert.labels {
        args.insert(format!("label:{k}"), v.clone());
    }
    if let Some(t) = &r.convert.target {
        args.insert("target".into(), t.clone());
    }
    // The local sources the build read, as BuildKit lists them: the context and the
    // Dockerfile when they came from this machine (a git context brings both), and each
    // directory named context (a docker-image:// one is an image: a material).
    let mut locals = Vec::new();
    if f.git.is_none() {
        locals.extend(["context".to_string(), "dockerfile".to_string()]);
    }
    for (name, context) in &r.convert.build_contexts {
        if matches!(context, builder_dockerfile2graph::BuildContext::Dir(_)) {
            locals.push(name.clone());
        }
    }
    let mut materials: Vec<Material> = f
        .bases
        .iter()
        .map(|(p, img)| Material {
            // An image imported from an `oci-layout://` context is a local OCI image to
            // BuildKit: `pkg:oci/...?digest=...`.
            uri: if img
                .reference
                .trim_start_matches("docker.io/library/")
                .starts_with("oci-layout@")
            {
                intoto::image_purl("oci", &img.reference, Some(&p.to_string()))
            } else {
                intoto::docker_purl(&img.reference, Some(&p.to_string()))
            },
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
    // A git context is an input like any other source: BuildKit lists its checkout, by the
    // URL and ref without the subdirectory (`repo.git#main`, not `repo.git#main:src`).
    if let Some((url, commit)) = &f.git {
        let uri = match url.split_once('#') {
            Some((repo, fragment)) => {
                let reference = fragment.split_once(':').map_or(fragment, |(r, _)| r);
                if reference.is_empty() {
                    repo.to_string()
                } else {
                    format!("{repo}#{reference}")
                }
            }
            None => url.clone(),
        };
        materials.push(Material {
            uri,
            digest: [(
                if commit.len() == 64 { "sha256" } else { "sha1" }.to_string(),
                commit.clone(),
            )]
            .into(),
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
    let invocation_id = builder_store::Digest::of(
        format!("{}{}{}", f.started_on, platform, std::process::id()).as_bytes(),
    )
    .hex()[..26]
        .to_string();
    BuildFacts {
        builder_id: builder_id.to_string(),
        entry_point: r.convert.file_name.clone(),
        config_source: f.git.as_ref().map(|(url, commit)| Material {
            uri: url.clone(),
            digest: [(
                if commit.len() == 64 { "sha256" } else { "sha1" }.to_string(),
                commit.clone(),
            )]
            .into(),
        }),
        args,
        secret_ids: r.solve.secrets.keys().cloned().collect(),
        ssh_ids: r.solve.ssh.keys().cloned().collect(),
        locals,
        platform: platform.to_string(),
        materials,
        invocation_id,
        started_on: f.started_on.clone(),
        finished_on: f.finished_on.clone(),
        // BuildKit records no vcs metadata for a git URL context (its commit is the config
        // source and a material); buildx's vcs: attributes of a local checkout are not sent.
        vcs: BTreeMap::new(),
        steps,
        dockerfile: Some((r.convert.file_name.clone(), r.dockerfile.clone())),
    }
}

pub fn started_on(request: &BuildRequest) -> String {
    now_or_epoch(request)
}

/// One in-toto statement and the file name BuildKit's local and tar exporters give it.
struct Named {
    file_name: String,
    statement: Statement,
}

/// `BUILDKIT_SBOM_SCAN_*` as BuildKit reads it for a stage: each value in turn (the flag's,
/// the global ARG's, the stage's own) is a boolean, or a comma list of the stages it enables.
fn scan_enabled<'v>(stage: &str, values: impl IntoIterator<Item = &'v str>) -> bool {
    let mut on = false;
    for value in values {
        on = match crate::cli::gobool::parse(value) {
            Ok(b) => b,
            Err(_) => value.split(',').any(|s| s == stage),
        };
    }
    on
}

/// What the SBOM scans besides the image, each with its name (`context`, or the stage's): the
/// build context when the target stage enables `scan-context`, and each other stage built
/// that enables `scan-stage` (never a stage the build does not need).
fn extra_scans(
    store: &builder_store::Store,
    sbom: &Sbom,
    facts: &Facts,
) -> anyhow::Result<Vec<(String, builder_attest::sbom::Inventory)>> {
    let mut out = Vec::new();
    let values = |flag: &Option<String>, own: &[String]| -> Vec<String> {
        flag.iter().chain(own).cloned().collect()
    };
    let target = facts.stages.iter().find(|s| s.stage.is_target);
    if let Some(target) = target {
        let v = values(&sbom.scan_context, &target.stage.scan_context);
        if scan_enabled(&target.stage.name, v.iter().map(String::as_str))
            && let Some(dir) = &facts.request.solve.context_dir
        {
            let ignore = match &facts.request.dockerignore {
                Some(text) => builder_frontend::dockerignore::IgnoreMatcher::parse(text)
                    .map_err(|e| anyhow::anyhow!("invalid .dockerignore: {e}"))?,
                None => builder_frontend::dockerignore::IgnoreMatcher::empty(),
            };
            let inventory = builder_attest::sbom::scan_dir(dir, &|rel| ignore.is_excluded(rel))
                .with_context(|| format!("scanning the build context {}", dir.display()))?;
            out.push(("context".to_string(), inventory));
        }
    }
    for stage in facts.stages.iter().filter(|s| !s.stage.is_target) {
        let v = values(&sbom.scan_stage, &stage.stage.scan_stage);
        if scan_enabled(&stage.stage.name, v.iter().map(String::as_str)) {
            let inventory = scan_stored_layers(store, &stage.layers)
                .with_context(|| format!("scanning stage {} for the SBOM", stage.stage.name))?;
            out.push((stage.stage.name.clone(), inventory));
        }
    }
    Ok(out)
}

fn spdx_statement(
    inventory: &builder_attest::sbom::Inventory,
    name: &str,
    subjects: &[intoto::Subject],
    facts: &Facts,
) -> anyhow::Result<Statement> {
    for w in &inventory.warnings {
        errln!("WARNING: SBOM: {w}");
    }
    let created = now_or_epoch(&facts.request);
    let tool = format!("builder-{}", env!("CARGO_PKG_VERSION"));
    let doc = spdx::document(
        inventory,
        &spdx::DocumentInfo {
            name,
            created: &created,
            tool: &tool,
        },
    );
    let stmt = intoto::statement(spdx::PREDICATE_TYPE, subjects, doc);
    Ok(Statement {
        predicate_type: spdx::PREDICATE_TYPE.into(),
        bytes: serde_json::to_vec(&stmt)?,
    })
}

/// The in-toto statements wanted for one platform's image, about `subjects`: the SBOM of the
/// image (`sbom.spdx.json`), those of the extra scans (`sbom-NAME.spdx.json`, as BuildKit's
/// scanner names them), the provenance (`provenance.json`).
fn statements(
    store: &builder_store::Store,
    wanted: &Wanted,
    image: &ImageRecord,
    platform: &Platform,
    names: &[String],
    subjects: &[intoto::Subject],
    facts: &Facts,
) -> anyhow::Result<Vec<Named>> {
    let mut statements = Vec::new();
    if let Some(sbom) = &wanted.sbom {
        let (inventory, _read) = scan_stored_image(store, &image.manifest)
            .with_context(|| format!("scanning the {platform} image for the SBOM"))?;
        let name = names.first().map(String::as_str).unwrap_or("image");
        statements.push(Named {
            file_name: "sbom.spdx.json".into(),
            statement: spdx_statement(&inventory, name, subjects, facts)?,
        });
        for (extra, inventory) in extra_scans(store, sbom, facts)? {
            statements.push(Named {
                file_name: format!("sbom-{extra}.spdx.json"),
                // BuildKit's scanner names an extra document after its scan target.
                statement: spdx_statement(&inventory, &format!("sbom-{extra}"), subjects, facts)?,
            });
        }
    }
    if let Some(p) = &wanted.provenance {
        let bf = build_facts(facts, platform, &p.builder_id);
        let pred = provenance::predicate(&bf, p.mode, p.version);
        let stmt = intoto::statement(p.version.predicate_type(), subjects, pred);
        statements.push(Named {
            file_name: "provenance.json".into(),
            statement: Statement {
                predicate_type: p.version.predicate_type().into(),
                bytes: serde_json::to_vec(&stmt)?,
            },
        });
    }
    Ok(statements)
}

/// The attestation manifest of one platform's image, stored; its index descriptor. The
/// subjects are the image manifest under each name (`_` without one), as BuildKit's.
pub fn attest_image(
    store: &builder_store::Store,
    wanted: &Wanted,
    image: &ImageRecord,
    platform: &Platform,
    names: &[String],
    facts: &Facts,
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
    let statements: Vec<Statement> =
        statements(store, wanted, image, platform, names, &subjects, facts)?
            .into_iter()
            .map(|n| n.statement)
            .collect();
    Ok(put_attestation_manifest(
        store.blobs(),
        &image.manifest,
        &statements,
    )?)
}

/// The statement files of a `type=local` or `type=tar` output's tree, about `subjects` (every
/// regular file of the tree, sorted by name): pretty JSON, as BuildKit writes them. Empty when
/// only inline-only attestations are wanted.
fn statement_files(
    store: &builder_store::Store,
    wanted: &Wanted,
    image: &ImageRecord,
    platform: &Platform,
    mut subjects: Vec<intoto::Subject>,
    facts: &Facts,
) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
    let Some(wanted) = wanted.for_files() else {
        return Ok(Vec::new());
    };
    subjects.sort_by(|a, b| a.name.cmp(&b.name));
    let mut files = Vec::new();
    for n in statements(store, &wanted, image, platform, &[], &subjects, facts)? {
        let value: serde_json::Value = serde_json::from_slice(&n.statement.bytes)?;
        files.push((
            PathBuf::from(n.file_name),
            serde_json::to_vec_pretty(&value)?,
        ));
    }
    Ok(files)
}

/// `type=local`: the statements as files beside the exported tree, as BuildKit's local
/// exporter writes them (`sbom.spdx.json`, `provenance.json`, mode 0600), their subjects every
/// regular file of the tree with its sha256. Subject names are JSON strings: a file name that
/// is not UTF-8 is written with replacement characters there (the file itself is untouched).
pub fn write_local(
    store: &builder_store::Store,
    wanted: &Wanted,
    image: &ImageRecord,
    platform: &Platform,
    dir: &Path,
    facts: &Facts,
) -> anyhow::Result<()> {
    if wanted.for_files().is_none() {
        return Ok(());
    }
    let mut subjects = Vec::new();
    collect_subjects(dir, dir, &mut subjects)?;
    for (name, bytes) in statement_files(store, wanted, image, platform, subjects, facts)? {
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        file.write_all(&bytes)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// One platform's tree in a `type=tar` output.
pub struct TarImage<'a> {
    /// `linux_amd64` in a multi-platform tar, as BuildKit; None at the top.
    pub dir: Option<PathBuf>,
    pub image: &'a ImageRecord,
    pub platform: &'a Platform,
    pub facts: Option<&'a Facts>,
}

/// `type=tar`: the trees (one directory per platform for several), each followed by its
/// statement files, as BuildKit's tar exporter writes them; `dest` `-` is stdout.
pub fn write_tar(
    store: &builder_store::Store,
    wanted: Option<&Wanted>,
    parts: &[TarImage<'_>],
    dest: &Path,
) -> anyhow::Result<()> {
    let tar_parts: Vec<builder_export::TarPart> = parts
        .iter()
        .map(|p| builder_export::TarPart {
            dir: p.dir.clone(),
            manifest: p.image.manifest,
        })
        .collect();
    let mut failure: Option<anyhow::Error> = None;
    let mut extra = |i: usize, written: &[builder_export::WrittenFile]| {
        let part = &parts[i];
        let (Some(wanted), Some(facts)) = (wanted, part.facts) else {
            return Ok(Vec::new());
        };
        let subjects = written
            .iter()
            .map(|f| intoto::Subject {
                name: f.path.to_string_lossy().into_owned(),
                sha256: f.digest.hex(),
            })
            .collect();
        statement_files(store, wanted, part.image, part.platform, subjects, facts).map_err(|e| {
            let message = format!("{e:#}");
            failure = Some(e);
            builder_export::ExportError::Attestation(message)
        })
    };
    let result = if dest.as_os_str() == "-" {
        let out = std::io::BufWriter::new(std::io::stdout().lock());
        builder_export::write_rootfs_tar_parts(store, &tar_parts, out, &mut extra).and_then(|out| {
            out.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|mut w| w.flush())
                .map_err(builder_export::ExportError::io("write", "<stdout>"))
        })
    } else {
        let file =
            std::fs::File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
        builder_export::write_rootfs_tar_parts(
            store,
            &tar_parts,
            std::io::BufWriter::new(file),
            &mut extra,
        )
        .and_then(|out| {
            out.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|w| w.sync_all())
                .map_err(builder_export::ExportError::io("write", dest))
        })
    };
    match (result, failure) {
        (Err(_), Some(e)) => Err(e),
        (Err(e), None) => Err(e.into()),
        (Ok(()), _) => Ok(()),
    }
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
            let mut hasher = builder_store::HashingReader::new(&mut file);
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
