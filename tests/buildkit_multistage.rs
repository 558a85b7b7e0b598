//! End to end: ports of BuildKit's multi-stage integration tests (moby/buildkit
//! frontend/dockerfile/dockerfile_multistage_test.go) and .dockerignore tests
//! (dockerfile_dockerignore_test.go), each asserting what the Go test asserts. `busybox:test`,
//! also tagged `busybox:latest` and `alpine:latest`, stands in for those images.
//! testEmptyStages is tests/errors.rs.

mod common;

use common::{Env, read_text};

fn images_env() -> Env {
    let env = Env::new();
    env.busybox_base();
    env.ok(&["tag", "busybox:test", "busybox:latest"]);
    env.ok(&["tag", "busybox:test", "alpine:latest"]);
    env
}

/// testMultiStageImplicitFrom: `COPY --from=<image>` reads an image no stage names; a stage
/// named like an image (`golang`) is the stage.
#[test]
fn multi_stage_implicit_from() {
    let env = images_env();
    let ctx = env.context(
        "ctx1",
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY --from=busybox /etc/passwd test\n",
        )],
    );
    let out = env.build_local(&ctx, "out1", &[]);
    assert!(read_text(out.join("test")).contains("root"));

    let ctx = env.context(
        "ctx2",
        &[(
            "Dockerfile",
            "FROM busybox AS golang\nRUN mkdir -p /usr/bin && echo -n foo > /usr/bin/go\n\
             FROM scratch\nCOPY --from=golang /usr/bin/go go\n",
        )],
    );
    let out = env.build_local(&ctx, "out2", &[]);
    assert!(read_text(out.join("go")).contains("foo"));
}

/// testMultiStageCaseInsensitive: stage names in AS, `--from` and `--target` ignore case.
#[test]
fn multi_stage_case_insensitive() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch AS STAge0\nCOPY foo bar\nFROM scratch AS staGE1\n\
                 COPY --from=staGE0 bar baz\nFROM scratch\nCOPY --from=stage1 baz bax\n",
            ),
            ("foo", "foo-contents"),
        ],
    );
    let out = env.build_local(&ctx, "out", &["--target", "Stage1"]);
    assert!(read_text(out.join("baz")).contains("foo-contents"));
}

/// testOutOfOrderStage: `COPY --from` a stage defined later is refused in BuildKit's words.
#[test]
fn out_of_order_stage() {
    let env = images_env();
    for (i, src) in ["/", "/d2"].into_iter().enumerate() {
        let dockerfile = format!(
            "FROM busybox AS target\nCOPY --from=build {src} /out\n\
             FROM alpine AS build\nCOPY /Dockerfile /d2\nFROM target\n"
        );
        let ctx = env.context(&format!("ctx{i}"), &[("Dockerfile", &dockerfile)]);
        let out = env.build(&ctx, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains("cannot copy from stage"), "{stderr}");
        assert!(
            stderr.contains("needs to be defined before current stage"),
            "{stderr}"
        );
        assert!(
            stderr.contains("stage \"build\"") && stderr.contains("current stage \"target\""),
            "{stderr}"
        );
    }
    // Not in the Go test: a RUN mount from a later stage, in BuildKit's words for mounts.
    let ctx = env.context(
        "ctx-mount",
        &[(
            "Dockerfile",
            "FROM busybox AS target
RUN --mount=from=build,target=/b true
             FROM alpine AS build
COPY /Dockerfile /d2
FROM target
",
        )],
    );
    let out = env.build(&ctx, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "cannot mount from stage \"build\" to \"/b\", stage needs to be defined before current command"
        ),
        "{stderr}"
    );
}

/// testDockerignore: patterns with a negation; the Dockerfile and .dockerignore themselves can
/// be excluded from what COPY sees.
#[test]
fn dockerignore() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY . .\n"),
            ("foo", "foo-contents"),
            ("bar", "bar-contents"),
            ("baz", "baz-contents"),
            ("bay", "bay-contents"),
            (".dockerignore", "\nba*\nDockerfile\n!bay\n.dockerignore\n"),
        ],
    );
    let out = env.build_local(&ctx, "out", &[]);
    assert_eq!(read_text(out.join("foo")), "foo-contents");
    for gone in [".dockerignore", "Dockerfile", "bar", "baz"] {
        let err = std::fs::symlink_metadata(out.join(gone)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{gone}");
    }
    assert_eq!(read_text(out.join("bay")), "bay-contents");
}

/// testDockerignoreInvalid: an invalid pattern (`!` alone) fails the build, promptly.
#[test]
fn dockerignore_invalid() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY . .\n"),
            (".dockerignore", "!\n"),
        ],
    );
    let start = std::time::Instant::now();
    let out = env.build(&ctx, &[]);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        start.elapsed() < std::time::Duration::from_secs(15),
        "timed out"
    );
}

/// testDockerignoreOverride: `<Dockerfile name>.dockerignore` next to the Dockerfile is used
/// instead of the context's, for each Dockerfile its own.
#[test]
fn dockerignore_override() {
    let env = images_env();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY . .\nRUN [ -f foo ] && [ ! -f bar ]\n",
            ),
            ("Dockerfile.dockerignore", "\nbar\n"),
            (
                "Dockerfile2",
                "FROM busybox\nCOPY . .\nRUN [ ! -f foo ] && [ -f bar ]\n",
            ),
            ("Dockerfile2.dockerignore", "\nfoo\n"),
            ("foo", "contents0"),
            ("bar", "contents0"),
        ],
    );
    env.build_ok(&ctx, &[]);
    env.build_ok(&ctx, &["-f", ctx.join("Dockerfile2").to_str().unwrap()]);
}
