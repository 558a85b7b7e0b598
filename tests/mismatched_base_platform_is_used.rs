//! A single-platform base image whose platform is not the target's (issue #18): the build
//! warns as BuildKit does (InvalidBaseImagePlatform) and uses it, and the image says the
//! target platform (BuildKit sets an explicit `--platform` on the image config); in a
//! multi-platform build the platform that mismatches warns, once.

mod common;

use std::fs;
use std::path::Path;

use common::Env;
use serde_json::Value;

const WARNING: &str = "WARNING: InvalidBaseImagePlatform: Base image armbase:1 was pulled with platform \"linux/arm64\", expected \"linux/amd64\" for current build (line 1)";

fn arm_base(env: &Env) -> std::path::PathBuf {
    let base = env.context(
        "base",
        &[
            ("Dockerfile", "FROM scratch\nCOPY from-base /\n"),
            ("from-base", "arm\n"),
        ],
    );
    env.build_ok(&base, &["--platform", "linux/arm64", "-t", "armbase:1"]);
    env.context(
        "use",
        &[
            ("Dockerfile", "FROM armbase:1\nCOPY mine /\n"),
            ("mine", "x\n"),
        ],
    )
}

fn blob(dir: &Path, digest: &Value) -> Value {
    let d = digest.as_str().unwrap().trim_start_matches("sha256:");
    serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(d)).unwrap()).unwrap()
}

#[test]
fn a_mismatched_base_warns_and_is_used() {
    let env = Env::new();
    let ctx = arm_base(&env);
    let log = env.build_ok(&ctx, &["--platform", "linux/amd64", "-t", "use:1"]);
    assert_eq!(log.matches(WARNING).count(), 1, "{log}");
    let image = env.inspect("use:1");
    assert_eq!(image["architecture"], "amd64", "{image}");
    let out = env.path("out");
    env.build_ok(
        &ctx,
        &[
            "--platform",
            "linux/amd64",
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
    );
    assert_eq!(fs::read_to_string(out.join("from-base")).unwrap(), "arm\n");

    // The matching platform does not warn.
    let log = env.build_ok(&ctx, &["--platform", "linux/arm64", "-t", "use:2"]);
    assert!(!log.contains("InvalidBaseImagePlatform"), "{log}");
}

#[test]
fn in_a_multi_platform_build_the_mismatched_platform_warns_once() {
    let env = Env::new();
    let ctx = arm_base(&env);
    let layout = env.path("layout");
    let log = env.build_ok(
        &ctx,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("type=oci,tar=false,dest={}", layout.display()),
        ],
    );
    assert_eq!(log.matches(WARNING).count(), 1, "{log}");
    assert_eq!(log.matches("InvalidBaseImagePlatform").count(), 1, "{log}");
    let top: Value = serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let index = blob(&layout, &top["manifests"][0]["digest"]);
    for entry in index["manifests"].as_array().unwrap() {
        let manifest = blob(&layout, &entry["digest"]);
        let config = blob(&layout, &manifest["config"]["digest"]);
        assert_eq!(config["architecture"], entry["platform"]["architecture"]);
    }
}
