//! End to end: the progress modes CI tools read.

mod common;

use common::{Env, fixtures};

#[test]
fn rawjson_is_one_event_per_line() {
    let env = Env::new();
    let ctx = fixtures().join("scratch-multistage");
    let out = env
        .cmd()
        .args(["build", "--progress=rawjson", ctx.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let started: Vec<_> = events.iter().filter(|e| e["type"] == "started").collect();
    let completed: Vec<_> = events.iter().filter(|e| e["type"] == "completed").collect();
    assert!(!started.is_empty());
    assert_eq!(
        started.len(),
        completed.len(),
        "every started vertex completes"
    );
    for c in &completed {
        assert!(
            c["elapsed_ms"].is_u64() && c["vertex"].is_u64() && c["name"].is_string(),
            "{c}"
        );
    }
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "status" && e["message"] == "exporting to image")
    );
    // Second build: every step reports cached.
    let out = env
        .cmd()
        .args(["build", "--progress=rawjson", ctx.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.lines()
            .filter(|l| l.contains("\"type\":\"cached\""))
            .count()
            == started.len(),
        "{text}"
    );
}

#[test]
fn plain_numbers_steps_and_shows_output() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "p",
        &[(
            "Dockerfile",
            "FROM busybox:test\nRUN echo visible-output-line\n",
        )],
    );
    let out = env
        .cmd()
        .args(["build", "--progress=plain", ctx.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    let step = text
        .lines()
        .find(|l| l.contains("RUN echo visible-output-line"))
        .expect("step line");
    let n = step.split_whitespace().next().unwrap();
    assert!(n.starts_with('#'), "{step}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(n) && l.ends_with("visible-output-line")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with(&format!("{n} DONE"))),
        "{text}"
    );
}

#[test]
fn quiet_prints_only_the_id() {
    let env = Env::new();
    let ctx = fixtures().join("scratch-multistage");
    let out = env
        .cmd()
        .args(["build", "-q", ctx.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.trim().starts_with("sha256:") && stdout.lines().count() == 1,
        "{stdout}"
    );
}
