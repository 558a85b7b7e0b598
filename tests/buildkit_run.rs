//! End to end: ports of BuildKit's RUN, ARG and heredoc integration tests (moby/buildkit
//! frontend/dockerfile/dockerfile_args_test.go, dockerfile_core_test.go,
//! dockerfile_mount_test.go, dockerfile_cmd_test.go, dockerfile_heredoc_test.go), each
//! asserting what the Go test asserts. Named after the BuildKit test each one ports.

mod common;

use common::{Env, read_text};

/// testBuiltinArgs: a proxy build arg reaches RUN without an ARG, under both spellings
/// (`http_proxy` given, `$HTTP_PROXY` read); the proxy values stay out of the cache key (a
/// build with another proxy reuses the step) while a declared ARG's value does not.
#[test]
fn builtin_args() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = "FROM busybox:test AS build\n\
        ARG FOO\n\
        ARG BAR\n\
        ARG BAZ=bazcontent\n\
        RUN echo -n $HTTP_PROXY::$NO_PROXY::$FOO::$BAR::$BAZ > /out\n\
        FROM scratch\n\
        COPY --from=build /out /\n";
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    let out = env.build_local(
        &ctx,
        "out1",
        &[
            "--build-arg",
            "FOO=foocontents",
            "--build-arg",
            "http_proxy=hpvalue",
            "--build-arg",
            "NO_PROXY=npvalue",
        ],
    );
    assert_eq!(
        read_text(out.join("out")),
        "hpvalue::npvalue::foocontents::::bazcontent"
    );

    // Another proxy only: the cached step is reused, output unchanged.
    let out = env.build_local(
        &ctx,
        "out2",
        &[
            "--build-arg",
            "FOO=foocontents",
            "--build-arg",
            "http_proxy=hpvalue2",
        ],
    );
    assert_eq!(
        read_text(out.join("out")),
        "hpvalue::npvalue::foocontents::::bazcontent"
    );

    // A changed ARG runs the step again, with the proxy of this build.
    let out = env.build_local(
        &ctx,
        "out3",
        &[
            "--build-arg",
            "FOO=foocontents2",
            "--build-arg",
            "http_proxy=hpvalue2",
        ],
    );
    assert_eq!(
        read_text(out.join("out")),
        "hpvalue2::::foocontents2::::bazcontent"
    );
}

/// testUserAdditionalGids (CVE-2023-25173): the primary group is among the supplementary
/// groups, with the user's /etc/group memberships when no group is given.
#[test]
fn user_additional_gids() {
    let env = Env::new();
    env.busybox_base();
    // busybox's own /etc files: root is a member of wheel, daemon is uid and gid 1.
    let dockerfile = "FROM busybox:test\n\
        RUN printf 'root:x:0:0:root:/root:/bin/sh\\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\\n' > /etc/passwd && printf 'root:x:0:\\ndaemon:x:1:\\nwheel:x:10:root\\n' > /etc/group\n\
        SHELL [\"/bin/sh\", \"-euxc\"]\n\
        RUN [ \"$(id)\" = \"uid=0(root) gid=0(root) groups=0(root),10(wheel)\" ]\n\
        USER 1234\n\
        RUN [ \"$(id)\" = \"uid=1234 gid=0(root) groups=0(root)\" ]\n\
        USER 1234:1234\n\
        RUN [ \"$(id)\" = \"uid=1234 gid=1234 groups=1234\" ]\n\
        USER daemon\n\
        RUN [ \"$(id)\" = \"uid=1(daemon) gid=1(daemon) groups=1(daemon)\" ]\n";
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    env.build_ok(&ctx, &[]);
}

/// testMountArg: a mount's type may come from a build variable.
#[test]
fn mount_arg() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = "FROM busybox:test\n\
        ARG MNT_TYPE=cache\n\
        RUN --mount=type=$MNT_TYPE,target=/mycache2 touch /mycache2/foo\n\
        RUN --mount=type=cache,target=/mycache2 [ -f /mycache2/foo ]\n";
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    env.build_ok(&ctx, &[]);
}

/// testMountEnvAcrossStages: mount type and id from ENV, in the stage and a stage built on it.
#[test]
fn mount_env_across_stages() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = "FROM busybox:test AS stage1\n\
        ENV MNT_ID=mycache\n\
        ENV MNT_TYPE2=cache\n\
        RUN --mount=type=cache,id=mycache,target=/abcabc touch /abcabc/foo\n\
        RUN --mount=type=$MNT_TYPE2,id=$MNT_ID,target=/cbacba [ -f /cbacba/foo ]\n\
        FROM stage1\n\
        RUN --mount=type=$MNT_TYPE2,id=$MNT_ID,target=/whatever [ -f /whatever/foo ]\n";
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    env.build_ok(&ctx, &[]);
}

/// testGlobalArgErrors: a global ARG whose default fails (`${FOO:?…}`) is an error with the
/// message, unless a build arg gives the value — then the default is never evaluated.
#[test]
fn global_arg_errors() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = "ARG FOO=${FOO:?\"custom error\"}\nFROM busybox:test\n";
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    let out = env.build(&ctx, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FOO: custom error"), "{err}");
    env.build_ok(&ctx, &["--build-arg", "FOO=bar"]);
}

/// testArgDefaultExpansion: the same for a stage's ARG, whether the arg given is the one the
/// default reads or the one declared.
#[test]
fn arg_default_expansion() {
    let env = Env::new();
    let dockerfile = "FROM scratch\nARG FOO\nARG BAR=${FOO:?\"foo missing\"}\n";
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    let out = env.build(&ctx, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FOO: foo missing"), "{err}");
    env.build_ok(&ctx, &["--build-arg", "FOO=123"]);
    env.build_ok(&ctx, &["--build-arg", "BAR=123"]);
}

/// testInvalidJSONCommands: text after a JSON array makes the line shell form: a RUN then
/// fails naming the command, an ENTRYPOINT is the shell form of the whole text.
#[test]
fn invalid_json_commands() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = "FROM busybox:test\nRUN [\"echo\", \"hello\"]this is invalid\n";
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    let out = env.build(&ctx, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("this is invalid"), "{err}");

    // The same for ENTRYPOINT: the image gets the shell form of the whole text.
    let ctx = env.context(
        "ctx2",
        &[(
            "Dockerfile",
            "FROM busybox:test\nENTRYPOINT []random string\n",
        )],
    );
    env.build_ok(&ctx, &["-t", "entry:1"]);
    assert_eq!(
        env.inspect("entry:1")["config"]["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c", "[]random string"])
    );
}

/// testSecretRequiredWithoutValue: a required secret that was not given fails the step with
/// BuildKit's `secret ID: not found`, as a file mount or as an env variable.
#[test]
fn secret_required_without_value() {
    let env = Env::new();
    env.busybox_base();
    for mount in [
        "type=secret,required,id=mysecret",
        "type=secret,required,id=mysecret,env=S",
    ] {
        let ctx = env.context(
            "secret",
            &[(
                "Dockerfile",
                &format!("FROM busybox:test\nRUN --mount={mount} true\n"),
            )],
        );
        let out = env.build(&ctx, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("secret mysecret: not found"),
            "{mount}: {stderr}"
        );
    }
}

/// testMountFromError: a variable in a RUN mount's `from` is refused in BuildKit's words.
#[test]
fn mount_from_error() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "mountfrom",
        &[(
            "Dockerfile",
            "FROM busybox:test AS test\nRUN touch /tmp/test\n\
             FROM busybox:test\nENV ttt=test\nRUN --mount=from=$ttt,type=cache,target=/tmp ls\n",
        )],
    );
    let out = env.build(&ctx, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("'from' doesn't support variable expansion, define alias stage instead"),
        "{stderr}"
    );
}
