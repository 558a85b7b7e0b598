//! Caller side: start the sandbox init, hand it the spec, collect its report.

use std::io::{BufRead, BufReader};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command};

use crate::cgroup::Cgroup;
use crate::diagnose::{self, HostFacts};
use crate::error::SandboxError;
use crate::etcfiles;
use crate::protocol::{CONTROL_FD, INIT_MARKER, InitMessage, InitSpec};
use crate::spec::{ExitStatus, RunReport, RunSpec};

const SELF_EXE: &str = "/proc/self/exe";
/// The control socket is duplicated at or above this fd so that placing it at CONTROL_FD in
/// the child can never collide with its own number or with stdio.
const CONTROL_FD_FLOOR: i32 = 10;

/// Run the payload to completion. Blocking: from async code use `spawn_blocking`.
pub fn run(spec: RunSpec) -> Result<ExitStatus, SandboxError> {
    Ok(spawn(spec)?.wait()?.status)
}

/// Like [`run`], plus the mount points the sandbox had to create in the rootfs.
pub fn run_with_report(spec: RunSpec) -> Result<RunReport, SandboxError> {
    spawn(spec)?.wait()
}

/// A started sandbox. Dropping it without [`Sandbox::wait`] cancels it: the init sees the
/// control socket close, SIGKILLs the sandbox's PID 1, and is reaped by the drop.
#[derive(Debug)]
pub struct Sandbox {
    init: Child,
    control: UnixStream,
    waited: bool,
    /// The run's own cgroup when it has limits; declared after `init` so that it is
    /// removed only after the init has been reaped.
    cgroup: Option<Cgroup>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !self.waited {
            let _ = self.control.shutdown(Shutdown::Both);
            let _ = self.init.wait();
        }
    }
}

/// Start the payload and return without waiting for it.
pub fn spawn(spec: RunSpec) -> Result<Sandbox, SandboxError> {
    validate(&spec)?;
    // Made before the init starts, so that a host without usable cgroups fails cleanly.
    let cgroup = if spec.limits.is_empty() {
        None
    } else {
        Some(Cgroup::create(&spec.limits)?)
    };
    let etc_files = etcfiles::generate(&spec.hostname, spec.network, &spec.extra_hosts);
    let init_spec = InitSpec {
        rootfs: spec.rootfs,
        args: spec.args,
        env: spec.env,
        cwd: spec.cwd,
        user: spec.user,
        hostname: spec.hostname,
        network: spec.network,
        security: spec.security,
        mounts: spec.mounts,
        shm_size: spec.shm_size,
        ulimits: spec.ulimits,
        etc_files,
        isolation: spec.isolation,
    };
    let (ours, pair_end) =
        UnixStream::pair().map_err(|e| SandboxError::io("create control socketpair", e))?;
    let theirs = dup_above(&pair_end, CONTROL_FD_FLOOR)?;
    // Only the init may hold its end: a copy left open here would hide the init's exit from
    // `wait` (no end-of-file).
    drop(pair_end);
    let theirs_raw = theirs.as_raw_fd();
    let mut cmd = Command::new(SELF_EXE);
    cmd.arg(INIT_MARKER)
        .stdin(spec.stdin)
        .stdout(spec.stdout)
        .stderr(spec.stderr);
    // SAFETY: the closure only calls dup2, which is async-signal-safe. theirs_raw >= 10, so
    // dup2 creates a distinct descriptor without FD_CLOEXEC at CONTROL_FD.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(theirs_raw, CONTROL_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let init = cmd.spawn().map_err(|source| SandboxError::Spawn {
        exe: PathBuf::from(SELF_EXE),
        source,
    })?;
    drop(theirs);
    let mut sandbox = Sandbox {
        init,
        control: ours,
        waited: false,
        cgroup,
    };
    // The init waits for its spec before it forks anything, so once it is in the cgroup,
    // so is every process of the run. On failure, dropping `sandbox` cancels the init.
    if let Some(cg) = &sandbox.cgroup {
        cg.add(sandbox.init.id())?;
    }
    sandbox.send_spec(&init_spec)?;
    Ok(sandbox)
}

impl Sandbox {
    /// Process id of the sandbox init (outside the sandbox's pid namespace).
    pub fn id(&self) -> u32 {
        self.init.id()
    }

    /// Cancel: the init SIGKILLs the sandbox's PID 1, which ends every process in it;
    /// [`Sandbox::wait`] then reports `Signaled(9)`.
    pub fn kill(&self) -> Result<(), SandboxError> {
        let pid = nix::unistd::Pid::from_raw(self.init.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .map_err(|e| SandboxError::io(format!("signal sandbox init {pid}"), e.into()))
    }

    /// Wait for the payload and the init to finish.
    pub fn wait(mut self) -> Result<RunReport, SandboxError> {
        let mut created = Vec::new();
        let mut transient = Vec::new();
        let mut status = None;
        let mut failure = None;
        for line in BufReader::new(&self.control).lines() {
            let line = line.map_err(|e| SandboxError::io("read sandbox control socket", e))?;
            let msg: InitMessage = serde_json::from_str(&line)
                .map_err(|e| SandboxError::Protocol(format!("bad message {line:?}: {e}")))?;
            match msg {
                InitMessage::MountPointsCreated(paths) => created = paths,
                InitMessage::Transient(paths) => transient = paths,
                InitMessage::Exited(s) => status = Some(s),
                InitMessage::SetupFailed {
                    step,
                    errno,
                    message,
                } => {
                    failure.get_or_insert_with(|| {
                        diagnose::setup_refused(&step, errno, &HostFacts::probe()).unwrap_or(
                            SandboxError::Setup {
                                step,
                                errno,
                                message,
                            },
                        )
                    });
                }
                InitMessage::ExecFailed {
                    path,
                    errno,
                    message,
                } => {
                    failure.get_or_insert(SandboxError::Exec {
                        path,
                        errno,
                        message,
                    });
                }
            }
        }
        let init_status = self
            .init
            .wait()
            .map_err(|e| SandboxError::io("wait for sandbox init", e))?;
        self.waited = true;
        if let Some(f) = failure {
            return Err(f);
        }
        match status {
            Some(status) => Ok(RunReport {
                status,
                created_mount_points: created,
                transient_paths: transient,
                oom_killed: self.cgroup.as_ref().is_some_and(Cgroup::oom_killed),
            }),
            None => Err(SandboxError::Protocol(format!(
                "sandbox init ended ({init_status}) without reporting a result"
            ))),
        }
    }

    fn send_spec(&mut self, spec: &InitSpec) -> Result<(), SandboxError> {
        let bytes = serde_json::to_vec(spec)
            .map_err(|e| SandboxError::Protocol(format!("encode run spec: {e}")))?;
        // If the init died early the write fails with EPIPE; wait() then reports why.
        if send_all(&self.control, &bytes).is_ok() {
            let _ = self.control.shutdown(Shutdown::Write);
        }
        Ok(())
    }
}

/// write_all without SIGPIPE: a caller that kept SIGPIPE's default action must not be killed
/// because a sandbox init died early.
fn send_all(sock: &UnixStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: bytes is a valid buffer of the given length; sock is an open socket.
        let n = unsafe {
            libc::send(
                sock.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

fn dup_above(fd: &UnixStream, floor: i32) -> Result<OwnedFd, SandboxError> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that we take ownership of below.
    let raw = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, floor) };
    if raw < 0 {
        return Err(SandboxError::io(
            "duplicate control socket",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: raw is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn validate(spec: &RunSpec) -> Result<(), SandboxError> {
    let invalid = |m: String| Err(SandboxError::InvalidSpec(m));
    if spec.args.is_empty() {
        return invalid("args is empty".into());
    }
    let strings = spec
        .args
        .iter()
        .chain(&spec.env)
        .chain([&spec.cwd, &spec.user, &spec.hostname]);
    if let Some(s) = strings.into_iter().find(|s| s.contains('\0')) {
        return invalid(format!("NUL byte in {s:?}"));
    }
    if !spec.cwd.starts_with('/') {
        return invalid(format!("cwd {:?} is not absolute", spec.cwd));
    }
    if spec.hostname.len() > 64 {
        return invalid(format!(
            "hostname {:?} is longer than 64 bytes",
            spec.hostname
        ));
    }
    if let Some(m) = spec.mounts.iter().find(|m| !m.target.starts_with('/')) {
        return invalid(format!("mount target {:?} is not absolute", m.target));
    }
    // Mounting over "/" itself would hide the whole rootfs (and break pivot_root).
    let is_root = |t: &str| Path::new(t).components().all(|c| c == Component::RootDir);
    if let Some(m) = spec.mounts.iter().find(|m| is_root(&m.target)) {
        return invalid(format!("mount target {:?} is the root directory", m.target));
    }
    if !Path::new(&spec.rootfs).is_dir() {
        return invalid(format!(
            "rootfs {} is not a directory",
            spec.rootfs.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{MountKind, MountSpec, Network, Stdio};

    fn spec() -> RunSpec {
        RunSpec {
            rootfs: PathBuf::from("/"),
            args: vec!["true".into()],
            env: vec![],
            cwd: "/".into(),
            user: String::new(),
            hostname: "h".into(),
            network: Network::Host,
            security: Default::default(),
            extra_hosts: vec![],
            shm_size: None,
            ulimits: vec![],
            mounts: vec![],
            stdin: Stdio::Null,
            stdout: Stdio::Null,
            stderr: Stdio::Null,
            limits: Default::default(),
            isolation: Default::default(),
        }
    }

    fn rejected(s: RunSpec) -> String {
        match validate(&s) {
            Err(SandboxError::InvalidSpec(m)) => m,
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_sane_spec() {
        assert!(validate(&spec()).is_ok());
    }

    #[test]
    fn rejects_bad_specs() {
        assert!(
            rejected(RunSpec {
                args: vec![],
                ..spec()
            })
            .contains("args")
        );
        assert!(
            rejected(RunSpec {
                cwd: "rel".into(),
                ..spec()
            })
            .contains("not absolute")
        );
        assert!(
            rejected(RunSpec {
                env: vec!["A=\0".into()],
                ..spec()
            })
            .contains("NUL")
        );
        assert!(
            rejected(RunSpec {
                rootfs: "/nonexistent-rootfs".into(),
                ..spec()
            })
            .contains("rootfs")
        );
        let m = MountSpec {
            target: "tmp".into(),
            kind: MountKind::Tmpfs { size: None },
        };
        assert!(
            rejected(RunSpec {
                mounts: vec![m],
                ..spec()
            })
            .contains("mount target")
        );
        let root = MountSpec {
            target: "//".into(),
            kind: MountKind::Tmpfs { size: None },
        };
        let msg = rejected(RunSpec {
            mounts: vec![root],
            ..spec()
        });
        assert!(msg.contains("root directory"), "{msg}");
    }
}
