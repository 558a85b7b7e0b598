//! The sandbox init: `/proc/self/exe __builder-sandbox-init`, started by [`crate::run`].
//!
//! It is a fresh, single-threaded process, so it may unshare and fork freely. It unshares the
//! namespaces, forks the future PID 1 (first process of the new pid namespace), which builds
//! the mount tree, pivots, drops credentials and execs the payload; the init itself stays
//! outside the pid namespace, waits, and reports the exit status over the control socket.

use std::convert::Infallible;
use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Pid, Uid, fork};

use crate::protocol::{CONTROL_FD, INIT_MARKER, InitMessage, InitSpec};
use crate::spec::{ExitStatus, Network};
use crate::user::resolve_user;
use crate::{caps, mounts, netns};

/// PATH used for lookup when the payload's env has none (docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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
fn send(mut control: &UnixStream, msg: &InitMessage) {
    if let Ok(mut line) = serde_json::to_vec(msg) {
        line.push(b'\n');
        let _ = control.write_all(&line);
    }
}

static PAYLOAD_PID: AtomicI32 = AtomicI32::new(0);
static KILL_PENDING: AtomicBool = AtomicBool::new(false);

/// SIGTERM/SIGINT/SIGHUP to the init mean "cancel": SIGKILL the PID 1 of the sandbox (the only
/// signal PID 1 cannot ignore), which tears down the whole pid namespace.
extern "C" fn cancel_handler(_sig: libc::c_int) {
    let pid = PAYLOAD_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, libc::SIGKILL) };
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

/// PID 1 of the sandbox. Only returns on failure; success ends in execve.
fn container_main(spec: &InitSpec, control: &UnixStream) -> Result<Infallible, InitMessage> {
    set_parent_death_signal()?;
    let created = mounts::prepare(spec)?;
    send(control, &InitMessage::MountPointsCreated(created));
    if !spec.hostname.is_empty() {
        nix::unistd::sethostname(&spec.hostname)
            .map_err(|e| InitError::nix(format!("sethostname {:?}", spec.hostname), e))?;
    }
    if spec.network == Network::None {
        netns::loopback_up()?;
    }
    let passwd = read_optional("/etc/passwd")?;
    let group = read_optional("/etc/group")?;
    let user = resolve_user(&spec.user, &passwd, &group)
        .map_err(|e| InitError::msg(format!("USER {:?}", spec.user), e))?;
    let env = with_home(&spec.env, &user.home);
    enter_cwd(&spec.cwd)?;
    let exe = find_executable(&spec.args[0], &env)?;
    caps::drop_bounding_set()?;
    switch_user(user.uid, user.gid, &user.supplementary_gids)?;
    caps::set_docker_caps()?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(InitError::last_os("PR_SET_NO_NEW_PRIVS").into());
    }
    // Changing uid/gid cleared the parent-death signal; arm it again for the payload.
    set_parent_death_signal()?;
    reset_signals()?;
    exec(&exe, &spec.args, &env)
}

/// Ignored signals and the signal mask survive execve. The Rust runtime of this init ignores
/// SIGPIPE (and the caller may have ignored more), which would break `yes | head` in the
/// payload; docker payloads start with default dispositions and nothing blocked.
fn reset_signals() -> Result<(), InitError> {
    // The kernel's struct sigaction (x86_64 and aarch64 layout). The raw syscall is used
    // because glibc refuses signals 32 and 33, which it reserves, yet they can be ignored too.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: `default` is a valid kernel sigaction; the old action is not requested;
        // the sigset size is 8 bytes as the kernel expects.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
    }
    // SAFETY: an empty, initialised sigset passed to sigprocmask.
    let rc = unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(InitError::last_os("clear signal mask"));
    }
    Ok(())
}

/// If the init dies (e.g. SIGKILLed by a crashing caller), take the sandbox down with it.
fn set_parent_death_signal() -> Result<(), InitError> {
    // SAFETY: prctl with integer arguments only.
    if unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    } != 0
    {
        return Err(InitError::last_os("PR_SET_PDEATHSIG"));
    }
    Ok(())
}

fn read_optional(path: &str) -> Result<String, InitError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(InitError::io(format!("read {path}"), e)),
    }
}

/// docker sets HOME from /etc/passwd unless the image or RUN provides one.
fn with_home(env: &[String], home: &str) -> Vec<String> {
    let mut env = env.to_vec();
    if !env.iter().any(|kv| kv.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    env
}

/// Create the working directory if missing (docker WORKDIR semantics, owned by root), enter it.
fn enter_cwd(cwd: &str) -> Result<(), InitError> {
    std::fs::create_dir_all(cwd)
        .map_err(|e| InitError::io(format!("create working directory {cwd}"), e))?;
    nix::unistd::chdir(cwd).map_err(|e| InitError::nix(format!("chdir {cwd}"), e))
}

/// Resolve argv[0] like execvp, against PATH from the payload's env (not the caller's).
fn find_executable(arg0: &str, env: &[String]) -> Result<String, InitMessage> {
    if arg0.contains('/') {
        return Ok(arg0.to_string());
    }
    // First match, as getenv(3) in the payload would see it.
    let path = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(arg0);
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return Ok(candidate.to_string_lossy().into_owned());
        }
    }
    Err(InitMessage::ExecFailed {
        path: arg0.to_string(),
        errno: Some(libc::ENOENT),
        message: format!("executable file not found in $PATH ({path})"),
    })
}

fn switch_user(uid: u32, gid: u32, groups: &[u32]) -> Result<(), InitError> {
    // Keep the permitted set across setuid so set_docker_caps can still install docker's set.
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err(InitError::last_os("PR_SET_KEEPCAPS"));
    }
    set_groups(groups)?;
    let g = Gid::from_raw(gid);
    nix::unistd::setresgid(g, g, g)
        .map_err(|e| InitError::nix(format!("setresgid {gid}{}", unmapped_hint(e)), e))?;
    let u = Uid::from_raw(uid);
    nix::unistd::setresuid(u, u, u)
        .map_err(|e| InitError::nix(format!("setresuid {uid}{}", unmapped_hint(e)), e))
}

fn unmapped_hint(e: Errno) -> &'static str {
    if e == Errno::EINVAL {
        " (id is not mapped in the user namespace; add a /etc/subuid and /etc/subgid range)"
    } else {
        ""
    }
}

/// In a single-id user namespace setgroups(2) is denied; then only an empty list is acceptable
/// and the inherited (empty) group list already satisfies it.
fn set_groups(groups: &[u32]) -> Result<(), InitError> {
    let denied = std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    if denied {
        if groups.is_empty() {
            return Ok(());
        }
        return Err(InitError::msg(
            format!("setgroups {groups:?}"),
            "supplementary groups cannot be set in a single-id user namespace",
        ));
    }
    let gids: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&gids)
        .map_err(|e| InitError::nix(format!("setgroups {groups:?}{}", unmapped_hint(e)), e))
}

fn exec(exe: &str, args: &[String], env: &[String]) -> Result<Infallible, InitMessage> {
    let fail = |errno: Option<i32>, message: String| InitMessage::ExecFailed {
        path: exe.to_string(),
        errno,
        message,
    };
    let to_c = |s: &String| {
        CString::new(s.as_bytes()).map_err(|_| fail(None, format!("NUL byte in {s:?}")))
    };
    let c_exe = to_c(&exe.to_string())?;
    let c_args = args.iter().map(to_c).collect::<Result<Vec<_>, _>>()?;
    let c_env = env.iter().map(to_c).collect::<Result<Vec<_>, _>>()?;
    let err = match nix::unistd::execve(&c_exe, &c_args, &c_env) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    Err(fail(
        Some(err as i32),
        format!("{} (errno {})", err.desc(), err as i32),
    ))
}
