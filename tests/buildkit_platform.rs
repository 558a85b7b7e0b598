//! End to end: ports of BuildKit's platform integration tests (moby/buildkit
//! frontend/dockerfile/dockerfile_platform_test.go), each asserting what the Go test asserts;
//! `busybox:test` stands in for BuildKit's `busybox`.

mod common;

use common::{Env, read_text};

/// testPlatformArgsImplicit: `TARGETOS` is defined without an `ARG` in a FROM line, so
/// `FROM build-${TARGETOS}` names the stage for the host's OS.
#[test]
fn platform_args_implicit() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch AS build-linux\nCOPY foo bar\nFROM build-${TARGETOS}\nCOPY foo2 bar2\n",
            ),
            ("foo", "d0"),
            ("foo2", "d1"),
        ],
    );
    let out = env.build_local(&ctx, "out", &[]);
    assert_eq!(read_text(out.join("bar")), "d0");
    assert_eq!(read_text(out.join("bar2")), "d1");
}

/// testPlatformArgsExplicit: a stage `FROM --platform=$BUILDPLATFORM` sees the target in
/// `TARGETPLATFORM` (`darwin/ppc64le`, which nothing here could run: the stage runs on the
/// build platform), and a `--build-arg TARGETOS` overrides the automatic value.
#[test]
fn platform_args_explicit() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM --platform=$BUILDPLATFORM busybox:test AS build\nARG TARGETPLATFORM\nARG TARGETOS\n\
             RUN mkdir /out && echo -n $TARGETPLATFORM > /out/platform && echo -n $TARGETOS > /out/os\n\
             FROM scratch\nCOPY --from=build out .\n",
        )],
    );
    let out = env.build_local(
        &ctx,
        "out",
        &[
            "--platform",
            "darwin/ppc64le",
            "--build-arg",
            "TARGETOS=freebsd",
        ],
    );
    assert_eq!(read_text(out.join("platform")), "darwin/ppc64le");
    assert_eq!(read_text(out.join("os")), "freebsd");
}
