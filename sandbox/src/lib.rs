//! builder-sandbox: run one process (a Dockerfile `RUN`) inside a prepared root filesystem,
//! as docker/runc would, without a daemon and without real root.
//!
//! Binaries using this crate must call [`dispatch_init`] and then [`enter_rootless_userns`]
//! first thing in `main()`, before any thread (or tokio runtime) exists: the sandbox
//! re-executes `/proc/self/exe` rather than forking the (multi-threaded) caller.

mod caps;
mod error;
mod etcfiles;
mod init;
mod mounts;
mod netns;
mod protocol;
mod rootpath;
mod run;
mod spec;
mod stubs;
mod user;
mod userns;

pub use caps::DOCKER_DEFAULT_CAPS;
pub use error::SandboxError;
pub use init::dispatch_init;
pub use protocol::INIT_MARKER;
pub use rootpath::resolve_in_root;
pub use run::{Sandbox, run, run_with_report, spawn};
pub use spec::{ExitStatus, MountKind, MountSpec, Network, RunReport, RunSpec, Stdio};
pub use stubs::remove_mount_stubs;
pub use user::{ResolvedUser, UserError, resolve_user};
pub use userns::{
    SubidRange, USERNS_ENV, UsernsInfo, UsernsMode, current_info, enter_rootless_userns,
    parse_id_map,
};
