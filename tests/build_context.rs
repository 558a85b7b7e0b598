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

/// As in BuildKit, `FROM NAME` of a directory context makes its files the stage's root.
#[test]
fn a_directory_context_can_be_a_stage_base() {
    let env = Env::new();
    let shared = env.context("shared", &[("f", "from the directory\n"), ("sub/g", "g\n")]);
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM shared\nCOPY x /x\n"),
            ("x", "from the main context\n"),
        ],
    );
    let out = env.path("out");
    env.build_ok(
        &ctx,
        &[
            "--build-context",
            &format!("shared={}", shared.display()),
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
    );
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("f"), "from the directory\n");
    assert_eq!(read("sub/g"), "g\n");
    assert_eq!(read("x"), "from the main context\n");
}

#[test]
fn unusable_build_contexts_are_refused_clearly() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM shared\n")]);
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

/// As in BuildKit (testNamedLocalContext, testNamedImageContext): a build context named like a
/// stage replaces that stage. Whatever refers to it gets the context, by name or by index, and
/// the stage itself never runs (its `RUN exit 1` would fail the build).
#[test]
fn a_named_context_replaces_the_stage_of_that_name() {
    let env = Env::new();
    env.busybox_base();
    let dir = env.context("over", &[("x", "from the directory\n")]);
    let ctx = env.context(
        "stagectx",
        &[(
            "Dockerfile",
            "FROM busybox:test AS build\nRUN exit 1\n\
             FROM busybox:test\nCOPY --from=build /x /by-name\nCOPY --from=0 /x /by-index\n\
             RUN --mount=from=build,target=/m cat /m/x > /mounted\n",
        )],
    );
    let arg = format!("build={}", dir.display());
    let log = env.build_ok(&ctx, &["-t", "over:1", "--build-context", &arg]);
    assert!(!log.contains("exit 1"), "the replaced stage ran:\n{log}");
    for file in ["/by-name", "/by-index", "/mounted"] {
        assert_eq!(
            env.ok(&["run", "--rm", "over:1", "cat", file]),
            "from the directory\n",
            "{file}"
        );
    }

    // An image context: FROM the stage starts from the image, and a replaced target stage is
    // the image itself.
    let ctx = env.context(
        "imagectx",
        &[(
            "Dockerfile",
            "FROM scratch AS base\nCOPY missing-file /\n\
             FROM base\nRUN echo on-the-image > /y\n",
        )],
    );
    let log = env.build_ok(
        &ctx,
        &[
            "-t",
            "over:2",
            "--build-context",
            "base=docker-image://busybox:test",
        ],
    );
    assert!(!log.contains("missing-file"), "{log}");
    assert_eq!(
        env.ok(&["run", "--rm", "over:2", "cat", "/y"]),
        "on-the-image\n"
    );
    env.build_ok(
        &ctx,
        &[
            "-t",
            "over:3",
            "--target",
            "base",
            "--build-context",
            "base=docker-image://busybox:test",
        ],
    );
    assert_eq!(
        env.inspect("over:3")["rootfs"],
        env.inspect("busybox:test")["rootfs"]
    );
}

/// BuildKit's testNamedLocalContext: a directory context replaces the stage `base` (whose RUN
/// would fail here), and its own `.dockerignore` applies to what is read from it.
#[test]
fn named_local_context() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "main",
        &[(
            "Dockerfile",
            "FROM busybox:test AS base\nRUN cat /etc/alpine-release > /out\n\
             FROM scratch\nCOPY --from=base /o* /\n",
        )],
    );
    let basedir = env.context(
        "basedir",
        &[
            ("out", "dummy-result"),
            ("out2", "dummy-result"),
            (".dockerignore", "out2\n"),
        ],
    );
    let out = env.path("named-local-out");
    env.build_ok(
        &ctx,
        &[
            "--build-context",
            &format!("base={}", basedir.display()),
            "--output",
            &format!("type=local,dest={}", out.display()),
        ],
    );
    assert!(!common::read_text(out.join("out")).is_empty());
    assert!(!out.join("out2").exists());
}
