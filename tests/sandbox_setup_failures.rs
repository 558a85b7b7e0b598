//! End to end (issue #23): where the host refuses to let builder set up its sandbox — a seccomp
//! filter refusing namespaces as docker's default profile does, newuidmap neutered by
//! no_new_privs, a /proc with masked paths — the build ends at once with exit code 3 and a
//! message saying what failed, why and what to do; it never hangs. Each case is simulated on
//! the machine itself (by the test, in a pre_exec of the spawned builder) and skipped, saying
//! so, for users it cannot apply to (the suite runs as root, as a user with a /etc/subuid range
//! and as one without).

mod common;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Env;

/// The limit the issue sets is a second; the margin is for a loaded CI machine.
const FAST: Duration = Duration::from_secs(2);
/// A builder still running after this long is taken as hung: killed, and the test fails.
const WATCHDOG: Duration = Duration::from_secs(20);

/// Runs `cmd` to completion under the watchdog; returns its output and how long it took.
fn run_watched(mut cmd: Command) -> (Output, Duration) {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn builder");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for builder") {
            break status;
        }
        if start.elapsed() > WATCHDOG {
            let _ = child.kill();
            let _ = child.wait();
            // Its re-executed child may hold the pipes; whatever it printed is still useful.
            panic!(
                "builder hung: still running after {WATCHDOG:?} (killed); stderr so far is not shown"
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let output = Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (output, elapsed)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether the current user has a subordinate uid range (then builder uses newuidmap).
fn has_subuid_range() -> bool {
    let name = std::env::var("USER").ok().or_else(|| {
        let out = Command::new("id").arg("-un").output().ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() }.to_string();
    std::fs::read_to_string("/etc/subuid")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let who = l.split(':').next().unwrap_or("");
            who == uid || Some(who) == name.as_deref()
        })
}

fn have_tool(tool: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .any(|d| std::path::Path::new(d).join(tool).exists())
}

/// Checks the outcome every case shares: exit code 3, fast, and the message's three parts.
fn assert_refused(out: &Output, elapsed: Duration, must_say: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "want exit code 3:\n{stderr}");
    assert!(
        elapsed < FAST,
        "took {elapsed:?}, want < {FAST:?}:\n{stderr}"
    );
    for part in ["cannot set up the build sandbox", "why: ", "what to do: "] {
        assert!(stderr.contains(part), "no {part:?} in:\n{stderr}");
    }
    for s in must_say {
        assert!(stderr.contains(s), "no {s:?} in:\n{stderr}");
    }
    eprintln!("exit 3 after {elapsed:?}:\n{stderr}");
    stderr
}

// --- a seccomp filter like docker's default profile -----------------------------------------

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;
/// CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET, the flags docker's
/// profile refuses in clone(2) (its mask 2114060288).
const CLONE_NS_FLAGS: u32 = 0x7E02_0000;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// As docker's default profile for a container without CAP_SYS_ADMIN: unshare(2) and clone(2)
/// with namespace flags fail with EPERM, clone3(2) (whose flags a filter cannot see) with
/// ENOSYS so that libc falls back to clone. Offsets count from the next instruction.
fn docker_like_filter() -> Vec<libc::sock_filter> {
    let errno = |e: i32| libc::SECCOMP_RET_ERRNO | e as u32;
    vec![
        insn(BPF_LD_W_ABS, 0, 0, 4),                     // 0: seccomp_data.arch
        insn(BPF_JEQ_K, 0, 6, AUDIT_ARCH),               // 1: another ABI → 8 (allow)
        insn(BPF_LD_W_ABS, 0, 0, 0),                     // 2: seccomp_data.nr
        insn(BPF_JEQ_K, 5, 0, libc::SYS_unshare as u32), // 3: → 9 (EPERM)
        insn(BPF_JEQ_K, 5, 0, libc::SYS_clone3 as u32),  // 4: → 10 (ENOSYS)
        insn(BPF_JEQ_K, 0, 2, libc::SYS_clone as u32),   // 5: other calls → 8 (allow)
        insn(BPF_LD_W_ABS, 0, 0, 16),                    // 6: low half of args[0], clone's flags
        insn(BPF_JSET_K, 1, 0, CLONE_NS_FLAGS),          // 7: → 9 (EPERM)
        insn(BPF_RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),  // 8
        insn(BPF_RET_K, 0, 0, errno(libc::EPERM)),       // 9
        insn(BPF_RET_K, 0, 0, errno(libc::ENOSYS)),      // 10
    ]
}

/// Makes the spawned builder start under [`docker_like_filter`].
fn with_docker_like_seccomp(cmd: &mut Command) {
    let filter = docker_like_filter();
    // SAFETY: the closure only makes prctl calls (async-signal-safe) with a program that
    // lives in the parent's memory, which the forked child shares a copy of until exec.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn namespaces_refused_by_seccomp_fail_fast_with_exit_3() {
    let env = Env::new();
    // Root reaches the RUN step before it needs a namespace, so give it a base to start from;
    // a rootless builder needs its user namespace before it reads any Dockerfile.
    if is_root() {
        env.busybox_base();
    }
    let ctx = env.context("ctx", &[("Dockerfile", "FROM busybox:test\nRUN true\n")]);
    let mut cmd = env.cmd();
    // Asked for by name: `auto` would fall back to chroot isolation (the next test).
    cmd.args([
        "build",
        "--progress=plain",
        "--isolation=rootless",
        "-t",
        "refused:1",
    ])
    .arg(&ctx);
    with_docker_like_seccomp(&mut cmd);
    let (out, elapsed) = run_watched(cmd);
    let stderr = assert_refused(
        &out,
        elapsed,
        &[
            "EPERM (Operation not permitted)",
            "Seccomp: 2",
            "--security-opt seccomp=unconfined",
            "--isolation=chroot",
        ],
    );
    if is_root() {
        assert!(stderr.contains("RUN true"), "names the step:\n{stderr}");
    } else {
        assert!(stderr.contains("user namespace"), "{stderr}");
    }
}

/// Where namespaces are refused, `--isolation=auto` (the default) falls back to chroot
/// isolation and says why in the first progress line. Root then runs RUN steps; any other user
/// builds what needs no RUN step, and stops at the first RUN within a second, with exit 3,
/// naming what is missing and both ways out.
#[test]
fn refused_namespaces_make_auto_fall_back_to_chroot() {
    let env = Env::new();
    if is_root() {
        env.busybox_base();
    }
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY a /a\n"), ("a", "a\n")],
    );
    let build = |tag: &str| {
        let mut cmd = env.cmd();
        cmd.args(["build", "--progress=plain", "-t", tag]).arg(&ctx);
        with_docker_like_seccomp(&mut cmd);
        run_watched(cmd)
    };
    let (out, _) = build("fallback:1");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "a build without RUN works:\n{stderr}");
    let first = stderr.lines().find(|l| l.starts_with('#')).unwrap_or("");
    assert!(
        first.starts_with("#0 isolation: chroot") && first.contains("--isolation=auto because"),
        "the first progress line names the isolation and why:\n{stderr}"
    );
    let layers = common::image_layers(&env, "fallback:1");
    let owners: Vec<(u64, u64)> = layers.iter().flatten().map(|e| (e.2, e.3)).collect();
    assert_eq!(owners, [(0, 0)], "COPY's file is root's in the image");

    let with_run = if is_root() {
        "FROM busybox:test\nRUN echo ran > /ran\n"
    } else {
        "FROM scratch\nCOPY a /a\nRUN [\"/a\"]\n"
    };
    std::fs::write(ctx.join("Dockerfile"), with_run).unwrap();
    let (out, elapsed) = build("fallback:2");
    if is_root() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "root runs RUN steps in a chroot:\n{stderr}"
        );
    } else {
        assert_refused(
            &out,
            elapsed,
            &["CAP_SYS_CHROOT", "user namespace", "--isolation=rootless"],
        );
    }
}

#[test]
fn newuidmap_without_privileges_fails_fast_with_exit_3() {
    if is_root() || !has_subuid_range() || !have_tool("newuidmap") {
        eprintln!("skipped: only a non-root user with a /etc/subuid range uses newuidmap");
        return;
    }
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM scratch\n")]);
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress=plain"]).arg(&ctx);
    // As Kubernetes' allowPrivilegeEscalation: false: setuid newuidmap gains nothing.
    // SAFETY: the closure makes one prctl call, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (out, elapsed) = run_watched(cmd);
    assert_refused(
        &out,
        elapsed,
        &["newuidmap", "NoNewPrivs: 1", "allowPrivilegeEscalation"],
    );
}

/// Not a failure: without newuidmap a user with a range falls back to mapping only their own
/// uid (as a user without a range does), and the warning must say which of the two it was.
#[test]
fn missing_newuidmap_falls_back_to_single_id_and_says_why() {
    if is_root() || !has_subuid_range() {
        eprintln!("skipped: only a non-root user with a /etc/subuid range uses newuidmap");
        return;
    }
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY a /a\n"), ("a", "a\n")],
    );
    let empty_path = env.path("empty-path");
    std::fs::create_dir_all(&empty_path).unwrap();
    let mut cmd = env.cmd();
    cmd.env("PATH", &empty_path)
        .args(["build", "--progress=plain", "-t", "fallback:1"])
        .arg(&ctx);
    let (out, _) = run_watched(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("newuidmap/newgidmap are not on PATH"),
        "the warning names the missing tool:\n{stderr}"
    );
}

/// As in a docker container (its masked /proc paths): a /proc with a mount over one of its
/// files cannot be mounted afresh in a user namespace. Root can set that up (a private mount
/// namespace, /dev/null over a /proc file) and then become an unprivileged user, whose builder
/// maps only its own uid; no unprivileged user can, so they skip.
#[test]
fn masked_proc_fails_fast_with_exit_3() {
    if !is_root() {
        eprintln!("skipped: only root can mask a /proc path for the test");
        return;
    }
    const NOBODY: u32 = 65534;
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM busybox:test\nRUN true\n")]);
    let base_ctx = env.path("busybox-ctx");
    std::fs::create_dir_all(&base_ctx).unwrap();
    let chown = Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(env.dir.path())
        .status()
        .unwrap();
    assert!(chown.success());
    let as_nobody = |cmd: &mut Command| {
        cmd.uid(NOBODY).gid(NOBODY).env("HOME", env.dir.path());
    };
    // The base, built by the same user (its store) without the mask.
    let mut base = Command::new(common::builder_bin());
    base.env("BUILDER_ROOT", env.root());
    as_nobody(&mut base);
    std::fs::copy(common::busybox_path(), base_ctx.join("busybox")).unwrap();
    std::fs::write(
        base_ctx.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
    )
    .unwrap();
    let status = base
        .args(["build", "--progress=quiet", "-t", "busybox:test"])
        .arg(&base_ctx)
        .status()
        .unwrap();
    assert!(status.success(), "building the base as uid {NOBODY}");

    let masked = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/uptime",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("a /proc file to mask");
    let mut cmd = Command::new(common::builder_bin());
    cmd.env("BUILDER_ROOT", env.root())
        .args(["build", "--progress=plain"])
        .arg(&ctx);
    let target = std::ffi::CString::new(masked).unwrap();
    // Command's own uid switch would come before this closure, so it switches itself.
    // SAFETY: the closure only makes unshare, mount and credential calls (async-signal-safe)
    // with C strings prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let none = std::ptr::null();
            let root = c"/".as_ptr();
            if libc::unshare(libc::CLONE_NEWNS) != 0
                || libc::mount(
                    none,
                    root,
                    none,
                    libc::MS_REC | libc::MS_PRIVATE,
                    none.cast(),
                ) != 0
                || libc::mount(
                    c"/dev/null".as_ptr(),
                    target.as_ptr(),
                    none,
                    libc::MS_BIND,
                    none.cast(),
                ) != 0
                || libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(NOBODY, NOBODY, NOBODY) != 0
                || libc::setresuid(NOBODY, NOBODY, NOBODY) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.env("HOME", env.dir.path());
    let (out, elapsed) = run_watched(cmd);
    assert_refused(
        &out,
        elapsed,
        &[
            "mounting /proc",
            masked,
            "systempaths=unconfined",
            "RUN true",
        ],
    );
}
