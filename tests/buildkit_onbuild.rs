//! End to end: ports of BuildKit's ONBUILD integration tests (moby/buildkit
//! frontend/dockerfile/dockerfile_onbuild_test.go), each asserting what the Go test asserts.
//! The Go tests push their base images to a registry; here they stay in builder's store under
//! the same kind of name (the registry path is tests/registry_cli.rs's business). `busybox:test`
//! stands in for `busybox`, and an `alpine:latest` is made from it with an /etc/alpine-release.
//! testOnBuildHeredoc is in tests/buildkit_heredoc.rs.

mod common;

use common::{Env, read_text};

fn images_env() -> Env {
    let env = Env::new();
    env.busybox_base();
    env.ok(&["tag", "busybox:test", "busybox:latest"]);
    let alpine = env.context(
        "alpine",
        &[(
            "Dockerfile",
            "FROM busybox:test\nRUN echo 3.20.0 > /etc/alpine-release\n",
        )],
    );
    env.build_ok(&alpine, &["-t", "alpine:latest"]);
    env
}

/// Builds `dockerfile` (in its own context directory `name`) with `args`.
fn build(env: &Env, name: &str, dockerfile: &str, args: &[&str]) -> std::path::PathBuf {
    let ctx = env.context(name, &[("Dockerfile", dockerfile)]);
    env.build_ok(&ctx, args);
    ctx
}

fn build_local(env: &Env, name: &str, dockerfile: &str) -> std::path::PathBuf {
    let ctx = env.context(name, &[("Dockerfile", dockerfile)]);
    env.build_local(&ctx, &format!("out-{name}"), &[])
}

/// testOnBuildCleared: a trigger runs in the image built FROM its image, and not again in an
/// image built FROM that one.
#[test]
fn on_build_cleared() {
    let env = images_env();
    build(
        &env,
        "base",
        "FROM busybox\nONBUILD RUN mkdir -p /out && echo -n 11 >> /out/foo\n",
        &["-t", "localhost/buildkit/testonbuild:base"],
    );
    build(
        &env,
        "child",
        "\tFROM localhost/buildkit/testonbuild:base\n\t",
        &["-t", "localhost/buildkit/testonbuild:child"],
    );
    let out = build_local(
        &env,
        "final",
        "\tFROM localhost/buildkit/testonbuild:child AS base\n\tFROM scratch\n\tCOPY --from=base /out /\n\t",
    );
    assert_eq!(read_text(out.join("foo")), "11");
}

/// testOnBuildWithChildStage: the trigger runs once, in the stage FROM the image, not again in
/// a stage built on that stage.
#[test]
fn on_build_with_child_stage() {
    let env = images_env();
    build(
        &env,
        "base",
        "FROM busybox\nONBUILD RUN mkdir -p /out && echo -n yes >> /out/didrun\n",
        &["-t", "localhost/buildkit/testonbuildstage:base"],
    );
    let out = build_local(
        &env,
        "final",
        "FROM localhost/buildkit/testonbuildstage:base AS base\n\
         RUN [ -f /out/didrun ] && touch /step1\n\
         RUN rm /out/didrun\n\
         RUN [ ! -f /out/didrun ] && touch /step2\n\
         FROM base AS child\n\
         RUN [ ! -f /out/didrun ] && touch /step3\n\
         FROM scratch\n\
         COPY --from=child /step* /\n",
    );
    for step in ["step1", "step2", "step3"] {
        assert!(out.join(step).is_file(), "{step}");
    }
}

/// testOnBuildNamedContext: a base given as a named context (an OCI layout) whose trigger
/// copies from a stage of the Dockerfile being built.
#[test]
fn on_build_named_context() {
    let env = images_env();
    let layout = env.path("ocione");
    let output = format!("type=oci,dest={},tar=false", layout.display());
    build(
        &env,
        "base",
        "\tFROM busybox:latest\n\tONBUILD COPY --from=otherstage /testfile /out/foo\n\t",
        &["--output", &output],
    );
    let index: serde_json::Value =
        serde_json::from_str(&read_text(layout.join("index.json"))).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    let digest = manifests[0]["digest"].as_str().unwrap();
    let ctx = env.context(
        "final",
        &[(
            "Dockerfile",
            "\t\tFROM alpine AS otherstage\n\t\tRUN echo -n \"hello\" > /testfile\n\
             \t\tFROM base AS inputstage\n\t\tFROM scratch\n\t\tCOPY --from=inputstage /out/foo /bar\n\t",
        )],
    );
    let named = format!("base=oci-layout://{}@{digest}", layout.display());
    let out = env.build_local(&ctx, "out", &["--build-context", &named]);
    assert_eq!(read_text(out.join("bar")), "hello");
}

/// testOnBuildInheritedStageRun: a stage's ONBUILD runs in a stage built FROM that stage.
#[test]
fn on_build_inherited_stage_run() {
    let env = images_env();
    let out = build_local(
        &env,
        "ctx",
        "FROM busybox AS base\nONBUILD RUN mkdir -p /out && echo -n 11 >> /out/foo\n\
         FROM base AS mid\nRUN cp /out/foo /out/bar\nFROM scratch\nCOPY --from=mid /out/bar /\n",
    );
    assert_eq!(read_text(out.join("bar")), "11");
}

/// testOnBuildInheritedStageWithFrom: the same with a trigger copying from another stage.
#[test]
fn on_build_inherited_stage_with_from() {
    let env = images_env();
    let out = build_local(
        &env,
        "ctx",
        "FROM alpine AS src\nRUN mkdir -p /in && echo -n 12 > /in/file\n\
         FROM busybox AS base\nONBUILD COPY --from=src /in/file /out/foo\n\
         FROM base AS mid\nRUN cp /out/foo /out/bar\nFROM scratch\nCOPY --from=mid /out/bar /\n",
    );
    assert_eq!(read_text(out.join("bar")), "12");
}

/// testOnBuildNewDeps: triggers that bring new dependencies: `COPY --from=<image>` and a RUN
/// mount from a stage of the child Dockerfile.
#[test]
fn on_build_new_deps() {
    let env = images_env();
    build(
        &env,
        "base",
        "FROM busybox\nONBUILD COPY --from=alpine /etc/alpine-release /out/alpine-release2\n",
        &["-t", "localhost/buildkit/testonbuilddeps:base"],
    );
    let out = build_local(
        &env,
        "child",
        "\tFROM localhost/buildkit/testonbuilddeps:base AS base\n\
         \tRUN cat /out/alpine-release2 > /out/alpine-release3\n\
         \tFROM scratch\n\tCOPY --from=base /out /\n\t",
    );
    assert!(read_text(out.join("alpine-release3")).len() > 5);

    build(
        &env,
        "base2",
        "FROM alpine\nONBUILD RUN --mount=type=bind,target=/in,from=inputstage mkdir /out && cat /in/foo > /out/bar && cat /in/out/alpine-release2 > /out/bar2\n",
        &["-t", "localhost/buildkit/testonbuilddeps:base2"],
    );
    let out = build_local(
        &env,
        "child2",
        "\tFROM localhost/buildkit/testonbuilddeps:base AS inputstage\n\
         \tRUN cat /out/alpine-release2 > /out/alpine-release4\n\
         \tRUN echo -n foo > /foo\n\
         \tFROM localhost/buildkit/testonbuilddeps:base2 AS base\n\
         \tRUN echo -n bar3 > /out/bar3\n\
         \tFROM scratch\n\tCOPY --from=base /out /\n\t",
    );
    assert_eq!(read_text(out.join("bar")), "foo");
    assert!(read_text(out.join("bar2")).len() > 5);
    assert_eq!(read_text(out.join("bar3")), "bar3");
}

/// testOnBuildWithCacheMount: a trigger's cache mount is the cache a later RUN of the child
/// mounts at the same target.
#[test]
fn on_build_with_cache_mount() {
    let env = images_env();
    build(
        &env,
        "base",
        "FROM busybox\nONBUILD RUN --mount=type=cache,target=/cache echo -n 42 >> /cache/foo && echo -n 11 >> /bar\n",
        &["-t", "localhost/buildkit/testonbuild:base"],
    );
    build(
        &env,
        "child",
        "FROM localhost/buildkit/testonbuild:base\n\
         RUN --mount=type=cache,target=/cache [ \"$(cat /cache/foo)\" = \"42\" ] && [ \"$(cat /bar)\" = \"11\" ]\n",
        &[],
    );
}
