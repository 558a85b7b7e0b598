//! How RUN steps are isolated, chosen once at startup before any thread exists (issue #23).
//!
//! - [`Isolation::Rootless`]: the namespaced sandbox. A non-root caller re-executes itself in a
//!   user namespace ([`crate::enter_rootless_userns`]); root uses the same mount, pid, ipc and
//!   uts namespaces without one.
//! - [`Isolation::Chroot`]: what Buildah's `--isolation chroot` and Kaniko do where a container
//!   refuses namespaces (docker's default seccomp profile, no CAP_SYS_ADMIN): no namespace of
//!   our own, the step chrooted into its root filesystem, mounts emulated with files
//!   (see `chroot_fs`). The container is the security boundary.
//!
//! `auto` probes, in a forked child, whether the namespaces the rootless mode needs can be
//! created, and picks it when they can.

use std::fmt;
use std::str::FromStr;

use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Uid, fork};
use serde::{Deserialize, Serialize};

use crate::error::SandboxError;
use crate::userns::{self, USERNS_ENV, UsernsInfo};

/// The isolation RUN steps get in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Isolation {
    #[default]
    Rootless,
    Chroot,
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Isolation::Rootless => "rootless",
            Isolation::Chroot => "chroot",
        })
    }
}

/// `--isolation` / `BUILDER_ISOLATION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationRequest {
    #[default]
    Auto,
    Exactly(Isolation),
}

impl FromStr for IsolationRequest {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" | "" => Ok(IsolationRequest::Auto),
            "rootless" => Ok(IsolationRequest::Exactly(Isolation::Rootless)),
            "chroot" => Ok(IsolationRequest::Exactly(Isolation::Chroot)),
            // docker build's Windows values and Buildah's OCI runtime modes: refused by name
            // rather than silently mapped to something else.
            other => Err(format!(
                "unknown isolation {other:?}: expected auto, rootless or chroot"
            )),
        }
    }
}

/// What [`enter`] settled on.
#[derive(Debug, Clone)]
pub struct Entered {
    pub isolation: Isolation,
    pub userns: UsernsInfo,
    /// Why `auto` did not pick the rootless mode (the probe that failed); None otherwise.
    pub fallback_reason: Option<String>,
}

/// Applies the requested isolation. Must run first in `main()`, before threads exist: the
/// rootless mode re-executes the binary in a user namespace (in the original non-root process
/// this does not return on success, see [`crate::enter_rootless_userns`]).
pub fn enter(request: IsolationRequest) -> Result<Entered, SandboxError> {
    // The re-executed child of a rootless start: the parent already decided.
    if std::env::var_os(USERNS_ENV).is_some() {
        return rootless(None);
    }
    match request {
        IsolationRequest::Exactly(Isolation::Rootless) => rootless(None),
        IsolationRequest::Exactly(Isolation::Chroot) => chroot(None),
        IsolationRequest::Auto => match probe_namespaces() {
            Ok(()) => rootless(None),
            Err(reason) => chroot(Some(reason)),
        },
    }
}

fn rootless(fallback_reason: Option<String>) -> Result<Entered, SandboxError> {
    Ok(Entered {
        isolation: Isolation::Rootless,
        userns: userns::enter_rootless_userns()?,
        fallback_reason,
    })
}

fn chroot(fallback_reason: Option<String>) -> Result<Entered, SandboxError> {
    Ok(Entered {
        isolation: Isolation::Chroot,
        userns: userns::current_info()?,
        fallback_reason,
    })
}

/// Whether the namespaces of the rootless mode can be created here: a user namespace for a
/// non-root caller, mount/pid/ipc/uts namespaces for root. Tried in a forked child, which
/// exits with the errno, so this process stays where it is.
fn probe_namespaces() -> Result<(), String> {
    let root = Uid::effective().is_root();
    let flags = if root {
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUTS
    } else {
        CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS
    };
    // SAFETY: called before any other thread exists (see `enter`); the child only calls
    // unshare and _exit.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let code = match unshare(flags) {
                Ok(()) => 0,
                Err(e) => e as i32,
            };
            // SAFETY: _exit in the forked child skips the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 0)) => return Ok(()),
                Ok(WaitStatus::Exited(_, errno)) => {
                    let e = nix::errno::Errno::from_raw(errno);
                    let what = if root {
                        "creating mount and pid namespaces"
                    } else {
                        "creating a user namespace"
                    };
                    return Err(format!("{what} failed with {e:?} ({})", e.desc()));
                }
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    return Err(format!("the namespace probe was killed by {sig}"));
                }
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(format!("waiting for the namespace probe: {e}")),
            }
        },
        Err(e) => Err(format!("forking the namespace probe: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_unknown_modes_are_refused() {
        assert_eq!("auto".parse(), Ok(IsolationRequest::Auto));
        assert_eq!(
            "chroot".parse(),
            Ok(IsolationRequest::Exactly(Isolation::Chroot))
        );
        assert_eq!(
            "rootless".parse(),
            Ok(IsolationRequest::Exactly(Isolation::Rootless))
        );
        let e = "hyperv".parse::<IsolationRequest>().unwrap_err();
        assert!(e.contains("auto, rootless or chroot"), "{e}");
    }
}
