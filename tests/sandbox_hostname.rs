//! End to end: `--build-arg BUILDKIT_SANDBOX_HOSTNAME=NAME` sets RUN steps' host name, in
//! `/etc/hosts`, `$HOSTNAME` and `hostname` alike (BuildKit's testDockerfileCheckHostname), and is
//! consumed by the builder (no "unused build-arg" warning). Without it the name stays
//! BuildKit's `buildkitsandbox`.

mod common;

use common::Env;

const DOCKERFILE: &str = "FROM busybox:test\n\
    RUN grep -w \"$(hostname)\" /etc/hosts && echo \"env=$HOSTNAME name=$(hostname)\"\n";

#[test]
fn the_sandbox_hostname_build_arg_names_run_steps_host() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let log = env.build_ok(&ctx, &[]);
    assert!(
        log.contains("env=buildkitsandbox name=buildkitsandbox"),
        "{log}"
    );
    let log = env.build_ok(&ctx, &["--build-arg", "BUILDKIT_SANDBOX_HOSTNAME=foo"]);
    assert!(log.contains("env=foo name=foo"), "{log}");
    assert!(!log.contains("were not consumed"), "{log}");
}

#[test]
fn an_empty_sandbox_hostname_keeps_the_default() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let log = env.build_ok(&ctx, &["--build-arg", "BUILDKIT_SANDBOX_HOSTNAME="]);
    assert!(
        log.contains("env=buildkitsandbox name=buildkitsandbox"),
        "{log}"
    );
}
