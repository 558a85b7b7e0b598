//! End to end: plain progress names steps as BuildKit does — `[NAME i/n]`, where a lone unnamed
//! stage has no NAME, unnamed stages of a multi-stage file are `stage-N`, n counts the FROM of
//! an image, every ONBUILD trigger and the RUN/COPY/ADD/WORKDIR instructions (not ENV, ARG,
//! LABEL...), the number is padded to the width of n, and triggers show as `ONBUILD`.

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
