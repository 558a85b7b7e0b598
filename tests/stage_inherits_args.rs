//! A stage built `FROM` another stage starts with that stage's ARG values, as BuildKit's
//! dispatch state inherits its base's build args: RUN sees them in its environment and lists
//! them in its history (`RUN |3 X=1 Y=env W= ...`). A stage from an image or scratch does not.

mod common;

use common::Env;

#[test]
fn a_stage_from_a_stage_sees_its_arg_values() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test AS base\nARG X=1\nARG Y\n\
             FROM base AS child\nARG W\nENV Y=env\nRUN echo \"x=$X y=$Y\" > /out\n\
             FROM busybox:test\nCOPY --from=child /out /child\nRUN echo \"x=$X y=$Y\" > /unrelated\n",
        )],
    );
    let out = env.build_local(&ctx, "out", &["--build-arg", "Y=2"]);
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(
        read("child"),
        "x=1 y=env\n",
        "the child stage inherits X (its ENV shadows Y)"
    );
    assert_eq!(
        read("unrelated"),
        "x= y=\n",
        "an image-based stage does not"
    );

    env.build_ok(
        &ctx,
        &["--build-arg", "Y=2", "--target", "child", "-t", "child:1"],
    );
    let history = env.inspect("child:1")["history"].clone();
    let run = history
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["created_by"].as_str())
        .rfind(|c| c.starts_with("RUN "))
        .unwrap_or_default()
        .to_string();
    // As BuildKit's runCommandString: every declared ARG, inherited first, an ENV's value
    // where one shadows it, and `NAME=` for one without a value.
    assert!(run.starts_with("RUN |3 X=1 Y=env W= "), "{run}");
}
