//! End to end: ports of BuildKit's CMD/ENTRYPOINT/SHELL integration tests (moby/buildkit
//! frontend/dockerfile/dockerfile_cmd_test.go), each asserting what the Go test asserts; the
//! images are read from builder's store (BuildKit's tests read containerd's or an OCI tar).
//! testInvalidJSONCommands is in tests/buildkit_run.rs.

mod common;

use common::Env;

/// testCmdShell: a shell-form ENTRYPOINT uses the stage's SHELL, and clears the CMD the base
/// image had.
#[test]
fn cmd_shell() {
    let env = Env::new();
    let base = env.context("base", &[("Dockerfile", "FROM scratch\nCMD [\"test\"]\n")]);
    env.build_ok(&base, &["-t", "cmdoverridetest:latest"]);
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM cmdoverridetest:latest\nSHELL [\"ls\"]\nENTRYPOINT my entrypoint\n",
        )],
    );
    env.build_ok(&ctx, &["-t", "cmdoverridetest2:latest"]);
    let config = &env.inspect("cmdoverridetest2:latest")["config"];
    assert!(config["Cmd"].is_null(), "{config}");
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["ls", "my entrypoint"])
    );
}

/// testDefaultShellAndPath, its linux/amd64 image (the windows/amd64 one is not built here):
/// a shell-form ENTRYPOINT on scratch is `/bin/sh -c`, the default PATH is set, one layer.
#[test]
fn default_shell_and_path() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch\nENTRYPOINT foo bar\nCOPY Dockerfile .\n",
        )],
    );
    env.build_ok(&ctx, &["--platform", "linux/amd64", "-t", "shellpath:1"]);
    let image = env.inspect("shellpath:1");
    assert_eq!(
        image["config"]["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c", "foo bar"])
    );
    assert_eq!(
        image["config"]["Env"],
        serde_json::json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    );
    assert_eq!(image["Manifest"]["layers"].as_array().unwrap().len(), 1);
}

/// testIgnoreEntrypoint: RUN does not go through the image's ENTRYPOINT.
#[test]
fn ignore_entrypoint() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test\nENTRYPOINT [\"/nosuchcmd\"]\nRUN [\"ls\"]\n",
        )],
    );
    env.build_ok(&ctx, &[]);
}

/// testDockerfileInvalidCommand: a failing RUN names its command as run and says it did not
/// complete successfully.
#[test]
fn dockerfile_invalid_command() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "\tFROM busybox:test\n\tRUN invalidcmd\n")],
    );
    let out = env.build(&ctx, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("/bin/sh -c invalidcmd"), "{stderr}");
    assert!(stderr.contains("did not complete successfully"), "{stderr}");
}

/// testDockerfileInvalidInstruction: an unknown instruction is refused with a suggestion.
#[test]
fn dockerfile_invalid_instruction() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch\nFNTRYPOINT [\"/bin/sh\", \"-c\", \"echo invalidinstruction\"]\n",
        )],
    );
    let out = env.build(&ctx, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("unknown instruction: FNTRYPOINT"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean ENTRYPOINT?"), "{stderr}");
}
