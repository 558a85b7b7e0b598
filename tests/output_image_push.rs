//! End to end against a real registry: `--output type=image,name=A,B,push=true` pushes the
//! image to every name, `type=registry` is the same with push implied, `push-by-digest=true`
//! pushes the manifest with no tag and reports its digest (stderr and --metadata-file),
//! `name-canonical=true` also names the image `NAME@DIGEST` in the store, and what has no
//! meaning here (`unpack=true`, a push to a name without a registry, a push without a name)
//! is refused before anything runs.

mod common;
#[path = "../registry/tests/support/registry.rs"]
#[allow(dead_code)]
mod registry_support;

use common::{Env, have};
use registry_support::{Auth, Registry};

fn registry() -> Option<Registry> {
    if !have("docker-registry") || !have("skopeo") {
        eprintln!("SKIP: docker-registry or skopeo is not installed");
        return None;
    }
    Some(Registry::start(Auth::None))
}

fn context(env: &Env) -> std::path::PathBuf {
    env.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", "pushed")],
    )
}

/// `skopeo inspect --raw docker://REF`: the manifest the registry serves, or `None` when it
/// has none under that reference.
fn remote_manifest(env: &Env, reference: &str) -> Option<Vec<u8>> {
    let out = env
        .skopeo()
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ])
        .output()
        .expect("run skopeo");
    out.status.success().then_some(out.stdout)
}

fn sha256(bytes: &[u8]) -> String {
    builder_store::Digest::of(bytes).to_string()
}

/// The image a pushed reference serves: as buildx with a docker-container builder, a push
/// carries `mode=min` provenance by default, so the reference names an index of the image and
/// its attestation manifest. Returns the image manifest's bytes.
fn pushed_image(env: &Env, reference: &str) -> Vec<u8> {
    let top = remote_manifest(env, reference).unwrap_or_else(|| panic!("{reference} pushed"));
    let index: serde_json::Value = serde_json::from_slice(&top).unwrap();
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{reference}: an index with the default provenance"
    );
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2, "{index}");
    assert_eq!(
        manifests[1]["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    let repo = reference.rsplit_once(':').unwrap().0;
    let digest = manifests[0]["digest"].as_str().unwrap();
    remote_manifest(env, &format!("{repo}@{digest}")).expect("the image manifest")
}

#[test]
fn image_output_pushes_to_every_name() {
    let Some(reg) = registry() else { return };
    let env = Env::new();
    let ctx = context(&env);
    let one = format!("{}/out/one:1", reg.host());
    let two = format!("{}/out/two:1", reg.host());
    env.build_ok(
        &ctx,
        &[
            "--output",
            &format!("type=image,\"name={one},{two}\",push=true"),
        ],
    );
    let stored = env.inspect(&one)["ManifestDigest"]
        .as_str()
        .unwrap()
        .to_string();
    for name in [&one, &two] {
        let manifest = pushed_image(&env, name);
        assert_eq!(sha256(&manifest), stored, "{name} is the stored image");
    }

    // type=registry: push implied; -t names are pushed along with name=.
    let three = format!("{}/out/three:1", reg.host());
    let four = format!("{}/out/four:1", reg.host());
    env.build_ok(
        &ctx,
        &[
            "-t",
            &four,
            "--output",
            &format!("type=registry,name={three}"),
        ],
    );
    assert!(remote_manifest(&env, &three).is_some());
    assert!(remote_manifest(&env, &four).is_some());

    // The layer compression keys work on a pushed image too.
    let zstd = format!("{}/out/zstd:1", reg.host());
    env.build_ok(
        &ctx,
        &[
            "--output",
            &format!("type=registry,name={zstd},compression=zstd,compression-level=5,force-compression=true"),
        ],
    );
    let manifest: serde_json::Value = serde_json::from_slice(&pushed_image(&env, &zstd)).unwrap();
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );

    // push=false said outright stores the image and pushes nothing.
    let five = format!("{}/out/five:1", reg.host());
    env.build_ok(
        &ctx,
        &["--output", &format!("type=image,name={five},push=false")],
    );
    assert!(env.inspect(&five)["Id"].is_string());
    assert!(remote_manifest(&env, &five).is_none());
}

#[test]
fn push_by_digest_pushes_no_tag_and_reports_the_digest() {
    let Some(reg) = registry() else { return };
    let env = Env::new();
    let ctx = context(&env);
    let name = format!("{}/out/bydigest:1", reg.host());
    let meta = env.path("meta.json");
    let log = env.build_ok(
        &ctx,
        &[
            "--metadata-file",
            meta.to_str().unwrap(),
            "--output",
            &format!("type=image,name={name},push=true,push-by-digest=true"),
        ],
    );
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let digest = meta["containerimage.digest"].as_str().unwrap().to_string();
    assert_eq!(meta["image.name"], name.as_str());
    let by_digest = format!("{}/out/bydigest@{digest}", reg.host());
    assert!(log.contains(&format!("pushed {by_digest}")), "{log}");
    let manifest = remote_manifest(&env, &by_digest).expect("pushed by digest");
    assert_eq!(sha256(&manifest), digest);
    assert!(
        remote_manifest(&env, &name).is_none(),
        "push-by-digest must not push the tag"
    );
    assert_eq!(
        meta["containerimage.pushed"][0].as_str(),
        Some(by_digest.as_str())
    );
}

#[test]
fn name_canonical_also_names_the_image_by_digest() {
    let env = Env::new();
    let ctx = context(&env);
    env.build_ok(
        &ctx,
        &["--output", "type=image,name=canon:1,name-canonical=true"],
    );
    let digest = env.inspect("canon:1")["ManifestDigest"]
        .as_str()
        .unwrap()
        .to_string();
    let canonical = format!("canon:1@{digest}");
    assert_eq!(
        env.inspect(&canonical)["ManifestDigest"].as_str(),
        Some(digest.as_str())
    );
    // unpack=false is what happens anyway.
    env.build_ok(&ctx, &["--output", "type=image,name=canon:2,unpack=false"]);
}

#[test]
fn pushes_that_cannot_work_and_unpack_are_refused_before_building() {
    let env = Env::new();
    let ctx = context(&env);
    let cases: &[(&[&str], &str)] = &[
        (
            &["--output", "type=image,name=app:1,push=true"],
            "names no registry",
        ),
        (&["--output", "type=registry,name=user/app:1"], "Docker Hub"),
        (
            &[
                "-t",
                "app:1",
                "--output",
                "type=registry,name=localhost:5000/a:1",
            ],
            "-t app:1",
        ),
        (&["--output", "type=registry"], "tag is needed"),
        (&["--push", "-t", "app:1"], "names no registry"),
        (
            &["--output", "type=image,name=localhost:5000/a:1,unpack=true"],
            "unpack",
        ),
        (
            &[
                "--output",
                "type=image,name=localhost:5000/a:1,push-by-digest=true",
            ],
            "push-by-digest",
        ),
        (
            &[
                "--output",
                "type=registry,name=localhost:5000/a:1,push=false",
            ],
            "always pushes",
        ),
    ];
    for (args, says) in cases {
        let out = env.build(&ctx, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(says),
            "{args:?} should say {says}: {stderr}"
        );
        assert!(!stderr.contains("#1 "), "nothing runs: {stderr}");
    }
}
