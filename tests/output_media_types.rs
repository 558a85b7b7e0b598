//! End to end: `oci-mediatypes=false` on image, registry, docker and oci outputs writes Docker
//! schema2 media types (manifest, config, `...rootfs.diff.tar.gzip` layers) over the same
//! config and layer blobs; `oci-mediatypes=true` and the default (as current BuildKit, for
//! every exporter) write OCI types; zstd layers, which schema2 cannot name, are refused with
//! `oci-mediatypes=false` before building.

mod common;
#[path = "../registry/tests/support/registry.rs"]
#[allow(dead_code)]
mod registry_support;

use common::{Env, have, tar_entries};
use registry_support::{Auth, Registry};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn context(env: &Env) -> std::path::PathBuf {
    env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY a /a\nCOPY b /b\n"),
            ("a", "one"),
            ("b", "two"),
        ],
    )
}

/// (manifest, config, layers) media types of a manifest.
fn types(manifest: &serde_json::Value) -> (String, String, Vec<String>) {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    (
        s(&manifest["mediaType"]),
        s(&manifest["config"]["mediaType"]),
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| s(&l["mediaType"]))
            .collect(),
    )
}

fn docker_types() -> (String, String, Vec<String>) {
    (
        DOCKER_MANIFEST.into(),
        DOCKER_CONFIG.into(),
        vec![DOCKER_GZIP.into(); 2],
    )
}

fn oci_types() -> (String, String, Vec<String>) {
    (
        OCI_MANIFEST.into(),
        OCI_CONFIG.into(),
        vec![OCI_GZIP.into(); 2],
    )
}

fn skopeo_raw(env: &Env, transport: &str) -> serde_json::Value {
    let out = env
        .skopeo()
        .args(["inspect", "--raw", "--tls-verify=false", transport])
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {transport}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn pushed_images_take_docker_or_oci_media_types() {
    if !have("docker-registry") || !have("skopeo") {
        eprintln!("SKIP: docker-registry or skopeo is not installed");
        return;
    }
    let reg = Registry::start(Auth::None);
    let env = Env::new();
    let ctx = context(&env);
    let docker = format!("{}/mt/docker:1", reg.host());
    let oci = format!("{}/mt/oci:1", reg.host());
    let default = format!("{}/mt/default:1", reg.host());
    env.build_ok(
        &ctx,
        &[
            "--output",
            &format!("type=image,name={docker},push=true,oci-mediatypes=false"),
            "--output",
            &format!("type=registry,name={oci},oci-mediatypes=true"),
            "--output",
            &format!("type=registry,name={default}"),
        ],
    );
    let pushed_docker = skopeo_raw(&env, &format!("docker://{docker}"));
    assert_eq!(types(&pushed_docker), docker_types());
    assert_eq!(
        types(&skopeo_raw(&env, &format!("docker://{oci}"))),
        oci_types()
    );
    let pushed_default = skopeo_raw(&env, &format!("docker://{default}"));
    assert_eq!(types(&pushed_default), oci_types());
    // Same config and layers under either set of names: the image id does not change.
    assert_eq!(
        pushed_docker["config"]["digest"],
        pushed_default["config"]["digest"]
    );
    assert_eq!(
        pushed_docker["config"]["digest"],
        env.inspect(&docker)["Id"]
    );

    // A fresh store pulls the schema2 image and keeps its manifest digest.
    let other = Env::new();
    other.ok(&["pull", &docker]);
    assert_eq!(
        other.inspect(&docker)["ManifestDigest"],
        env.inspect(&docker)["ManifestDigest"]
    );
}

#[test]
fn archives_and_the_store_take_docker_media_types() {
    let env = Env::new();
    let ctx = context(&env);
    let archive = env.path("docker.tar");
    let dir = env.path("layout");
    env.build_ok(
        &ctx,
        &[
            "-t",
            "mt:1",
            "--output",
            "type=image,oci-mediatypes=false",
            "--output",
            &format!(
                "type=docker,dest={},oci-mediatypes=false",
                archive.display()
            ),
            "--output",
            &format!(
                "type=oci,tar=false,dest={},oci-mediatypes=false",
                dir.display()
            ),
        ],
    );
    // The store keeps the loading output's (type=image) manifest.
    assert_eq!(types(&env.inspect("mt:1")["Manifest"]), docker_types());

    let entries = tar_entries(std::fs::File::open(&archive).unwrap());
    let blob = |digest: &str| {
        let path = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
        let text = &entries.iter().find(|e| e.0 == path).unwrap().5;
        serde_json::from_str::<serde_json::Value>(text).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_str(&entries.iter().find(|e| e.0 == "index.json").unwrap().5).unwrap();
    assert_eq!(index["manifests"][0]["mediaType"], DOCKER_MANIFEST);
    let manifest = blob(index["manifests"][0]["digest"].as_str().unwrap());
    assert_eq!(types(&manifest), docker_types());
    if have("skopeo") {
        let info = skopeo_raw(&env, &format!("docker-archive:{}", archive.display()));
        assert_eq!(types(&info), docker_types());
    }
    // skopeo's oci: transport only resolves OCI-typed index entries, so the directory is
    // checked by hand.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["mediaType"], DOCKER_MANIFEST);
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(types(&manifest), docker_types());

    // Uncompressed layers have their own schema2 name.
    env.build_ok(
        &ctx,
        &[
            "--output",
            "type=image,name=mt:plain,oci-mediatypes=false,compression=uncompressed",
        ],
    );
    let (_, _, layers) = types(&env.inspect("mt:plain")["Manifest"]);
    assert_eq!(
        layers,
        vec!["application/vnd.docker.image.rootfs.diff.tar"; 2]
    );
}

#[test]
fn zstd_with_docker_media_types_is_refused() {
    let env = Env::new();
    let ctx = context(&env);
    for spec in [
        "type=image,name=z:1,oci-mediatypes=false,compression=zstd",
        "type=docker,dest=x.tar,oci-mediatypes=false,compression=zstd",
    ] {
        let out = env.build(&ctx, &["--output", spec]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{spec}: {stderr}");
        assert!(
            stderr.contains("compression=zstd conflicts with oci-mediatypes=false"),
            "{stderr}"
        );
        assert!(!stderr.contains("#1 "), "nothing runs: {stderr}");
    }
    // Another output's zstd is the build's layer compression: it conflicts too.
    let out = env.build(
        &ctx,
        &[
            "--output",
            "type=image,name=z:1,oci-mediatypes=false",
            "--output",
            "type=oci,dest=z.tar,compression=zstd",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}
