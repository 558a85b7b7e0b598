//! `builder build`: docker's flags, mapped onto the solver.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use std::sync::Arc;

use builder_dockerfile2graph::{BuildContext, ConvertOptions, Entitlements};
use builder_graph::NetworkMode;
use builder_remote_cache::spec::{ExportTarget, parse_cache_from, parse_cache_to};
use builder_remote_cache::{ExportSpec, ImportSpec, Imports, Remote};
use builder_snapshot::{Compression, LayerOptions};
use builder_solver::resolve::StoreResolver;
use builder_solver::{BuildRequest, Platform, SolveOptions};
use builder_store::ImageRecord;
use clap::Args;

use super::outputs::{
    OutputRequest, check_push_name, check_stdout_outputs, finish_outputs, layer_compression,
    parse_annotation_flags, parse_output, store_style,
};
use super::progress::{ProgressMode, Renderer};
use super::{Context, UsageError, normalize};

mod flags;
mod multi_platform;
mod request;

pub use flags::BuildArgs;
use request::*;

use super::export::attestations;
use super::export::{BuiltImage, Exporter};

/// The first progress line names the isolation RUN steps get, and why when `auto` could not
/// give the namespaced sandbox; chroot isolation also gets a warning of what it leaves open.
fn announce_isolation(ctx: &Context, renderer: &Renderer) {
    let how = match ctx.isolation {
        builder_sandbox::Isolation::Rootless => {
            "rootless (user, mount, pid, ipc and uts namespaces)"
        }
        builder_sandbox::Isolation::Chroot => {
            "chroot (no namespaces of its own; mounts emulated with files)"
        }
    };
    let why = ctx
        .isolation_fallback
        .as_ref()
        .map(|r| format!(", chosen by --isolation=auto because {r}"))
        .unwrap_or_default();
    renderer.preamble(&format!("isolation: {how}{why}"));
    if ctx.isolation == builder_sandbox::Isolation::Chroot {
        errln!(
            "WARNING: chroot isolation: RUN steps can see this container's processes, use its network and run with its capabilities; the container is the security boundary (as with Kaniko): build only Dockerfiles you trust this way"
        );
    }
}

/// `--build-arg` values: `KEY=VALUE`, or a bare `KEY` that takes its value from the
/// environment (docker; ignored when unset).
fn parse_build_args(list: &[String]) -> BTreeMap<String, String> {
    let mut build_args = BTreeMap::new();
    for arg in list {
        match arg.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(arg) {
                    build_args.insert(arg.clone(), v);
                }
            }
        }
    }
    build_args
}

pub fn run(ctx: &Context, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let call = super::checks::Call::parse(args.call.as_deref(), args.check)?;
    let store = ctx.store()?;
    let single_id = match ctx.userns.mode {
        builder_sandbox::UsernsMode::SingleId => Some((
            builder_sandbox::single_id_reason()
                .unwrap_or_else(|| "no /etc/subuid range for this user".into()),
            "ask an admin for a range (usermod --add-subuids)",
        )),
        builder_sandbox::UsernsMode::Unprivileged => Some((
            "no user namespace may be created here and builder is not root".into(),
            "RUN steps cannot be isolated either: run the container as root (docs/ci.md)",
        )),
        _ => None,
    };
    if let Some((why, advice)) = single_id {
        errln!(
            "WARNING: {why}: only your own uid is mapped, so files owned by other users (USER, chown) cannot be represented; {advice}"
        );
    }
    let mut parsed = args
        .outputs
        .iter()
        .map(|o| parse_output(o))
        .collect::<Result<Vec<_>, _>>()?;
    let annotation_flags = parse_annotation_flags(&args.annotations)?;
    let compression = layer_compression(&parsed)?;
    let mut platforms = multi_platform::parse_platforms(&args.platform)?;
    // `BUILDKIT_MULTI_PLATFORM=1`: an image index even for one platform, as BuildKit.
    let builtin = super::buildkit_args::BuiltinArgs::read(&parse_build_args(&args.build_args))?;
    let multi = platforms.len() > 1 || builtin.multi_platform;
    let asked = attestations::parse(
        args.sbom.as_deref(),
        args.provenance.as_deref(),
        &args.attest,
    )?;
    let wanted = attestations::decide(asked, args.push, &parsed, multi)?;
    if multi {
        if platforms.is_empty() {
            platforms.push(Platform::host());
        }
        return multi_platform::run(
            ctx,
            &store,
            &args,
            &platforms,
            parsed,
            compression,
            wanted.as_ref(),
        );
    }
    // `--secret id=x,env=VAR` values sit in temp files, `--ssh ID=KEYFILE` agents listen and a
    // fetched context stays on disk until `request_files` drops at the end.
    let (mut request, request_files) = make_request(
        &args,
        compression,
        ctx.isolation,
        &store,
        platforms.into_iter().next(),
    )?;
    let platform = request
        .convert
        .platform
        .clone()
        .unwrap_or_else(Platform::host);
    finish_outputs(&mut parsed, &annotation_flags, &platform, compression)?;
    let builtin = super::buildkit_args::BuiltinArgs::read(&request.convert.build_args)?;
    let cache = CacheFlags::parse(&args, builtin.inline_cache)?;
    let imports = cache.import(&store)?;
    if let Some(imports) = &imports {
        request.solve.cache_import = Some(imports.clone());
    }
    let tags = args
        .tags
        .iter()
        .map(|t| normalize(t).map_err(|e| UsageError(format!("invalid tag {t:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    check_stdout_outputs(&parsed, args.quiet)?;
    check_pushes(&args, &parsed)?;
    let mode = if args.quiet {
        ProgressMode::Quiet
    } else {
        ProgressMode::parse(&args.progress)?
    };
    let renderer = Renderer::new(mode);
    if let Some(what) = &request_files.context.describe {
        renderer.preamble(&format!("building from {what}"));
    }
    announce_isolation(ctx, &renderer);
    super::interrupt::cancel_build_on_signal().context("installing the Ctrl-C handler")?;
    let fetch = super::registry::fetcher(ctx, &renderer);
    let fetch_url = super::context_source::url_fetcher(ctx.root.clone());
    let fetch_git = super::context_source::git_fetcher(&store, request_files.git_auth.clone());
    let resolver = StoreResolver {
        store: &store,
        normalize: &normalize,
        fetch: Some(&*fetch),
        always_fetch: args.pull,
        fetch_url: Some(&*fetch_url),
        fetch_git: Some(&*fetch_git),
    };
    // Looked up once for the checks and the build.
    let resolver = super::checks::Remembering::new(&resolver);
    if call.method != super::checks::Method::Build {
        let code = super::checks::run_call(&call, &request, &resolver);
        renderer.finish();
        return code;
    }
    let checks = super::checks::lint_for_build(&request, &resolver, mode)?;
    if checks.error_on_warnings && !checks.warnings.is_empty() {
        renderer.finish();
        super::checks::fail_on_violation(&checks, &request, mode)?;
    }
    let started_on = attestations::started_on(&request);
    let result = builder_solver::build(&store, &request, &resolver, &renderer);
    renderer.finish();
    super::checks::print_build_warnings(&checks, &request, mode);
    for warning in imports.iter().flat_map(|i| i.take_warnings()) {
        errln!("WARNING: {warning}");
    }
    let mut output = result?;
    for warning in &output.warnings {
        errln!("WARNING: {warning}");
    }
    if cache.inline() {
        cache.embed_inline(&store, &mut output, compression)?;
    }
    let record = ImageRecord {
        manifest: output.image.manifest,
        config: output.image.config,
        created: output.config.created.clone().unwrap_or_default(),
    };
    let facts = wanted.as_ref().map(|_| attestations::Facts {
        finished_on: attestations::started_on(&request),
        request: request.clone(),
        steps: output.steps.clone(),
        stages: output.stages.clone(),
        bases: resolver.resolved(),
        fetched: resolver.fetched(),
        git: request_files.context.git.clone(),
        started_on: started_on.clone(),
    });
    let exporter = Exporter {
        store: &store,
        renderer: &renderer,
        tags: &tags,
        outputs: &parsed,
        push: args.push,
        wanted: wanted.as_ref(),
        cache_remote: cache.remote.as_ref(),
    };
    let mut exported = exporter.image(BuiltImage {
        record,
        platform,
        compression,
        store_style: store_style(&annotation_flags),
        facts,
    })?;
    cache.export(&store, &output.steps, &output.cache_mounts, compression)?;
    if let Some(warnings) = super::checks::metadata_warnings(&checks, &request) {
        exported.metadata["buildx.build.warnings"] = warnings;
    }
    exported.finish(
        args.quiet,
        args.iidfile.as_deref(),
        args.metadata_file.as_deref(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Every push has names to push to, each naming its registry, before anything is built.
fn check_pushes(args: &BuildArgs, outputs: &[OutputRequest]) -> Result<(), UsageError> {
    let pushes = outputs.iter().filter(|p| p.push.is_some());
    for p in pushes.clone() {
        if p.names.is_empty() && args.tags.is_empty() {
            return Err(UsageError(format!(
                "--output {:?}: tag is needed when pushing to registry: add name=REGISTRY/NAME:TAG or -t",
                p.raw
            )));
        }
    }
    if args.push && args.tags.is_empty() {
        return Err(UsageError(
            "--push needs a name: add -t REGISTRY/NAME:TAG".into(),
        ));
    }
    if args.push || pushes.count() > 0 {
        for tag in &args.tags {
            check_push_name(&format!("-t {tag}"), tag)?;
        }
    }
    Ok(())
}
