//! End to end: ports of BuildKit's ARG/ENV integration tests (moby/buildkit
//! frontend/dockerfile/dockerfile_args_test.go), each asserting what the Go test asserts. Named
//! after the BuildKit test each one ports; `busybox:test`, also tagged `busybox:latest`, stands in
//! for BuildKit's `busybox`. testGlobalArgErrors, testArgDefaultExpansion and testBuiltinArgs are
//! in tests/buildkit_run.rs, testTargetStageNameArg in tests/target_stage_arg.rs.

mod common;

use common::{Env, read_text};

/// An environment with `busybox:test` built and also named `busybox:latest`, so a Dockerfile
/// may say `FROM busybox` as BuildKit's do.
fn busybox_env() -> Env {
    let env = Env::new();
    env.busybox_base();
    env.ok(&["tag", "busybox:test", "busybox:latest"]);
    env
}

/// testGlobalArg: a build arg overrides a global ARG's default in FROM (the default names an
/// image that does not exist).
#[test]
fn global_arg() {
    let env = busybox_env();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "ARG tag=nosuchtag\nFROM busybox:${tag}\n")],
    );
    env.build_ok(&ctx, &["--build-arg", "tag=latest"]);
}

/// testMultiArgs: several ARGs on one line, quoted values, a global ARG reading another, and a
/// stage redeclaring global ARGs with and without defaults.
#[test]
fn multi_args() {
    let env = busybox_env();
    let dockerfile = "ARG a1=\"foo bar\" a2=box\n\
        ARG a3=\"$a2-foo\"\n\
        FROM busy$a2 AS build\n\
        ARG a3 a4=\"123 456\" a1\n\
        RUN echo -n \"$a1:$a3:$a4\" > /out\n\
        FROM scratch\n\
        COPY --from=build /out .\n";
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    let out = env.build_local(&ctx, "out", &[]);
    assert_eq!(read_text(out.join("out")), "foo bar:box-foo:123 456");
}

/// testQuotedMetaArgs: a stage ARG's default reads a global ARG redeclared in the stage.
#[test]
fn quoted_meta_args() {
    let env = busybox_env();
    let dockerfile = "ARG a1=\"box\"\n\
        ARG a2=\"$a1-foo\"\n\
        FROM busy$a1 AS build\n\
        ARG a2\n\
        ARG a3=\"bar-$a2\"\n\
        RUN echo -n $a3 > /out\n\
        FROM scratch\n\
        COPY --from=build /out .\n";
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    let out = env.build_local(&ctx, "out", &[]);
    assert_eq!(read_text(out.join("out")), "bar-box-foo");
}

/// testDefaultEnvWithArgs: ENV (legacy space form) built from an ARG with `${:-}` and `${%%}`,
/// with the arg unset, empty and given; RUN's arguments and the script's environment agree.
#[test]
fn default_env_with_args() {
    let env = busybox_env();
    let dockerfile = "ARG image=idlebox\n\
        FROM busy${image#idle} AS build\n\
        ARG my_arg\n\
        ENV my_arg \"my_arg=${my_arg:-def_val}\"\n\
        ENV my_trimmed_arg \"${my_arg%%e*}\"\n\
        COPY myscript.sh myscript.sh\n\
        RUN ./myscript.sh $my_arg $my_trimmed_arg\n\
        FROM scratch\n\
        COPY --from=build /out /out\n";
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", dockerfile),
            (
                "myscript.sh",
                "\n#!/usr/bin/env sh\necho -n $my_arg $* > /out\n",
            ),
        ],
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        ctx.join("myscript.sh"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    for (name, args, expected) in [
        ("nil", vec![], "my_arg=def_val my_arg=def_val my_arg=d"),
        (
            "empty",
            vec!["--build-arg", "my_arg="],
            "my_arg=def_val my_arg=def_val my_arg=d",
        ),
        (
            "override",
            vec!["--build-arg", "my_arg=override"],
            "my_arg=override my_arg=override my_arg=ov",
        ),
    ] {
        let out = env.build_local(&ctx, &format!("out-{name}"), &args);
        assert_eq!(read_text(out.join("out")), expected, "{name}");
    }
}

/// testEmptyStringArgInEnv: an ARG declared with an empty default is in RUN's environment
/// (empty); one declared without a default and not given is not.
#[test]
fn empty_string_arg_in_env() {
    let env = busybox_env();
    let dockerfile = "FROM busybox AS build\n\
        ARG FOO\n\
        ARG BAR=\n\
        RUN env > env.txt\n\
        FROM scratch\n\
        COPY --from=build env.txt .\n";
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    let out = env.build_local(&ctx, "out", &[]);
    let vars = read_text(out.join("env.txt"));
    assert!(vars.contains("BAR="), "{vars}");
    assert!(!vars.contains("FOO="), "{vars}");
}

/// testEnvEmptyFormatting: a `%s` in an ENV value is kept as written (no printf-style
/// formatting anywhere on the way).
#[test]
fn env_empty_formatting() {
    let env = busybox_env();
    let dockerfile = "FROM busybox AS build\n\
        ENV myenv foo%sbar\n\
        RUN [ \"$myenv\" = 'foo%sbar' ]\n";
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    env.build_local(&ctx, "out", &[]);
}
