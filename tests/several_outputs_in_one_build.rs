//! End to end: several `--output` flags in one build (buildx ≥ 0.13) each get exported from
//! the same build: a filesystem directory, a filesystem tar, OCI and docker archives, an OCI
//! layout directory, a named image in the store and a push, all of the one image.

mod common;
#[path = "../registry/tests/support/registry.rs"]
#[allow(dead_code)]
mod registry_support;

use common::{Env, have, tar_entries};
use registry_support::{Auth, Registry};

#[test]
fn every_output_of_one_build_is_exported() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY f /data/f\n"),
            ("f", "everywhere\n"),
        ],
    );
    let reg = (have("docker-registry") && have("skopeo")).then(|| Registry::start(Auth::None));
    let local = env.path("local");
    let rootfs = env.path("rootfs.tar");
    let oci = env.path("image.oci.tar");
    let docker = env.path("image.docker.tar");
    let layout = env.path("layout");
    let mut args = vec![
        "--output".to_string(),
        format!("type=local,dest={}", local.display()),
        "--output".into(),
        format!("type=tar,dest={}", rootfs.display()),
        "--output".into(),
        format!("type=oci,dest={}", oci.display()),
        "--output".into(),
        format!("type=docker,dest={},name=several:docker", docker.display()),
        "--output".into(),
        format!("type=oci,tar=false,dest={}", layout.display()),
        "--output".into(),
        "type=image,name=several:1".into(),
    ];
    let pushed = reg.as_ref().map(|r| format!("{}/several/app:1", r.host()));
    match &pushed {
        Some(name) => args.extend(["--output".into(), format!("type=registry,name={name}")]),
        None => eprintln!("SKIP (push part): docker-registry or skopeo is not installed"),
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.build_ok(&ctx, &args);

    let digest = env.inspect("several:1")["ManifestDigest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        env.inspect("several:docker")["ManifestDigest"].as_str(),
        Some(digest.as_str())
    );
    assert_eq!(
        std::fs::read_to_string(local.join("data/f")).unwrap(),
        "everywhere\n"
    );
    let files = tar_entries(std::fs::File::open(&rootfs).unwrap());
    assert!(
        files
            .iter()
            .any(|e| e.0 == "data/f" && e.5 == "everywhere\n")
    );
    for archive in [&oci, &docker] {
        let entries = tar_entries(std::fs::File::open(archive).unwrap());
        let index = &entries.iter().find(|e| e.0 == "index.json").unwrap().5;
        assert!(index.contains(&digest), "{}: {index}", archive.display());
    }
    let index = std::fs::read_to_string(layout.join("index.json")).unwrap();
    assert!(index.contains(&digest), "{index}");
    if let Some(name) = pushed {
        let out = env
            .skopeo()
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{name}"))
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(builder_store::Digest::of(&out.stdout).to_string(), digest);
    }
}
