//! End to end: `--build-context NAME=DIR` and `NAME=docker-image://REF`, as docker buildx
//! takes them.

mod common;

use common::Env;

#[test]
fn a_directory_context_feeds_copy_from_and_run_mounts_with_its_own_cache() {
    let env = Env::new();
    env.busybox_base();
    let shared = env.context(
        "shared",
        &[("lib.txt", "lib 1\n"), ("sub/deep.txt", "deep\n")],
    );
    let shared_arg = format!("shared={}", shared.display());
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox:test\n\
                 COPY --from=shared lib.txt sub /lib/\n\
                 COPY main.txt /main.txt\n\
                 RUN --mount=from=shared,target=/s cat /s/lib.txt > /mounted\n",
            ),
            ("main.txt", "main\n"),
        ],
    );
    env.build_ok(&ctx, &["-t", "bc:1", "--build-context", &shared_arg]);
    assert_eq!(
        env.ok(&["run", "--rm", "bc:1", "cat", "/lib/lib.txt"]),
        "lib 1\n"
    );
    assert_eq!(
        env.ok(&["run", "--rm", "bc:1", "cat", "/lib/deep.txt"]),
        "deep\n"
    );
    assert_eq!(
        env.ok(&["run", "--rm", "bc:1", "cat", "/mounted"]),
        "lib 1\n"
    );
    // Host files, owned by root in the image like the build context's.
    assert_eq!(
        env.ok(&["run", "--rm", "bc:1", "stat", "-c", "%u:%g", "/lib/lib.txt"]),
        "0:0\n"
    );

    // Unchanged: all cached. A changed file in it: its readers run again.
    let log = env.build_ok(&ctx, &["-t", "bc:2", "--build-context", &shared_arg]);
    assert_eq!(log.matches("CACHED").count(), 3, "{log}");
    std::fs::write(shared.join("lib.txt"), "lib 2\n").unwrap();
    let log = env.build_ok(&ctx, &["-t", "bc:3", "--build-context", &shared_arg]);
    assert_eq!(log.matches("CACHED").count(), 0, "{log}");
    assert_eq!(
        env.ok(&["run", "--rm", "bc:3", "cat", "/mounted"]),
        "lib 2\n"
    );
}

#[test]
fn an_image_context_replaces_the_base_image_of_that_name() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM base-image-that-does-not-exist\nRUN echo from-alias > /x\n",
        )],
    );
    env.build_ok(
        &ctx,
        &[
            "-t",
            "alias:1",
            "--build-context",
            "base-image-that-does-not-exist=docker-image://busybox:test",
        ],
    );
    assert_eq!(
        env.ok(&["run", "--rm", "alias:1", "cat", "/x"]),
        "from-alias\n"
    );
}

#[test]
fn unusable_build_contexts_are_refused_clearly() {
    let env = Env::new();
    env.busybox_base();
    let shared = env.context("shared", &[("f", "f")]);
    let ctx = env.context("ctx", &[("Dockerfile", "FROM shared\n")]);
    let out = env.build(
        &ctx,
        &["--build-context", &format!("shared={}", shared.display())],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("Dockerfile:1") && stderr.contains("COPY --from=shared"),
        "{stderr}"
    );
    for (arg, message) in [
        // (git and http(s) URLs and oci-layout:// are contexts too: tests/git_context.rs,
        // tests/tarball_context.rs, tests/oci_layout_context.rs.)
        ("x=target:other", "only local directories"),
        ("x=oci-layout://", "no layout directory"),
        ("x=/nonexistent/dir", "is not a directory"),
        ("nameless", "expected NAME=VALUE"),
        ("x=docker-image://", "needs an image reference"),
    ] {
        let out = env.build(&ctx, &["--build-context", arg]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{arg}: {stderr}");
        assert!(stderr.contains(message), "{arg}: {stderr}");
    }
}
