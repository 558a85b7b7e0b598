//! `builder debug [ID|last] [-- COMMAND...]`: a shell (or COMMAND) in the state where a RUN
//! step failed, kept by `builder build --on-error=keep` (issue #22): the step's base layers with
//! its own writes on top, its environment, working directory and user, and its cache mounts.
//! Nothing done there is kept: the view is thrown away when the command exits.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use builder_snapshot::LayerStore;
use builder_solver::kept_step::{self, KeptMount, KeptStep};

use super::{Context, UsageError};

#[derive(clap::Args)]
pub struct DebugArgs {
    /// A kept step's id (or a unique prefix of it), or `last`.
    #[arg(default_value = "last")]
    step: String,
    /// List the kept steps instead.
    #[arg(long)]
    list: bool,
    /// Remove the kept step (all of them with `--rm all`) instead of entering it.
    #[arg(long)]
    rm: bool,
    /// Build this stage (with the cache) and open the shell on its result instead.
    #[arg(long, value_name = "NAME")]
    stage: Option<String>,
    /// With --stage: the build context (default: the current directory).
    #[arg(long, value_name = "DIR", requires = "stage", default_value = ".")]
    context: std::ffi::OsString,
    /// With --stage: the Dockerfile (default: CONTEXT/Dockerfile).
    #[arg(short = 'f', long = "file", requires = "stage")]
    file: Option<std::ffi::OsString>,
    /// With --stage: build-time variables, as for `build`.
    #[arg(long = "build-arg", requires = "stage")]
    build_args: Vec<String>,
    /// The command to run (default: an interactive shell, /bin/sh).
    #[arg(last = true)]
    command: Vec<String>,
}

pub fn run(ctx: &Context, args: DebugArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let debug_dir = store.debug_dir();
    if args.list {
        for (step, dir) in kept_step::list(&debug_dir)? {
            outln!(
                "{}\t{}\t{} {}\texit {}",
                step.id,
                human(dir_size(&dir)),
                step.location,
                step.name,
                step.exit_code
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.rm {
        let removed = if args.step == "all" {
            remove_all(&store)?
        } else {
            let (_, dir) = kept_step::find(&debug_dir, &args.step)?;
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            1
        };
        outln!("removed {removed} kept step(s)");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(stage) = &args.stage {
        return enter_stage(ctx, stage, &args);
    }
    let (step, dir) = kept_step::find(&debug_dir, &args.step)?;
    enter(ctx, &store, &step, &dir, args.command)
}

/// `--stage NAME`: builds the stage as `build --target NAME` does (so with the cache), then
/// runs the shell or the command in its image as `run --rm` does.
fn enter_stage(ctx: &Context, stage: &str, args: &DebugArgs) -> anyhow::Result<ExitCode> {
    #[derive(clap::Parser)]
    struct Build {
        #[command(flatten)]
        args: super::build::BuildArgs,
    }
    #[derive(clap::Parser)]
    struct Run {
        #[command(flatten)]
        args: super::run::RunArgs,
    }
    let iid = tempfile::NamedTempFile::new().context("creating the image id file")?;
    let mut build: Vec<std::ffi::OsString> = vec!["build".into(), "--target".into(), stage.into()];
    build.extend(["--iidfile".into(), iid.path().as_os_str().to_owned()]);
    if let Some(f) = &args.file {
        build.extend(["--file".into(), f.clone()]);
    }
    for a in &args.build_args {
        build.extend(["--build-arg".into(), a.into()]);
    }
    build.push(args.context.clone());
    let parsed =
        <Build as clap::Parser>::try_parse_from(build).map_err(|e| UsageError(e.to_string()))?;
    let code = super::build::run(ctx, parsed.args)?;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }
    let id = std::fs::read_to_string(iid.path()).context("reading the stage's image id")?;
    let command = if args.command.is_empty() {
        vec!["/bin/sh".to_string()]
    } else {
        args.command.clone()
    };
    // The command replaces the image's ENTRYPOINT and CMD, as `docker run --entrypoint ""`.
    let mut run: Vec<String> = vec![
        "run".into(),
        "--rm".into(),
        "--entrypoint".into(),
        String::new(),
        id.trim().to_string(),
    ];
    run.extend(command);
    let parsed =
        <Run as clap::Parser>::try_parse_from(run).map_err(|e| UsageError(e.to_string()))?;
    errln!(
        "entering stage {stage} ({}); changes made here are not kept",
        id.trim()
    );
    super::run::run(ctx, parsed.args)
}

fn enter(
    ctx: &Context,
    store: &builder_store::Store,
    step: &KeptStep,
    dir: &Path,
    command: Vec<String>,
) -> anyhow::Result<ExitCode> {
    // Like a build: the view unpacks layers and lives in work/, which prune must leave alone.
    let _lease = builder_store::gc::build_lease(store.root())?;
    let layers = LayerStore::new(
        store,
        builder_solver::sandbox_meta::snapshotter_for(ctx.isolation),
    )
    .map_err(anyhow::Error::msg)?;
    let rootfs = layers
        .prepare_for_run_on(&step.layers, &kept_step::upper_dir(dir))
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("preparing the filesystem of kept step {}", step.id))?;
    let args = if command.is_empty() {
        if !rootfs.rootfs().join("bin/sh").exists() {
            anyhow::bail!(UsageError(format!(
                "kept step {} has no /bin/sh: give a command after `--`",
                step.id
            )));
        }
        vec!["/bin/sh".to_string()]
    } else {
        command
    };
    let mut mounts = Vec::new();
    for m in &step.mounts {
        mounts.push(match m {
            KeptMount::Cache { target, dir } => builder_sandbox::MountSpec {
                target: target.clone(),
                kind: builder_sandbox::MountKind::Bind {
                    source: dir.clone(),
                    read_only: false,
                },
            },
            KeptMount::Tmpfs { target } => builder_sandbox::MountSpec {
                target: target.clone(),
                kind: builder_sandbox::MountKind::Tmpfs { size: None },
            },
        });
    }
    errln!(
        "entering kept step {} ({} {}, exit {}); changes made here are not kept",
        step.id,
        step.location,
        step.name,
        step.exit_code
    );
    for m in &step.omitted_mounts {
        errln!("note: mount {m} is not restored");
    }
    let spec = builder_sandbox::RunSpec {
        rootfs: rootfs.rootfs().to_path_buf(),
        args,
        env: step.env.clone(),
        cwd: step.cwd.clone(),
        user: step.user.clone(),
        hostname: step.hostname.clone(),
        network: if step.host_network {
            builder_sandbox::Network::Host
        } else {
            builder_sandbox::Network::None
        },
        security: builder_sandbox::Security::Sandbox,
        extra_hosts: vec![],
        shm_size: None,
        ulimits: vec![],
        mounts,
        stdin: builder_sandbox::Stdio::Inherit,
        stdout: builder_sandbox::Stdio::Inherit,
        stderr: builder_sandbox::Stdio::Inherit,
        limits: Default::default(),
        isolation: ctx.isolation,
    };
    let report = builder_sandbox::run_with_report(spec).context("running in the kept step")?;
    drop(rootfs);
    Ok(ExitCode::from(report.status.code().clamp(0, 255) as u8))
}

/// Removes every kept step (what `builder prune` does); returns how many.
pub fn remove_all(store: &builder_store::Store) -> anyhow::Result<usize> {
    let mut n = 0;
    for (_, dir) in kept_step::list(&store.debug_dir())? {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        n += 1;
    }
    Ok(n)
}

/// (id, bytes, description) of each kept step, for `builder du`.
pub fn kept_rows(store: &builder_store::Store) -> anyhow::Result<Vec<(String, u64, String)>> {
    Ok(kept_step::list(&store.debug_dir())?
        .into_iter()
        .map(|(s, dir)| {
            let what = format!(
                "failed step kept for `builder debug`: {} {}",
                s.location, s.name
            );
            (s.id, dir_size(&dir), what)
        })
        .collect())
}

fn dir_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

fn human(bytes: u64) -> String {
    super::images::human_size(bytes)
}
