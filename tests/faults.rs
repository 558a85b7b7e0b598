//! End to end: builds that are interrupted, run out of disk, or run under resource limits
//! fail clearly and leave the store valid.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Env;

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
    let child = env
        .cmd()
        .args(["build", "--progress=plain", "-t", "never:1"])
        .arg(&ctx)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
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
    assert_eq!(processes_running(&["sleep", "987654"]).len(), 1);

    // SAFETY: kill has no memory effects; the pid is our unreaped child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let sent = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "the builder did not exit within 5 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
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
