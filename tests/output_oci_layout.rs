//! End to end: `--output type=oci,tar=false,dest=DIR` (and `type=docker,tar=false`) writes an
//! OCI image layout directory that umoci and skopeo read; `name=` on `type=oci` annotates the
//! index.json entry as BuildKit does (`io.containerd.image.name` = the full name,
//! `org.opencontainers.image.ref.name` = its tag; an unnamed directory export is tagged
//! `latest`); `name=` on `type=docker,dest=` puts the names in manifest.json's RepoTags.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Env, have, tar_entries};

fn context(env: &Env) -> std::path::PathBuf {
    env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY f /data/f\n"),
            ("f", "in the layout\n"),
        ],
    )
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Unpacks `image` (`DIR:TAG`) with umoci and returns the rootfs.
fn umoci_unpack(env: &Env, image: &str, bundle: &str) -> std::path::PathBuf {
    let bundle = env.path(bundle);
    let out = Command::new("umoci")
        .args(["unpack", "--rootless", "--image", image])
        .arg(&bundle)
        .output()
        .expect("run umoci");
    assert!(
        out.status.success(),
        "umoci unpack {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bundle.join("rootfs")
}

fn skopeo_inspect(env: &Env, transport: &str) -> serde_json::Value {
    let out = env
        .skopeo()
        .args(["inspect", "--raw", transport])
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
fn oci_tar_false_writes_a_layout_directory_tools_read() {
    if !have("umoci") || !have("skopeo") {
        eprintln!("SKIP: umoci or skopeo is not installed");
        return;
    }
    let env = Env::new();
    let ctx = context(&env);
    let dir = env.path("layout");
    env.build_ok(
        &ctx,
        &[
            "-t",
            "layout:1",
            "--output",
            &format!("type=oci,tar=false,dest={}", dir.display()),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index = json(&dir.join("index.json"));
    let entry = &index["manifests"][0];
    assert_eq!(entry["digest"], env.inspect("layout:1")["ManifestDigest"]);
    assert_eq!(
        entry["annotations"]["io.containerd.image.name"],
        "docker.io/library/layout:1"
    );
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "1"
    );
    let rootfs = umoci_unpack(&env, &format!("{}:1", dir.display()), "bundle");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("data/f")).unwrap(),
        "in the layout\n"
    );
    let manifest = skopeo_inspect(&env, &format!("oci:{}:1", dir.display()));
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );

    // Without any name the entry is tagged latest, as BuildKit's client tags it.
    let bare = env.path("bare");
    env.build_ok(
        &ctx,
        &[
            "--output",
            &format!("type=oci,tar=false,dest={}", bare.display()),
        ],
    );
    let index = json(&bare.join("index.json"));
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    assert!(index["manifests"][0]["annotations"]["io.containerd.image.name"].is_null());
    umoci_unpack(&env, &format!("{}:latest", bare.display()), "bare-bundle");

    // type=docker,tar=false: the same directory form.
    let docker_dir = env.path("docker-dir");
    env.build_ok(
        &ctx,
        &[
            "--output",
            &format!(
                "type=docker,tar=false,name=localhost:5000/d:2,dest={}",
                docker_dir.display()
            ),
        ],
    );
    skopeo_inspect(&env, &format!("oci:{}:2", docker_dir.display()));
}

#[test]
fn oci_name_annotates_the_index_and_docker_name_sets_repo_tags() {
    let env = Env::new();
    let ctx = context(&env);
    let oci = env.path("named.oci.tar");
    env.build_ok(
        &ctx,
        &[
            "--output",
            &format!("type=oci,dest={},name=localhost:5000/app:7", oci.display()),
        ],
    );
    let entries = tar_entries(std::fs::File::open(&oci).unwrap());
    let index = &entries.iter().find(|e| e.0 == "index.json").unwrap().5;
    let index: serde_json::Value = serde_json::from_str(index).unwrap();
    let annotations = &index["manifests"][0]["annotations"];
    assert_eq!(
        annotations["io.containerd.image.name"],
        "localhost:5000/app:7"
    );
    assert_eq!(annotations["org.opencontainers.image.ref.name"], "7");
    assert!(
        entries.iter().all(|e| e.0 != "manifest.json"),
        "an OCI archive has no docker manifest.json"
    );

    let docker = env.path("named.docker.tar");
    env.build_ok(
        &ctx,
        &[
            "--output",
            &format!(
                "type=docker,dest={},\"name=app:3,localhost:5000/other:4\"",
                docker.display()
            ),
        ],
    );
    let entries = tar_entries(std::fs::File::open(&docker).unwrap());
    let manifest = &entries.iter().find(|e| e.0 == "manifest.json").unwrap().5;
    let manifest: serde_json::Value = serde_json::from_str(manifest).unwrap();
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["app:3", "localhost:5000/other:4"])
    );
}

#[test]
fn a_directory_output_needs_a_directory() {
    let env = Env::new();
    let ctx = context(&env);
    let file = env.path("a-file");
    std::fs::write(&file, "x").unwrap();
    let cases = [
        ("type=oci,tar=false".to_string(), "needs dest"),
        ("type=oci,tar=false,dest=-".to_string(), "not a stream"),
        ("type=oci,tar=maybe,dest=x".to_string(), "not a boolean"),
    ];
    for (spec, says) in &cases {
        let out = env.build(&ctx, &["--output", spec]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{spec}: {stderr}");
        assert!(stderr.contains(says), "{spec} should say {says}: {stderr}");
    }
    let out = env.build(
        &ctx,
        &[
            "--output",
            &format!("type=oci,tar=false,dest={}", file.display()),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a directory"), "{stderr}");
    assert!(!stderr.contains("#1 "), "nothing runs: {stderr}");
    let out = env.build(
        &ctx,
        &[
            "--output",
            &format!("type=oci,dest={}", env.path("").display()),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is a directory"), "{stderr}");
}
