//! The sandbox init: `/proc/self/exe __builder-sandbox-init`, started by [`crate::run`].
//! This module is the supervisor half; [`crate::pid1`] is what runs inside the sandbox.
//!
//! It is a fresh, single-threaded process, so it may unshare and fork freely. It unshares the
//! namespaces, forks the future PID 1 (first process of the new pid namespace), which builds
//! the mount tree, pivots, drops credentials and execs the payload; the init itself stays
//! outside the pid namespace, waits, and reports the exit status over the control socket.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use crate::chroot_fs;
use crate::isolation::Isolation;
use crate::pid1::{chroot_main, container_main};
use crate::protocol::{CONTROL_FD, INIT_MARKER, InitMessage, InitSpec};
use crate::spec::{ExitStatus, Network};

/// A failed setup step, with the errno when there is one.
#[derive(Debug)]
pub struct InitError {
    pub step: String,
    pub errno: Option<i32>,
    pub message: String,
}

impl InitError {
    pub fn io(step: impl Into<String>, e: io::Error) -> Self {
        InitError {
            step: step.into(),
            errno: e.raw_os_error(),
            message: e.to_string(),
        }
    }

    pub fn last_os(step: impl Into<String>) -> Self {
        Self::io(step, io::Error::last_os_error())
    }

    pub fn nix(step: impl Into<String>, e: Errno) -> Self {
        Self::io(step, io::Error::from(e))
    }

    pub fn msg(step: impl Into<String>, message: impl ToString) -> Self {
        InitError {
            step: step.into(),
            errno: None,
            message: message.to_string(),
        }
    }
}

impl From<InitError> for InitMessage {
    fn from(e: InitError) -> Self {
        InitMessage::SetupFailed {
            step: e.step,
            errno: e.errno,
            message: e.message,
        }
    }
}

/// Call first thing in `main()`. If `argv[1]` is the init marker, this process is a sandbox
/// init: run it and exit; otherwise return immediately.
pub fn dispatch_init() {
    if std::env::args_os().nth(1).is_some_and(|a| a == INIT_MARKER) {
        std::process::exit(init_main());
    }
}

fn init_main() -> i32 {
    // SAFETY: run() placed the control socket at CONTROL_FD; nothing else in this fresh
    // process owns that descriptor.
    let control = unsafe { UnixStream::from_raw_fd(CONTROL_FD) };
    // Descriptors the caller leaked without CLOEXEC must not reach the payload.
    // SAFETY: close_range only closes descriptors; none above CONTROL_FD are owned here.
    unsafe { libc::syscall(libc::SYS_close_range, CONTROL_FD + 1, u32::MAX, 0) };
    // SAFETY: fcntl on a descriptor we own; keeps the socket away from the payload.
    unsafe { libc::fcntl(CONTROL_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
    // Like runc: mount points, WORKDIR and the payload's files must not depend on the
    // caller's umask, or layer contents would vary between machines.
    // SAFETY: umask only changes this process's file creation mask.
    unsafe { libc::umask(0o022) };
    let result = read_spec(&control).and_then(|spec| supervise(&spec, &control));
    match result {
        Ok(status) => {
            send(&control, &InitMessage::Exited(status));
            0
        }
        Err(e) => {
            send(&control, &e.into());
            1
        }
    }
}

fn read_spec(mut control: &UnixStream) -> Result<InitSpec, InitError> {
    let mut buf = Vec::new();
    control
        .read_to_end(&mut buf)
        .map_err(|e| InitError::io("read run spec from control socket", e))?;
    serde_json::from_slice(&buf).map_err(|e| InitError::msg("decode run spec", e))
}

/// Best effort: if the caller is gone there is nobody left to tell.
pub(crate) fn send(mut control: &UnixStream, msg: &InitMessage) {
    if let Ok(mut line) = serde_json::to_vec(msg) {
        line.push(b'\n');
        let _ = control.write_all(&line);
    }
}

static PAYLOAD_PID: AtomicI32 = AtomicI32::new(0);
static KILL_PENDING: AtomicBool = AtomicBool::new(false);
/// chroot isolation: the payload leads a process group, and cancelling kills the group.
static KILL_GROUP: AtomicBool = AtomicBool::new(false);

/// SIGTERM/SIGINT/SIGHUP to the init mean "cancel": SIGKILL the PID 1 of the sandbox (the only
/// signal PID 1 cannot ignore), which tears down the whole pid namespace.
extern "C" fn cancel_handler(_sig: libc::c_int) {
    let pid = PAYLOAD_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe {
            if KILL_GROUP.load(Ordering::SeqCst) {
                libc::kill(-pid, libc::SIGKILL);
            }
            libc::kill(pid, libc::SIGKILL);
        }
    } else {
        KILL_PENDING.store(true, Ordering::SeqCst);
    }
}

fn install_cancel_handler() -> Result<(), InitError> {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with a valid handler and empty mask is well-formed.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = cancel_handler as *const () as libc::sighandler_t;
        act.sa_flags = libc::SA_RESTART;
        // SAFETY: act is fully initialised; the handler only uses async-signal-safe calls.
        if unsafe { libc::sigaction(sig, &act, std::ptr::null_mut()) } != 0 {
            return Err(InitError::last_os("install cancel handler"));
        }
    }
    Ok(())
}

fn supervise(spec: &InitSpec, control: &UnixStream) -> Result<ExitStatus, InitError> {
    if spec.isolation == Isolation::Chroot {
        return supervise_chroot(spec, control);
    }
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS;
    if spec.network == Network::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    unshare(flags).map_err(|e| InitError::nix(format!("unshare {flags:?}"), e))?;
    install_cancel_handler()?;
    // SAFETY: this process is single-threaded (a fresh exec running only this code), so the
    // child may keep running ordinary Rust.
    match unsafe { fork() }.map_err(|e| InitError::nix("fork sandbox pid 1", e))? {
        ForkResult::Child => {
            let failure = match container_main(spec, control) {
                Err(msg) => msg,
                Ok(never) => match never {},
            };
            send(control, &failure);
            // SAFETY: _exit skips destructors and atexit handlers of the forked copy.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => {
            PAYLOAD_PID.store(child.as_raw(), Ordering::SeqCst);
            if KILL_PENDING.load(Ordering::SeqCst) {
                let _ = kill(child, Signal::SIGKILL);
            }
            watch_caller(child, control)?;
            wait_for(child)
        }
    }
}

/// chroot isolation: stage the mount points as files, run the payload chrooted in its own
/// process group, then kill what it left running and move read-write mount contents back.
fn supervise_chroot(spec: &InitSpec, control: &UnixStream) -> Result<ExitStatus, InitError> {
    let mut staged = chroot_fs::stage(spec)?;
    send(
        control,
        &InitMessage::MountPointsCreated(staged.created.clone()),
    );
    send(control, &InitMessage::Transient(staged.transient.clone()));
    KILL_GROUP.store(true, Ordering::SeqCst);
    install_cancel_handler()?;
    // SAFETY: this process is single-threaded (see `supervise`).
    let ran = match unsafe { fork() }.map_err(|e| InitError::nix("fork the step's process", e))? {
        ForkResult::Child => {
            let failure = match chroot_main(spec, &staged.root) {
                Err(msg) => msg,
                Ok(never) => match never {},
            };
            send(control, &failure);
            // SAFETY: _exit skips destructors and atexit handlers of the forked copy.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => {
            PAYLOAD_PID.store(child.as_raw(), Ordering::SeqCst);
            if KILL_PENDING.load(Ordering::SeqCst) {
                let _ = kill(Pid::from_raw(-child.as_raw()), Signal::SIGKILL);
            }
            let ran = watch_caller(child, control).and_then(|()| wait_for(child));
            // Without a pid namespace, daemons the step started outlive it; the namespaced
            // mode ends them with its PID 1, this ends those still in the step's group.
            let _ = kill(Pid::from_raw(-child.as_raw()), Signal::SIGKILL);
            ran
        }
    };
    // Even after a failed or cancelled step: cache mount contents belong to the cache.
    staged.restore()?;
    ran
}

/// Block until the sandbox's PID 1 exits; if the caller goes away first (its end of the
/// control socket is closed: crash, SIGKILL), SIGKILL the sandbox instead of leaving an
/// orphaned build step running. PR_SET_PDEATHSIG on the init is not usable for this: it
/// fires when the caller's *thread* exits, and tokio retires blocking threads freely.
fn watch_caller(child: Pid, control: &UnixStream) -> Result<(), InitError> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd we own below.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, child.as_raw(), 0) };
    if raw < 0 {
        return Err(InitError::last_os("pidfd_open sandbox pid 1"));
    }
    // SAFETY: raw is a fresh descriptor owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    loop {
        let mut fds = [
            libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            // POLLHUP is always reported; it means both directions are shut, i.e. the caller
            // closed its end (it only shut down its write side after sending the spec).
            libc::pollfd {
                fd: control.as_raw_fd(),
                events: 0,
                revents: 0,
            },
        ];
        // SAFETY: fds is a valid array of two pollfd structs.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(InitError::io("poll sandbox pid 1 and caller", err));
        }
        if fds[0].revents != 0 {
            return Ok(());
        }
        if fds[1].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            let _ = kill(child, Signal::SIGKILL);
            return Ok(());
        }
    }
}

fn wait_for(child: Pid) -> Result<ExitStatus, InitError> {
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(ExitStatus::Exited(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(ExitStatus::Signaled(sig as i32)),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(InitError::nix("wait for sandbox pid 1", e)),
        }
    }
}
