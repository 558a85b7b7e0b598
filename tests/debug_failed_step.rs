//! `builder build --on-error=keep` keeps a failed RUN step's state, and `builder debug` enters
//! it: the files the step wrote, its env, working directory and cache mounts (issue #22).

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{Env, have};

const FAILING: &str = "FROM busybox:test\nWORKDIR /app\nENV MARK=envmark\n\
RUN --mount=type=cache,target=/cache echo cached > /cache/c && echo state > /app/state && exit 7\n";

fn failed_and_kept(env: &Env) -> String {
    env.busybox_base();
    let ctx = env.context("ctx", &[("Dockerfile", FAILING)]);
    let out = env.build(&ctx, &["--on-error=keep"]);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("builder debug"),
        "the error says how to enter the step:\n{log}"
    );
    log
}

#[test]
fn a_kept_step_is_entered_with_its_files_env_workdir_and_cache_mounts() {
    let env = Env::new();
    failed_and_kept(&env);
    let out = env.ok(&[
        "debug",
        "last",
        "--",
        "sh",
        "-c",
        "cat /app/state /cache/c; echo $MARK; pwd",
    ]);
    assert_eq!(out, "state\ncached\nenvmark\n/app\n");

    // The command's exit status is the debug command's; nothing done there is kept.
    let res = env.run(&[
        "debug",
        "last",
        "--",
        "sh",
        "-c",
        "echo x > /app/new; exit 3",
    ]);
    assert_eq!(res.status.code(), Some(3));
    let again = env.ok(&["debug", "last", "--", "ls", "/app"]);
    assert_eq!(again, "state\n");

    let listed = env.ok(&["debug", "--list"]);
    assert!(listed.contains("exit 7"), "{listed}");
    let du = env.ok(&["du"]);
    assert!(du.contains("failed step kept"), "{du}");
}

#[test]
fn the_shell_is_interactive_on_a_terminal() {
    if !have("script") {
        eprintln!("SKIP: script (util-linux) is not installed");
        return;
    }
    let env = Env::new();
    failed_and_kept(&env);
    let bin = common::builder_bin();
    // script(1) gives `builder debug` a pty as its terminal, as a user at a shell would have.
    let mut child = std::process::Command::new("script")
        .args(["-qec"])
        .arg(format!("{} debug", bin.display()))
        .arg("/dev/null")
        .env("BUILDER_ROOT", env.root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"cat /app/state; [ -t 0 ] && echo on-a-tty; exit 5\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("state"), "{text}");
    assert!(
        text.contains("on-a-tty"),
        "the shell's stdin is a terminal: {text}"
    );
    assert_eq!(out.status.code(), Some(5), "{text}");
}

#[test]
fn without_on_error_keep_nothing_is_kept_and_prune_removes_kept_steps() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM busybox:test\nRUN false\n")]);
    let out = env.build(&ctx, &[]);
    assert_eq!(out.status.code(), Some(1));
    let res = env.run(&["debug", "last"]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success());
    assert!(err.contains("--on-error=keep"), "{err}");

    failed_and_kept(&env);
    failed_and_kept(&env);
    assert_eq!(env.ok(&["debug", "--list"]).lines().count(), 2);
    env.ok(&["debug", "--rm", "last"]);
    assert_eq!(env.ok(&["debug", "--list"]).lines().count(), 1);
    env.ok(&["debug", "last", "--", "true"]);
    env.ok(&["prune", "-f"]);
    let res = env.run(&["debug", "last", "--", "true"]);
    assert!(!res.status.success(), "prune removed the kept step");
}

#[test]
fn a_stage_can_be_entered_by_name() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test AS build\nARG WHAT=default\nENTRYPOINT [\"false\"]\n\
             RUN echo $WHAT > /made\nFROM busybox:test\nRUN false\n",
        )],
    );
    // The last stage fails; the one before it is still there to look at.
    let dockerfile = ctx.join("Dockerfile");
    let out = env.ok(&[
        "debug",
        "--stage",
        "build",
        "--context",
        ctx.to_str().unwrap(),
        "--file",
        dockerfile.to_str().unwrap(),
        "--build-arg",
        "WHAT=made",
        "--",
        "cat",
        "/made",
    ]);
    assert_eq!(out, "made\n");
    let res = env.run(&[
        "debug",
        "--stage",
        "nope",
        "--context",
        ctx.to_str().unwrap(),
    ]);
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("nope"));
}
