//! End to end: ports of BuildKit's image integration tests (moby/buildkit
//! frontend/dockerfile/dockerfile_image_test.go), each asserting what the Go test asserts;
//! images are read from builder's store (BuildKit's tests read containerd's).

mod common;

use common::{Env, read_text, tar_entries};

/// testPullScratch, its Dockerfile part: an image with no layers (a LABEL on scratch) used as a
/// base; the child has its one layer and both labels. (The rest of the Go test mounts that
/// image in raw LLB, which a Dockerfile cannot say.)
#[test]
fn pull_scratch() {
    let env = Env::new();
    let base = env.context("base", &[("Dockerfile", "FROM scratch\nLABEL foo=bar\n")]);
    env.build_ok(&base, &["-t", "docker.io/moby/testpullscratch:latest"]);
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM docker.io/moby/testpullscratch:latest\nLABEL bar=baz\nCOPY foo .\n",
            ),
            ("foo", "foo-contents"),
        ],
    );
    env.build_ok(&ctx, &["-t", "docker.io/moby/testpullscratch2:latest"]);
    let image = env.inspect("docker.io/moby/testpullscratch2:latest");
    assert_eq!(image["rootfs"]["type"], "layers");
    assert_eq!(image["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
    assert_eq!(image["config"]["Labels"]["foo"], "bar");
    assert_eq!(image["config"]["Labels"]["bar"], "baz");
}

/// Checks an OCI index naming one manifest twice, as `tag1` and `tag2`.
fn validate_index(index: &serde_json::Value) {
    let m = index["manifests"].as_array().unwrap();
    assert_eq!(m.len(), 2, "{index}");
    for key in ["digest", "platform", "mediaType", "size"] {
        assert_eq!(m[0][key], m[1][key], "{key}: {index}");
    }
    let ann = |i: usize, k: &str| m[i]["annotations"][k].clone();
    assert_eq!(
        ann(0, "io.containerd.image.name"),
        "docker.io/org/repo:tag1"
    );
    assert_eq!(
        ann(1, "io.containerd.image.name"),
        "docker.io/org/repo:tag2"
    );
    assert_eq!(ann(0, "org.opencontainers.image.ref.name"), "tag1");
    assert_eq!(ann(1, "org.opencontainers.image.ref.name"), "tag2");
}

/// testOCILayoutMultiname: an OCI output (directory and tar) with two names lists the manifest
/// once per name.
#[test]
fn oci_layout_multiname() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY <<EOF /foo\nhello\nEOF\n")],
    );
    let dir = env.path("layout");
    let output = format!(
        "type=oci,dest={},tar=false,\"name=org/repo:tag1,org/repo:tag2\"",
        dir.display()
    );
    env.build_ok(&ctx, &["--output", &output]);
    validate_index(&serde_json::from_str(&read_text(dir.join("index.json"))).unwrap());

    let archive = env.path("out.tar");
    let output = format!(
        "type=oci,dest={},\"name=org/repo:tag1,org/repo:tag2\"",
        archive.display()
    );
    env.build_ok(&ctx, &["--output", &output]);
    let index = tar_entries(std::fs::File::open(&archive).unwrap())
        .into_iter()
        .find(|e| e.0.trim_start_matches("./") == "index.json")
        .expect("index.json in the archive");
    validate_index(&serde_json::from_str(&index.5).unwrap());
}

/// testMultiNilRefsOCIExporter: `FROM scratch` (no layers) for two platforms, as an OCI tar: one
/// entry in index.json, an image index holding both platforms' manifests.
#[test]
fn multi_nil_refs_oci_exporter() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM scratch")]);
    let archive = env.path("out.tar");
    let output = format!("type=oci,dest={}", archive.display());
    env.build_ok(
        &ctx,
        &["--platform", "linux/arm64,linux/amd64", "--output", &output],
    );
    let entries = tar_entries(std::fs::File::open(&archive).unwrap());
    let file = |name: &str| -> serde_json::Value {
        let e = entries
            .iter()
            .find(|e| e.0.trim_start_matches("./") == name)
            .unwrap_or_else(|| panic!("{name} not in the archive"));
        serde_json::from_str(&e.5).unwrap()
    };
    let index = file("index.json");
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    let list_hex = manifests[0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let list = file(&format!("blobs/sha256/{list_hex}"));
    assert_eq!(list["manifests"].as_array().unwrap().len(), 2, "{list}");
}

/// testDockerfileScratchConfig: a scratch image with only an ENV has an OS, an architecture, a
/// working directory, no layers, one empty-layer history entry for the ENV, and PATH set.
#[test]
fn dockerfile_scratch_config() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "\nFROM scratch\nENV foo=bar\n")]);
    env.build_ok(&ctx, &["-t", "example.com/moby/dockerfilescratch:test"]);
    let image = env.inspect("example.com/moby/dockerfilescratch:test");
    assert_ne!(image["os"].as_str().unwrap_or(""), "");
    assert_ne!(image["architecture"].as_str().unwrap_or(""), "");
    assert_ne!(image["config"]["WorkingDir"].as_str().unwrap_or(""), "");
    assert_eq!(image["rootfs"]["type"], "layers");
    assert_eq!(
        image["rootfs"]["diff_ids"].as_array().map_or(0, Vec::len),
        0
    );
    let history = image["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{image}");
    assert!(
        history[0]["created_by"]
            .as_str()
            .unwrap()
            .contains("ENV foo=bar")
    );
    assert_eq!(history[0]["empty_layer"], true);
    let vars = image["config"]["Env"].as_array().unwrap();
    assert!(vars.contains(&serde_json::json!("foo=bar")));
    assert!(
        vars.iter()
            .any(|v| v.as_str().unwrap().starts_with("PATH="))
    );
}
