//! The description of one sandboxed process and its outcome.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What to run and in which environment.
#[derive(Debug)]
pub struct RunSpec {
    /// Directory (e.g. an overlay mount point) that becomes "/".
    pub rootfs: PathBuf,
    /// argv; `args[0]` is resolved against PATH from `env` when it has no '/'.
    pub args: Vec<String>,
    /// "K=V" entries; HOME is added from /etc/passwd when absent (as docker does).
    pub env: Vec<String>,
    /// Absolute working directory inside the rootfs; created if missing (docker WORKDIR semantics).
    pub cwd: String,
    /// docker USER syntax: "", "name", "uid", "name:group", "uid:gid".
    pub user: String,
    /// Set in the sandbox's own UTS namespace; empty keeps the caller's hostname value.
    pub hostname: String,
    pub network: Network,
    /// `RUN --security=`: docker's default capabilities and no_new_privs, or every capability.
    pub security: Security,
    /// Extra /etc/hosts entries (`--add-host`), after localhost.
    pub extra_hosts: Vec<ExtraHost>,
    /// Bytes of the /dev/shm tmpfs (`--shm-size`); None for docker's 64 MiB.
    pub shm_size: Option<u64>,
    /// `--ulimit` resource limits of the payload.
    pub ulimits: Vec<Ulimit>,
    pub mounts: Vec<MountSpec>,
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
    /// Memory/CPU/pids limits; when any is set the run gets its own cgroup (see `cgroup`).
    pub limits: crate::cgroup::ResourceLimits,
    /// Namespaces, or a chroot with mounts emulated by files (see `isolation`). Chroot needs a
    /// rootfs that is a private copy: its mount points are filled and emptied in place.
    pub isolation: crate::isolation::Isolation,
}

/// Network namespace choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Network {
    /// Share the caller's network namespace.
    Host,
    /// A new, empty network namespace with only `lo`, which is brought up.
    None,
}

/// The privileges of the payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Security {
    /// docker's default 14 capabilities (for root; none for other users), `no_new_privs` set.
    #[default]
    Sandbox,
    /// `RUN --security=insecure` (granted by `--allow security.insecure`): the bounding set
    /// is left whole and `no_new_privs` unset, so root gets every capability the init holds
    /// (all of them inside its user namespace), and setuid and file capabilities work again.
    Insecure,
}

/// One `--add-host NAME:ADDRESS` entry: a line of the sandbox's /etc/hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraHost {
    pub name: String,
    /// An IPv4 or IPv6 address, as the user wrote it (without brackets).
    pub address: String,
}

/// One `--ulimit NAME=SOFT[:HARD]` resource limit, set on the payload before it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// docker's name: `nofile`, `nproc`, `core`, `stack`, ...
    pub name: String,
    /// None: unlimited (`-1`).
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// glibc's type for RLIMIT_* values (what setrlimit takes).
pub(crate) type Resource = libc::__rlimit_resource_t;

/// docker's ulimit names (`builder_graph::ULIMIT_NAMES`, which `--ulimit` is checked against)
/// and the resources they set.
const ULIMITS: &[(&str, Resource)] = &[
    ("as", libc::RLIMIT_AS),
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("data", libc::RLIMIT_DATA),
    ("fsize", libc::RLIMIT_FSIZE),
    ("locks", libc::RLIMIT_LOCKS),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("rss", libc::RLIMIT_RSS),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
    ("sigpending", libc::RLIMIT_SIGPENDING),
    ("stack", libc::RLIMIT_STACK),
];

impl Ulimit {
    /// The RLIMIT_* resource this limit sets.
    pub(crate) fn resource(&self) -> Option<Resource> {
        ULIMITS
            .iter()
            .find(|(n, _)| *n == self.name)
            .map(|(_, r)| *r)
    }
}

/// An extra mount applied inside the rootfs before the payload starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// Absolute in-container path. Symlinks in the rootfs are resolved without escaping it.
    pub target: String,
    pub kind: MountKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// Bind a host file or directory (recursively).
    Bind { source: PathBuf, read_only: bool },
    /// A fresh tmpfs (mode 1777, nosuid, nodev); `size` in bytes; None or 0 means the
    /// kernel default (half of RAM).
    Tmpfs { size: Option<u64> },
}

/// Where one of the payload's standard streams goes.
#[derive(Debug)]
pub enum Stdio {
    Null,
    Inherit,
    /// E.g. the write end of a pipe from which the solver streams logs.
    Fd(OwnedFd),
}

impl From<Stdio> for std::process::Stdio {
    fn from(s: Stdio) -> Self {
        match s {
            Stdio::Null => std::process::Stdio::null(),
            Stdio::Inherit => std::process::Stdio::inherit(),
            Stdio::Fd(fd) => std::process::Stdio::from(fd),
        }
    }
}

/// How the payload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    Exited(i32),
    /// Killed by this signal number.
    Signaled(i32),
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }

    /// Shell-style code: the exit code, or 128+signal for a signal death.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Exited(c) => write!(f, "exit code {c}"),
            ExitStatus::Signaled(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// Outcome of a run plus what the sandbox left behind in the rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub status: ExitStatus,
    /// In-container paths (e.g. "/proc", "/etc/hosts") that did not exist and were created
    /// as empty mount points. They are sandbox artefacts: the solver should exclude them from
    /// the layer diff, or remove them with [`crate::remove_mount_stubs`] after the run (as
    /// BuildKit does). Parents come before children.
    pub created_mount_points: Vec<String>,
    /// chroot isolation only: in-container paths that stood in for mounts during the run
    /// (`/dev`, `/etc/hosts`, each RUN --mount target). What lies below them is not the
    /// step's output; the layer diff must leave those subtrees out.
    pub transient_paths: Vec<String>,
    /// The kernel's OOM killer killed a process of the run (only known with a memory limit).
    pub oom_killed: bool,
}

/// Whether the sandbox knows the resource `limit` names (an unknown one fails the run).
pub fn ulimit_is_known(limit: &Ulimit) -> bool {
    limit.resource().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_codes_and_display() {
        assert!(ExitStatus::Exited(0).success());
        assert!(!ExitStatus::Signaled(9).success());
        assert_eq!(ExitStatus::Exited(42).code(), 42);
        assert_eq!(ExitStatus::Signaled(9).code(), 137);
        assert_eq!(ExitStatus::Signaled(15).to_string(), "killed by signal 15");
        assert_eq!(ExitStatus::Exited(1).to_string(), "exit code 1");
    }
}
