//! End to end: plain progress names steps as BuildKit does — `[NAME i/n]`, where a lone unnamed
//! stage has no NAME, unnamed stages of a multi-stage file are `stage-N`, n counts the FROM of
//! an image, every ONBUILD trigger and the RUN/COPY/ADD/WORKDIR instructions (not ENV, ARG,
//! LABEL...), the number is padded to the width of n, and triggers show as `ONBUILD`. The text
//! is the instruction with the stage's variables expanded as BuildKit's dockerfile2llb does it
//! (`processCmdEnv`): RUN keeps quotes and unknown variables and masks secret env variables as
//! `****`; COPY, ADD and WORKDIR expand like words. `WORKDIR /` is no step at all.

mod common;

use common::Env;

/// The step names of a plain-progress build log (`#N [..] TEXT` lines), in order, deduplicated.
fn step_names(log: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in log.lines() {
        let Some((_, rest)) = line.split_once(' ') else {
            continue;
        };
        if line.starts_with('#') && rest.starts_with('[') && !names.iter().any(|n| n == rest) {
            names.push(rest.to_string());
        }
    }
    names
}

#[test]
fn a_lone_stage_counts_its_from_and_only_steps_that_make_layers() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "lone",
        &[(
            "Dockerfile",
            "FROM busybox:test\nENV A=1\nARG B=2\nRUN echo a\nLABEL x=y\nCOPY Dockerfile /df\nWORKDIR /w\n",
        )],
    );
    let names = step_names(&env.build_ok(&ctx, &[]));
    assert_eq!(
        names,
        [
            "[2/4] RUN echo a",
            "[3/4] COPY Dockerfile /df",
            "[4/4] WORKDIR /w"
        ],
        "{names:?}"
    );
}

#[test]
fn stages_are_named_and_numbers_padded_to_the_total() {
    let env = Env::new();
    env.busybox_base();
    let runs: String = (1..=10).map(|i| format!("RUN echo {i}\n")).collect();
    let ctx = env.context(
        "multi",
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox:test AS base\n{runs}\
                 FROM base\nRUN echo child\n\
                 FROM scratch\nCOPY --from=1 /bin/busybox /\n"
            ),
        )],
    );
    let names = step_names(&env.build_ok(&ctx, &[]));
    assert!(
        names.contains(&"[base  2/11] RUN echo 1".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"[base 11/11] RUN echo 10".to_string()),
        "{names:?}"
    );
    // FROM another stage is not a step of its own.
    assert!(
        names.contains(&"[stage-1 1/1] RUN echo child".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"[stage-2 1/1] COPY --from=1 /bin/busybox /".to_string()),
        "{names:?}"
    );
}

#[test]
fn onbuild_triggers_are_counted_and_marked() {
    let env = Env::new();
    env.busybox_base();
    let parent = env.context(
        "parent",
        &[(
            "Dockerfile",
            "FROM busybox:test\nONBUILD RUN echo triggered\nONBUILD ENV T=1\n",
        )],
    );
    env.build_ok(&parent, &["-t", "parent:1"]);
    let child = env.context("child", &[("Dockerfile", "FROM parent:1\nRUN echo own\n")]);
    let names = step_names(&env.build_ok(&child, &[]));
    // Every trigger counts in the total, but (as in BuildKit) only steps take a number, so the
    // ENV trigger leaves the last step at 3 of 4.
    assert_eq!(
        names,
        ["[2/4] ONBUILD RUN echo triggered", "[3/4] RUN echo own"],
        "{names:?}"
    );
}

/// BuildKit's testStepNames (dockerfile_core_test.go), as written there.
#[test]
fn buildkit_step_names() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "bk",
        &[(
            "Dockerfile",
            "FROM busybox:test AS base\nWORKDIR /out\nRUN echo \"base\" > base\n\
             FROM scratch\nCOPY --from=base --chmod=0644 /out /out\n",
        )],
    );
    let names = step_names(&env.build_ok(&ctx, &[]));
    assert!(
        names.contains(&r#"[base 3/3] RUN echo "base" > base"#.to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"[stage-1 1/1] COPY --from=base --chmod=0644 /out /out".to_string()),
        "{names:?}"
    );
}

#[test]
fn variables_are_expanded_in_step_names_as_buildkit_does() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "vars",
        &[
            (
                "Dockerfile",
                "FROM busybox:test\nARG A=hello\nENV E=\"x y\"\n\
                 run echo $A \"$E\" ${UNSET} \\\n  && true\n\
                 WORKDIR /w/$A\nCOPY \"$A\" /$A/$UNSET\nADD ${A}.txt .\n",
            ),
            ("hello", "h"),
            ("hello.txt", "t"),
        ],
    );
    let names = step_names(&env.build_ok(&ctx, &[]));
    assert_eq!(
        names,
        [
            // RUN: quotes and unknown variables stay as written; the keyword is upper-cased.
            r#"[2/5] RUN echo hello "x y" ${UNSET}   && true"#,
            // COPY, ADD, WORKDIR: expanded as words, so quotes go and unknown variables are empty.
            "[3/5] WORKDIR /w/hello",
            "[4/5] COPY hello /hello/",
            "[5/5] ADD hello.txt .",
        ],
        "{names:?}"
    );
}

#[test]
fn a_build_arg_changes_the_step_name() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "arg",
        &[("Dockerfile", "FROM busybox:test\nARG V=1\nRUN echo v=$V\n")],
    );
    let names = step_names(&env.build_ok(&ctx, &["--build-arg", "V=from-cli"]));
    assert_eq!(names, ["[2/2] RUN echo v=from-cli"], "{names:?}");
}

#[test]
fn secret_env_variables_are_masked_in_step_names() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "secret",
        &[(
            "Dockerfile",
            // As BuildKit's testSecretAsEnviron: an ENV of the same name is masked too, since
            // the step sees the secret there.
            "FROM busybox:test\nENV SECRET_ENV=foo\nARG PLAIN=shown\n\
             RUN --mount=type=secret,id=mysecret,env=SECRET_ENV [ \"$SECRET_ENV\" = \"pw\" ] && echo $PLAIN\n",
        )],
    );
    let secret = env.path("secret.txt");
    std::fs::write(&secret, "pw").unwrap();
    let spec = format!("id=mysecret,src={}", secret.display());
    let log = env.build_ok(&ctx, &["--secret", &spec]);
    let names = step_names(&log);
    // `stage-0`: for BuildKit the mount is a second source (see the last test).
    assert_eq!(
        names,
        [
            r#"[stage-0 2/2] RUN --mount=type=secret,id=mysecret,env=SECRET_ENV [ "****" = "pw" ] && echo shown"#
        ],
        "{names:?}"
    );
}

#[test]
fn a_lone_heredoc_is_summarized_in_the_step_name() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "heredoc",
        &[(
            "Dockerfile",
            "FROM busybox:test\nRUN <<EOT\n  echo one\necho two\nEOT\nRUN <<EOT\necho only\nEOT\n\
             RUN cat <<EOT\nnot summarized\nEOT\n",
        )],
    );
    let names = step_names(&env.build_ok(&ctx, &[]));
    assert_eq!(
        names,
        [
            "[2/4] RUN <<EOT (echo one...)",
            "[3/4] RUN <<EOT (echo only)",
            "[4/4] RUN cat <<EOT",
        ],
        "{names:?}"
    );
}

#[test]
fn workdir_root_takes_no_step_number() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "root",
        &[(
            "Dockerfile",
            "FROM busybox:test\nWORKDIR /\nRUN echo after\n",
        )],
    );
    let names = step_names(&env.build_ok(&ctx, &[]));
    // BuildKit counts it in the total but makes no step of it, so the total is never reached.
    assert_eq!(names, ["[2/3] RUN echo after"], "{names:?}");
}

/// BuildKit drops the stage name only when it has one dispatch state, and a `RUN --mount`
/// (any type: its source is scratch unless `from=` names a stage) or a `COPY --from=IMAGE`
/// adds one: a lone stage then shows as `stage-0`, as in BuildKit's own progress output.
#[test]
fn a_lone_stage_with_a_mount_or_an_image_source_is_named() {
    let env = Env::new();
    env.busybox_base();
    for (dockerfile, want) in [
        (
            "FROM busybox:test\nRUN --mount=type=tmpfs,target=/t true\n",
            "[stage-0 2/2] RUN --mount=type=tmpfs,target=/t true",
        ),
        (
            "FROM busybox:test\nCOPY --from=busybox:test /bin/busybox /b\n",
            "[stage-0 2/2] COPY --from=busybox:test /bin/busybox /b",
        ),
        ("FROM busybox:test AS only\nRUN true\n", "[2/2] RUN true"),
    ] {
        let ctx = env.context("named", &[("Dockerfile", dockerfile)]);
        let names = step_names(&env.build_ok(&ctx, &[]));
        assert_eq!(names, [want], "{dockerfile}");
    }
}
