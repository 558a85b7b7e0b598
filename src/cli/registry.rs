//! `builder pull`, `push`, `login`, `logout`, and pulling base images during a build.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use builder_registry::{Client, ClientConfig, ProgressEvent, Reference, RetryPolicy, Timeouts};
use builder_solver::Platform;
use builder_solver::progress::{Event, ProgressSink, Transfer, TransferKind};
use builder_solver::resolve::Fetcher;
use builder_store::{Digest, ImageRecord, Store, read_config, read_manifest};
use clap::Args;

use super::progress::{ProgressMode, Renderer};
use super::{Context, UsageError, familiar, find_image, normalize};

#[derive(Args)]
pub struct PullArgs {
    /// Progress output: auto, tty, plain, rawjson (per-blob byte counts), quiet.
    #[arg(long, default_value = "auto")]
    progress: String,
    /// Platform to pull from a multi-platform image (default: this machine's).
    #[arg(long)]
    platform: Option<String>,
    #[arg(short, long)]
    quiet: bool,
    image: String,
}

#[derive(Args)]
pub struct PushArgs {
    /// Progress output: auto, tty, plain, rawjson (per-blob byte counts), quiet.
    #[arg(long, default_value = "auto")]
    progress: String,
    #[arg(short, long)]
    quiet: bool,
    image: String,
}

#[derive(Args)]
pub struct LoginArgs {
    #[arg(short, long)]
    username: String,
    /// Password (prefer --password-stdin).
    #[arg(short, long)]
    password: Option<String>,
    #[arg(long)]
    password_stdin: bool,
    server: String,
}

pub(crate) fn client() -> anyhow::Result<Client> {
    let insecure = std::env::var("BUILDER_INSECURE_REGISTRIES")
        .map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    // Four tries within about 3 s per request: enough to ride out a dropped connection without
    // leaving a user staring at an unreachable registry for a minute.
    let retry = RetryPolicy {
        attempts: 4,
        initial_delay: std::time::Duration::from_millis(250),
        max_delay: std::time::Duration::from_secs(2),
    };
    Ok(Client::new(ClientConfig {
        insecure,
        retry,
        timeouts: timeouts()?,
        ..ClientConfig::default()
    })?)
}

/// Registry timeouts, from BUILDER_REGISTRY_CONNECT_TIMEOUT and BUILDER_REGISTRY_READ_TIMEOUT
/// (seconds, fractions allowed) when set: a stalled registry fails after the read timeout
/// per try instead of hanging the build.
fn timeouts() -> anyhow::Result<Timeouts> {
    let seconds = |var: &str, default: std::time::Duration| -> anyhow::Result<_> {
        let Ok(v) = std::env::var(var) else {
            return Ok(default);
        };
        match v.trim().parse::<f64>() {
            Ok(s) if s > 0.0 && s.is_finite() => Ok(std::time::Duration::from_secs_f64(s)),
            _ => bail!(UsageError(format!(
                "{var}={v:?}: expected a positive number of seconds"
            ))),
        }
    };
    let default = Timeouts::default();
    Ok(Timeouts {
        connect: seconds("BUILDER_REGISTRY_CONNECT_TIMEOUT", default.connect)?,
        read: seconds("BUILDER_REGISTRY_READ_TIMEOUT", default.read)?,
    })
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Passes the registry client's reports on to a progress display: byte counts as transfer
/// events, and docker's one-line outcomes per blob ("Pull complete", "Pushed"...) as status.
fn forward_progress(sink: &dyn ProgressSink) -> impl Fn(ProgressEvent) + Sync + '_ {
    move |ev| {
        let transfer = |kind, digest: Digest, current, total| {
            Event::Transfer(Transfer {
                id: digest.to_string(),
                kind,
                current,
                total,
            })
        };
        let status = |digest: Digest, what: &str| Event::Status {
            message: format!("{}: {what}", digest.short()),
        };
        sink.event(match ev {
            ProgressEvent::DownloadStarted { digest, size } => {
                transfer(TransferKind::Pull, digest, 0, size)
            }
            ProgressEvent::DownloadProgress {
                digest,
                done,
                total,
            } => transfer(TransferKind::Pull, digest, done, total),
            ProgressEvent::UploadStarted { digest, size } => {
                transfer(TransferKind::Push, digest, 0, size)
            }
            ProgressEvent::UploadProgress {
                digest,
                done,
                total,
            } => transfer(TransferKind::Push, digest, done, total),
            ProgressEvent::DownloadComplete { digest } => status(digest, "Pull complete"),
            ProgressEvent::BlobCached { digest } => status(digest, "Already exists"),
            ProgressEvent::UploadComplete { digest } => status(digest, "Pushed"),
            ProgressEvent::BlobExists { digest } => status(digest, "Layer already exists"),
            ProgressEvent::BlobMounted { digest, from } => {
                status(digest, &format!("Mounted from {from}"))
            }
            ProgressEvent::Retrying {
                what,
                attempt,
                error,
            } => Event::Status {
                message: format!("{what}: try {attempt} failed, retrying: {error}"),
            },
            ProgressEvent::ManifestResolved { .. }
            | ProgressEvent::ManifestPushed { .. }
            | ProgressEvent::DownloadResumed { .. }
            | ProgressEvent::UploadResumed { .. } => return,
        });
    }
}

/// The display for `pull`/`push`: `-q` wins over `--progress`.
fn renderer(quiet: bool, progress: &str) -> anyhow::Result<Renderer> {
    Ok(Renderer::new(if quiet {
        ProgressMode::Quiet
    } else {
        ProgressMode::parse(progress)?
    }))
}

/// Pulls `name` (normalized) into the store and names it.
fn pull_into(
    store: &Store,
    name: &str,
    platform: &Platform,
    sink: &dyn ProgressSink,
) -> anyhow::Result<ImageRecord> {
    // Blobs land before the name does: keep a concurrent prune from sweeping them in between.
    let _lease = builder_store::gc::build_lease(store.root())?;
    let reference: Reference = name.parse()?;
    let client = client()?;
    let progress = forward_progress(sink);
    let pull = client.pull(&reference, platform, store, &progress);
    // A cancelled build (Ctrl-C) stops its base-image pull at once rather than when the
    // download ends; dropping the download deletes its temp file.
    let pulled = runtime()?
        .block_on(async {
            tokio::select! {
                pulled = pull => Some(pulled),
                () = cancelled() => None,
            }
        })
        .ok_or_else(|| anyhow::anyhow!("pulling {}: cancelled", familiar(name)))?
        .with_context(|| format!("pulling {}", familiar(name)))?;
    let config = read_config(store.blobs(), &pulled.config_digest)?;
    let record = ImageRecord {
        manifest: pulled.manifest_digest,
        config: pulled.config_digest,
        created: config.created.clone().unwrap_or_default(),
    };
    store.images().set(name, record.clone())?;
    Ok(record)
}

/// Resolves once the build has been cancelled (never for a plain `builder pull`, whose Ctrl-C
/// ends the process).
async fn cancelled() {
    while !builder_solver::cancel::is_cancelled() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// What the build uses to get base images that are not in the store; their downloads show in
/// the build's progress (`sink`).
pub fn fetcher<'a>(ctx: &Context, sink: &'a dyn ProgressSink) -> Box<Fetcher<'a>> {
    let root = ctx.root.clone();
    Box::new(move |name: &str, platform: &Platform| {
        let store = Store::open(&root).map_err(|e| e.to_string())?;
        pull_into(&store, name, platform, sink)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    })
}

pub fn pull(ctx: &Context, args: PullArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let name = normalize(&args.image)
        .map_err(|e| UsageError(format!("invalid reference {:?}: {e}", args.image)))?;
    let platform = match &args.platform {
        Some(p) => p
            .parse::<Platform>()
            .map_err(|e| UsageError(format!("--platform: {e}")))?,
        None => Platform::host(),
    };
    let renderer = renderer(args.quiet, &args.progress)?;
    let record = pull_into(&store, &name, &platform, &renderer)?;
    if !args.quiet {
        errln!("Digest: {}", record.manifest);
    }
    outln!("{}", familiar(&name));
    Ok(ExitCode::SUCCESS)
}

/// Pushes a stored image under `name` (normalized); returns the manifest digest.
pub fn push_image(
    store: &Store,
    name: &str,
    record: &ImageRecord,
    sink: &dyn ProgressSink,
) -> anyhow::Result<Digest> {
    // A name holding an index (a `--platform a,b` build): every platform's manifest, then it.
    if let Some(index) = builder_store::stored_index::read_index(store, &record.manifest)? {
        let media_type = index
            .media_type
            .unwrap_or_else(|| builder_store::manifest::media_type::OCI_INDEX.into());
        return push_manifest(store, name, record.manifest, &media_type, sink);
    }
    let reference: Reference = name.parse()?;
    let manifest = read_manifest(store.blobs(), &record.manifest)?;
    let bytes = store.blobs().read(&record.manifest)?;
    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| builder_store::manifest::media_type::OCI_MANIFEST.into());
    let client = client()?;
    let progress = forward_progress(sink);
    let digest = runtime()?
        .block_on(client.push(&reference, &bytes, &media_type, store, &progress))
        .with_context(|| format!("pushing {}", familiar(name)))?;
    Ok(digest)
}

/// Pushes the manifest or index `digest` (stored, of `media_type`) under `name`: an index
/// pushes each of its manifests first.
pub fn push_manifest(
    store: &Store,
    name: &str,
    digest: Digest,
    media_type: &str,
    sink: &dyn ProgressSink,
) -> anyhow::Result<Digest> {
    let reference: Reference = name.parse()?;
    let bytes = store.blobs().read(&digest)?;
    let client = client()?;
    let progress = forward_progress(sink);
    runtime()?
        .block_on(client.push(&reference, &bytes, media_type, store, &progress))
        .with_context(|| format!("pushing {}", familiar(name)))
}

pub fn push(ctx: &Context, args: PushArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let name = normalize(&args.image)
        .map_err(|e| UsageError(format!("invalid reference {:?}: {e}", args.image)))?;
    let record = find_image(&store, &args.image)?;
    let renderer = renderer(args.quiet, &args.progress)?;
    let digest = push_image(&store, &name, &record, &renderer)?;
    outln!("{}: digest: {digest}", familiar(&name));
    Ok(ExitCode::SUCCESS)
}

fn server_host(server: &str) -> String {
    let s = server
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    s.split('/').next().unwrap_or(s).to_string()
}

pub fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let password = match (&args.password, args.password_stdin) {
        (Some(p), false) => p.clone(),
        (None, true) => {
            let mut s = String::new();
            std::io::stdin().read_line(&mut s)?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        _ => bail!(UsageError(
            "give exactly one of --password or --password-stdin".into()
        )),
    };
    let host = server_host(&args.server);
    builder_registry::login(None, &host, &args.username, &password)?;
    // docker checks the credentials before keeping them; so do we.
    let verified = runtime()?.block_on(client()?.verify_credentials(&host));
    if let Err(e) = verified {
        builder_registry::logout(None, &host)?;
        return Err(
            anyhow::Error::new(e).context(format!("login to {host} failed; credentials not saved"))
        );
    }
    outln!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

pub fn logout(server: &str) -> anyhow::Result<ExitCode> {
    builder_registry::logout(None, &server_host(server))?;
    outln!("Removing login credentials for {}", server_host(server));
    Ok(ExitCode::SUCCESS)
}
