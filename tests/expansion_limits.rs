//! End to end: variable expansion is capped (1 MiB per word, 64 Mi of expansion work per
//! Dockerfile). `ENV A=<96 chars>` followed by forty `ENV A=${A}${A}` lines grew to 4.7 GB
//! and aborted on a failed allocation; now the build stops at once with an error naming the
//! line, stores nothing, and `cache verify` stays clean. The builder runs with a 2 GiB address
//! space limit, so without the caps this fails in seconds instead of exhausting the machine.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Output;
use std::time::{Duration, Instant};

use common::Env;

/// `<kind> A=<96 chars>` (after `FROM scratch` unless `global`), then forty doublings.
fn doubling(kind: &str, global: bool) -> String {
    let mut df = String::new();
    if !global {
        df.push_str("FROM scratch\n");
    }
    df.push_str(&format!("{kind} A={}\n", "x".repeat(96)));
    for _ in 0..40 {
        df.push_str(&format!("{kind} A=${{A}}${{A}}\n"));
    }
    if global {
        df.push_str("FROM scratch\n");
    }
    df
}

fn build(env: &Env, dockerfile: &str) -> (Output, Duration) {
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress=plain", "-t", "big:1"])
        .arg(&ctx);
    let limit = libc::rlimit {
        rlim_cur: 2 << 30,
        rlim_max: 2 << 30,
    };
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let out = cmd.output().expect("spawn builder");
    (out, start.elapsed())
}

/// 96 bytes doubled 14 times is the first value over 1 MiB: the 14th doubling line.
const FIRST_LINE_OVER: usize = 2 + 14;

fn assert_stopped_at(env: &Env, out: &Output, took: Duration, line: usize) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a usage error: {err}");
    assert!(
        err.contains(&format!("Dockerfile:{line}:")),
        "names line {line}: {err}"
    );
    assert!(err.contains("expansion too large"), "{err}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(env.ok(&["images", "-q"]).trim().is_empty());
    env.ok(&["cache", "verify"]);
}

#[test]
fn env_doubling_stops_with_an_error_naming_the_line() {
    let env = Env::new();
    let (out, took) = build(&env, &doubling("ENV", false));
    assert_stopped_at(&env, &out, took, FIRST_LINE_OVER);
}

#[test]
fn arg_doubling_and_a_label_past_the_cap_stop_too() {
    let env = Env::new();
    let (out, took) = build(&env, &doubling("ARG", false));
    assert_stopped_at(&env, &out, took, FIRST_LINE_OVER);
    // A label is no variable: double ENV to just under the cap, then one label over it.
    let env = Env::new();
    let mut df = doubling("ENV", false);
    df.truncate(df.match_indices('\n').nth(FIRST_LINE_OVER - 2).unwrap().0 + 1);
    df.push_str("LABEL L=${A}${A}\n");
    let (out, took) = build(&env, &df);
    assert_stopped_at(&env, &out, took, FIRST_LINE_OVER);
}

#[test]
fn global_arg_doubling_before_from_stops_too() {
    let env = Env::new();
    let (out, took) = build(&env, &doubling("ARG", true));
    assert_stopped_at(&env, &out, took, FIRST_LINE_OVER - 1);
}
