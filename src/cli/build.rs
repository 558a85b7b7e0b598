//! `builder build`: docker's flags, mapped onto the solver.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use std::sync::Arc;

use builder_cache::Digest;
use builder_cache::ImageRecord;
use builder_cache::manifest::ManifestFormat;
use builder_dockerfile2graph::{BuildContext, Entitlements};
use builder_graph::NetworkMode;
use builder_remote_cache::spec::{ExportTarget, parse_cache_from, parse_cache_to};
use builder_remote_cache::{ExportSpec, ImportSpec, Imports, Remote};
use builder_snapshot::{Compression, LayerOptions};
use builder_solver::resolve::StoreResolver;
use builder_solver::{BuildRequest, Platform};
use clap::Args;

use super::outputs::OutputSpec as OutputRequestSpec;
use super::outputs::{
    AnnotationTarget, ImageStyle, OutputRequest, check_push_name, check_stdout_outputs,
    finish_outputs, layer_compression, parse_annotation_flags, parse_output, store_style,
};
use super::progress::{ProgressMode, Renderer};
use super::{Context, UsageError, normalize};

mod attestations;
mod multi_platform;

#[derive(Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (`name:tag`); repeatable.
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// Path of the Dockerfile (default: CONTEXT/Dockerfile; `-` reads stdin).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Build-time variable `KEY=VALUE` (`KEY` alone takes the value from the environment).
    #[arg(long = "build-arg")]
    build_args: Vec<String>,
    /// Build this stage and the stages it needs, not the last one.
    #[arg(long)]
    target: Option<String>,
    /// Metadata `KEY=VALUE` for the image.
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Do not use the cache (`--no-cache=false` uses it).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set, value_parser = super::gobool::parse, value_name = "BOOL")]
    no_cache: bool,
    /// Stages (`AS` names) whose steps skip the cache while other stages use it; repeatable,
    /// comma-separated.
    #[arg(long = "no-cache-filter", value_delimiter = ',')]
    no_cache_filter: Vec<String>,
    /// Import build cache: `type=local,src=DIR`, `type=registry,ref=NAME` (or just NAME: a cache
    /// manifest, or an image built with inline cache); repeatable.
    #[arg(long = "cache-from")]
    cache_from: Vec<String>,
    /// Export build cache: `type=local,dest=DIR`, `type=registry,ref=NAME` or `type=inline`, with
    /// `mode=min` (the image's steps, default) or `mode=max` (every step); repeatable.
    #[arg(long = "cache-to")]
    cache_to: Vec<String>,
    /// Always look for newer base images in the registry (`--pull=false`: only when missing).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set, value_parser = super::gobool::parse, value_name = "BOOL")]
    pull: bool,
    /// Push the image after building it (needs a registry name in -t); `--push=false` does not.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set, value_parser = super::gobool::parse, value_name = "BOOL")]
    push: bool,
    /// Write the image id to this file.
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Write build result metadata (digests, names) as JSON to this file.
    #[arg(long)]
    metadata_file: Option<PathBuf>,
    /// Output destination: `type=image|registry|docker|oci|tar|local` with its keys (see
    /// README); repeatable. The image is always stored locally too.
    #[arg(short = 'o', long = "output")]
    outputs: Vec<String>,
    /// Annotation `[TYPES:]KEY=VALUE` for every image output; TYPES is a comma-separated list
    /// of manifest, manifest-descriptor, index, index-descriptor (default: manifest).
    #[arg(long = "annotation")]
    annotations: Vec<String>,
    /// Secret for RUN --mount=type=secret: `id=NAME,src=FILE` or `id=NAME,env=VAR`; `id=NAME`
    /// alone takes the environment variable NAME if set, else the file NAME.
    #[arg(long = "secret")]
    secrets: Vec<String>,
    /// ssh-agent for RUN --mount=type=ssh: `default` ($SSH_AUTH_SOCK), `ID=SOCKET`, or
    /// `ID=KEYFILE[,KEYFILE]` (Ed25519/ECDSA keys served by an agent of builder's own).
    #[arg(long = "ssh")]
    ssh: Vec<String>,
    /// Target platform(s) (os/arch[/variant]); a comma list or several flags build one image
    /// per platform and make an image index of them.
    #[arg(long, value_delimiter = ',')]
    platform: Vec<String>,
    /// Progress output: auto, tty, plain, rawjson, quiet.
    #[arg(long, default_value = "auto")]
    progress: String,
    /// Print only the image id.
    #[arg(short, long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set, value_parser = super::gobool::parse, value_name = "BOOL")]
    quiet: bool,
    /// Network of RUN steps that do not set `--network`: `default` (the host's, as docker's
    /// default bridge gives outside access), `host`, or `none`.
    #[arg(long, default_value = "default")]
    network: String,
    /// Additional build context `NAME=DIR` (for `COPY --from=NAME`, `RUN --mount=from=NAME`) or
    /// `NAME=docker-image://REF` (an image in place of `FROM NAME`); repeatable.
    #[arg(long = "build-context")]
    build_contexts: Vec<String>,
    /// Grant an entitlement: `security.insecure` (for `RUN --security=insecure`) or
    /// `network.host` (for `RUN --network=host`); repeatable, comma-separated.
    #[arg(long = "allow", value_delimiter = ',')]
    allow: Vec<String>,
    /// Accepted for `docker buildx build` scripts (as `--load=BOOL` too): the image is always
    /// loaded into the local store.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set, value_parser = super::gobool::parse, value_name = "BOOL")]
    #[allow(dead_code)] // accepted, never needed: there is nothing else to load into
    load: bool,
    /// What to do with a failed RUN step's state: `discard` it (the default), or `keep` it for
    /// `builder debug` (a shell where it failed, with its env, user and cache mounts).
    #[arg(long, value_name = "keep|discard", default_value = "discard", value_parser = ["keep", "discard"])]
    on_error: String,
    /// SLSA provenance attestation: `true`/`false`, or `mode=min|max[,version=v1][,builder-id=URI]`
    /// (shorthand for `--attest type=provenance,...`). `mode=min` by default on a push.
    #[arg(long, value_name = "BOOL|mode=min|max,...")]
    provenance: Option<String>,
    /// SBOM attestation (SPDX 2.3, scanned by builder itself): `true`/`false`
    /// (shorthand for `--attest type=sbom`).
    #[arg(long, value_name = "BOOL")]
    sbom: Option<String>,
    /// Attestation `type=sbom|provenance[,KEY=VALUE...]`; repeatable.
    #[arg(long = "attest")]
    attest: Vec<String>,
    /// Evaluate the Dockerfile instead of building it: `build` (default), `check` (run the
    /// build checks; exit 1 if any warns), `outline` (build args, secrets, ssh ids of the
    /// target) or `targets` (the stages); add `,format=json` for JSON.
    #[arg(long = "call", value_name = "METHOD[,format=json]")]
    call: Option<String>,
    /// Shorthand for `--call=check`.
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    sandbox: super::sandbox_args::SandboxArgs,
    #[command(flatten)]
    limits: super::limits::LimitArgs,
    /// Build context: a directory, `-` (a tar archive or a Dockerfile on stdin), a git URL
    /// (`https://host/repo.git#ref:subdir`, `git@host:repo`...) or an http(s) URL of a tar
    /// archive or a Dockerfile.
    context: std::ffi::OsString,
}

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
    let platform = request.platform.clone().unwrap_or_else(Platform::host);
    finish_outputs(&mut parsed, &annotation_flags, &platform, compression)?;
    let builtin = super::buildkit_args::BuiltinArgs::read(&request.build_args)?;
    let cache = CacheFlags::parse(&args, builtin.inline_cache)?;
    let imports = cache.import(&store)?;
    if let Some(imports) = &imports {
        request.cache_import = Some(imports.clone());
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
    let fetch_url = super::http_source::url_fetcher(ctx.root.clone());
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
    let _lease = builder_cache::gc::build_lease(store.root())?;
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
            builder_cache::manifest::media_type::OCI_INDEX,
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
            builder_cache::manifest::media_type::OCI_INDEX.to_string()
        } else {
            serde_json::from_slice::<builder_cache::manifest::Manifest>(&manifest)
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
    store: &builder_cache::Store,
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
    let variant = builder_cache::put_manifest_variant(
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

/// What the build reads from until it ends: the temp files holding `--secret ...,env=VAR`
/// values, the agents serving `--ssh` key files, and a context fetched or unpacked into a
/// temporary directory (deleted or stopped when dropped).
struct RequestFiles {
    /// For `ADD <git URL>`: the same credentials as a git context.
    git_auth: builder_source::GitAuth,
    _secret_files: Vec<tempfile::TempPath>,
    _ssh_agents: super::ssh::SshAgents,
    context: super::context_source::BuildContext,
    _named_contexts: Vec<super::context_source::BuildContext>,
}

/// The build request, and the files it needs for the build's duration.
fn make_request(
    args: &BuildArgs,
    compression: Compression,
    isolation: builder_sandbox::Isolation,
    store: &builder_cache::Store,
    platform: Option<Platform>,
) -> anyhow::Result<(BuildRequest, RequestFiles)> {
    let (secrets, secret_files) = super::secrets::parse_secrets(&args.secrets)?;
    let ssh = super::ssh::parse_ssh(&args.ssh)?;
    let download_root = store.root().to_path_buf();
    let fetch_url = super::http_source::url_fetcher(download_root);
    let blobs = store.blobs();
    let download = |url: &str| -> anyhow::Result<(PathBuf, String)> {
        let file = fetch_url(url).map_err(anyhow::Error::msg)?;
        Ok((blobs.path(&file.digest), file.filename))
    };
    let keep_git_dir = args
        .build_args
        .iter()
        .filter_map(|a| a.strip_prefix("BUILDKIT_CONTEXT_KEEP_GIT_DIR="))
        .next_back()
        .map(|v| {
            super::gobool::parse(v)
                .map_err(|e| UsageError(format!("BUILDKIT_CONTEXT_KEEP_GIT_DIR: {e}")))
        })
        .transpose()?
        .unwrap_or(false);
    let auth = super::context_source::git_auth(
        &secrets,
        &args.context,
        ssh.sockets.get("default").cloned(),
    )?;
    let context = super::context_source::resolve(
        &args.context,
        store,
        super::context_source::Options {
            dockerfile_from_stdin: args.file.as_deref().is_some_and(|f| f.as_os_str() == "-"),
            keep_git_dir,
            auth: auth.clone(),
            download: &download,
        },
    )?;
    let context_dir = context.dir.clone();
    // A relative -f names a file of a remote context (buildx), of the current directory else.
    let file = match args.file.as_deref() {
        Some(f) if context.remote && f.is_relative() && f.as_os_str() != "-" => {
            Some(context_dir.join(f))
        }
        other => other.map(Path::to_path_buf),
    };
    let (dockerfile_name, dockerfile, dockerfile_path) = match &context.dockerfile {
        Some(bytes) if context_dockerfile_wins(&context, args.file.as_deref()) => {
            ("Dockerfile".to_string(), bytes.clone(), None)
        }
        _ => read_dockerfile(file.as_deref(), &context_dir)?,
    };
    let dockerignore = read_dockerignore(dockerfile_path.as_deref(), &context_dir)?;
    let build_args = parse_build_args(&args.build_args);
    let labels = args
        .labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .unwrap_or((l.clone(), String::new()))
        })
        .collect();
    let source_date_epoch = build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .map(|s| {
            s.parse::<i64>().map_err(|_| {
                // BuildKit's words first; then what builder accepts.
                UsageError(format!(
                    "invalid SOURCE_DATE_EPOCH: {s} (a number of seconds since 1970 is needed)"
                ))
            })
        })
        .transpose()?;
    let mut entitlements = Entitlements::default();
    for name in &args.allow {
        entitlements.allow(name).map_err(UsageError)?;
    }
    let network = match args.network.as_str() {
        "default" => NetworkMode::Host,
        // As buildx: asking for the host network on the command line grants it to RUN steps.
        "host" => {
            entitlements.network_host = true;
            NetworkMode::Host
        }
        "none" => NetworkMode::None,
        other => {
            return Err(UsageError(format!(
                "--network {other:?}: expected default, host or none"
            ))
            .into());
        }
    };
    let sandbox = args.sandbox.resolve()?;
    let mut build_contexts = BTreeMap::new();
    let mut named_context_files = Vec::new();
    for spec in &args.build_contexts {
        let (name, value) = spec
            .split_once('=')
            .filter(|(name, _)| !name.is_empty())
            .ok_or_else(|| UsageError(format!("--build-context {spec:?}: expected NAME=VALUE")))?;
        // A git URL or an http(s) URL is fetched into a directory first, as the main context.
        let for_platform = platform.clone().unwrap_or_else(Platform::host);
        let named =
            super::context_source::resolve_named(value, store, &auth, &for_platform, &download)
                .with_context(|| format!("--build-context {name}"))?;
        let context = match named {
            Some(super::context_source::Named::Dir(fetched)) => {
                let dir = BuildContext::Dir(fetched.dir.clone());
                named_context_files.push(fetched);
                dir
            }
            Some(super::context_source::Named::Image(reference)) => BuildContext::Image(reference),
            None => BuildContext::parse(value)
                .map_err(|e| UsageError(format!("--build-context {name}: {e}")))?,
        };
        build_contexts.insert(name.to_string(), context);
    }
    let request = BuildRequest {
        dockerfile_name,
        dockerfile,
        context_dir: Some(context_dir),
        dockerignore,
        build_args,
        target: args.target.clone(),
        labels,
        platform,
        no_cache: args.no_cache,
        network,
        extra_hosts: sandbox.extra_hosts,
        build_contexts,
        ulimits: sandbox.ulimits,
        shm_size: sandbox.shm_size,
        no_cache_filter: args.no_cache_filter.clone(),
        cache_import: None,
        secrets,
        ssh: ssh.sockets.clone(),
        layer_options: LayerOptions {
            source_date_epoch,
            compression,
            ..LayerOptions::default()
        },
        source_date_epoch,
        max_parallel: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(4),
        isolation,
        keep_failed_in: (args.on_error == "keep").then(|| store.debug_dir()),
        limits: args.limits.resolve()?,
        entitlements,
    };
    Ok((
        request,
        RequestFiles {
            git_auth: auth,
            _secret_files: secret_files,
            _ssh_agents: ssh,
            context,
            _named_contexts: named_context_files,
        },
    ))
}

/// `--cache-from` / `--cache-to`, parsed, with the registry client they need (if any).
struct CacheFlags {
    from: Vec<ImportSpec>,
    to: Vec<ExportSpec>,
    remote: Option<Remote>,
}

impl CacheFlags {
    /// `inline`: BUILDKIT_INLINE_CACHE=1, buildx's spelling of `--cache-to type=inline`.
    fn parse(args: &BuildArgs, inline: bool) -> anyhow::Result<CacheFlags> {
        let usage = |e: builder_remote_cache::RemoteCacheError| UsageError(e.to_string());
        let from = args
            .cache_from
            .iter()
            .map(|s| parse_cache_from(s).map_err(usage))
            .collect::<Result<Vec<_>, _>>()?;
        let inline_arg = inline.then(|| "type=inline".to_string());
        let to = args
            .cache_to
            .iter()
            .chain(&inline_arg)
            .map(|s| parse_cache_to(s).map_err(usage))
            .collect::<Result<Vec<_>, _>>()?;
        let needs_registry = from.iter().any(|s| matches!(s, ImportSpec::Registry(_)))
            || to
                .iter()
                .any(|s| matches!(s.target, ExportTarget::Registry(_)));
        let remote = if needs_registry {
            Some(Remote {
                client: Arc::new(super::registry::client()?),
                runtime: Arc::new(super::registry::runtime()?),
            })
        } else {
            None
        };
        Ok(CacheFlags { from, to, remote })
    }

    /// The records of every `--cache-from` (None without any).
    fn import(&self, store: &builder_cache::Store) -> anyhow::Result<Option<Arc<Imports>>> {
        if self.from.is_empty() {
            return Ok(None);
        }
        // Registry imports store the cache config blob: keep a prune from sweeping it meanwhile.
        let _lease = builder_cache::gc::build_lease(store.root())?;
        let imports = Imports::load(&self.from, store, self.remote.as_ref());
        if imports.restored_mounts() > 0 {
            errln!(
                "restored {} cache mount(s) from the imported cache",
                imports.restored_mounts()
            );
        }
        Ok(Some(Arc::new(imports)))
    }

    fn inline(&self) -> bool {
        self.to.iter().any(|s| s.target == ExportTarget::Inline)
    }

    /// Replaces the built image by one whose config carries its cache records.
    fn embed_inline(
        &self,
        store: &builder_cache::Store,
        output: &mut builder_solver::BuildOutput,
    ) -> anyhow::Result<()> {
        let _lease = builder_cache::gc::build_lease(store.root())?;
        let (image, config) =
            builder_remote_cache::embed_inline(store, &output.image, &output.config, &output.steps)
                .context("embedding inline cache")?;
        output.image = image;
        output.config = config;
        Ok(())
    }

    /// Tells the registry client which repositories will hold the image's layers once pushed,
    /// so a cache export to another repository of the same registry mounts them.
    fn remember_pushed(&self, store: &builder_cache::Store, tags: &[String], image: &ImageRecord) {
        let Some(remote) = &self.remote else { return };
        let Ok(manifest) = builder_cache::read_manifest(store.blobs(), &image.manifest) else {
            return;
        };
        for tag in tags {
            let Ok(r) = tag.parse::<builder_registry::Reference>() else {
                continue;
            };
            for layer in &manifest.layers {
                remote
                    .client
                    .record_blob_origin(&r.registry, &r.repository, layer.digest);
            }
        }
    }

    /// Every `--cache-to` but inline; a failure fails the build unless `ignore-error=true`.
    fn export(
        &self,
        store: &builder_cache::Store,
        steps: &[builder_solver::StepRecord],
        cache_mounts: &[builder_solver::UsedCacheMount],
    ) -> anyhow::Result<()> {
        // Records of steps outside the image are not GC roots: keep a prune from sweeping them.
        let _lease = builder_cache::gc::build_lease(store.root())?;
        for spec in self.to.iter().filter(|s| s.target != ExportTarget::Inline) {
            let exported = builder_remote_cache::export(
                spec,
                store,
                steps,
                cache_mounts,
                self.remote.as_ref(),
            );
            match exported {
                Ok(summary) => {
                    for w in &summary.warnings {
                        errln!("WARNING: {w}");
                    }
                    errln!("exported {summary} to {}", spec.describe())
                }
                Err(e) if spec.ignore_error => {
                    errln!("WARNING: exporting to {}: {e}", spec.describe());
                }
                Err(e) => {
                    return Err(
                        anyhow::Error::new(e).context(format!("exporting to {}", spec.describe()))
                    );
                }
            }
        }
        Ok(())
    }
}

/// Returns (name for messages, content, path when read from a file).
/// Whether the Dockerfile the context argument itself was (stdin, or a URL serving one) is the
/// build's Dockerfile: always without `-f`; with a relative `-f` too when the context is
/// remote, as BuildKit takes a single-file HTTP context as the Dockerfile whatever file name
/// is asked for (there is no other file to name). An absolute `-f` is a local file.
fn context_dockerfile_wins(
    context: &super::context_source::BuildContext,
    file: Option<&Path>,
) -> bool {
    match file {
        None => true,
        Some(f) => context.remote && f.is_relative() && f.as_os_str() != "-",
    }
}

fn read_dockerfile(
    file: Option<&Path>,
    context: &Path,
) -> anyhow::Result<(String, Vec<u8>, Option<PathBuf>)> {
    match file {
        Some(p) if p.as_os_str() == "-" => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading the Dockerfile from stdin")?;
            Ok(("Dockerfile".into(), buf, None))
        }
        Some(path) => {
            let p = path.to_path_buf();
            let bytes = read_with_lowercase_fallback(path)
                .map_err(|e| UsageError(format!("reading Dockerfile {}: {e}", path.display())))?;
            // Only shown in messages; the file itself was read by its bytes.
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string());
            Ok((name, bytes, Some(p)))
        }
        None => {
            let p = context.join("Dockerfile");
            let bytes = read_with_lowercase_fallback(&p).map_err(|e| {
                UsageError(format!(
                    "reading {}: {e} (use -f to name the Dockerfile)",
                    p.display()
                ))
            })?;
            Ok(("Dockerfile".into(), bytes, Some(p)))
        }
    }
}

/// Reads `path`; a missing file named `Dockerfile` falls back to `dockerfile` beside it, as
/// docker and BuildKit do (moby/moby#10858). `Dockerfile.dockerignore` is still the name looked
/// for beside it, as in BuildKit.
fn read_with_lowercase_fallback(path: &Path) -> std::io::Result<Vec<u8>> {
    match fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && path.file_name().is_some_and(|n| n == "Dockerfile") =>
        {
            let lower = path.with_file_name("dockerfile");
            fs::read(lower).map_err(|_| e)
        }
        Err(e) => Err(e),
    }
}

/// docker: `<Dockerfile>.dockerignore` beside the Dockerfile wins over the context's .dockerignore.
fn read_dockerignore(dockerfile: Option<&Path>, context: &Path) -> anyhow::Result<Option<String>> {
    let mut candidates = Vec::new();
    if let Some(df) = dockerfile {
        let mut name = df.as_os_str().to_owned();
        name.push(".dockerignore");
        candidates.push(PathBuf::from(name));
    }
    candidates.push(context.join(".dockerignore"));
    for c in candidates {
        match fs::read_to_string(&c) {
            Ok(text) => return Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", c.display())),
        }
    }
    Ok(None)
}
