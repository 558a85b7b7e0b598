//! End to end: bad input gets a positioned, actionable error and leaves the store untouched.

mod common;

use common::Env;

fn build_dockerfile(env: &Env, dockerfile: &str) -> std::process::Output {
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile), ("a.txt", "a")]);
    env.run(&[
        "build",
        "--progress=plain",
        "-t",
        "bad:1",
        ctx.to_str().unwrap(),
    ])
}

fn store_entries(env: &Env) -> Vec<String> {
    let blobs = env.root().join("blobs/sha256");
    let mut names: Vec<String> = std::fs::read_dir(blobs)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn malformed_dockerfile_names_line_and_column() {
    let env = Env::new();
    let out = build_dockerfile(&env, "FROM scratch\nCOPY a.txt /a\nFOOBAR something\n");
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Dockerfile:3:1:"), "{err}");
    assert!(
        err.contains("FOOBAR something"),
        "the offending line is quoted: {err}"
    );
    assert!(
        store_entries(&env).is_empty(),
        "nothing stored: {:?}",
        store_entries(&env)
    );
    assert!(env.ok(&["images", "-q"]).trim().is_empty());
}

#[test]
fn instruction_before_from_is_rejected() {
    let env = Env::new();
    let out = build_dockerfile(&env, "COPY a.txt /a\nFROM scratch\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Dockerfile:1:"));
}

#[test]
fn missing_copy_source_names_the_step() {
    let env = Env::new();
    let out = build_dockerfile(&env, "FROM scratch\nCOPY missing.txt /x\n");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Dockerfile:2"), "{err}");
    assert!(err.contains("missing.txt"), "{err}");
    assert!(
        env.ok(&["images", "-q"]).trim().is_empty(),
        "a failed build names no image"
    );
}

#[test]
fn missing_base_image_says_what_to_do() {
    let env = Env::new();
    let out = build_dockerfile(&env, "FROM localhost:1/nothing-here:1\n");
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Dockerfile:1"), "{err}");
}

/// BuildKit's words for a Dockerfile with nothing to build (testEmptyStages for the ARG-only
/// file; the others from dockerfile2llb and its parser): refused as a usage error, store
/// untouched.
#[test]
fn nothing_to_build_is_refused_in_buildkits_words() {
    let env = Env::new();
    for (dockerfile, message) in [
        ("", "the Dockerfile cannot be empty"),
        ("# only a comment\n\n", "file with no instructions"),
        ("ARG foo=bar", "dockerfile contains no stages to build"),
        (
            "ARG A=1\nRUN echo hi\nFROM scratch\n",
            "Dockerfile:2:1: no build stage in current context",
        ),
    ] {
        let out = build_dockerfile(&env, dockerfile);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{dockerfile:?}: {err}");
        assert!(err.contains(message), "{dockerfile:?}: {err}");
    }
    assert!(store_entries(&env).is_empty());
}

/// `FROM $EMPTY` (a base that expands to nothing) is refused in BuildKit's words, naming the
/// base as written (issue #14's error-wording list).
#[test]
fn a_blank_base_name_is_refused_in_buildkits_words() {
    let env = Env::new();
    let out = build_dockerfile(&env, "ARG EMPTY\nFROM $EMPTY\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("base name ($EMPTY) should not be blank"),
        "{err}"
    );
}
