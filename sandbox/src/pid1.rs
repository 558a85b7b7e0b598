//! The sandbox's PID 1 before it becomes the payload: filesystem, hostname, network, user,
//! capabilities, signals, then execve. Runs in the child the init forked into the new pid
//! namespace; every failure is returned as the message to send to the caller.

use std::convert::Infallible;
use std::ffi::CString;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::errno::Errno;
use nix::unistd::{Gid, Uid};

use crate::init::{InitError, send};
use crate::protocol::{InitMessage, InitSpec};
use crate::spec::{Network, Security};
use crate::user::resolve_user;
use crate::{caps, mounts, netns};

/// PATH used for lookup when the payload's env has none (docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// PID 1 of the sandbox. Only returns on failure; success ends in execve.
pub(crate) fn container_main(
    spec: &InitSpec,
    control: &UnixStream,
) -> Result<Infallible, InitMessage> {
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
    become_payload(spec)
}

/// The payload's process under chroot isolation (see `chroot_fs`): no namespace of its own,
/// so it leads a process group of its own, which the init kills whole when the step ends.
pub(crate) fn chroot_main(spec: &InitSpec, root: &Path) -> Result<Infallible, InitMessage> {
    set_parent_death_signal()?;
    nix::unistd::setsid().map_err(|e| InitError::nix("setsid", e))?;
    nix::unistd::chroot(root).map_err(|e| InitError::nix("chroot", e))?;
    nix::unistd::chdir("/").map_err(|e| InitError::nix("chdir /", e))?;
    become_payload(spec)
}

/// In the step's root: resolve the user, enter the working directory, lower privileges and
/// exec the payload.
fn become_payload(spec: &InitSpec) -> Result<Infallible, InitMessage> {
    let passwd = read_optional("/etc/passwd")?;
    let group = read_optional("/etc/group")?;
    let user = resolve_user(&spec.user, &passwd, &group)
        .map_err(|e| InitError::msg(format!("USER {:?}", spec.user), e))?;
    let env = with_home(&spec.env, &user.home);
    enter_cwd(&spec.cwd)?;
    let arg0 = spec
        .args
        .first()
        .ok_or_else(|| InitError::msg("exec", "empty argument list"))?;
    let exe = find_executable(arg0, &env)?;
    // While the init may still raise limits (as root on the host; rootless, only lower them).
    set_ulimits(&spec.ulimits)?;
    match spec.security {
        Security::Sandbox => caps::drop_bounding_set()?,
        Security::Insecure => caps::clear_ambient()?,
    }
    switch_user(user.uid, user.gid, &user.supplementary_gids)?;
    match spec.security {
        Security::Sandbox => {
            caps::set_docker_caps()?;
            // SAFETY: prctl with integer arguments only.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return Err(InitError::last_os("PR_SET_NO_NEW_PRIVS").into());
            }
        }
        // Granted by `--allow security.insecure`: the bounding set stayed whole and nothing
        // clamps execve, so a root payload gets every capability the init holds (all of them
        // in its user namespace) and setuid binaries and file capabilities work again; a
        // non-root USER gets none, as under docker --privileged.
        Security::Insecure => {}
    }
    // Changing uid/gid cleared the parent-death signal; arm it again for the payload.
    set_parent_death_signal()?;
    reset_signals()?;
    exec(&exe, &spec.args, &env)
}

fn set_ulimits(ulimits: &[crate::spec::Ulimit]) -> Result<(), InitError> {
    for u in ulimits {
        let resource = u
            .resource()
            .ok_or_else(|| InitError::msg(format!("ulimit {}", u.name), "unknown limit"))?;
        let limit = libc::rlimit {
            rlim_cur: u.soft.unwrap_or(libc::RLIM_INFINITY),
            rlim_max: u.hard.unwrap_or(libc::RLIM_INFINITY),
        };
        // SAFETY: setrlimit reads the struct we pass; the resource is one of the RLIMIT_* values.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            let err = std::io::Error::last_os_error();
            let hint = if err.raw_os_error() == Some(libc::EPERM) {
                " (raising a hard limit needs root on the host; a rootless build can only lower it)"
            } else {
                ""
            };
            return Err(InitError::msg(
                format!("--ulimit {}", u.name),
                format!("{err}{hint}"),
            ));
        }
    }
    Ok(())
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
    set_groups(groups, gid)?;
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

/// In a single-id user namespace setgroups(2) is denied; then only the primary group (which
/// the process has anyway) is acceptable and the inherited (empty) group list stays.
fn set_groups(groups: &[u32], primary: u32) -> Result<(), InitError> {
    let denied = std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    if denied {
        if groups.iter().all(|g| *g == primary) {
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
