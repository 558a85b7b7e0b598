//! End to end: a failure is reported once. A Dockerfile parse error's message (with its source
//! line) appears a single time, and a failing RUN's last lines of output are shown once, in the
//! final error, not also in the progress log's ERROR line.

mod common;

use common::Env;

#[test]
fn a_parse_error_prints_its_message_once() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM scratch\nRUNN echo\n")]);
    let out = env.build(&ctx, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.matches("unknown instruction: RUNN").count(),
        1,
        "{stderr}"
    );
    assert_eq!(stderr.matches("RUNN echo").count(), 1, "{stderr}");
    // After the progress preamble (`#0 isolation: …`, as buildx's `#0 building with …`).
    let first = stderr.lines().find(|l| !l.starts_with('#')).unwrap_or("");
    assert!(first.starts_with("error: Dockerfile:2"), "{stderr}");
}

#[test]
fn a_failing_run_prints_its_error_block_once() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test\nRUN echo first; echo mark$((40+2)); exit 3\n",
        )],
    );
    let out = env.build(&ctx, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.matches("--- last lines of output ---").count(),
        1,
        "{stderr}"
    );
    // Once streamed as the step's log (`#2 0.123 mark42`), once in the final error (the
    // command itself says `mark$((40+2))`).
    assert_eq!(stderr.matches("mark42").count(), 2, "{stderr}");
    let last = stderr
        .rfind("error: ")
        .map(|i| &stderr[i..])
        .unwrap_or_default();
    assert!(last.contains("exit code 3"), "{stderr}");
    assert!(
        last.contains("mark42"),
        "the final error keeps the tail: {stderr}"
    );
    // The progress ERROR line is the headline alone.
    let error_line = stderr
        .lines()
        .find(|l| l.contains(" ERROR: "))
        .expect("an ERROR line");
    assert!(error_line.contains("exit code 3"), "{error_line}");
}
