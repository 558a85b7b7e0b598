//! End to end: builds that are interrupted, run out of disk, or run under resource limits
//! fail clearly and leave the store valid.

mod common;
#[path = "../registry/tests/support/fault_proxy.rs"]
#[allow(dead_code)]
mod fault_proxy;
#[path = "../registry/tests/support/registry.rs"]
#[allow(dead_code)]
mod registry_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Env, have};
use fault_proxy::{Fault, FaultKind, FaultProxy};
use registry_support::{Auth, Registry};

/// Names of the entries of a directory (empty when it does not exist), sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Pids of processes whose command line is exactly `argv`.
fn processes_running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    entries(Path::new("/proc"))
        .iter()
        .filter_map(|p| p.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

fn build(env: &Env, ctx: &Path, tag: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["build", "--progress=plain", "-t", tag];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    env.run(&args)
}

/// Starts `cmd` with stderr piped to the test (stdout dropped), killed if the test fails.
fn spawn_piped(mut cmd: std::process::Command) -> KillOnDrop {
    KillOnDrop(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Ctrl-C to a running builder; it must exit within 5 s (the build's 10 s grace would be too
/// late: unwinding is expected to take milliseconds).
fn interrupt(child: &mut std::process::Child) -> std::process::ExitStatus {
    // SAFETY: kill has no memory effects; the pid is our unreaped child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let sent = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "the builder did not exit within 5 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A failed assertion must not leave a builder (and its step) running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SAFETY: kill has no memory effects; the pid is our unreaped child.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let _ = self.0.wait();
        }
    }
}

#[test]
fn ctrl_c_kills_the_step_and_leaves_the_store_clean() {
    let env = Env::new();
    env.busybox_base();
    let work_before = entries(&env.root().join("work"));
    // An unusual duration, so the check for leftovers cannot see another test's sleep.
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test\nRUN echo step-started && sleep 987654\n",
        )],
    );
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress=plain", "-t", "never:1"])
        .arg(&ctx);
    let mut child = spawn_piped(cmd);
    let child = &mut child.0;
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.ends_with("step-started") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("the RUN step started");
    // The echo comes just before the shell starts `sleep`: give it a moment to appear.
    let appear = Instant::now();
    while processes_running(&["sleep", "987654"]).is_empty()
        && appear.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(processes_running(&["sleep", "987654"]).len(), 1);

    let status = interrupt(child);
    let stderr = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("build cancelled"), "{stderr}");
    assert!(
        processes_running(&["sleep", "987654"]).is_empty(),
        "the step's processes were killed"
    );
    assert_eq!(
        entries(&env.root().join("work")),
        work_before,
        "the step's scratch snapshot was removed"
    );
    assert!(entries(&env.root().join("tmp")).is_empty());
    assert!(!env.run(&["inspect", "never:1"]).status.success());

    // The store is usable: a next build (taking the build lease again) works.
    let ok = env.context(
        "ok",
        &[("Dockerfile", "FROM busybox:test\nRUN echo fine > /f\n")],
    );
    let out = build(&env, &ok, "fine:1", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// cgroup directories a builder process made (`builder-<pid>-<n>`) that are still there.
fn leftover_cgroups(builder_pid: u32) -> Vec<std::path::PathBuf> {
    fn walk(dir: &Path, depth: usize, prefix: &str, out: &mut Vec<std::path::PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_string_lossy().starts_with(prefix) {
                out.push(p);
            } else if depth > 0 {
                walk(&p, depth - 1, prefix, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        Path::new("/sys/fs/cgroup"),
        4,
        &format!("builder-{builder_pid}-"),
        &mut out,
    );
    out
}

/// Runs a build to completion, returning its output and the builder's pid.
fn build_with_pid(env: &Env, ctx: &Path, extra: &[&str]) -> (std::process::Output, u32) {
    let child = env
        .cmd()
        .args(["build", "--progress=plain", "--no-cache"])
        .args(extra)
        .arg(ctx)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (child.wait_with_output().unwrap(), pid)
}

/// Allocates (and touches) 200 MiB in one buffer: dd reads /dev/zero into it. The quotes keep
/// the word "survived" out of the command line that error messages quote.
const HUNGRY: &str = "FROM busybox:test\nRUN cat /proc/self/cgroup && dd if=/dev/zero of=/dev/null bs=100M count=2 && echo surv\"\"ived\n";

#[test]
fn memory_limit_kills_a_hungry_step_and_the_cgroup_goes_away() {
    if !is_root() {
        eprintln!(
            "skipped: placing steps in a cgroup needs root or cgroup delegation (see limits_without_writable_cgroups_are_refused)"
        );
        return;
    }
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context("ctx", &[("Dockerfile", HUNGRY)]);

    let (out, _) = build_with_pid(&env, &ctx, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "without limits it fits: {stderr}");
    assert!(stderr.contains("survived"));

    let (out, pid) = build_with_pid(&env, &ctx, &["--memory", "64m", "--cpus", "0.5"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ran out of memory") && stderr.contains("67108864 bytes"),
        "{stderr}"
    );
    assert!(!stderr.contains("survived"), "{stderr}");
    // The step saw its own cgroup, named after the builder.
    assert!(stderr.contains(&format!("/builder-{pid}-")), "{stderr}");
    assert_eq!(leftover_cgroups(pid), Vec::<std::path::PathBuf>::new());

    // Enough memory: the same step passes under limits, and its cgroup is removed too.
    let (out, pid) = build_with_pid(
        &env,
        &ctx,
        &["--memory", "512m", "--cpus", "1.5", "--pids-limit", "64"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("/builder-{pid}-")), "{stderr}");
    assert_eq!(leftover_cgroups(pid), Vec::<std::path::PathBuf>::new());

    // `builder run` takes the same flags.
    let dd = ["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=2"];
    let out = env.run(&[&["run", "--memory", "64m", "busybox:test"][..], &dd].concat());
    assert_eq!(out.status.code(), Some(137), "killed by SIGKILL");
    assert!(String::from_utf8_lossy(&out.stderr).contains("ran out of memory"));
    assert!(
        env.run(&[&["run", "busybox:test"][..], &dd].concat())
            .status
            .success()
    );
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    if !is_root() {
        eprintln!("skipped: needs root or cgroup delegation");
        return;
    }
    let env = Env::new();
    env.busybox_base();
    // 20 background sleeps cannot all start under a limit of 8 processes.
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test\nRUN for i in $(seq 20); do sleep 5 & done; wait\n",
        )],
    );
    let (out, _) = build_with_pid(&env, &ctx, &["--pids-limit", "8"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("can't fork") || stderr.contains("Resource temporarily unavailable"),
        "{stderr}"
    );
    // `builder run --pids-limit` too.
    let bomb = "for i in $(seq 20); do sleep 5 & done; wait";
    let out = env.run(&["run", "--pids-limit", "8", "busybox:test", "sh", "-c", bomb]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("can't fork"), "{stderr}");
}

#[test]
fn run_cpus_sets_the_cpu_quota_of_its_cgroup() {
    if !is_root() {
        eprintln!("skipped: needs root or cgroup delegation");
        return;
    }
    let env = Env::new();
    env.busybox_base();
    let child = env
        .cmd()
        .args(["run", "--cpus", "0.5", "busybox:test", "sleep", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // cgroup v2 says "QUOTA PERIOD" in cpu.max; v1 has a file for each.
    let read = |dir: &Path| -> Option<String> {
        if let Ok(max) = std::fs::read_to_string(dir.join("cpu.max")) {
            return Some(max.trim().to_string());
        }
        let quota = std::fs::read_to_string(dir.join("cpu.cfs_quota_us")).ok()?;
        let period = std::fs::read_to_string(dir.join("cpu.cfs_period_us")).ok()?;
        Some(format!("{} {}", quota.trim(), period.trim()))
    };
    let mut quota = None;
    for _ in 0..300 {
        quota = leftover_cgroups(pid).iter().find_map(|d| read(d));
        if quota.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(quota.as_deref(), Some("50000 100000"));
    assert_eq!(leftover_cgroups(pid), Vec::<std::path::PathBuf>::new());
}

#[test]
fn limits_without_writable_cgroups_are_refused() {
    if is_root() {
        eprintln!("skipped: as root the cgroups are writable; this runs as an unprivileged user");
        return;
    }
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY a /a\n"), ("a", "a")],
    );
    let out = build(&env, &ctx, "limited:1", &["--memory", "64m"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--memory/--cpus/--pids-limit cannot be honoured on this host")
            && stderr.contains("cannot apply resource limits"),
        "{stderr}"
    );
    assert!(!env.run(&["inspect", "limited:1"]).status.success());
}

/// A small tmpfs mounted over a directory for the length of a test.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk(dir.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn free_bytes(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: statvfs fills the zeroed struct; path is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, 0);
    st.f_bavail as u64 * st.f_frsize as u64
}

/// What a failed build could leave behind: scratch snapshots, temp files, half-unpacked layers.
fn scratch_state(env: &Env) -> (Vec<String>, Vec<String>, Vec<String>) {
    let unpacking = entries(&env.root().join("snapshots"))
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    (
        entries(&env.root().join("work")),
        entries(&env.root().join("tmp")),
        unpacking,
    )
}

#[test]
fn full_disk_fails_clearly_and_keeps_the_store_valid() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs for the store needs root");
        return;
    }
    let env = Env::new();
    let _disk = SmallDisk::mount(&env.root(), "8m");
    env.busybox_base();
    let small = env.context(
        "small",
        &[("Dockerfile", "FROM busybox:test\nRUN echo hi > /hi\n")],
    );
    let out = build(&env, &small, "small:1", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clean = scratch_state(&env);

    // Leave about 2 MiB free, then build a step whose 1.5 MiB of incompressible output
    // fits in its scratch snapshot but not a second time as the compressed layer.
    let filler = env.root().join("filler");
    let free = free_bytes(&env.root());
    std::fs::write(&filler, vec![1u8; (free - (2 << 20)) as usize]).unwrap();
    let big = env.context(
        "big",
        &[(
            "Dockerfile",
            "FROM busybox:test\nRUN head -c 1500000 /dev/urandom > /random\n",
        )],
    );
    let out = build(&env, &big, "big:1", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a build failure: {stderr}");
    assert!(
        stderr.contains("No space left on device")
            && stderr.contains(&format!(
                "writing the step's layer to the store at {}",
                env.root().display()
            )),
        "{stderr}"
    );
    assert_eq!(scratch_state(&env), clean, "nothing left behind");
    assert!(!env.run(&["inspect", "big:1"]).status.success());

    // What was built before is intact: inspect, save and run work.
    env.inspect("small:1");
    let saved = env.dir.path().join("small.tar");
    env.ok(&["save", "-o", saved.to_str().unwrap(), "small:1"]);
    assert!(std::fs::metadata(&saved).unwrap().len() > 0);
    assert_eq!(env.ok(&["run", "small:1", "cat", "/hi"]), "hi\n");

    // With the space back, the same build succeeds.
    std::fs::remove_file(&filler).unwrap();
    let out = build(&env, &big, "big:1", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(scratch_state(&env), clean);
}

/// A registry holding busybox:test as `base/busybox:1`, and a fault proxy in front of it.
fn registry_behind_proxy(env: &Env) -> Option<(Registry, FaultProxy, String)> {
    if !have("docker-registry") {
        eprintln!("SKIP: docker-registry is not installed");
        return None;
    }
    let reg = Registry::start(Auth::None);
    let proxy = FaultProxy::start(reg.port);
    env.busybox_base();
    let name = format!("{}/base/busybox:1", proxy.host());
    env.ok(&["tag", "busybox:test", &name]);
    env.ok(&["push", &name]);
    Some((reg, proxy, name))
}

#[test]
fn pull_rides_out_transient_errors_and_records_nothing_on_permanent_ones() {
    let pusher = Env::new();
    let Some((_reg, proxy, name)) = registry_behind_proxy(&pusher) else {
        return;
    };
    let layer = pusher.inspect(&name)["Manifest"]["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    let env = Env::new();
    proxy.arm(Fault::new(
        FaultKind::Status {
            code: 503,
            retry_after: None,
        },
        "GET",
        "/blobs/",
        2,
    ));
    let out = env.run(&["pull", &name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("retrying"), "retries are shown: {stderr}");
    env.inspect(&name);

    let env = Env::new();
    proxy.arm(Fault::new(
        FaultKind::Status {
            code: 500,
            retry_after: None,
        },
        "GET",
        &format!("/blobs/{layer}"),
        usize::MAX,
    ));
    let out = env.run(&["pull", &name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for part in [
        format!("download blob {layer} from base/busybox"),
        format!("at registry {}", proxy.host()),
        "failed after 4 attempts".into(),
        "unexpected status 500".into(),
    ] {
        assert!(stderr.contains(&part), "{part:?} missing from: {stderr}");
    }
    assert!(!env.run(&["inspect", &name]).status.success(), "no image");
    assert!(env.ok(&["images", "-q"]).trim().is_empty());
    assert!(
        entries(&env.root().join("tmp")).is_empty(),
        "no partial files"
    );
}

#[test]
fn stalled_registry_times_out_with_a_clear_message() {
    let pusher = Env::new();
    let Some((_reg, proxy, name)) = registry_behind_proxy(&pusher) else {
        return;
    };
    proxy.arm(Fault::new(
        FaultKind::Stall,
        "GET",
        "/manifests/",
        usize::MAX,
    ));
    let env = Env::new();
    let started = Instant::now();
    let out = env
        .cmd()
        .env("BUILDER_REGISTRY_READ_TIMEOUT", "0.5")
        .args(["pull", &name])
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // Four tries of 0.5 s and pauses of 0.25 + 0.5 + 1 s.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(
        stderr.contains(&format!("fetch manifest {name}"))
            && stderr.contains("failed after 4 attempts")
            && stderr.contains("timed out"),
        "{stderr}"
    );
    assert_eq!(proxy.injected("stall"), 4);
}

/// Ctrl-C while `FROM` is still downloading its base image stops the download at once (not
/// after the build's 10 s grace), keeps no partial blob, and records no image.
#[test]
fn ctrl_c_during_a_base_image_pull_stops_it_at_once() {
    let pusher = Env::new();
    let Some((_reg, proxy, name)) = registry_behind_proxy(&pusher) else {
        return;
    };
    proxy.arm(Fault::new(FaultKind::Stall, "GET", "/blobs/", usize::MAX));
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", &format!("FROM {name}\nRUN echo never > /n\n"))],
    );
    let mut cmd = env.cmd();
    cmd.env("BUILDER_REGISTRY_READ_TIMEOUT", "120")
        .args(["build", "--progress=plain", "-t", "never:1"])
        .arg(&ctx);
    let mut child = spawn_piped(cmd);
    let child = &mut child.0;
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let waiting = Instant::now();
    while proxy.injected("stall") == 0 {
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "no blob download started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let status = interrupt(child);
    let stderr = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("cancelled"), "{stderr}");
    assert!(
        entries(&env.root().join("tmp")).is_empty(),
        "no partial blob"
    );
    assert!(!env.run(&["inspect", &name]).status.success(), "no image");
    let verify = env.run(&["cache", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
