//! `--platform a,b`: one build per platform, then an OCI image index of their images (issue #18).
//!
//! The builds run one after the other on the same store, so every step whose cache key is the
//! same for both (a `FROM --platform=$BUILDPLATFORM` stage that cross-compiles, a COPY of the
//! context) runs once and is a cache hit for the next platform. Progress lines name the
//! platform (`[linux/arm64 2/3] RUN ...`), as BuildKit's do.
//!
//! Where the index goes: pushed (`--push`, `type=image,push=true`, `type=registry`), into an
//! OCI layout (`type=oci`, archive or directory), or as one directory per platform
//! (`type=local`: `DEST/linux_amd64/`; `type=tar`: `linux_amd64/…` in the tar, as BuildKit), or into the image store under the tags
//! (`-t` without a push, `type=image`), as docker's containerd image store keeps it; the
//! outputs that cannot carry an index are refused by name.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use builder_solver::progress::{Event, ProgressSink};
use builder_solver::resolve::StoreResolver;
use builder_store::manifest::{Descriptor, Index, media_type};
use builder_store::{Digest, ImageRecord, Platform};

use super::super::outputs::{OutputRequest, OutputSpec};
use super::super::progress::{ProgressMode, Renderer};
use super::{BuildArgs, CacheFlags, announce_isolation, normalize};
use crate::cli::{Context, UsageError};

/// `--platform` values: comma lists, the flag repeated; duplicates dropped, order kept.
pub fn parse_platforms(values: &[String]) -> Result<Vec<Platform>, UsageError> {
    let mut out: Vec<Platform> = Vec::new();
    for v in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        let p: Platform = v
            .parse()
            .map_err(|e| UsageError(format!("--platform: {e}")))?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// The progress of one platform's build: its vertices numbered apart from the other builds',
/// its step names carrying the platform.
struct PlatformSink<'a> {
    inner: &'a dyn ProgressSink,
    platform: String,
    offset: usize,
}

impl PlatformSink<'_> {
    fn name(&self, name: String) -> String {
        match name.strip_prefix('[') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
                format!("[{} {rest}", self.platform)
            }
            Some(rest) => format!("[{} {rest}", self.platform),
            None => format!("[{}] {name}", self.platform),
        }
    }
}

impl ProgressSink for PlatformSink<'_> {
    fn event(&self, event: Event) {
        let o = self.offset;
        let event = match event {
            Event::Started { vertex, name } => Event::Started {
                vertex: vertex + o,
                name: self.name(name),
            },
            Event::Cached { vertex, name } => Event::Cached {
                vertex: vertex + o,
                name: self.name(name),
            },
            Event::Completed {
                vertex,
                name,
                elapsed,
            } => Event::Completed {
                vertex: vertex + o,
                name: self.name(name),
                elapsed,
            },
            Event::Failed {
                vertex,
                name,
                error,
            } => Event::Failed {
                vertex: vertex + o,
                name: self.name(name),
                error,
            },
            Event::Log {
                vertex,
                stream,
                data,
            } => Event::Log {
                vertex: vertex + o,
                stream,
                data,
            },
            Event::Status { message } => Event::Status {
                message: format!("[{}] {message}", self.platform),
            },
            other => other,
        };
        self.inner.event(event);
    }
}

/// One platform's check results added to the others', a warning every platform gives once.
fn merge_checks(
    all: &mut Option<builder_frontend::linter::LintReport>,
    report: builder_frontend::linter::LintReport,
) {
    match all {
        None => *all = Some(report),
        Some(all) => {
            for w in report.warnings {
                if !all.warnings.iter().any(|seen| seen.short() == w.short()) {
                    all.warnings.push(w);
                }
            }
        }
    }
}

/// Refuses what an image index cannot go to, before anything is built.
fn check_outputs(outputs: &[OutputRequest]) -> Result<(), UsageError> {
    let refuse = |what: &str, why: &str| {
        Err(UsageError(format!(
            "{what}: a build for several platforms makes an image index, {why}"
        )))
    };
    for out in outputs {
        let what = format!("--output {:?}", out.raw);
        if let Some(style) = &out.style
            && (style.docker_types() || !style.annotations.is_empty() || style.force_compression)
        {
            return refuse(
                &what,
                "and oci-mediatypes=false, annotations and force-compression are not supported for one yet",
            );
        }
        if out.name_canonical {
            return refuse(&what, "and name-canonical is not supported for one yet");
        }
        if out.push.as_ref().is_some_and(|p| p.by_digest) {
            return refuse(&what, "and push-by-digest is not supported for one yet");
        }
        if let Some(OutputSpec::DockerArchive(_)) = &out.spec {
            return refuse(
                &what,
                "which docker archives cannot carry (docker load takes one platform): use type=oci",
            );
        }
    }
    Ok(())
}

pub fn run(
    ctx: &Context,
    store: &builder_store::Store,
    args: &BuildArgs,
    platforms: &[Platform],
    outputs: Vec<OutputRequest>,
    compression: builder_snapshot::Compression,
    wanted: Option<&super::attestations::Wanted>,
) -> anyhow::Result<ExitCode> {
    check_outputs(&outputs)?;
    // Such a context is one platform's manifest, picked when it is imported.
    if let Some(layout) = args.build_contexts.iter().find(|c| {
        c.split_once('=')
            .is_some_and(|(_, v)| v.starts_with("oci-layout://"))
    }) {
        bail!(UsageError(format!(
            "--build-context {layout}: an oci-layout:// context with several platforms is not supported yet (it is imported for one platform); build each platform on its own"
        )));
    }
    if !args.annotations.is_empty() {
        bail!(UsageError(
            "--annotation: annotations on a multi-platform index are not supported yet".into()
        ));
    }
    let tags = args
        .tags
        .iter()
        .map(|t| normalize(t).map_err(|e| UsageError(format!("invalid tag {t:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    // `--cache-to type=inline` (or BUILDKIT_INLINE_CACHE=1): each platform's image carries the
    // records of its own build in its config, as BuildKit's; `--cache-from` of the index reads
    // every platform's.
    // The same reading of `BUILDKIT_INLINE_CACHE` as a single-platform build's (a bad value is
    // refused, a bare `KEY` takes the environment's value).
    let builtin =
        crate::cli::buildkit_args::BuiltinArgs::read(&super::parse_build_args(&args.build_args))?;
    let cache = CacheFlags::parse(args, builtin.inline_cache)?;
    let imports = cache.import(store)?;
    let mode = if args.quiet {
        ProgressMode::Quiet
    } else {
        ProgressMode::parse(&args.progress)?
    };
    let renderer = Renderer::new(mode);
    announce_isolation(ctx, &renderer);
    super::super::interrupt::cancel_build_on_signal().context("installing the Ctrl-C handler")?;
    let fetch = super::super::registry::fetcher(ctx, &renderer);
    let fetch_url = super::super::context_source::url_fetcher(ctx.root.clone());
    // Each platform's image, kept under no name until the index holds them.
    let _lease = builder_store::gc::build_lease(store.root())?;
    let mut built: Vec<(Platform, ImageRecord)> = Vec::new();
    let mut attestations = Vec::new();
    // Each platform's facts, for the statement files of type=local and type=tar outputs.
    let mut platform_facts: Vec<super::attestations::Facts> = Vec::new();
    let mut steps = Vec::new();
    let mut mounts = Vec::new();
    let mut warnings = Vec::new();
    let mut checks: Option<builder_frontend::linter::LintReport> = None;
    // The context is resolved once for every platform: a git checkout, a download or stdin
    // (which can only be read once) serve them all.
    let (first, files) = super::make_request(
        args,
        compression,
        ctx.isolation,
        store,
        platforms.first().cloned(),
    )?;
    let fetch_git = super::super::context_source::git_fetcher(store, files.git_auth.clone());
    for (i, platform) in platforms.iter().enumerate() {
        let mut request = first.clone();
        request.convert.platform = Some(platform.clone());
        if let Some(imports) = &imports {
            request.solve.cache_import = Some(imports.clone());
        }
        let resolver = StoreResolver {
            store,
            normalize: &normalize,
            fetch: Some(&*fetch),
            always_fetch: args.pull,
            fetch_url: Some(&*fetch_url),
            fetch_git: Some(&*fetch_git),
        };
        // Looked up once for the checks and the build.
        let resolver = super::super::checks::Remembering::new(&resolver);
        let started_on = super::attestations::started_on(&request);
        let sink = PlatformSink {
            inner: &renderer,
            platform: platform.to_string(),
            offset: i * 1_000_000,
        };
        // The checks run per platform (a base image may match one and not the other), their
        // warnings shown once after the builds, as buildx does.
        let report = super::super::checks::lint_for_build(&request, &resolver, mode)?;
        if report.error_on_warnings && !report.warnings.is_empty() {
            renderer.finish();
            super::super::checks::fail_on_violation(&report, &request, mode)?;
        }
        merge_checks(&mut checks, report);
        let output = builder_solver::build(store, &request, &resolver, &sink);
        let mut output = match output {
            Ok(o) => o,
            Err(e) => {
                renderer.finish();
                return Err(e.into());
            }
        };
        if cache.inline() {
            cache.embed_inline(store, &mut output)?;
        }
        let record = ImageRecord {
            manifest: output.image.manifest,
            config: output.image.config,
            created: output.config.created.clone().unwrap_or_default(),
        };
        store.images().add_untagged(record.clone())?;
        if let Some(wanted) = wanted {
            let facts = super::attestations::Facts {
                finished_on: super::attestations::started_on(&request),
                request,
                steps: output.steps.clone(),
                stages: output.stages.clone(),
                bases: resolver.resolved(),
                fetched: resolver.fetched(),
                git: files.context.git.clone(),
                started_on,
            };
            let d =
                super::attestations::attest_image(store, wanted, &record, platform, &tags, &facts)?;
            attestations.push(d);
            platform_facts.push(facts);
        }
        built.push((platform.clone(), record));
        steps.extend(output.steps);
        mounts.extend(output.cache_mounts);
        warnings.extend(output.warnings);
    }
    renderer.finish();
    if let Some(checks) = &checks {
        super::super::checks::print_build_warnings(checks, &first, mode);
    }
    for warning in imports.iter().flat_map(|i| i.take_warnings()) {
        errln!("WARNING: {warning}");
    }
    warnings.dedup();
    for warning in &warnings {
        errln!("WARNING: {warning}");
    }
    let index = put_index(store, &built, &attestations)?;
    for out in &outputs {
        match &out.spec {
            Some(OutputSpec::Local(dest)) => {
                for (i, (platform, record)) in built.iter().enumerate() {
                    let dir = dest.join(platform_dir(platform));
                    super::super::save::export_output(
                        store,
                        &OutputSpec::Local(dir.clone()),
                        &[],
                        record,
                        &Default::default(),
                        &renderer,
                    )
                    .with_context(|| format!("exporting {platform} to {}", dest.display()))?;
                    if let (Some(wanted), Some(facts)) = (wanted, platform_facts.get(i)) {
                        super::attestations::write_local(
                            store, wanted, record, platform, &dir, facts,
                        )
                        .with_context(|| format!("writing attestations to {}", dir.display()))?;
                    }
                }
            }
            // One directory per platform in the tar, as BuildKit's tar exporter.
            Some(OutputSpec::RootfsTar(dest)) => {
                let parts: Vec<super::attestations::TarImage> = built
                    .iter()
                    .enumerate()
                    .map(|(i, (platform, record))| super::attestations::TarImage {
                        dir: Some(platform_dir(platform).into()),
                        image: record,
                        platform,
                        facts: platform_facts.get(i),
                    })
                    .collect();
                super::attestations::write_tar(store, wanted, &parts, dest)
                    .with_context(|| format!("exporting to {}", dest.display()))?;
            }
            Some(spec) => {
                let mut names = tags.clone();
                names.extend(out.names.iter().filter(|n| !tags.contains(n)).cloned());
                let record = ImageRecord {
                    manifest: index,
                    config: built[0].1.config,
                    created: built[0].1.created.clone(),
                };
                super::super::save::export_output(
                    store,
                    spec,
                    &names,
                    &record,
                    &Default::default(),
                    &renderer,
                )
                .with_context(|| format!("exporting to {}", spec.describe()))?;
            }
            None => {}
        }
    }
    store_index(store, &tags, args.push, &outputs, index, &built)?;
    // Pushes: --push to every -t; push=true outputs to their names and the tags.
    let mut targets: Vec<String> = Vec::new();
    if args.push {
        targets.extend(tags.iter().cloned());
    }
    for out in outputs.iter().filter(|o| o.push.is_some()) {
        for name in tags.iter().chain(&out.names) {
            if !targets.contains(name) {
                targets.push(name.clone());
            }
        }
    }
    let mut pushed = Vec::new();
    for name in &targets {
        let digest = super::super::registry::push_manifest(
            store,
            name,
            index,
            media_type::OCI_INDEX,
            &renderer,
        )?;
        pushed.push((name.clone(), digest));
    }
    cache.export(store, &steps, &mounts)?;
    if let Some(path) = &args.iidfile {
        std::fs::write(path, index.to_string())
            .with_context(|| format!("writing --iidfile {}", path.display()))?;
    }
    if let Some(path) = &args.metadata_file {
        let names: Vec<&String> = pushed.iter().map(|(n, _)| n).collect();
        let meta = serde_json::json!({
            "containerimage.digest": index.to_string(),
            "containerimage.descriptor": {
                "mediaType": media_type::OCI_INDEX,
                "digest": index.to_string(),
                "size": store.blobs().size(&index)?,
            },
            "image.name": names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(","),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&meta)?)
            .with_context(|| format!("writing --metadata-file {}", path.display()))?;
    }
    errln!(
        "writing image index {index} ({})",
        platforms
            .iter()
            .map(Platform::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (name, _) in &pushed {
        errln!("pushed {name}");
    }
    Ok(ExitCode::SUCCESS)
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
