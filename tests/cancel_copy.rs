//! End to end: Ctrl-C during a large COPY (while files are copied, and while the layer is
//! written) ends the build at once with exit 130 and leaves no scratch in `tmp/` or `work/`;
//! and the scratch a SIGKILLed build leaves mid-layer-write is removed by the next build.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Env;

/// Scratch names in a store directory (`tmp/` blobs in flight, `work/` snapshots and diffs).
fn scratch(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("blob-") || n.starts_with("snap-"))
                .collect()
        })
        .unwrap_or_default()
}

/// A context whose COPY takes seconds: `files` files of `mib` MiB each, of data that is not
/// sparse and compresses like ordinary binaries would not (so the layer write takes a while).
fn big_context(env: &Env, files: usize, mib: usize) -> std::path::PathBuf {
    let ctx = env.context("big", &[("Dockerfile", "FROM scratch\nCOPY . /data/\n")]);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut block = vec![0u8; 1 << 20];
    for i in 0..files {
        let mut f = fs::File::create(ctx.join(format!("part-{i}"))).unwrap();
        for _ in 0..mib {
            for chunk in block.chunks_mut(8) {
                // xorshift: fast, incompressible enough to keep the compressor busy.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes());
            }
            f.write_all(&block).unwrap();
        }
    }
    ctx
}

fn spawn_build(env: &Env, ctx: &Path) -> Child {
    env.cmd()
        .args(["build", "--progress=plain", "--no-cache", "-t", "big:1"])
        .arg(ctx)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `cond` holds, failing the test after 120 s.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "never saw: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGINT to the build, then how long it took to exit and its exit code and stderr.
fn interrupt(mut child: Child) -> (Duration, Option<i32>, String) {
    // SAFETY: kill has no memory effects; the pid is our unreaped child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let sent = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if sent.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = sent.elapsed();
    eprintln!("exited {took:?} after SIGINT");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (took, status.code(), stderr)
}

/// Waits until nobody holds the flock on `path` (which marks scratch as owned by a live build).
fn wait_unlocked(path: &Path) {
    use std::os::fd::AsRawFd;
    let Ok(f) = fs::File::open(path) else {
        return;
    };
    wait_for("the killed build's lock to go", || {
        // SAFETY: flock on a descriptor we own; the lock goes when `f` is closed.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
    });
}

fn assert_verify_clean(env: &Env) {
    let out = env.run(&["cache", "verify"]);
    assert!(
        out.status.success(),
        "cache verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ctrl_c_during_a_large_copy_exits_at_once_and_leaves_no_scratch() {
    let env = Env::new();
    // 384 MiB: one file larger than any copy chunk, and a few more files.
    let ctx = big_context(&env, 4, 96);
    env.ok(&["images"]);
    let (tmp, work) = (env.root().join("tmp"), env.root().join("work"));

    // 1. While the files are copied: the step's snapshot exists, no layer is being written.
    let child = spawn_build(&env, &ctx);
    wait_for("the COPY step's snapshot", || {
        scratch(&work).iter().any(|n| !n.ends_with("-diff"))
    });
    std::thread::sleep(Duration::from_millis(100));
    let copying = scratch(&tmp).is_empty();
    let (took, code, stderr) = interrupt(child);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        took < Duration::from_secs(2),
        "exit took {took:?} after SIGINT during the copy (copying: {copying}):\n{stderr}"
    );
    assert!(scratch(&tmp).is_empty(), "tmp/: {:?}", scratch(&tmp));
    assert!(scratch(&work).is_empty(), "work/: {:?}", scratch(&work));

    // 2. While the layer is written: a blob is in flight in tmp/.
    let child = spawn_build(&env, &ctx);
    wait_for("the layer write", || !scratch(&tmp).is_empty());
    std::thread::sleep(Duration::from_millis(100));
    let (took, code, stderr) = interrupt(child);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        took < Duration::from_secs(2),
        "exit took {took:?} after SIGINT during the layer write:\n{stderr}"
    );
    assert!(scratch(&tmp).is_empty(), "tmp/: {:?}", scratch(&tmp));
    assert!(scratch(&work).is_empty(), "work/: {:?}", scratch(&work));
    assert!(!env.run(&["inspect", "big:1"]).status.success());
    assert_verify_clean(&env);
}

#[test]
fn scratch_a_killed_copy_left_is_removed_by_the_next_build() {
    let env = Env::new();
    let ctx = big_context(&env, 2, 96);
    env.ok(&["images"]);
    let (tmp, work) = (env.root().join("tmp"), env.root().join("work"));
    let mut child = spawn_build(&env, &ctx);
    // Mid-layer-write: the blob in flight and the step's diff both exist.
    wait_for("the layer write", || !scratch(&tmp).is_empty());
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap();
    child.wait().unwrap();
    let left: Vec<String> = scratch(&tmp).into_iter().chain(scratch(&work)).collect();
    // Rootless, the killed process is the parent of the one that builds (re-executed in a user
    // namespace), which the kernel kills in turn a moment later: until it is gone its files
    // are rightly still its own. Wait for that, as a user would have to.
    for name in &left {
        let dir = if name.starts_with("blob-") {
            &tmp
        } else {
            &work
        };
        wait_unlocked(&dir.join(name));
    }
    assert!(
        left.iter().any(|n| n.starts_with("blob-")) && left.iter().any(|n| n.ends_with("-diff")),
        "a killed layer write leaves its blob and diff: {left:?}"
    );

    // The next build, of something else, sweeps them: they are young, but nobody owns them.
    let small = env.context(
        "small",
        &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")],
    );
    env.build_ok(&small, &["-t", "small:1"]);
    assert!(scratch(&tmp).is_empty(), "tmp/: {:?}", scratch(&tmp));
    assert!(scratch(&work).is_empty(), "work/: {:?}", scratch(&work));
    assert_verify_clean(&env);
}
