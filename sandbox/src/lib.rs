//! builder-sandbox: run one process (a Dockerfile `RUN`) inside a prepared root filesystem,
//! as docker/runc would, without a daemon and without real root.
//!
//! # Using it from a binary
//! ```no_run
//! // First statements of main():
//! // 1. If this process is a sandbox init (argv[1] == INIT_MARKER), run it; never returns.
//! builder_sandbox::dispatch_init();
//! // 2. Non-root: re-exec inside a user namespace (this call does not return in the
//! //    original process). Must happen before any thread or tokio runtime exists.
//! let info = builder_sandbox::enter_rootless_userns().expect("user namespace");
//! if info.mode == builder_sandbox::UsernsMode::SingleId {
//!     eprintln!("no /etc/subuid range: files owned by other uids cannot be represented");
//! }
//! // 3. Later, from any thread (blocking; use spawn_blocking under tokio):
//! // let status = builder_sandbox::run(spec)?;
//! ```
//!
//! # How a run works
//! [`run`]/[`spawn`] start `/proc/self/exe __builder-sandbox-init` (the caller is never forked
//! to keep running Rust) and send it the spec as JSON over a socketpair placed on fd 3. The
//! init unshares mount/pid/ipc/uts (and net for [`Network::None`]) namespaces and forks the
//! sandbox's PID 1, which mounts /proc, /sys (ro), a minimal /dev, the generated
//! /etc/{hosts,resolv.conf,hostname} and the user mounts, pivots into the rootfs, switches to
//! the resolved USER, reduces capabilities to docker's default set, sets no_new_privs and
//! execs the payload (which therefore is PID 1). The init reports setup/exec errors and the
//! exit status back over the socket; it SIGKILLs the sandbox if the caller disappears.
//!
//! Empty mount points the sandbox had to create in the rootfs are listed in
//! [`RunReport::created_mount_points`]; [`remove_mount_stubs`] deletes those still empty.
//!
//! # Tests
//! `tests/sandbox.rs` drives the `builder-sandbox-harness` binary (src/bin/sandbox-harness.rs),
//! which is exactly such a main(). `scripts/test-rootless.sh` runs the suite as root, as a user
//! with a subordinate id range and as one without.

mod caps;
pub mod cgroup;
mod chroot_fs;
mod diagnose;
mod error;
mod etcfiles;
mod init;
mod isolation;
mod mounts;
mod netns;
mod pid1;
mod protocol;
mod run;
mod spec;
mod stubs;
mod user;
mod userns;

pub use caps::DOCKER_DEFAULT_CAPS;
pub use cgroup::ResourceLimits;
pub use error::SandboxError;
pub use init::dispatch_init;
pub use isolation::{Entered, Isolation, IsolationRequest, enter as enter_isolation};
pub use protocol::INIT_MARKER;
pub use run::{Sandbox, run, run_with_report, spawn};
pub use spec::{
    ExitStatus, ExtraHost, MountKind, MountSpec, Network, RunReport, RunSpec, Security, Stdio,
    Ulimit, ulimit_is_known,
};
pub use stubs::remove_mount_stubs;
pub use user::{ResolvedUser, UserError, resolve_user};
pub use userns::{
    SubidRange, USERNS_ENV, UsernsInfo, UsernsMode, current_info, enter_rootless_userns,
    parse_id_map, single_id_reason,
};
