//! Messages between the caller and the sandbox init process, as JSON lines over a socketpair
//! that the init finds on fd [`CONTROL_FD`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::spec::{ExitStatus, MountSpec, Network};

/// `argv[1]` that makes [`crate::dispatch_init`] take over the process.
pub const INIT_MARKER: &str = "__builder-sandbox-init";
/// The control socket's fd number in the init process.
pub const CONTROL_FD: i32 = 3;

/// The serializable part of a [`crate::RunSpec`] (stdio travels as real fds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitSpec {
    pub rootfs: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub hostname: String,
    pub network: Network,
    pub security: crate::spec::Security,
    pub mounts: Vec<MountSpec>,
    /// Bytes of /dev/shm; None for docker's 64 MiB.
    pub shm_size: Option<u64>,
    pub ulimits: Vec<crate::spec::Ulimit>,
    /// (in-container path, content) of the generated /etc/{hosts,resolv.conf,hostname}.
    pub etc_files: Vec<(String, String)>,
    pub isolation: crate::isolation::Isolation,
}

/// Init → caller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum InitMessage {
    MountPointsCreated(Vec<String>),
    /// chroot isolation: in-container paths standing in for mounts (see `chroot_fs`).
    Transient(Vec<String>),
    SetupFailed {
        step: String,
        errno: Option<i32>,
        message: String,
    },
    ExecFailed {
        path: String,
        errno: Option<i32>,
        message: String,
    },
    Exited(ExitStatus),
}
