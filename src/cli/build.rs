//! `builder build`: docker's flags, mapped onto the solver.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use std::sync::Arc;

use builder_dockerfile2graph::{BuildContext, ConvertOptions, Entitlements};
use builder_graph::NetworkMode;
use builder_remote_cache::spec::{ExportTarget, parse_cache_from, parse_cache_to};
use builder_remote_cache::{ExportSpec, ImportSpec, Imports, Remote};
use builder_snapshot::{Compression, LayerOptions};
use builder_solver::resolve::StoreResolver;
use builder_solver::{BuildRequest, Platform, SolveOptions};
use builder_store::Digest;
use builder_store::ImageRecord;
use builder_store::manifest::ManifestFormat;
use clap::Args;

use super::outputs::OutputSpec as OutputRequestSpec;
use super::outputs::{
    AnnotationTarget, ImageStyle, OutputRequest, check_push_name, check_stdout_outputs,
    finish_outputs, layer_compression, parse_annotation_flags, parse_output, store_style,
};
use super::progress::{ProgressMode, Renderer};
use super::{Context, UsageError, normalize};

mod attestations;
mod flags;
mod multi_platform;
mod request;

pub use flags::BuildArgs;
use request::*;

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
        cache.embed_inline(&store, &mut output)?;
    }
    let built = ImageRecord {
        manifest: output.image.manifest,
        config: output.image.config,
        created: output.config.created.clone().unwrap_or_default(),
    };
    // Variant manifests are blobs no name holds until the end: keep a prune from sweeping them.
    let _lease = builder_store::gc::build_lease(store.root())?;
    // Each image output's own manifest (media types, annotations); the store keeps, for -t,
    // the first loading output's, as buildx names that one with the tags.
    let images = parsed
        .iter()
        .map(|p| {
            p.style
                .as_ref()
                .map(|s| styled_image(&store, &built, s, compression))
                .transpose()
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let stored = match parsed.iter().zip(&images).find(|(p, _)| p.loads()) {
        Some((_, Some(image))) => image.clone(),
        _ => styled_image(&store, &built, &store_style(&annotation_flags), compression)?,
    };
    // Every name the image gets in the store: -t and each output's name= (NAME@DIGEST too
    // for name-canonical=true). The store keeps one manifest per image id, and outputs'
    // styles share the id (same config), so every name holds the stored manifest; outputs
    // still push and write their own.
    let mut names: Vec<String> = tags.clone();
    for (p, image) in parsed.iter().zip(&images) {
        for name in &p.names {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        if p.name_canonical {
            let record = image.as_ref().unwrap_or(&built);
            if record.manifest != stored.manifest {
                bail!(UsageError(format!(
                    "--output {:?}: name-canonical=true names the stored image by its digest, but this output's media types or annotations differ from the stored image's ({}); give it the same ones as the first image output",
                    p.raw, stored.manifest
                )));
            }
            for name in tags.iter().chain(&p.names) {
                names.push(format!("{name}@{}", record.manifest));
            }
        }
    }
    if names.is_empty() {
        store.images().add_untagged(stored.clone())?;
    }
    for name in &names {
        store.images().set(name, stored.clone())?;
    }
    // With attestations, each image written or pushed goes as an index of it and its
    // attestation manifest (one per distinct manifest, made once).
    let bases = resolver.resolved();
    let fetched = resolver.fetched();
    let finished_on = attestations::started_on(&request);
    let facts = wanted.as_ref().map(|_| attestations::Facts {
        request: request.clone(),
        steps: output.steps.clone(),
        stages: output.stages.clone(),
        bases: bases.clone(),
        fetched: fetched.clone(),
        git: request_files.context.git.clone(),
        started_on: started_on.clone(),
        finished_on: finished_on.clone(),
    });
    let mut indexes: BTreeMap<Digest, Digest> = BTreeMap::new();
    let mut with_attestations = |record: &ImageRecord| -> anyhow::Result<Option<Digest>> {
        let (Some(wanted), Some(facts)) = (&wanted, &facts) else {
            return Ok(None);
        };
        if let Some(index) = indexes.get(&record.manifest) {
            return Ok(Some(*index));
        }
        let d = attestations::attest_image(&store, wanted, record, &platform, &names, facts)?;
        let index = multi_platform::put_index(&store, &[(platform.clone(), record.clone())], &[d])?;
        indexes.insert(record.manifest, index);
        Ok(Some(index))
    };
    let push_one = |target: &str, record: &ImageRecord, index: Option<Digest>| match index {
        Some(index) => super::registry::push_manifest(
            &store,
            target,
            index,
            builder_store::manifest::media_type::OCI_INDEX,
            &renderer,
        ),
        None => super::registry::push_image(&store, target, record, &renderer),
    };
    for (p, image) in parsed.iter().zip(&images) {
        let Some(out) = &p.spec else { continue };
        let mut archive_names = tags.clone();
        archive_names.extend(p.names.iter().filter(|n| !tags.contains(n)).cloned());
        let descriptor = p
            .style
            .as_ref()
            .map(|s| s.annotations_for(AnnotationTarget::ManifestDescriptor))
            .unwrap_or_default();
        let mut record = image.as_ref().unwrap_or(&built).clone();
        let image_record = record.clone();
        let files = matches!(
            out,
            OutputRequestSpec::Local(_) | OutputRequestSpec::RootfsTar(_)
        );
        if let (OutputRequestSpec::RootfsTar(dest), Some(wanted)) = (out, &wanted) {
            // The statements go into the tar after the tree, as BuildKit's tar exporter.
            let part = attestations::TarImage {
                dir: None,
                image: &image_record,
                platform: &platform,
                facts: facts.as_ref(),
            };
            attestations::write_tar(&store, Some(wanted), &[part], dest)
                .with_context(|| format!("exporting to {}", out.describe()))?;
            continue;
        }
        if !files && let Some(index) = with_attestations(&record)? {
            record.manifest = index;
        }
        super::save::export_output(&store, out, &archive_names, &record, &descriptor, &renderer)
            .with_context(|| format!("exporting to {}", out.describe()))?;
        if let (OutputRequestSpec::Local(dir), Some(wanted), Some(facts)) = (out, &wanted, &facts) {
            attestations::write_local(&store, wanted, &image_record, &platform, dir, facts)
                .with_context(|| format!("writing attestations to {}", dir.display()))?;
        }
    }
    // (name pushed, digest): `--push` pushes the stored image under every -t, each
    // push=true output its own image under its names and the tags.
    let mut pushed: Vec<(String, Digest)> = Vec::new();
    let mut primary: Option<(Vec<String>, ImageRecord)> = None;
    if args.push {
        cache.remember_pushed(&store, &tags, &stored);
        let index = with_attestations(&stored)?;
        for tag in &tags {
            let digest = push_one(tag, &stored, index)?;
            pushed.push((tag.clone(), digest));
        }
        primary = Some((tags.clone(), stored.clone()));
    }
    for (p, image) in parsed.iter().zip(&images) {
        let (Some(push), Some(record)) = (&p.push, image) else {
            continue;
        };
        let mut targets = tags.clone();
        targets.extend(p.names.iter().filter(|n| !tags.contains(n)).cloned());
        cache.remember_pushed(&store, &targets, record);
        for name in &targets {
            let target = if push.by_digest {
                let r: builder_registry::Reference = name.parse()?;
                format!("{}/{}@{}", r.registry, r.repository, record.manifest)
            } else {
                name.clone()
            };
            let index = with_attestations(record)?;
            let digest = push_one(&target, record, index)?;
            if push.by_digest {
                errln!("pushed {target}");
            }
            pushed.push((target, digest));
        }
        if primary.is_none() {
            primary = Some((targets, record.clone()));
        }
    }
    cache.export(&store, &output.steps, &output.cache_mounts)?;
    let id = output.image.config.to_string();
    if let Some(path) = &args.iidfile {
        fs::write(path, &id).with_context(|| format!("writing --iidfile {}", path.display()))?;
    }
    if let Some(path) = &args.metadata_file {
        // As buildx: the digest of the image pushed (else the one stored), and its names; the
        // index's when the image went out in one with its attestations.
        let (meta_names, meta_image) = primary.unwrap_or_else(|| (tags.clone(), stored.clone()));
        let top = indexes
            .get(&meta_image.manifest)
            .copied()
            .unwrap_or(meta_image.manifest);
        let manifest = store.blobs().read(&top)?;
        let media_type = if top != meta_image.manifest {
            builder_store::manifest::media_type::OCI_INDEX.to_string()
        } else {
            serde_json::from_slice::<builder_store::manifest::Manifest>(&manifest)
                .map(|m| m.effective_media_type().to_string())
                .unwrap_or_default()
        };
        let meta = serde_json::json!({
            "containerimage.config.digest": meta_image.config.to_string(),
            "containerimage.digest": top.to_string(),
            "containerimage.descriptor": {
                "mediaType": media_type,
                "digest": top.to_string(),
                "size": manifest.len(),
            },
            "image.name": meta_names.join(","),
            "containerimage.pushed": pushed.iter().map(|(n, d)| if n.contains('@') { n.clone() } else { format!("{n}@{d}") }).collect::<Vec<_>>(),
        });
        let mut meta = meta;
        if let Some(warnings) = super::checks::metadata_warnings(&checks, &request) {
            meta["buildx.build.warnings"] = warnings;
        }
        fs::write(path, serde_json::to_vec_pretty(&meta)?)
            .with_context(|| format!("writing --metadata-file {}", path.display()))?;
    }
    if args.quiet {
        outln!("{id}");
    } else {
        errln!("writing image {id}");
        for name in &names {
            errln!("naming to {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The built image as `style` writes it: the stored manifest itself for OCI types without
/// annotations or recompressed layers, else a manifest made for it (same config).
fn styled_image(
    store: &builder_store::Store,
    built: &ImageRecord,
    style: &ImageStyle,
    compression: Compression,
) -> anyhow::Result<ImageRecord> {
    let annotations = style.annotations_for(AnnotationTarget::Manifest);
    let layers = if style.force_compression {
        super::recompress::forced_layers(store, built, compression)?
    } else {
        None
    };
    if !style.docker_types() && annotations.is_empty() && layers.is_none() {
        return Ok(built.clone());
    }
    let format = if style.docker_types() {
        ManifestFormat::Docker
    } else {
        ManifestFormat::Oci
    };
    let variant = builder_store::put_manifest_variant(
        store.blobs(),
        &built.manifest,
        format,
        &annotations,
        layers.as_deref(),
    )
    .context("writing the image manifest")?;
    Ok(ImageRecord {
        manifest: variant.manifest,
        config: variant.config,
        created: built.created.clone(),
    })
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
