//! End to end: a command whose reader has gone (`builder images | head`) ends as a Unix filter
//! does — killed by SIGPIPE, quietly — instead of panicking, and what it did before the write
//! (a build's image) is kept.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::{Output, Stdio};

use common::Env;

/// Runs `builder ARGS` with stdout (or stderr) a pipe whose read end is already closed.
fn with_closed(env: &Env, args: &[&str], close_stderr: bool) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut cmd = env.cmd();
    cmd.args(args).stdin(Stdio::null());
    if close_stderr {
        cmd.stdout(Stdio::piped()).stderr(writer);
    } else {
        cmd.stdout(writer).stderr(Stdio::piped());
    }
    cmd.output().expect("spawn builder")
}

fn assert_sigpipe(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{what} panicked:\n{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{what} should end by SIGPIPE, got {} with:\n{stderr}",
        out.status
    );
}

#[test]
fn listing_commands_end_by_sigpipe_on_a_closed_stdout() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", "x")],
    );
    env.ok(&[
        "build",
        "--progress=plain",
        "-t",
        "pipe:1",
        ctx.to_str().unwrap(),
    ]);
    for args in [
        &["images"][..],
        &["images", "-q"],
        &["inspect", "pipe:1"],
        &["history", "pipe:1"],
        &["du"],
        &["cache", "ls"],
    ] {
        assert_sigpipe(&with_closed(&env, args, false), &format!("{args:?}"));
    }
}

#[test]
fn a_build_printing_to_a_closed_pipe_keeps_its_image() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", "x")],
    );
    let dir = ctx.to_str().unwrap();
    // `-q` prints the id on stdout once the image is stored.
    let out = with_closed(&env, &["build", "-q", "-t", "pipe:q", dir], false);
    assert_sigpipe(&out, "build -q");
    env.ok(&["inspect", "pipe:q"]);
    // Messages go to stderr: a closed stderr ends the build the same way, after storing.
    let out = with_closed(
        &env,
        &["build", "--progress=plain", "-t", "pipe:e", dir],
        true,
    );
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{}", out.status);
    env.ok(&["inspect", "pipe:e"]);
}
