//! `--platform` names (issue #18): docker's and containerd's aliases (`aarch64`, `x86_64`,
//! `armhf`, a bare `arm64`, `arm64/v8`) name one platform, written the way containerd's
//! `Normalize` writes it; comma lists and repeated flags combine, duplicates dropped.

mod common;

use std::fs;
use std::path::Path;

use common::Env;
use serde_json::Value;

const LABELS: &str = "FROM scratch\n\
ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM\n\
LABEL target=$TARGETPLATFORM arch=$TARGETARCH variant=\"$TARGETVARIANT\" build=$BUILDPLATFORM\n";

fn blob(dir: &Path, digest: &Value) -> Value {
    let d = digest.as_str().unwrap().trim_start_matches("sha256:");
    serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(d)).unwrap()).unwrap()
}

/// The index's platforms, and each image's config labels, from an OCI layout.
fn layout_platforms(dir: &Path) -> Vec<(String, Value)> {
    let top: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let index = blob(dir, &top["manifests"][0]["digest"]);
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut name = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(v) = p["variant"].as_str() {
                name = format!("{name}/{v}");
            }
            let manifest = blob(dir, &m["digest"]);
            let config = blob(dir, &manifest["config"]["digest"]);
            (name, config)
        })
        .collect()
}

/// The host in Go's names, as BUILDPLATFORM gives it.
fn host() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "linux/arm64",
        _ => "linux/amd64",
    }
}

#[test]
fn aliases_name_one_platform_in_containerd_spelling() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", LABELS)]);
    let layout = env.path("layout");
    // Repeated and comma-listed; `aarch64`, `linux/arm64/v8` and `arm64` are one platform,
    // `x86_64` is amd64, `armhf` is arm/v7, `linux/arm/6` is arm/v6.
    env.build_ok(
        &ctx,
        &[
            "--platform",
            "aarch64,linux/x86_64",
            "--platform",
            "linux/arm64/v8",
            "--platform",
            "arm64, linux/armhf,linux/arm/6",
            "--platform",
            "amd64",
            "-o",
            &format!("type=oci,tar=false,dest={}", layout.display()),
        ],
    );
    let got = layout_platforms(&layout);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["linux/arm64", "linux/amd64", "linux/arm/v7", "linux/arm/v6"]
    );
    for (name, config) in &got {
        let labels = &config["config"]["Labels"];
        assert_eq!(labels["target"], name.as_str(), "{config}");
        let mut parts = name.split('/').skip(1);
        assert_eq!(labels["arch"], parts.next().unwrap());
        assert_eq!(labels["variant"], parts.next().unwrap_or(""));
        assert_eq!(config["architecture"], labels["arch"]);
        match name.split('/').nth(2) {
            Some(v) => assert_eq!(config["variant"], v, "{config}"),
            None => assert!(config.get("variant").is_none(), "{config}"),
        }
        assert_eq!(labels["build"], host(), "BUILDPLATFORM is the host");
    }
}

#[test]
fn one_platform_spelled_as_an_alias_is_that_platform() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", LABELS)]);
    env.build_ok(&ctx, &["--platform", "linux/aarch64", "-t", "one:1"]);
    let out = env.cmd().args(["inspect", "one:1"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"target\": \"linux/arm64\""), "{text}");
    assert!(text.contains("\"architecture\": \"arm64\""), "{text}");
    assert!(!text.contains("v8"), "arm64's v8 is dropped: {text}");

    let bad = env.build(&ctx, &["--platform", "linux/amd64,nonsense"]);
    assert_eq!(bad.status.code(), Some(2));
    let log = String::from_utf8_lossy(&bad.stderr);
    assert!(
        log.contains("--platform") && log.contains("\"nonsense\""),
        "{log}"
    );
}
