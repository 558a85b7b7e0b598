//! `builder run`: start a process from an image, the way `docker run` would.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use builder_snapshot::LayerStore;
use builder_solver::resolve::image_layers;
use clap::Args;

use super::{Context, UsageError, find_platform_image};

#[derive(Args)]
pub struct RunArgs {
    /// The platform to run from an image index (default: this machine's); a foreign one runs
    /// under binfmt_misc emulation.
    #[arg(long)]
    platform: Option<String>,
    /// Remove the container's filesystem afterwards (always the case: containers are not kept).
    #[arg(long)]
    rm: bool,
    /// Set an environment variable `KEY=VALUE` (`KEY` alone takes it from our environment).
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// User (`name|uid[:group|gid]`).
    #[arg(short = 'u', long = "user")]
    user: Option<String>,
    /// Override the image's ENTRYPOINT (this also drops its CMD, as docker does).
    #[arg(long)]
    entrypoint: Option<String>,
    /// Run without network (a new empty network namespace).
    #[arg(long, default_value = "host", value_parser = ["host", "none"])]
    network: String,
    #[command(flatten)]
    sandbox: super::sandbox_args::SandboxArgs,
    #[command(flatten)]
    limits: super::limits::LimitArgs,
    image: String,
    /// Command and arguments (replace the image's CMD).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// docker's rule: ENTRYPOINT (or --entrypoint) followed by the arguments, or else the CMD.
/// A shell-form ENTRYPOINT is stored as `sh -c "..."`, so what follows it only becomes the
/// shell's `$0...` and is ignored, exactly as with docker.
pub fn command_line(
    entrypoint: Option<&[String]>,
    cmd: Option<&[String]>,
    override_entrypoint: Option<&str>,
    args: &[String],
) -> Vec<String> {
    let (entry, default_cmd): (Vec<String>, Vec<String>) = match override_entrypoint {
        Some("") => (vec![], vec![]),
        Some(e) => (vec![e.to_string()], vec![]),
        None => (
            entrypoint.unwrap_or_default().to_vec(),
            cmd.unwrap_or_default().to_vec(),
        ),
    };
    let tail = if args.is_empty() {
        default_cmd
    } else {
        args.to_vec()
    };
    entry.into_iter().chain(tail).collect()
}

pub fn run(ctx: &Context, args: RunArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let record = find_platform_image(&store, &args.image, args.platform.as_deref())?;
    let (config, layers) = image_layers(&store, &record.manifest).map_err(anyhow::Error::msg)?;
    let c = &config.config;
    let argv = command_line(
        c.entrypoint.as_deref(),
        c.cmd.as_deref(),
        args.entrypoint.as_deref(),
        &args.args,
    );
    if argv.is_empty() {
        bail!(UsageError(format!(
            "no command specified: {} has no ENTRYPOINT or CMD; give one after the image name",
            args.image
        )));
    }
    let mut env = c.env.clone();
    for e in &args.env {
        let kv = match e.split_once('=') {
            Some(_) => e.clone(),
            None => match std::env::var(e) {
                Ok(v) => format!("{e}={v}"),
                Err(_) => continue,
            },
        };
        let key = kv.split('=').next().unwrap_or_default().to_string();
        env.retain(|old| old.split('=').next() != Some(key.as_str()));
        env.push(kv);
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={}", builder_graph::image::DEFAULT_PATH));
    }
    // The container's snapshot lives in work/ and unpacks layers: keep prune and
    // `cache verify` from removing either while it runs.
    let _lease = builder_store::gc::build_lease(store.root())?;
    let layer_store = LayerStore::new(
        &store,
        builder_solver::sandbox_meta::snapshotter_for(ctx.isolation),
    )
    .map_err(anyhow::Error::msg)?;
    let rootfs = layer_store
        .prepare(&layers)
        .map_err(anyhow::Error::msg)
        .context("preparing the container filesystem")?;
    let sandbox = args.sandbox.resolve()?;
    let spec = builder_sandbox::RunSpec {
        rootfs: rootfs.rootfs().to_path_buf(),
        args: argv,
        env,
        cwd: args
            .workdir
            .clone()
            .or_else(|| c.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
        user: args
            .user
            .clone()
            .or_else(|| c.user.clone())
            .unwrap_or_default(),
        hostname: record.config.short(),
        network: if args.network == "none" {
            builder_sandbox::Network::None
        } else {
            builder_sandbox::Network::Host
        },
        security: builder_sandbox::Security::Sandbox,
        extra_hosts: builder_solver::sandbox_meta::extra_hosts(&sandbox.extra_hosts),
        ulimits: builder_solver::sandbox_meta::ulimits(&sandbox.ulimits),
        shm_size: sandbox.shm_size,
        mounts: vec![],
        stdin: builder_sandbox::Stdio::Inherit,
        stdout: builder_sandbox::Stdio::Inherit,
        stderr: builder_sandbox::Stdio::Inherit,
        limits: args.limits.resolve()?,
        isolation: ctx.isolation,
    };
    let report = builder_sandbox::run_with_report(spec).context("running the container")?;
    if report.oom_killed {
        errln!(
            "the container ran out of memory: the kernel's OOM killer stopped a process at the --memory limit"
        );
    }
    let status = report.status;
    drop(rootfs);
    Ok(ExitCode::from(status.code().clamp(0, 255) as u8))
}

#[cfg(test)]
mod tests {
    use super::command_line;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn docker_cmd_entrypoint_table() {
        let sh_entry = v(&["/bin/sh", "-c", "exec_entry p1_entry"]);
        let exec_entry = v(&["exec_entry", "p1_entry"]);
        let exec_cmd = v(&["exec_cmd", "p1_cmd"]);
        // No ENTRYPOINT: CMD runs, arguments replace it.
        assert_eq!(command_line(None, Some(&exec_cmd), None, &[]), exec_cmd);
        assert_eq!(
            command_line(None, Some(&exec_cmd), None, &v(&["x"])),
            v(&["x"])
        );
        // Exec ENTRYPOINT: CMD becomes default arguments.
        assert_eq!(command_line(Some(&exec_entry), None, None, &[]), exec_entry);
        assert_eq!(
            command_line(Some(&exec_entry), Some(&exec_cmd), None, &[]),
            v(&["exec_entry", "p1_entry", "exec_cmd", "p1_cmd"])
        );
        assert_eq!(
            command_line(Some(&exec_entry), Some(&exec_cmd), None, &v(&["a"])),
            v(&["exec_entry", "p1_entry", "a"])
        );
        // Shell ENTRYPOINT: the rest only reaches the shell as $0...
        assert_eq!(
            command_line(Some(&sh_entry), Some(&exec_cmd), None, &[]),
            v(&["/bin/sh", "-c", "exec_entry p1_entry", "exec_cmd", "p1_cmd"])
        );
        // --entrypoint drops the image CMD.
        assert_eq!(
            command_line(Some(&exec_entry), Some(&exec_cmd), Some("/bin/true"), &[]),
            v(&["/bin/true"])
        );
    }
}
