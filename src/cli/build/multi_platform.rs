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
use builder_store::{ImageRecord, Platform};

use super::super::outputs::{OutputRequest, OutputSpec};
use super::super::progress::{ProgressMode, Renderer};
use super::{BuildArgs, CacheFlags, announce_isolation, normalize};
use crate::cli::export::attestations::{self, Facts};
use crate::cli::export::{Exporter, PlatformImage};
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
    wanted: Option<&attestations::Wanted>,
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
    let mut built: Vec<PlatformImage> = Vec::new();
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
        let started_on = attestations::started_on(&request);
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
            cache.embed_inline(store, &mut output, compression)?;
        }
        let record = ImageRecord {
            manifest: output.image.manifest,
            config: output.image.config,
            created: output.config.created.clone().unwrap_or_default(),
        };
        store.images().add_untagged(record.clone())?;
        let facts = wanted.map(|_| Facts {
            finished_on: attestations::started_on(&request),
            steps: output.steps.clone(),
            stages: output.stages.clone(),
            bases: resolver.resolved(),
            fetched: resolver.fetched(),
            git: files.context.git.clone(),
            started_on,
            request,
        });
        built.push(PlatformImage {
            platform: platform.clone(),
            record,
            facts,
        });
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
    let exporter = Exporter {
        store,
        renderer: &renderer,
        tags: &tags,
        outputs: &outputs,
        push: args.push,
        wanted,
        cache_remote: cache.remote.as_ref(),
    };
    let exported = exporter.index(&built)?;
    cache.export(store, &steps, &mounts, compression)?;
    exported.finish(
        args.quiet,
        args.iidfile.as_deref(),
        args.metadata_file.as_deref(),
    )?;
    Ok(ExitCode::SUCCESS)
}
