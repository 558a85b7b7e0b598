//! End to end: `builder` killed with SIGKILL at random points — while building (RUN and COPY
//! steps, with a build argument that changes every time so there is always new work), while
//! exporting with `save`, and while pushing to a local registry — never leaves a store that
//! `builder cache verify` finds damaged or that the next build cannot use.
//!
//! The kill delays come from a seeded generator; the seed is printed, and `CRASH_SEED=<n>`
//! replays a run. `CRASH_ITERATIONS` changes the number of kills (default 100). CI runs this file
//! as root and as an unprivileged user.

mod common;
#[path = "../registry/tests/support/registry.rs"]
#[allow(dead_code)]
mod registry_support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{Env, have, tar_entries};
use registry_support::{Auth, Registry};

/// xorshift64*: enough randomness for kill delays, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A duration in [0, max).
    fn below(&mut self, max: Duration) -> Duration {
        let nanos = max.as_nanos().max(1) as u64;
        Duration::from_nanos(self.next() % nanos)
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

/// Deterministic bytes gzip cannot shrink, so layers take real time to compress and hash.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    (0..len).map(|_| rng.next() as u8).collect()
}

const DOCKERFILE: &str = "FROM busybox:test\n\
    ARG N\n\
    COPY data /data\n\
    RUN echo $N > /n && cat /data/* > /all && dd if=/dev/urandom of=/rand bs=64k count=4 2>/dev/null\n\
    COPY more.bin /more.bin\n\
    RUN echo $N >> /n && cp /more.bin /more-copy\n";

/// What a kill interrupts.
#[derive(Clone, Copy, Debug)]
enum Op {
    Build,
    Save,
    Push,
}

struct Scene<'a> {
    env: &'a Env,
    ctx: &'a Path,
    registry: Option<&'a Registry>,
}

impl Scene<'_> {
    fn args(&self, op: Op, n: u64) -> Vec<String> {
        let ctx = self.ctx.to_str().unwrap().to_string();
        match op {
            Op::Build => vec![
                "build".into(),
                "-q".into(),
                "--build-arg".into(),
                format!("N={n}"),
                "-t".into(),
                format!("crash:{n}"),
                ctx,
            ],
            Op::Save => vec![
                "save".into(),
                "-o".into(),
                self.env.path("saved.tar").display().to_string(),
                "crash:base".into(),
                "busybox:test".into(),
            ],
            Op::Push => vec!["push".into(), self.pushed_name()],
        }
    }

    fn pushed_name(&self) -> String {
        let host = self.registry.map(|r| r.host()).unwrap_or_default();
        format!("{host}/crash/app:1")
    }

    /// Starts `op` as the leader of its own process group, so a kill can reach all of it.
    fn spawn(&self, op: Op, n: u64) -> Child {
        self.env
            .cmd()
            .args(self.args(op, n))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.env.path("op.log")).unwrap())
            .process_group(0)
            .spawn()
            .expect("spawn builder")
    }

    /// Runs `op` to completion and returns how long it took.
    fn time(&self, op: Op, n: u64) -> Duration {
        let start = Instant::now();
        let args = self.args(op, n);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.env.ok(&args);
        start.elapsed()
    }
}

/// SIGKILLs the process group `pid` leads; `leader_only` kills just the process we started, as
/// `kill -9 <pid>` would, and then checks that its helpers (the rootless re-exec, the sandbox)
/// do not outlive it. Returns whether the kill interrupted it; one it did not must have
/// succeeded (its stderr is in `log`).
fn kill(child: &mut Child, leader_only: bool, log: &Path) -> bool {
    let status = kill_and_wait(child, leader_only, Duration::from_secs(10));
    let killed = std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGKILL);
    assert!(
        killed || status.success(),
        "an operation that finished before the kill failed ({status}):\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    killed
}

/// Sends the SIGKILL and waits up to `linger` for every process of the group to be gone.
fn kill_and_wait(child: &mut Child, leader_only: bool, linger: Duration) -> ExitStatus {
    let pid = child.id() as i32;
    let target = if leader_only { pid } else { -pid };
    // SAFETY: kill with a pid we spawned (or its process group) and a valid signal.
    unsafe { libc::kill(target, libc::SIGKILL) };
    let status = child.wait().expect("wait for builder");
    let deadline = Instant::now() + linger;
    loop {
        let alive = running_in_group(pid);
        if alive.is_empty() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "processes of the killed builder's group are still running {linger:?} later: {alive:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Processes of process group `pgid` that still run. Zombies do not count: orphans are
/// reparented to PID 1, which may take its time to reap them.
fn running_in_group(pgid: i32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            // `pid (comm) state ppid pgrp ...`; comm may contain spaces, so split after ')'.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
        })
        .collect()
}

/// Runs `builder cache verify`, failing unless the store is clean; returns whether it had
/// leftovers of an interrupted writer to clean first.
fn verify_clean(env: &Env, what: &str) -> bool {
    let out = env.run(&["cache", "verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("no problems found"),
        "after {what}: verify is not clean ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.contains("Cleaned")
}

/// Mounts below `dir` (overlay views a killed build could leave behind).
fn mounts_below(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap().display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&dir))
        .map(str::to_string)
        .collect()
}

#[test]
fn sigkill_at_random_points_leaves_a_usable_store() {
    let seed = env_number("CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    eprintln!("crash test seed: {seed} (replay with CRASH_SEED={seed})");
    let iterations = env_number("CRASH_ITERATIONS").unwrap_or(100) as u32;
    let mut rng = Rng(seed | 1);

    let env = Env::new();
    env.busybox_base();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    std::fs::create_dir_all(ctx.join("data")).unwrap();
    for i in 0..8 {
        std::fs::write(ctx.join(format!("data/f{i}")), noise(i, 32 * 1024)).unwrap();
    }
    std::fs::write(ctx.join("more.bin"), noise(99, 256 * 1024)).unwrap();
    let registry = have("docker-registry").then(|| Registry::start(Auth::None));
    if registry.is_none() {
        eprintln!("docker-registry is not installed: no pushes are killed");
    }
    let scene = Scene {
        env: &env,
        ctx: &ctx,
        registry: registry.as_ref(),
    };

    // How long each operation takes uninterrupted: kills land anywhere in that window.
    let base = scene.time(Op::Build, 0);
    env.ok(&["tag", "crash:0", "crash:base"]);
    let build = scene.time(Op::Build, 1);
    let save = scene.time(Op::Save, 0);
    let push = registry.as_ref().map(|_| {
        env.ok(&["tag", "crash:base", &scene.pushed_name()]);
        scene.time(Op::Push, 0)
    });
    eprintln!("uninterrupted: first build {base:?}, build {build:?}, save {save:?}, push {push:?}");

    let started = Instant::now();
    let (mut interrupted, mut with_leftovers) = (0, 0);
    for i in 0..iterations {
        let n = 100 + u64::from(i);
        let (op, window) = match (i % 10, push) {
            (4, _) => (Op::Save, save),
            (8, Some(push)) => (Op::Push, push),
            _ => (Op::Build, build),
        };
        // Anywhere within the usual duration; a loaded machine may still finish some first.
        let delay = rng.below(window);
        let leader_only = rng.next().is_multiple_of(2);
        let mut child = scene.spawn(op, n);
        std::thread::sleep(delay);
        interrupted += u32::from(kill(&mut child, leader_only, &env.path("op.log")));
        let what = format!("killing {op:?} #{i} after {delay:?} (leader only: {leader_only})");
        with_leftovers += u32::from(verify_clean(&env, &what));
        if let Op::Save = op
            && let Ok(file) = std::fs::File::open(env.path("saved.tar"))
        {
            // The archive appears by rename: whenever it exists it is complete.
            assert!(!tar_entries(file).is_empty(), "after {what}: empty archive");
        }
        if i % 10 == 9 {
            // The killed build's work is reused or redone; either way it completes.
            scene.time(Op::Build, n);
            let out = env.ok(&["run", "--rm", &format!("crash:{n}"), "cat", "/n"]);
            assert_eq!(out, format!("{n}\n{n}\n"), "after {what}");
        }
    }
    eprintln!(
        "{iterations} kills in {:?}: {interrupted} interrupted a running operation, \
         {with_leftovers} left temporary files for verify to clean",
        started.elapsed()
    );
    // Kills that all came too late would prove nothing.
    assert!(
        interrupted * 3 >= iterations,
        "only {interrupted} of {iterations} kills interrupted anything"
    );
    assert!(
        mounts_below(env.dir.path()).is_empty(),
        "mounts left behind: {:?}",
        mounts_below(env.dir.path())
    );
    scene.time(Op::Build, 1);
    scene.time(Op::Save, 0);
    if push.is_some() {
        scene.time(Op::Push, 0);
    }
    verify_clean(&env, "the final build, save and push");
}

#[test]
fn killing_the_builder_process_stops_the_step_it_runs() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test\nRUN sleep 30 && touch /slept\n",
        )],
    );
    let log = env.path("build.log");
    let mut child = env
        .cmd()
        .args([
            "build",
            "--progress=plain",
            "-t",
            "slow:1",
            ctx.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("RUN sleep 30")
    {
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the sandbox start the payload.
    std::thread::sleep(Duration::from_millis(500));
    // Only the process we started, as `kill -9 <pid>` would: the rootless re-exec and the
    // sandbox must not keep the step running (nor the store's lease held) behind its back.
    kill_and_wait(&mut child, true, Duration::from_secs(5));
    verify_clean(&env, "killing a build during a 30s step");
    assert!(mounts_below(env.dir.path()).is_empty());
}
