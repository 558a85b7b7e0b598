//! End to end: a RUN step's scratch snapshot never outlives the build that made it — its
//! overlay mount stays out of the host's mount table (root included), and a build killed
//! mid-step leaves a directory that the next build sweeps away.

mod common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Env;

fn snapshot_dirs(work: &Path) -> Vec<String> {
    fs::read_dir(work)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with("snap-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_killed_build_leaves_no_mount_and_its_scratch_dir_is_swept() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "slow",
        &[("Dockerfile", "FROM busybox:test\nRUN sleep 60\n")],
    );
    let mut build = env
        .cmd()
        .args(["build", "--progress=plain", ctx.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let work = env.root().join("work");
    let deadline = Instant::now() + Duration::from_secs(30);
    while snapshot_dirs(&work).is_empty() {
        assert!(Instant::now() < deadline, "the RUN step never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Give the step time to mount its view and start the process.
    std::thread::sleep(Duration::from_millis(500));
    let root = env.root();
    let root = root.to_str().unwrap();
    assert!(
        !fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(root),
        "the step's overlay is visible in the caller's mount table"
    );
    build.kill().unwrap();
    build.wait().unwrap();
    let left = snapshot_dirs(&work);
    assert!(!left.is_empty(), "a killed build had nothing to clean up");

    // The next build (any build that prepares snapshots) removes what the dead one left.
    let quick = env.context(
        "quick",
        &[("Dockerfile", "FROM busybox:test\nRUN echo hi > /hi\n")],
    );
    env.ok(&["build", "--progress=plain", quick.to_str().unwrap()]);
    let after = snapshot_dirs(&work);
    assert!(
        left.iter().all(|d| !after.contains(d)),
        "stale snapshot dirs {left:?} still there: {after:?}"
    );
    assert!(
        after.is_empty(),
        "a finished build left snapshot dirs: {after:?}"
    );
}
