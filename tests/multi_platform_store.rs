//! An image index in the store (issue #18): `--platform a,b -t NAME` without a push keeps the
//! index under the name, as docker's containerd image store does; `images` lists it once with
//! its platforms, `inspect` shows it (or one platform's image with `--platform`), `run` and a
//! later `FROM NAME` take the platform's image, `save` follows docker's rules, `push` sends
//! every manifest then the index, and prune keeps everything it references.

mod common;
#[path = "../registry/tests/support/registry.rs"]
#[allow(dead_code)]
mod registry_support;

use std::fs;
use std::path::{Path, PathBuf};

use common::{Env, busybox_path, have};
use registry_support::{Auth, Registry};
use serde_json::Value;

const BOTH: &str = "linux/amd64,linux/arm64";

/// The arm64 busybox when CI provides one (runs under qemu), else None.
fn arm64_busybox() -> Option<PathBuf> {
    std::env::var_os("BUILDER_TEST_ARM64_BUSYBOX").map(PathBuf::from)
}

/// Each platform gets its own busybox binary and a text file naming its architecture; no RUN
/// step, so no emulator is needed to build.
fn context(env: &Env) -> PathBuf {
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch\nARG TARGETARCH\nCOPY busybox-${TARGETARCH} /bin/busybox\n\
                 COPY app-${TARGETARCH}.txt /app.txt\nCMD [\"/bin/busybox\", \"cat\", \"/app.txt\"]\n",
            ),
            ("app-amd64.txt", "amd64 app\n"),
            ("app-arm64.txt", "arm64 app\n"),
        ],
    );
    fs::copy(busybox_path(), ctx.join("busybox-amd64")).unwrap();
    // Without the real arm64 binary, the amd64 one stands in: only the files are compared.
    let arm = arm64_busybox().unwrap_or_else(busybox_path);
    fs::copy(arm, ctx.join("busybox-arm64")).unwrap();
    ctx
}

fn stdout_of(env: &Env, args: &[&str]) -> (bool, String, String) {
    let out = env.run(args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn inspect(env: &Env, args: &[&str]) -> Value {
    let mut all = vec!["inspect"];
    all.extend(args);
    let out = env.ok(&all);
    serde_json::from_str::<Value>(&out).unwrap()[0].clone()
}

#[test]
fn the_store_keeps_an_index_under_the_tag() {
    let env = Env::new();
    let ctx = context(&env);
    env.build_ok(&ctx, &["--platform", BOTH, "-t", "app:multi"]);

    // One row, with its platforms; the platforms' images are not left as <none> rows.
    let table = env.ok(&["images"]);
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{table}");
    assert!(
        rows[0].contains("app") && rows[0].contains("(linux/amd64, linux/arm64)"),
        "{table}"
    );
    let json = env.ok(&["images", "--format", "json"]);
    let row: Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(
        row["Platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );

    // inspect: the index; with --platform, that platform's image.
    let index = inspect(&env, &["app:multi"]);
    assert_eq!(
        index["MediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        index["Platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    assert_eq!(index["Id"], index["ManifestDigest"]);
    for arch in ["amd64", "arm64"] {
        let image = inspect(&env, &["--platform", &format!("linux/{arch}"), "app:multi"]);
        assert_eq!(image["architecture"], arch, "{image}");
    }
    let (ok, _, err) = stdout_of(&env, &["inspect", "--platform", "linux/s390x", "app:multi"]);
    assert!(
        !ok && err.contains("no linux/s390x image") && err.contains("linux/arm64"),
        "{err}"
    );

    // A single-platform image asked for by another platform is refused, as docker does.
    env.build_ok(&ctx, &["--platform", "linux/arm64", "-t", "app:arm"]);
    let (ok, _, err) = stdout_of(&env, &["inspect", "--platform", "linux/amd64", "app:arm"]);
    assert!(!ok && err.contains("is linux/arm64"), "{err}");
    let image = inspect(&env, &["--platform", "linux/arm64", "app:arm"]);
    assert_eq!(image["architecture"], "arm64");

    // run: the host's image by default.
    let out = env.ok(&["run", "app:multi"]);
    assert_eq!(out, "amd64 app\n");

    // A later FROM picks the target platform's image from the index.
    let use_ctx = env.context("use", &[("Dockerfile", "FROM app:multi\nLABEL used=yes\n")]);
    let local = env.path("from");
    env.build_ok(
        &use_ctx,
        &[
            "--platform",
            "linux/arm64",
            "-o",
            &format!("type=local,dest={}", local.display()),
        ],
    );
    assert_eq!(
        fs::read_to_string(local.join("app.txt")).unwrap(),
        "arm64 app\n"
    );

    // Prune keeps every manifest and blob the index references.
    env.ok(&["prune", "--all", "-f"]);
    env.ok(&["cache", "verify"]);
    for arch in ["amd64", "arm64"] {
        let out = env.ok(&[
            "run",
            "--platform",
            &format!("linux/{arch}"),
            "app:multi",
            "/bin/busybox",
            "cat",
            "/app.txt",
        ]);
        if arch == "amd64" || arm64_busybox().is_some() {
            assert_eq!(out, format!("{arch} app\n"));
        }
    }
}

/// `builder run --platform linux/arm64` runs the arm64 image under qemu (the flag's test).
#[test]
fn run_picks_a_foreign_platform_under_emulation() {
    if arm64_busybox().is_none() || !Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists() {
        eprintln!("SKIP: BUILDER_TEST_ARM64_BUSYBOX is not set or no qemu-aarch64 handler");
        return;
    }
    let env = Env::new();
    let ctx = context(&env);
    env.build_ok(&ctx, &["--platform", BOTH, "-t", "app:multi"]);
    let out = env.ok(&[
        "run",
        "--platform",
        "linux/arm64",
        "app:multi",
        "/bin/busybox",
        "uname",
        "-m",
    ]);
    assert_eq!(out, "aarch64\n");
    let out = env.ok(&["run", "app:multi", "/bin/busybox", "uname", "-m"]);
    assert_eq!(out, "x86_64\n");
}

/// `builder save --platform` picks one platform's image of an index (the flag's test).
#[test]
fn save_of_an_index_needs_a_platform_for_a_docker_archive() {
    let env = Env::new();
    let ctx = context(&env);
    env.build_ok(&ctx, &["--platform", BOTH, "-t", "app:multi"]);
    let tar = env.path("app.tar");
    let out = env.run(&["save", "-o", tar.to_str().unwrap(), "app:multi"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("image index") && err.contains("--platform"),
        "{err}"
    );
    assert!(!tar.exists());

    env.ok(&[
        "save",
        "--platform",
        "linux/arm64",
        "-o",
        tar.to_str().unwrap(),
        "app:multi",
    ]);
    let manifest = tar_member(&tar, "manifest.json");
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    let config = tar_member(&tar, manifest[0]["Config"].as_str().unwrap());
    let config: Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["architecture"], "arm64");

    // An OCI archive carries the whole index.
    let oci = env.path("app-oci.tar");
    env.ok(&[
        "save",
        "--format",
        "oci",
        "-o",
        oci.to_str().unwrap(),
        "app:multi",
    ]);
    let top: Value = serde_json::from_slice(&tar_member(&oci, "index.json")).unwrap();
    let digest = top["manifests"][0]["digest"].as_str().unwrap();
    let blob = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    let index: Value = serde_json::from_slice(&tar_member(&oci, &blob)).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
}

fn tar_member(tar: &Path, name: &str) -> Vec<u8> {
    let out = std::process::Command::new("tar")
        .arg("-xOf")
        .arg(tar)
        .arg(name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn push_sends_the_index_and_pull_picks_a_platform() {
    if !have("docker-registry") || !have("skopeo") {
        eprintln!("SKIP: docker-registry or skopeo is not installed");
        return;
    }
    let reg = Registry::start(Auth::None);
    let env = Env::new();
    let ctx = context(&env);
    let name = format!("127.0.0.1:{}/app:multi", reg.port);
    env.build_ok(&ctx, &["--platform", BOTH, "-t", &name]);
    env.ok(&["push", &name]);
    let index: Value = env.raw_manifest(&name);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");

    let fresh = Env::new();
    fresh.ok(&["pull", "--platform", "linux/arm64", &name]);
    let image = fresh.inspect(&name);
    assert_eq!(image["architecture"], "arm64", "{image}");
}
