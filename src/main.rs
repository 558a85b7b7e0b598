//! `builder`: a daemonless, rootless Dockerfile image builder.
//!
//! Exit codes: 0 success; 1 the build or command failed (a step failed, an image is missing...);
//! 2 usage error (bad flags, malformed Dockerfile, bad arguments); 3 internal error.

/// `println!` for the CLI's output, safe on a closed pipe: see [`cli::stdio::write`].
macro_rules! outln {
    () => {
        $crate::cli::stdio::write($crate::cli::stdio::Stream::Stdout, format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::stdio::write(
            $crate::cli::stdio::Stream::Stdout,
            format_args!("{}\n", format_args!($($arg)*)),
        )
    };
}

/// `eprintln!` for messages, safe on a closed pipe: see [`cli::stdio::write`].
macro_rules! errln {
    () => {
        $crate::cli::stdio::write($crate::cli::stdio::Stream::Stderr, format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::stdio::write(
            $crate::cli::stdio::Stream::Stderr,
            format_args!("{}\n", format_args!($($arg)*)),
        )
    };
}

/// `eprint!`, likewise.
macro_rules! errout {
    ($($arg:tt)*) => {
        $crate::cli::stdio::write($crate::cli::stdio::Stream::Stderr, format_args!($($arg)*))
    };
}

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "builder",
    version,
    about = "Build OCI images from Dockerfiles, without a daemon and without root"
)]
struct Cli {
    /// Store root (default: $XDG_DATA_HOME/builder or ~/.local/share/builder).
    #[arg(long, global = true, env = "BUILDER_ROOT")]
    root: Option<PathBuf>,
    /// How RUN steps are isolated: auto (the strongest mode this host or container allows),
    /// rootless (user, mount, pid, ipc and uts namespaces) or chroot (no namespaces of its own,
    /// for unprivileged containers: the container is the security boundary; see docs/ci.md).
    #[arg(long, global = true, env = "BUILDER_ISOLATION", default_value = "auto")]
    isolation: builder_sandbox::IsolationRequest,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an image from a Dockerfile.
    Build(Box<cli::build::BuildArgs>),
    /// List images.
    Images(cli::images::ImagesArgs),
    /// Give an image another name.
    Tag { source: String, target: String },
    /// Remove image names (and images left with no name).
    Rmi {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Print an image's config (and manifest) as JSON.
    Inspect {
        /// Format the output with a Go template: field paths (`{{.Id}}`, `{{.Config.Env}}`) and
        /// `json`, `index`, `len`, `join` (`{{json .Config}}`, `{{index .RepoTags 0}}`).
        #[arg(short, long)]
        format: Option<String>,
        /// Of a name holding an image index, the platform's image (default: the index).
        #[arg(long)]
        platform: Option<String>,
        images: Vec<String>,
    },
    /// Show the history of an image.
    History {
        #[arg(long)]
        no_trunc: bool,
        image: String,
    },
    /// Write images to a tar archive (docker-archive, or OCI layout with --format oci).
    Save(cli::save::SaveArgs),
    /// Run a command in a new container from an image.
    Run(Box<cli::run::RunArgs>),
    /// Pull an image from a registry.
    Pull(cli::registry::PullArgs),
    /// Push an image to a registry.
    Push(cli::registry::PushArgs),
    /// Log in to a registry (writes docker's config.json).
    Login(cli::registry::LoginArgs),
    /// Log out of a registry.
    Logout { server: String },
    /// Show the build cache's disk usage.
    Du(cli::cache::DuArgs),
    /// List or inspect build cache records.
    #[command(subcommand)]
    Cache(cli::cache::CacheCommand),
    /// Remove build cache, then every blob and snapshot nothing references any more.
    Prune(cli::cache::PruneArgs),
    /// Open a shell (or run a command) in a failed RUN step kept by `build --on-error=keep`.
    Debug(cli::debug::DebugArgs),
}

fn main() -> ExitCode {
    // The sandbox re-executes this binary as its in-namespace init; that must happen before
    // anything else (threads, runtime) exists.
    builder_sandbox::dispatch_init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    let root = cli.root.clone().unwrap_or_else(builder_store::default_root);
    // Before the user namespace, where the owners of the store's parents are still visible
    // as they are (inside it, root's directories show up as the overflow uid). The child
    // re-executed inside it inherits the environment variable and skips this.
    let uses_store = !matches!(cli.command, Command::Login(_) | Command::Logout { .. });
    if uses_store
        && std::env::var_os(builder_sandbox::USERNS_ENV).is_none()
        && let Err(e) = secure_store_root(&root)
    {
        errln!("error: {e}");
        return ExitCode::from(2);
    }
    let entered = match builder_sandbox::enter_isolation(cli.isolation) {
        Ok(entered) => entered,
        Err(e) if e.is_unavailable() => {
            errln!("error: {e}");
            return ExitCode::from(3);
        }
        Err(e) => {
            errln!("error: cannot set up the rootless user namespace: {e}");
            return ExitCode::from(3);
        }
    };
    if entered.userns.mode == builder_sandbox::UsernsMode::Unprivileged {
        // No user namespace and no root: image root is this user on disk (see `ids`).
        // SAFETY: getuid and getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        builder_snapshot::ids::map_root_to(uid, gid);
    }
    let ctx = cli::Context {
        root,
        userns: entered.userns,
        isolation: entered.isolation,
        isolation_fallback: entered.fallback_reason,
    };
    match run(cli.command, &ctx) {
        Ok(code) => code,
        Err(e) => {
            let code = cli::exit_code_for(&e);
            errln!("error: {}", error_text(&e));
            ExitCode::from(code)
        }
    }
}

/// Refuses a store other users could swap out, creates it private, and tightens one made
/// before stores were private (builds run as root leave setuid-root files and device nodes in
/// it, which would otherwise be usable by every local user).
fn secure_store_root(root: &std::path::Path) -> Result<(), builder_store::StoreError> {
    use builder_store::private_root::{RootMode, check_location, make_private};
    check_location(root)?;
    if let RootMode::Tightened { from } = make_private(root)? {
        errln!(
            "note: the store at {} was reachable by other users (mode {from:04o}); it is now 0700",
            root.display()
        );
    }
    Ok(())
}

/// The error and its causes, `: `-separated as anyhow's `{:#}`, but a cause is left out when
/// the message before it already contains it: many error types print their source in their own
/// message (`"{path}: {source}"`), and the chain would otherwise say everything twice.
fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut last = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !last.is_empty() && last.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        last = text;
    }
    out
}

fn run(command: Command, ctx: &cli::Context) -> anyhow::Result<ExitCode> {
    match command {
        Command::Build(args) => cli::build::run(ctx, *args),
        Command::Images(args) => cli::images::images(ctx, args),
        Command::Tag { source, target } => cli::images::tag(ctx, &source, &target),
        Command::Rmi { force, images } => cli::images::rmi(ctx, &images, force),
        Command::Inspect {
            format,
            platform,
            images,
        } => cli::images::inspect(ctx, &images, format.as_deref(), platform.as_deref()),
        Command::History { no_trunc, image } => cli::images::history(ctx, &image, no_trunc),
        Command::Save(args) => cli::save::run(ctx, args),
        Command::Run(args) => cli::run::run(ctx, *args),
        Command::Pull(args) => cli::registry::pull(ctx, args),
        Command::Push(args) => cli::registry::push(ctx, args),
        Command::Login(args) => cli::registry::login(args),
        Command::Logout { server } => cli::registry::logout(&server),
        Command::Du(args) => cli::cache::du(ctx, args),
        Command::Cache(command) => cli::cache::cache(ctx, command),
        Command::Prune(args) => cli::cache::prune(ctx, args),
        Command::Debug(args) => cli::debug::run(ctx, args),
    }
}
