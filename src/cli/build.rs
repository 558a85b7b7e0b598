//! `builder build`: docker's flags, mapped onto the solver.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use std::sync::Arc;

use builder_cache::ImageRecord;
use builder_remote_cache::spec::{ExportTarget, parse_cache_from, parse_cache_to};
use builder_remote_cache::{ExportSpec, ImportSpec, Imports, Remote};
use builder_snapshot::{Compression, LayerOptions, ZSTD_MAX_LEVEL};
use builder_solver::convert::{BuildContext, Entitlements};
use builder_solver::graph::NetworkMode;
use builder_solver::resolve::StoreResolver;
use builder_solver::{BuildRequest, Platform};
use clap::Args;

use super::progress::{ProgressMode, Renderer};
use super::{Context, UsageError, normalize};

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
    /// Do not use the cache.
    #[arg(long)]
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
    /// Always look for newer base images in the registry.
    #[arg(long)]
    pull: bool,
    /// Push the image after building it (needs a registry name in -t).
    #[arg(long)]
    push: bool,
    /// Write the image id to this file.
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Write build result metadata (digests, names) as JSON to this file.
    #[arg(long)]
    metadata_file: Option<PathBuf>,
    /// Output destination: `type=docker|oci|tar|local,dest=PATH` (the image is always stored locally
    /// too); image outputs (and `type=image`, the store) take
    /// `compression=gzip|zstd|uncompressed,compression-level=N`.
    #[arg(short = 'o', long = "output")]
    outputs: Vec<String>,
    /// Secret for RUN --mount=type=secret: `id=NAME,src=FILE` or `id=NAME,env=VAR`.
    #[arg(long = "secret")]
    secrets: Vec<String>,
    /// ssh-agent for RUN --mount=type=ssh: `default` ($SSH_AUTH_SOCK) or `ID=SOCKET`.
    #[arg(long = "ssh")]
    ssh: Vec<String>,
    /// Target platform (os/arch[/variant]).
    #[arg(long)]
    platform: Option<String>,
    /// Progress output: auto, tty, plain, rawjson, quiet.
    #[arg(long, default_value = "auto")]
    progress: String,
    /// Print only the image id.
    #[arg(short, long)]
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
    /// Accepted for `docker buildx build` scripts: the image is always loaded into the local
    /// store.
    #[arg(long)]
    #[allow(dead_code)] // accepted, never needed: there is nothing else to load into
    load: bool,
    /// Accepted as `false` (builder attaches no attestations); anything else is refused.
    #[arg(long, value_name = "false")]
    provenance: Option<String>,
    /// Accepted as `false` (builder attaches no SBOM); anything else is refused.
    #[arg(long, value_name = "false")]
    sbom: Option<String>,
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
    let parsed = args
        .outputs
        .iter()
        .map(|o| parse_output(o))
        .collect::<Result<Vec<_>, _>>()?;
    // `--secret id=x,env=VAR` values sit in temp files until this guard drops at the end.
    let (mut request, request_files) =
        make_request(&args, layer_compression(&parsed)?, ctx.isolation, &store)?;
    let cache = CacheFlags::parse(&args)?;
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
    // Every name the image gets in the store: -t and each output's name=.
    let mut names = tags.clone();
    for name in parsed.iter().flat_map(|p| &p.names) {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let outputs: Vec<(OutputSpec, Vec<String>)> = parsed
        .into_iter()
        .filter_map(|p| {
            let mut archive_names = tags.clone();
            archive_names.extend(p.names.into_iter().filter(|n| !tags.contains(n)));
            p.spec.map(|s| (s, archive_names))
        })
        .collect();
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
    let resolver = StoreResolver {
        store: &store,
        normalize: &normalize,
        fetch: Some(&*fetch),
        always_fetch: args.pull,
        fetch_url: Some(&*fetch_url),
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
    let record = ImageRecord {
        manifest: output.image.manifest,
        config: output.image.config,
        created: output.config.created.clone().unwrap_or_default(),
    };
    if names.is_empty() {
        store.images().add_untagged(record.clone())?;
    }
    for name in &names {
        store.images().set(name, record.clone())?;
    }
    for (out, archive_names) in &outputs {
        super::save::export_output(&store, out, archive_names, &record, &renderer)
            .with_context(|| format!("exporting to {}", out.describe()))?;
    }
    let mut pushed = Vec::new();
    if args.push {
        cache.remember_pushed(&store, &tags, &record);
        if tags.is_empty() {
            bail!(UsageError(
                "--push needs a name: add -t REGISTRY/NAME:TAG".into()
            ));
        }
        for tag in &tags {
            pushed.push((
                tag.clone(),
                super::registry::push_image(&store, tag, &record, &renderer)?,
            ));
        }
    }
    cache.export(&store, &output.steps)?;
    let id = output.image.config.to_string();
    if let Some(path) = &args.iidfile {
        fs::write(path, &id).with_context(|| format!("writing --iidfile {}", path.display()))?;
    }
    if let Some(path) = &args.metadata_file {
        let meta = serde_json::json!({
            "containerimage.config.digest": output.image.config.to_string(),
            "containerimage.digest": output.image.manifest.to_string(),
            "image.name": tags.join(","),
            "containerimage.pushed": pushed.iter().map(|(n, d)| format!("{n}@{d}")).collect::<Vec<_>>(),
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
        for tag in &names {
            errln!("naming to {tag}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What the build reads from until it ends: the temp files holding `--secret ...,env=VAR`
/// values and a context fetched or unpacked into a temporary directory (deleted when dropped).
struct RequestFiles {
    _secret_files: Vec<tempfile::TempPath>,
    context: super::context_source::BuildContext,
    _named_contexts: Vec<super::context_source::BuildContext>,
}

/// The build request, and the files it needs for the build's duration.
fn make_request(
    args: &BuildArgs,
    compression: Compression,
    isolation: builder_sandbox::Isolation,
    store: &builder_cache::Store,
) -> anyhow::Result<(BuildRequest, RequestFiles)> {
    let (secrets, secret_files) = parse_secrets(&args.secrets)?;
    let ssh = parse_ssh(&args.ssh)?;
    let download_root = store.root().to_path_buf();
    let fetch_url = super::http_source::url_fetcher(download_root);
    let blobs = store.blobs();
    let download = |url: &str| -> anyhow::Result<PathBuf> {
        let file = fetch_url(url).map_err(anyhow::Error::msg)?;
        Ok(blobs.path(&file.digest))
    };
    let keep_git_dir = args
        .build_args
        .iter()
        .any(|a| matches!(a.split_once('='), Some(("BUILDKIT_CONTEXT_KEEP_GIT_DIR", v)) if v == "1" || v == "true"));
    let auth =
        super::context_source::git_auth(&secrets, &args.context, ssh.get("default").cloned())?;
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
        Some(bytes) if args.file.is_none() => ("Dockerfile".to_string(), bytes.clone(), None),
        _ => read_dockerfile(file.as_deref(), &context_dir)?,
    };
    let dockerignore = read_dockerignore(dockerfile_path.as_deref(), &context_dir)?;
    let mut build_args = BTreeMap::new();
    for arg in &args.build_args {
        match arg.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                // docker: a bare KEY takes its value from the environment, or is ignored.
                if let Ok(v) = std::env::var(arg) {
                    build_args.insert(arg.clone(), v);
                }
            }
        }
    }
    let labels = args
        .labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .unwrap_or((l.clone(), String::new()))
        })
        .collect();
    let platform = match &args.platform {
        Some(p) => Some(
            p.parse::<Platform>()
                .map_err(|e| UsageError(format!("--platform: {e}")))?,
        ),
        None => None,
    };
    let source_date_epoch = build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .map(|s| {
            s.parse::<i64>().map_err(|_| {
                UsageError(format!(
                    "SOURCE_DATE_EPOCH={s:?} is not a number of seconds"
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
    for (flag, value) in [("provenance", &args.provenance), ("sbom", &args.sbom)] {
        if let Some(v) = value
            && !matches!(v.as_str(), "false" | "0")
        {
            return Err(UsageError(format!(
                "--{flag}={v}: builder does not attach attestations to images; use --{flag}=false or leave the flag out"
            ))
            .into());
        }
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
        ssh,
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
        limits: args.limits.resolve()?,
        entitlements,
    };
    Ok((
        request,
        RequestFiles {
            _secret_files: secret_files,
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
    fn parse(args: &BuildArgs) -> anyhow::Result<CacheFlags> {
        let usage = |e: builder_remote_cache::RemoteCacheError| UsageError(e.to_string());
        let from = args
            .cache_from
            .iter()
            .map(|s| parse_cache_from(s).map_err(usage))
            .collect::<Result<Vec<_>, _>>()?;
        let to = args
            .cache_to
            .iter()
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
        Ok(Some(Arc::new(Imports::load(
            &self.from,
            store,
            self.remote.as_ref(),
        ))))
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
    ) -> anyhow::Result<()> {
        // Records of steps outside the image are not GC roots: keep a prune from sweeping them.
        let _lease = builder_cache::gc::build_lease(store.root())?;
        for spec in self.to.iter().filter(|s| s.target != ExportTarget::Inline) {
            match builder_remote_cache::export(spec, store, steps, self.remote.as_ref()) {
                Ok(summary) => errln!("exported {summary} to {}", spec.describe()),
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

/// The fields of a buildx CSV value: commas separate them, except inside double quotes, which
/// is how buildx takes several names in one key (`"name=a:1,b:1"`); the quotes are removed.
fn csv_fields(s: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().expect("never empty").push(c),
        }
    }
    fields.retain(|f| !f.is_empty());
    fields
}

fn parse_kv_csv(s: &str) -> BTreeMap<String, String> {
    csv_fields(s)
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .unwrap_or((p.to_string(), String::new()))
        })
        .collect()
}

fn parse_secrets(
    specs: &[String],
) -> anyhow::Result<(BTreeMap<String, PathBuf>, Vec<tempfile::TempPath>)> {
    let mut out = BTreeMap::new();
    let mut files = Vec::new();
    for spec in specs {
        let kv = parse_kv_csv(spec);
        let id = kv
            .get("id")
            .cloned()
            .ok_or_else(|| UsageError(format!("--secret {spec:?}: id=NAME is required")))?;
        let path = match (kv.get("src").or(kv.get("source")), kv.get("env")) {
            (Some(src), _) => PathBuf::from(src),
            (None, Some(var)) => {
                // A private (0600) temp file, removed when the build ends.
                let value = std::env::var(var).map_err(|_| {
                    UsageError(format!(
                        "--secret {spec:?}: environment variable {var} is not set"
                    ))
                })?;
                let file = tempfile::NamedTempFile::new()?;
                fs::write(file.path(), value)?;
                let path = file.into_temp_path();
                let p = path.to_path_buf();
                files.push(path);
                p
            }
            (None, None) => bail!(UsageError(format!(
                "--secret {spec:?}: give src=FILE or env=VAR"
            ))),
        };
        if !path.is_file() {
            bail!(UsageError(format!(
                "--secret {spec:?}: {} is not a readable file",
                path.display()
            )));
        }
        out.insert(id, path);
    }
    Ok((out, files))
}

/// `--ssh ID[=SOCKET]`: `default` (or any id) without a socket means `$SSH_AUTH_SOCK`. Only
/// agent sockets: BuildKit also takes key files, which would need an agent of our own.
fn parse_ssh(specs: &[String]) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = BTreeMap::new();
    for spec in specs {
        let (id, socket) = match spec.split_once('=') {
            Some((id, path)) => (id, PathBuf::from(path)),
            None => {
                let sock = std::env::var_os("SSH_AUTH_SOCK").ok_or_else(|| {
                    UsageError(format!(
                        "--ssh {spec}: SSH_AUTH_SOCK is not set; start ssh-agent or give --ssh {spec}=SOCKET"
                    ))
                })?;
                (spec.as_str(), PathBuf::from(sock))
            }
        };
        if id.is_empty() {
            bail!(UsageError(format!("--ssh {spec:?}: the id is empty")));
        }
        let meta = fs::metadata(&socket)
            .map_err(|e| UsageError(format!("--ssh {spec}: {}: {e}", socket.display())))?;
        if !meta.file_type().is_socket() {
            bail!(UsageError(format!(
                "--ssh {spec}: {} is not an agent socket (key files are not supported: ssh-add the key to an ssh-agent and pass its socket)",
                socket.display()
            )));
        }
        out.insert(id.to_string(), socket);
    }
    Ok(out)
}

/// One `--output` destination.
#[derive(Clone, Debug)]
pub enum OutputSpec {
    DockerArchive(PathBuf),
    OciArchive(PathBuf),
    RootfsTar(PathBuf),
    Local(PathBuf),
}

impl OutputSpec {
    /// `dest=-` (or `-o -`): the archive goes to stdout.
    pub fn is_stdout(&self) -> bool {
        match self {
            OutputSpec::DockerArchive(p) | OutputSpec::OciArchive(p) | OutputSpec::RootfsTar(p) => {
                p.as_os_str() == "-"
            }
            OutputSpec::Local(_) => false,
        }
    }

    pub fn describe(&self) -> String {
        if self.is_stdout() {
            return match self {
                OutputSpec::DockerArchive(_) => "docker archive on stdout".into(),
                OutputSpec::OciArchive(_) => "OCI archive on stdout".into(),
                _ => "tar on stdout".into(),
            };
        }
        match self {
            OutputSpec::DockerArchive(p) => format!("docker archive {}", p.display()),
            OutputSpec::OciArchive(p) => format!("OCI archive {}", p.display()),
            OutputSpec::RootfsTar(p) => format!("tar {}", p.display()),
            OutputSpec::Local(p) => format!("directory {}", p.display()),
        }
    }
}

/// One parsed `--output`: where to write (`None` for `type=image`, the store the image always
/// goes to) and the layer compression it asks for.
struct OutputRequest {
    spec: Option<OutputSpec>,
    compression: Option<Compression>,
    /// `name=` of `type=image|docker`: more names for the image, in the store (and in a
    /// docker archive written by this output).
    names: Vec<String>,
}

/// Refuses a key given twice and any key outside `allowed`, naming it: a key that
/// buildx knows but builder does not implement must not be accepted and ignored.
fn check_keys(flag: &str, spec: &str, allowed: &[&str]) -> Result<(), UsageError> {
    let mut seen = Vec::new();
    for part in csv_fields(spec) {
        let key = part
            .split_once('=')
            .map_or(part.as_str(), |(k, _)| k)
            .trim()
            .to_string();
        if seen.contains(&key) {
            return Err(UsageError(format!("{flag} {spec:?}: {key} is given twice")));
        }
        if !allowed.contains(&key.as_str()) {
            let kind = match parse_kv_csv(spec).get("type") {
                Some(kind) => format!(" for type={kind}"),
                None => String::new(),
            };
            return Err(UsageError(format!(
                "{flag} {spec:?}: key {key:?} is not supported{kind} (it takes {})",
                allowed.join(", ")
            )));
        }
        seen.push(key);
    }
    Ok(())
}

fn parse_output(spec: &str) -> anyhow::Result<OutputRequest> {
    let kv = parse_kv_csv(spec);
    // buildx: `-` alone is the filesystem as a tar on stdout.
    if spec == "-" {
        return Ok(OutputRequest {
            spec: Some(OutputSpec::RootfsTar(PathBuf::from("-"))),
            compression: None,
            names: Vec::new(),
        });
    }
    // docker also accepts a bare path, meaning type=local.
    if !spec.contains('=') {
        return Ok(OutputRequest {
            spec: Some(OutputSpec::Local(PathBuf::from(spec))),
            compression: None,
            names: Vec::new(),
        });
    }
    const IMAGE_KEYS: &[&str] = &["type", "name", "compression", "compression-level"];
    const DOCKER_KEYS: &[&str] = &["type", "dest", "name", "compression", "compression-level"];
    const OCI_KEYS: &[&str] = &["type", "dest", "compression", "compression-level"];
    let allowed: &[&str] = match kv.get("type").map(String::as_str) {
        Some("image") => IMAGE_KEYS,
        Some("docker") => DOCKER_KEYS,
        Some("oci") => OCI_KEYS,
        // compression is let through to be refused below with the reason (no layers here).
        Some("tar" | "local") => &["type", "dest", "compression", "compression-level"],
        _ => &[],
    };
    if !allowed.is_empty() {
        check_keys("--output", spec, allowed)?;
    }
    let names = match kv.get("name") {
        Some(list) => list
            .split(',')
            .filter(|n| !n.is_empty())
            .map(|n| {
                normalize(n.trim())
                    .map_err(|e| UsageError(format!("--output {spec:?}: name {n:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    if kv.contains_key("name") && names.is_empty() {
        bail!(UsageError(format!("--output {spec:?}: name= is empty")));
    }
    if kv.get("type").map(String::as_str) == Some("local")
        && kv.get("dest").is_some_and(|d| d == "-")
    {
        bail!(UsageError(format!(
            "--output {spec:?}: type=local writes a directory, not a stream; use type=tar,dest=- for stdout"
        )));
    }
    let dest = kv.get("dest").map(PathBuf::from);
    let need = |t: &str| {
        dest.clone()
            .ok_or_else(|| UsageError(format!("--output type={t} needs dest=PATH")))
    };
    let out = match kv.get("type").map(String::as_str) {
        Some("image") => None,
        // Without dest, buildx loads the image into docker: here, the store (always done).
        Some("docker") => dest.clone().map(OutputSpec::DockerArchive),
        Some("oci") => Some(OutputSpec::OciArchive(need("oci")?)),
        Some("tar") => Some(OutputSpec::RootfsTar(need("tar")?)),
        Some("local") => Some(OutputSpec::Local(need("local")?)),
        Some(other) => bail!(UsageError(format!(
            "--output type={other} is not supported (use image, docker, oci, tar or local)"
        ))),
        None => bail!(UsageError(format!(
            "--output {spec:?}: type=... is required"
        ))),
    };
    let compression = parse_compression(spec, &kv)?;
    if compression.is_some() && matches!(out, Some(OutputSpec::RootfsTar(_) | OutputSpec::Local(_)))
    {
        bail!(UsageError(format!(
            "--output {spec:?}: compression applies to image outputs (image, docker, oci), not to a filesystem"
        )));
    }
    Ok(OutputRequest {
        spec: out,
        compression,
        names,
    })
}

/// At most one output can be stdout, not a terminal, and not shared with `-q`'s image id.
fn check_stdout_outputs(outputs: &[OutputRequest], quiet: bool) -> Result<(), UsageError> {
    use std::io::IsTerminal;
    let to_stdout = outputs
        .iter()
        .filter(|o| o.spec.as_ref().is_some_and(OutputSpec::is_stdout))
        .count();
    if to_stdout == 0 {
        return Ok(());
    }
    if to_stdout > 1 {
        return Err(UsageError(
            "--output: only one output can be written to stdout (-)".into(),
        ));
    }
    if quiet {
        return Err(UsageError(
            "--output to stdout (-) and -q both write to stdout; leave one out".into(),
        ));
    }
    if std::io::stdout().is_terminal() {
        return Err(UsageError(
            "--output to stdout (-): stdout is a terminal; redirect it to a file or a pipe".into(),
        ));
    }
    Ok(())
}

/// buildx's `compression=` and `compression-level=` keys; a level alone means gzip at that level.
fn parse_compression(
    spec: &str,
    kv: &BTreeMap<String, String>,
) -> Result<Option<Compression>, UsageError> {
    let bad = |msg: String| UsageError(format!("--output {spec:?}: {msg}"));
    let level = kv
        .get("compression-level")
        .map(|l| {
            l.parse::<i32>()
                .map_err(|_| bad(format!("compression-level={l:?} is not a number")))
        })
        .transpose()?;
    let kind = match kv.get("compression").map(String::as_str) {
        Some(kind) => kind,
        None if level.is_some() => "gzip",
        None => return Ok(None),
    };
    let in_range = |lo: i32, hi: i32, kind: &str| match level {
        Some(l) if !(lo..=hi).contains(&l) => Err(bad(format!(
            "compression-level={l} is out of range for {kind} ({lo}..={hi})"
        ))),
        _ => Ok(level),
    };
    Ok(Some(match kind {
        "gzip" => match in_range(0, 9, "gzip")? {
            Some(l) => Compression::Gzip { level: l as u32 },
            None => Compression::GZIP_DEFAULT,
        },
        "zstd" => match in_range(1, ZSTD_MAX_LEVEL, "zstd")? {
            Some(l) => Compression::Zstd { level: l },
            None => Compression::ZSTD_DEFAULT,
        },
        "uncompressed" if level.is_some() => {
            return Err(bad("compression-level needs gzip or zstd".into()));
        }
        "uncompressed" => Compression::Uncompressed,
        other => {
            return Err(bad(format!(
                "compression={other} is not supported (use gzip, zstd or uncompressed)"
            )));
        }
    }))
}

/// The one compression every layer of this build gets: layers are written once, so
/// outputs that ask for different ones cannot all be served.
fn layer_compression(outputs: &[OutputRequest]) -> Result<Compression, UsageError> {
    let mut asked = outputs.iter().filter_map(|o| o.compression);
    let Some(first) = asked.next() else {
        return Ok(Compression::GZIP_DEFAULT);
    };
    match asked.find(|c| *c != first) {
        Some(other) => Err(UsageError(format!(
            "--output entries ask for different layer compressions ({first:?} and {other:?}); give them all the same one"
        ))),
        None => Ok(first),
    }
}
