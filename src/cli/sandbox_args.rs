//! `--add-host`, `--shm-size` and `--ulimit` for `builder build` (every RUN step) and
//! `builder run`: what the sandbox sets up around the process besides its limits.

use builder_graph::{ExtraHost, Ulimit};
use clap::Args;

use super::UsageError;

#[derive(Args, Clone, Debug, Default)]
pub struct SandboxArgs {
    /// Extra /etc/hosts entry per RUN step / container, `NAME:IP` (or `NAME=IP`); repeatable.
    #[arg(long = "add-host")]
    add_hosts: Vec<String>,
    /// Size of /dev/shm per RUN step / container (e.g. 256m; default 64m).
    #[arg(long = "shm-size")]
    shm_size: Option<String>,
    /// Resource limit per RUN step / container, `NAME=SOFT[:HARD]` (e.g. nofile=1024:2048);
    /// repeatable.
    #[arg(long = "ulimit")]
    ulimits: Vec<String>,
}

/// [`SandboxArgs`], checked.
pub struct SandboxSettings {
    pub extra_hosts: Vec<ExtraHost>,
    pub shm_size: Option<u64>,
    pub ulimits: Vec<Ulimit>,
}

impl SandboxArgs {
    pub fn resolve(&self) -> anyhow::Result<SandboxSettings> {
        Ok(SandboxSettings {
            extra_hosts: self
                .add_hosts
                .iter()
                .map(|h| ExtraHost::parse(h).map_err(|e| UsageError(format!("--add-host {e}"))))
                .collect::<Result<_, _>>()?,
            shm_size: self
                .shm_size
                .as_deref()
                .map(|s| super::limits::parse_size("--shm-size", s))
                .transpose()?,
            ulimits: self
                .ulimits
                .iter()
                .map(|u| Ulimit::parse(u).map_err(|e| UsageError(format!("--ulimit {e}"))))
                .collect::<Result<_, _>>()?,
        })
    }
}
