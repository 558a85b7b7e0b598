//! End to end: `TARGETSTAGE` is one of BuildKit's automatic ARGs — the `--target` stage, or
//! `default` without one — empty in a stage until the stage declares it (BuildKit's
//! testTargetStageNameArg).

mod common;

use common::Env;

const DOCKERFILE: &str = "FROM busybox:test AS base\n\
    WORKDIR /out\n\
    RUN echo -n \"value:$TARGETSTAGE\" > /out/first\n\
    ARG TARGETSTAGE\n\
    RUN echo -n \"value:$TARGETSTAGE\" > /out/second\n\
    FROM scratch AS foo\n\
    COPY --from=base /out/ /\n\
    FROM scratch\n\
    COPY --from=base /out/ /\n";

fn outputs(env: &Env, args: &[&str], name: &str) -> (String, String) {
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let dest = env.path(name);
    let output = format!("type=local,dest={}", dest.display());
    let mut all = vec!["--output", output.as_str()];
    all.extend_from_slice(args);
    env.build_ok(&ctx, &all);
    let read = |f: &str| std::fs::read_to_string(dest.join(f)).unwrap();
    (read("first"), read("second"))
}

#[test]
fn targetstage_names_the_target_once_declared() {
    let env = Env::new();
    env.busybox_base();
    assert_eq!(
        outputs(&env, &["--target", "foo"], "out-foo"),
        ("value:".to_string(), "value:foo".to_string())
    );
    assert_eq!(
        outputs(&env, &[], "out-default"),
        ("value:".to_string(), "value:default".to_string())
    );
}
