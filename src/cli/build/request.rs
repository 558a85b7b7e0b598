//! From flags to a [`BuildRequest`]: the Dockerfile and .dockerignore read, contexts,
//! secrets, SSH agents and cache flags resolved, and the files they need kept for the build.

use super::*;

/// What the build reads from until it ends: the temp files holding `--secret ...,env=VAR`
/// values, the agents serving `--ssh` key files, and a context fetched or unpacked into a
/// temporary directory (deleted or stopped when dropped).
pub(super) struct RequestFiles {
    /// For `ADD <git URL>`: the same credentials as a git context.
    pub(super) git_auth: builder_source::GitAuth,
    pub(super) _secret_files: Vec<tempfile::TempPath>,
    pub(super) _ssh_agents: crate::cli::ssh::SshAgents,
    pub(super) context: crate::cli::context_source::BuildContext,
    pub(super) _named_contexts: Vec<crate::cli::context_source::BuildContext>,
}

/// The build request, and the files it needs for the build's duration.
pub(super) fn make_request(
    args: &BuildArgs,
    compression: Compression,
    isolation: builder_sandbox::Isolation,
    store: &builder_store::Store,
    platform: Option<Platform>,
) -> anyhow::Result<(BuildRequest, RequestFiles)> {
    let (secrets, secret_files) = crate::cli::secrets::parse_secrets(&args.secrets)?;
    let ssh = crate::cli::ssh::parse_ssh(&args.ssh)?;
    let download_root = store.root().to_path_buf();
    let fetch_url = crate::cli::context_source::url_fetcher(download_root);
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
            crate::cli::gobool::parse(v)
                .map_err(|e| UsageError(format!("BUILDKIT_CONTEXT_KEEP_GIT_DIR: {e}")))
        })
        .transpose()?
        .unwrap_or(false);
    let auth = crate::cli::context_source::git_auth(
        &secrets,
        &args.context,
        ssh.sockets.get("default").cloned(),
    )?;
    let context = crate::cli::context_source::resolve(
        &args.context,
        store,
        crate::cli::context_source::Options {
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
        let named = crate::cli::context_source::resolve_named(
            value,
            store,
            &auth,
            &for_platform,
            &download,
        )
        .with_context(|| format!("--build-context {name}"))?;
        let context = match named {
            Some(crate::cli::context_source::Named::Dir(fetched)) => {
                let dir = BuildContext::Dir(fetched.dir.clone());
                named_context_files.push(fetched);
                dir
            }
            Some(crate::cli::context_source::Named::Image(reference)) => {
                BuildContext::Image(reference)
            }
            None => BuildContext::parse(value)
                .map_err(|e| UsageError(format!("--build-context {name}: {e}")))?,
        };
        build_contexts.insert(name.to_string(), context);
    }
    let request = BuildRequest {
        dockerfile,
        dockerignore,
        convert: ConvertOptions {
            build_args,
            target: args.target.clone(),
            platform,
            labels,
            file_name: dockerfile_name,
            network,
            extra_hosts: sandbox.extra_hosts,
            build_contexts,
            shm_size: sandbox.shm_size,
            ulimits: sandbox.ulimits,
            entitlements,
        },
        no_cache_filter: args.no_cache_filter.clone(),
        solve: SolveOptions {
            context_dir: Some(context_dir),
            secrets,
            ssh: ssh.sockets.clone(),
            no_cache: args.no_cache,
            cache_import: None,
            layer_options: LayerOptions {
                source_date_epoch,
                compression,
                ..LayerOptions::default()
            },
            max_parallel: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(4),
            limits: args.limits.resolve()?,
            isolation,
            keep_failed_in: (args.on_error == "keep").then(|| store.debug_dir()),
        },
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
pub(super) struct CacheFlags {
    pub(super) from: Vec<ImportSpec>,
    pub(super) to: Vec<ExportSpec>,
    pub(super) remote: Option<Remote>,
}

impl CacheFlags {
    /// `inline`: BUILDKIT_INLINE_CACHE=1, buildx's spelling of `--cache-to type=inline`.
    pub(super) fn parse(args: &BuildArgs, inline: bool) -> anyhow::Result<CacheFlags> {
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
                client: Arc::new(crate::cli::registry::client()?),
                runtime: Arc::new(crate::cli::registry::runtime()?),
            })
        } else {
            None
        };
        Ok(CacheFlags { from, to, remote })
    }

    /// The records of every `--cache-from` (None without any).
    pub(super) fn import(
        &self,
        store: &builder_store::Store,
    ) -> anyhow::Result<Option<Arc<Imports>>> {
        if self.from.is_empty() {
            return Ok(None);
        }
        // Registry imports store the cache config blob: keep a prune from sweeping it meanwhile.
        let _lease = builder_store::gc::build_lease(store.root())?;
        let imports = Imports::load(&self.from, store, self.remote.as_ref());
        if imports.restored_mounts() > 0 {
            errln!(
                "restored {} cache mount(s) from the imported cache",
                imports.restored_mounts()
            );
        }
        Ok(Some(Arc::new(imports)))
    }

    pub(super) fn inline(&self) -> bool {
        self.to.iter().any(|s| s.target == ExportTarget::Inline)
    }

    /// Replaces the built image by one whose config carries its cache records (its layers
    /// were compressed with `compression`).
    pub(super) fn embed_inline(
        &self,
        store: &builder_store::Store,
        output: &mut builder_solver::BuildOutput,
        compression: builder_snapshot::Compression,
    ) -> anyhow::Result<()> {
        let _lease = builder_store::gc::build_lease(store.root())?;
        let (image, config) = builder_remote_cache::embed_inline(
            store,
            &output.image,
            &output.config,
            &output.steps,
            compression,
        )
        .context("embedding inline cache")?;
        output.image = image;
        output.config = config;
        Ok(())
    }

    /// Every `--cache-to` but inline, layers in `compression` (the build's); a failure fails
    /// the build unless `ignore-error=true`.
    pub(super) fn export(
        &self,
        store: &builder_store::Store,
        steps: &[builder_solver::StepRecord],
        cache_mounts: &[builder_solver::UsedCacheMount],
        compression: builder_snapshot::Compression,
    ) -> anyhow::Result<()> {
        // Records of steps outside the image are not GC roots: keep a prune from sweeping them.
        let _lease = builder_store::gc::build_lease(store.root())?;
        for spec in self.to.iter().filter(|s| s.target != ExportTarget::Inline) {
            let exported = builder_remote_cache::export(
                spec,
                store,
                steps,
                cache_mounts,
                self.remote.as_ref(),
                compression,
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
pub(super) fn context_dockerfile_wins(
    context: &crate::cli::context_source::BuildContext,
    file: Option<&Path>,
) -> bool {
    match file {
        None => true,
        Some(f) => context.remote && f.is_relative() && f.as_os_str() != "-",
    }
}

pub(super) fn read_dockerfile(
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
pub(super) fn read_with_lowercase_fallback(path: &Path) -> std::io::Result<Vec<u8>> {
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
pub(super) fn read_dockerignore(
    dockerfile: Option<&Path>,
    context: &Path,
) -> anyhow::Result<Option<String>> {
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
