//! Entering a rootless user namespace by re-executing the current binary inside one, with
//! id maps from /etc/subuid and /etc/subgid written by the setuid `newuidmap`/`newgidmap`.
//!
//! Handshake over a socketpair whose fd number travels in [`USERNS_ENV`] (`"sync:<fd>"`):
//! child unshares (CLONE_NEWUSER|CLONE_NEWNS) and sends 'u'; parent writes the maps and sends
//! 'm'; child continues as uid 0 with full capabilities in the new namespace. The child
//! unshares itself (not in pre_exec) because an execve while still unmapped would drop them.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sched::{CloneFlags, unshare};
use nix::unistd::{Gid, Uid};

use crate::diagnose::{self, HostFacts};
use crate::error::SandboxError;

/// Marker env var: `"sync:<fd>"` while the handshake is pending, `"inside"` afterwards.
pub const USERNS_ENV: &str = "_BUILDER_SANDBOX_USERNS";
const INSIDE: &str = "inside";

/// Set for the re-executed child when only its own id is mapped: why (see [`single_id_reason`]).
const SINGLE_ID_ENV: &str = "_BUILDER_SANDBOX_SINGLE_ID";

/// Why this process maps only its own id ([`UsernsMode::SingleId`]), for the user's warning:
/// no subordinate range, or no newuidmap to apply it.
pub fn single_id_reason() -> Option<String> {
    std::env::var(SINGLE_ID_ENV).ok()
}

/// How ids are mapped for the current process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernsMode {
    /// Real root in the initial user namespace: no mapping.
    Root,
    /// Caller → 0 plus subordinate ranges: the namespace has this many uids / gids.
    MappedRange { uid_count: u64, gid_count: u64 },
    /// Only the caller's own id, mapped to 0: files owned by any other uid cannot be
    /// represented, so chown to them fails.
    SingleId,
    /// No user namespace and not root (chroot isolation as an ordinary user): files can only
    /// be owned by this user.
    Unprivileged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsernsInfo {
    pub mode: UsernsMode,
}

/// One line of /etc/subuid or /etc/subgid that applies to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubidRange {
    pub start: u64,
    pub count: u64,
}

/// See the module docs. Returns in the namespace (or directly, as root / already inside);
/// in the original non-root process it never returns on success: it exits with the child's status.
pub fn enter_rootless_userns() -> Result<UsernsInfo, SandboxError> {
    match std::env::var(USERNS_ENV) {
        Ok(v) if v == INSIDE => return current_info(),
        Ok(v) => {
            if let Some(fd) = v.strip_prefix("sync:") {
                child_handshake(fd)?;
                return current_info();
            }
        }
        Err(_) => {}
    }
    if Uid::effective().is_root() {
        private_mounts();
        return current_info();
    }
    reexec_in_userns()
}

/// As real root, moves this process into its own mount namespace whose mounts do not
/// propagate back, so the overlay views a build mounts vanish with the process even when it is
/// SIGKILLed; in the host's namespace they would stay mounted in the store's `work/`, where
/// nothing may delete them. (Rootless builds get this from the namespace they re-execute in.)
/// Best effort: where unsharing is not allowed, mounts behave as before.
fn private_mounts() {
    if unshare(CloneFlags::CLONE_NEWNS).is_err() {
        return;
    }
    let _ = nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
        None::<&str>,
    );
}

/// Classify the current process from /proc/self/{uid,gid}_map.
pub fn current_info() -> Result<UsernsInfo, SandboxError> {
    let read =
        |p: &str| std::fs::read_to_string(p).map_err(|e| SandboxError::io(format!("read {p}"), e));
    let uid_map = parse_id_map(&read("/proc/self/uid_map")?);
    let gid_map = parse_id_map(&read("/proc/self/gid_map")?);
    let mode = match classify(&uid_map, &gid_map) {
        UsernsMode::Root if !Uid::effective().is_root() => UsernsMode::Unprivileged,
        mode => mode,
    };
    Ok(UsernsInfo { mode })
}

/// (inside, outside, count) triples.
pub fn parse_id_map(content: &str) -> Vec<(u64, u64, u64)> {
    content
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(|n| n.parse::<u64>());
            match (f.next(), f.next(), f.next()) {
                (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => Some((a, b, c)),
                _ => None,
            }
        })
        .collect()
}

fn classify(uid_map: &[(u64, u64, u64)], gid_map: &[(u64, u64, u64)]) -> UsernsMode {
    let total = |m: &[(u64, u64, u64)]| m.iter().map(|e| e.2).sum::<u64>();
    if uid_map == [(0, 0, u64::from(u32::MAX))] {
        UsernsMode::Root
    } else if total(uid_map) <= 1 {
        UsernsMode::SingleId
    } else {
        UsernsMode::MappedRange {
            uid_count: total(uid_map),
            gid_count: total(gid_map),
        }
    }
}

/// Ranges for `name` or numeric `id` in an /etc/subuid-format file ("who:start:count").
pub fn subid_ranges(content: &str, name: Option<&str>, id: u32) -> Vec<SubidRange> {
    let id = id.to_string();
    content
        .lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let who = f.next()?;
            if Some(who) != name && who != id {
                return None;
            }
            let start = f.next()?.parse().ok()?;
            let count: u64 = f.next()?.parse().ok()?;
            (count > 0).then_some(SubidRange { start, count })
        })
        .collect()
}

/// newuidmap/newgidmap arguments: caller's id → 0, then the ranges back to back from 1.
pub fn map_args(own: u32, ranges: &[SubidRange]) -> Vec<String> {
    let mut args = vec!["0".to_string(), own.to_string(), "1".to_string()];
    let mut next_inside = 1u64;
    for r in ranges {
        args.extend([
            next_inside.to_string(),
            r.start.to_string(),
            r.count.to_string(),
        ]);
        next_inside += r.count;
    }
    args
}

fn child_handshake(fd: &str) -> Result<(), SandboxError> {
    let raw: i32 = fd
        .parse()
        .map_err(|_| SandboxError::Userns(format!("bad {USERNS_ENV} fd {fd:?}")))?;
    // SAFETY: the parent passed us this socket at `raw`; nothing else owns it.
    let mut sync = unsafe { UnixStream::from_raw_fd(raw) };
    let parent = nix::unistd::getppid();
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).map_err(|e| {
        diagnose::userns_refused(
            "unshare(CLONE_NEWUSER|CLONE_NEWNS)",
            e as i32,
            &HostFacts::probe(),
        )
    })?;
    sync.write_all(b"u")
        .map_err(|e| SandboxError::io("userns handshake: notify parent", e))?;
    let mut ack = [0u8; 1];
    match sync.read(&mut ack) {
        Ok(1) if ack[0] == b'm' => {}
        _ => {
            return Err(SandboxError::Userns(
                "parent failed to write the id maps (see its error)".into(),
            ));
        }
    }
    // Our uid/gid are now mapped to 0; make all of real/effective/saved agree.
    let zero_g = Gid::from_raw(0);
    let zero_u = Uid::from_raw(0);
    nix::unistd::setresgid(zero_g, zero_g, zero_g)
        .map_err(|e| SandboxError::Userns(format!("setresgid 0: {e}")))?;
    nix::unistd::setresuid(zero_u, zero_u, zero_u)
        .map_err(|e| SandboxError::Userns(format!("setresuid 0: {e}")))?;
    // Die with the original process: it only waits for us, so a SIGKILL of it (`kill -9
    // <pid>`) would otherwise leave this build running unseen, holding its lease and locks.
    // The waiting parent is single-threaded, so its one thread exiting means it is gone. Set
    // after the credential changes above, which clear it.
    // SAFETY: prctl with PR_SET_PDEATHSIG and a valid signal number.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(SandboxError::io(
            "prctl(PR_SET_PDEATHSIG)",
            std::io::Error::last_os_error(),
        ));
    }
    if nix::unistd::getppid() != parent {
        // The parent died before the signal was armed.
        std::process::exit(137);
    }
    // SAFETY: called from main() before any other thread exists (documented requirement).
    unsafe { std::env::set_var(USERNS_ENV, INSIDE) };
    Ok(())
}

static CHILD_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = CHILD_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

fn reexec_in_userns() -> Result<UsernsInfo, SandboxError> {
    let uid = Uid::current().as_raw();
    let gid = Gid::current().as_raw();
    let name = nix::unistd::User::from_uid(Uid::current())
        .ok()
        .flatten()
        .map(|u| u.name);
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let subuids = subid_ranges(&read("/etc/subuid"), name.as_deref(), uid);
    let subgids = subid_ranges(&read("/etc/subgid"), name.as_deref(), uid);

    // Both ends are close-on-exec; only the child's copy of `theirs` is made inheritable, in
    // pre_exec, so no other process this one starts can hold the socket open.
    let (mut ours, theirs) =
        UnixStream::pair().map_err(|e| SandboxError::io("create userns socketpair", e))?;
    let theirs_raw = theirs.as_raw_fd();
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0(argv0)
        .args(args)
        .env(USERNS_ENV, format!("sync:{theirs_raw}"));
    let tools = which("newuidmap") && which("newgidmap");
    let single_id = if subuids.is_empty() || subgids.is_empty() {
        Some(format!(
            "no /etc/subuid and /etc/subgid range for user {}",
            name.as_deref().unwrap_or(&uid.to_string())
        ))
    } else if !tools {
        Some("newuidmap/newgidmap are not on PATH (install the uidmap package)".to_string())
    } else {
        None
    };
    match &single_id {
        Some(reason) => cmd.env(SINGLE_ID_ENV, reason),
        None => cmd.env_remove(SINGLE_ID_ENV),
    };
    // SAFETY: the closure only calls fcntl, which is async-signal-safe, on a descriptor that
    // is open in the forked child (it was open in the parent at fork).
    unsafe {
        cmd.pre_exec(move || {
            let flags = libc::fcntl(theirs_raw, libc::F_GETFD);
            if flags < 0 || libc::fcntl(theirs_raw, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    // Closed at once: while we hold the child's end, a child that dies before the handshake
    // never gives us end-of-file, and we would wait for its note forever (issue #23).
    drop(theirs);
    let mut child =
        spawned.map_err(|e| SandboxError::io("re-exec /proc/self/exe in a user namespace", e))?;
    let pid = child.id();
    match write_maps(
        &mut ours,
        pid,
        uid,
        gid,
        single_id.is_none(),
        &subuids,
        &subgids,
    ) {
        Ok(Handshake::Done) => {}
        Ok(Handshake::ChildGone) => {
            // The child has already said why on stderr (it shares ours); pass its status on.
            let status = child
                .wait()
                .map_err(|e| SandboxError::io("wait for user namespace child", e))?;
            match status.signal() {
                Some(sig) => return Err(diagnose::userns_child_killed(sig, &HostFacts::probe())),
                None => std::process::exit(status.code().unwrap_or(3)),
            }
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    }
    CHILD_PID.store(pid as i32, Ordering::SeqCst);
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: installing a handler that only calls kill (async-signal-safe).
        unsafe { libc::signal(sig, forward_signal as *const () as libc::sighandler_t) };
    }
    let status = child
        .wait()
        .map_err(|e| SandboxError::io("wait for user namespace child", e))?;
    if let Some(sig) = status.signal() {
        // Die the same way so our parent (a shell) sees the signal too.
        // SAFETY: resetting to default and raising are plain libc calls.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
        std::process::exit(128 + sig);
    }
    std::process::exit(status.code().unwrap_or(1));
}

/// How the handshake ended when nothing went wrong on our side.
enum Handshake {
    Done,
    /// The child exited (or closed the socket) before creating its namespace.
    ChildGone,
}

fn write_maps(
    sync: &mut UnixStream,
    pid: u32,
    uid: u32,
    gid: u32,
    ranged: bool,
    subuids: &[SubidRange],
    subgids: &[SubidRange],
) -> Result<Handshake, SandboxError> {
    match read_note_or_exit(sync, pid)? {
        Some(b'u') => {}
        _ => return Ok(Handshake::ChildGone),
    }
    if ranged {
        run_idmap_tool("newuidmap", pid, &map_args(uid, subuids))?;
        run_idmap_tool("newgidmap", pid, &map_args(gid, subgids))?;
    } else {
        write_single_id_maps(pid, uid, gid)?;
    }
    sync.write_all(b"m")
        .map_err(|e| SandboxError::io("userns handshake: release child", e))?;
    Ok(Handshake::Done)
}

/// One byte from the child, or None once it has closed the socket or exited. Besides the
/// socket's end-of-file, this watches a pidfd of the child, so that even a descriptor leaked
/// to some other process cannot keep us waiting for a child that is gone.
fn read_note_or_exit(sync: &mut UnixStream, pid: u32) -> Result<Option<u8>, SandboxError> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor we own below.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // Before Linux 5.3 (or where a filter refuses it) the end-of-file alone must do.
    // SAFETY: raw is a fresh descriptor owned by nobody else.
    let pidfd = (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw as i32) });
    loop {
        let mut fds = [
            libc::pollfd {
                fd: sync.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd.as_ref().map_or(-1, |p| p.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: fds is a valid array of two pollfd structs (a negative fd is ignored).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(SandboxError::io("wait for user namespace child", err));
        }
        if fds[0].revents != 0 {
            let mut note = [0u8; 1];
            return match sync.read(&mut note) {
                Ok(1) => Ok(Some(note[0])),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => Ok(None),
            };
        }
        if fds[1].revents != 0 {
            return Ok(None);
        }
    }
}

/// Without subordinate ids an unprivileged process may still map its own ids, but only after
/// giving up setgroups(2) for the namespace.
fn write_single_id_maps(pid: u32, uid: u32, gid: u32) -> Result<(), SandboxError> {
    let write = |file: &str, content: String| {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, content).map_err(|e| SandboxError::io(format!("write {path}"), e))
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("0 {uid} 1\n"))?;
    write("gid_map", format!("0 {gid} 1\n"))
}

fn run_idmap_tool(tool: &str, pid: u32, args: &[String]) -> Result<(), SandboxError> {
    let out = Command::new(tool)
        .arg(pid.to_string())
        .args(args)
        .output()
        .map_err(|e| SandboxError::io(format!("run {tool}"), e))?;
    if !out.status.success() {
        let detail = format!(
            "`{tool} {pid} {}`: {} ({})",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        );
        return Err(diagnose::idmap_tool_failed(
            tool,
            &detail,
            &HostFacts::probe(),
        ));
    }
    Ok(())
}

fn which(tool: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    path.split(':').any(|d| Path::new(d).join(tool).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_matches_name_or_number() {
        let f = "alice:100000:65536\n1001:300000:10\nbob:200000:65536\nalice:500000:0\n";
        assert_eq!(
            subid_ranges(f, Some("alice"), 1001),
            vec![
                SubidRange {
                    start: 100000,
                    count: 65536
                },
                SubidRange {
                    start: 300000,
                    count: 10
                }
            ]
        );
        assert!(subid_ranges(f, Some("carol"), 7).is_empty());
    }

    #[test]
    fn map_args_are_contiguous_from_one() {
        let r = [
            SubidRange {
                start: 100000,
                count: 10,
            },
            SubidRange {
                start: 300000,
                count: 5,
            },
        ];
        assert_eq!(
            map_args(1000, &r),
            ["0", "1000", "1", "1", "100000", "10", "11", "300000", "5"]
        );
    }

    #[test]
    fn classify_maps() {
        let root = parse_id_map("         0          0 4294967295\n");
        assert_eq!(classify(&root, &root), UsernsMode::Root);
        let single = parse_id_map("0 1000 1\n");
        assert_eq!(classify(&single, &single), UsernsMode::SingleId);
        let ranged = parse_id_map("0 1000 1\n1 100000 65536\n");
        assert_eq!(
            classify(&ranged, &single),
            UsernsMode::MappedRange {
                uid_count: 65537,
                gid_count: 1
            }
        );
    }
}
