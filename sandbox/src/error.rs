//! Errors reported to users of the sandbox.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while preparing or running a sandboxed process.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The run spec is inconsistent (caught before any process is started).
    #[error("invalid run spec: {0}")]
    InvalidSpec(String),
    /// Starting the sandbox init process (`/proc/self/exe`) failed.
    #[error("spawn sandbox init {exe}: {source}")]
    Spawn { exe: PathBuf, source: io::Error },
    /// A namespace/mount/credential step inside the sandbox failed.
    #[error("sandbox setup: {step}: {message}")]
    Setup {
        step: String,
        errno: Option<i32>,
        message: String,
    },
    /// The payload could not be executed (missing binary, not in $PATH, ...).
    #[error("exec {path}: {message}")]
    Exec {
        path: String,
        errno: Option<i32>,
        message: String,
    },
    /// The init process misbehaved (died without reporting, garbled message).
    #[error("sandbox init protocol: {0}")]
    Protocol(String),
    /// Host-side I/O, with what we were doing.
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    /// Entering the rootless user namespace failed.
    #[error("rootless user namespace: {0}")]
    Userns(String),
    /// This host or container does not let the sandbox be set up at all (namespaces, id maps
    /// or /proc refused): no RUN step can work here, whatever it runs. See `diagnose`.
    #[error("cannot set up the build sandbox: {what}\n  why: {why}\n  what to do: {fix}")]
    Unavailable {
        what: String,
        errno: Option<i32>,
        why: String,
        fix: String,
    },
    /// Resource limits were asked for but cannot be applied here (see `cgroup`).
    #[error("cannot apply resource limits: {0}")]
    Limits(String),
}

impl SandboxError {
    /// Whether the failure is the host's refusal to sandbox anything (the CLI's exit code 3),
    /// rather than something about one RUN step.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, SandboxError::Unavailable { .. })
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        SandboxError::Io {
            context: context.into(),
            source,
        }
    }
}
