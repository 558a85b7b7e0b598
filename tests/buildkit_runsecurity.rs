//! End to end: ports of BuildKit's RUN --security integration tests (moby/buildkit
//! frontend/dockerfile/dockerfile_runsecurity_test.go), each asserting what the Go test
//! asserts. testRunSecurityInsecure is tests/entitlements_gate_privileged_run_steps.rs.

mod common;

use common::Env;

/// The capability bounding set of docker's default profile.
const DEFAULT_CAPS: &str = "CapBnd:\t00000000a80425fb";

fn build(dockerfile: &str, args: &[&str]) {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    env.build_ok(&ctx, args);
}

/// testRunSecuritySandbox: `--security=sandbox` gives docker's default capabilities.
#[test]
fn run_security_sandbox() {
    build(
        &format!(
            "FROM busybox:test\nRUN --security=sandbox [ \"$(cat /proc/self/status | grep CapBnd)\" == \"{DEFAULT_CAPS}\" ]\n"
        ),
        &[],
    );
}

/// testRunSecurityDefault: without `--security`, the default capabilities, even with
/// security.insecure allowed.
#[test]
fn run_security_default() {
    build(
        &format!(
            "FROM busybox:test\nRUN [ \"$(cat /proc/self/status | grep CapBnd)\" == \"{DEFAULT_CAPS}\" ]\n"
        ),
        &["--allow", "security.insecure"],
    );
}
