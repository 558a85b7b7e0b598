//! End to end: the `# syntax=IMAGE` parser directive and the `BUILDKIT_SYNTAX` build arg.
//! builder has no external frontends: versions of BuildKit's own `docker/dockerfile:1` frontend
//! build with builder's (a pinned version with a note), any other image is refused before a step
//! runs, and `BUILDKIT_SYNTAX=dockerfile.v0` asks for the built-in frontend whatever the
//! directive says, as in BuildKit.

mod common;

use common::Env;

const DIGEST: &str = "sha256:9857836c9ee4268391bb5b09f9f157f3c91bb15821bb77969642813b0d00518d";

fn dockerfile(syntax: &str) -> String {
    format!("# syntax={syntax}\nFROM busybox:test\nRUN echo ran-the-step > /ran\n")
}

#[test]
fn built_in_frontend_versions_build_and_others_are_refused() {
    let env = Env::new();
    env.busybox_base();
    let build = |name: &str, syntax: &str, args: &[&str]| {
        let ctx = env.context(name, &[("Dockerfile", &dockerfile(syntax))]);
        env.build(&ctx, args)
    };
    let mut n = 0;
    let mut ok = |syntax: &str, args: &[&str], note: bool| {
        n += 1;
        let out = build(&format!("ok{n}"), syntax, args);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{syntax} {args:?}:\n{log}");
        assert!(log.contains("ran-the-step"), "{log}");
        assert_eq!(log.contains("note: "), note, "{syntax} {args:?}:\n{log}");
        assert!(!log.contains("not consumed"), "{log}");
    };
    ok("docker/dockerfile:1", &[], false);
    ok("docker/dockerfile:1-labs", &[], false);
    ok("docker.io/docker/dockerfile:1", &[], false);
    ok("docker/dockerfile:1.4", &[], true);
    ok(
        &format!("docker.io/docker/dockerfile:1.7-labs@{DIGEST}"),
        &[],
        true,
    );
    ok(&format!("docker/dockerfile@{DIGEST}"), &[], true);
    // The build arg wins over the directive, as in BuildKit.
    ok(
        "example.com/custom/frontend:1",
        &["--build-arg", "BUILDKIT_SYNTAX=dockerfile.v0"],
        false,
    );
    ok(
        "example.com/custom/frontend:1",
        &["--build-arg", "BUILDKIT_SYNTAX=docker/dockerfile:1"],
        false,
    );

    let mut n = 0;
    let mut refused = |syntax: &str, args: &[&str], named: &str| {
        n += 1;
        let out = build(&format!("no{n}"), syntax, args);
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{syntax} {args:?}:\n{log}");
        assert!(
            log.contains("cannot run external Dockerfile frontends") && log.contains(named),
            "{syntax} {args:?}:\n{log}"
        );
        assert!(!log.contains("ran-the-step"), "nothing runs:\n{log}");
    };
    refused(
        "example.com/custom/frontend:1",
        &[],
        "# syntax=example.com/custom/frontend:1",
    );
    refused(
        "docker/dockerfile-upstream:master",
        &[],
        "docker/dockerfile-upstream:master",
    );
    refused(
        "docker/dockerfile:1",
        &[
            "--build-arg",
            "BUILDKIT_SYNTAX=tonistiigi/dockerfile:runmount",
        ],
        "BUILDKIT_SYNTAX=tonistiigi/dockerfile:runmount",
    );
}
