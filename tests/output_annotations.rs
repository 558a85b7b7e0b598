//! End to end: `--annotation [TYPES:]KEY=VALUE` and the output keys `annotation.KEY`,
//! `annotation-manifest.KEY`, `annotation-manifest-descriptor.KEY` put annotations where
//! BuildKit puts them for a single-platform image: on the manifest (the default place; pushed,
//! stored and exported) or on its descriptor in an OCI layout's index.json. Index annotations
//! (there is no index), descriptor annotations where no index.json is written, annotations
//! for another platform and non-manifest ones with `oci-mediatypes=false` are refused before
//! building, as BuildKit refuses them.

mod common;
#[path = "../registry/tests/support/registry.rs"]
#[allow(dead_code)]
mod registry_support;

use common::{Env, have};
use registry_support::{Auth, Registry};

fn context(env: &Env) -> std::path::PathBuf {
    env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY f /f\n"),
            ("f", "annotated"),
        ],
    )
}

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn annotations_land_on_the_manifest_or_its_descriptor() {
    let env = Env::new();
    let ctx = context(&env);
    let dir = env.path("layout");
    env.build_ok(
        &ctx,
        &[
            "-t",
            "ann:1",
            "--platform",
            "linux/amd64",
            "--annotation",
            "org.example.flag=a",
            "--annotation",
            "manifest[linux/amd64]:org.example.typed=b",
            "--annotation",
            "manifest-descriptor:org.example.flag-desc=d",
            "--output",
            &format!(
                "type=oci,tar=false,dest={},annotation.org.example.key=c,annotation-manifest-descriptor.org.example.key-desc=e,annotation-manifest.org.opencontainers.image.title=T",
                dir.display()
            ),
        ],
    );
    let index = json(&dir.join("index.json"));
    let entry = &index["manifests"][0];
    let desc = &entry["annotations"];
    assert_eq!(desc["org.example.flag-desc"], "d");
    assert_eq!(desc["org.example.key-desc"], "e");
    assert_eq!(desc["org.opencontainers.image.ref.name"], "1");
    assert!(desc["org.example.flag"].is_null(), "{desc}");
    let digest = entry["digest"].as_str().unwrap();
    let manifest = json(
        &dir.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    );
    assert_eq!(
        manifest["annotations"],
        serde_json::json!({
            "org.example.flag": "a",
            "org.example.typed": "b",
            "org.example.key": "c",
            "org.opencontainers.image.title": "T",
        })
    );
    // The store keeps the --annotation manifest annotations (not the output's own, nor
    // descriptor ones, which have no place in it).
    let stored = env.inspect("ann:1");
    assert_eq!(
        stored["Manifest"]["annotations"],
        serde_json::json!({"org.example.flag": "a", "org.example.typed": "b"})
    );
    // Same config and layers: annotations change the manifest, not the image.
    assert_eq!(stored["Manifest"]["config"], manifest["config"]);

    // manifest annotations go with oci-mediatypes=false too, as BuildKit writes them.
    env.build_ok(
        &ctx,
        &[
            "--output",
            "type=image,name=ann:docker,oci-mediatypes=false,annotation.org.example.k=v",
        ],
    );
    let stored = env.inspect("ann:docker");
    assert_eq!(
        stored["Manifest"]["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(stored["Manifest"]["annotations"]["org.example.k"], "v");
}

#[test]
fn pushed_manifests_carry_their_annotations() {
    if !have("docker-registry") || !have("skopeo") {
        eprintln!("SKIP: docker-registry or skopeo is not installed");
        return;
    }
    let reg = Registry::start(Auth::None);
    let env = Env::new();
    let ctx = context(&env);
    let name = format!("{}/ann/pushed:1", reg.host());
    let flag = format!("{}/ann/flag:1", reg.host());
    // The image manifest is what is read back: no provenance index around it.
    env.build_ok(
        &ctx,
        &[
            "--provenance=false",
            "--output",
            &format!(
                "type=registry,name={name},annotation.org.opencontainers.image.source=https://example.com/src"
            ),
        ],
    );
    env.build_ok(
        &ctx,
        &[
            "--provenance=false",
            "--push",
            "-t",
            &flag,
            "--annotation",
            "org.example.pushed=yes",
        ],
    );
    for (reference, key, value) in [
        (
            &name,
            "org.opencontainers.image.source",
            "https://example.com/src",
        ),
        (&flag, "org.example.pushed", "yes"),
    ] {
        let out = env
            .skopeo()
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{reference}"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(manifest["annotations"][key], value, "{reference}");
    }
}

#[test]
fn annotations_with_no_place_are_refused_before_building() {
    let env = Env::new();
    let ctx = context(&env);
    let tar = env.path("x.tar");
    let tar = tar.to_str().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--annotation".into(), "index:org.example.k=v".into()],
            "index annotations",
        ),
        (
            vec![
                "--annotation".into(),
                "index-descriptor:org.example.k=v".into(),
            ],
            "index annotations",
        ),
        (
            vec![
                "--output".into(),
                "type=image,name=a:1,annotation-index.org.example.k=v".into(),
            ],
            "index annotations",
        ),
        (
            vec![
                "--annotation".into(),
                "manifest-descriptor:org.example.k=v".into(),
                "-t".into(),
                "a:1".into(),
            ],
            "no descriptor",
        ),
        (
            vec![
                "--output".into(),
                format!(
                    "type=docker,dest={tar},oci-mediatypes=false,annotation-manifest-descriptor.k=v"
                ),
            ],
            "oci-mediatypes=false",
        ),
        (
            vec![
                "--platform".into(),
                "linux/amd64".into(),
                "--annotation".into(),
                "manifest[linux/arm64]:org.example.k=v".into(),
            ],
            "no linux/arm64 image",
        ),
        (
            vec!["--annotation".into(), "bogus:org.example.k=v".into()],
            "unknown annotation type",
        ),
        (
            vec!["--annotation".into(), "org.example.k".into()],
            "KEY=VALUE",
        ),
        (
            vec![
                "--output".into(),
                format!("type=oci,dest={tar},annotation-manifests.k=v"),
            ],
            "annotation-manifests.k",
        ),
    ];
    for (args, says) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = env.build(&ctx, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(says),
            "{args:?} should say {says}: {stderr}"
        );
        assert!(!stderr.contains("#1 "), "nothing runs: {stderr}");
    }
    assert!(!std::path::Path::new(tar).exists());
}
