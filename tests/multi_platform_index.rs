//! `--platform a,b` (issue #18): one image per platform in an OCI image index, pushed or
//! exported; a stage that runs on the build platform (`FROM --platform=$BUILDPLATFORM`) runs
//! once; what cannot hold an index is refused by name.

mod common;
#[path = "../registry/tests/support/registry.rs"]
#[allow(dead_code)]
mod registry_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Env, busybox_path, have};
use registry_support::{Auth, Registry};
use serde_json::Value;

/// A cross-compile shape: the build stage runs on the build platform and writes a file for
/// the target; the final stage is per platform and needs no RUN (no emulator needed).
const CROSS: &str = "FROM --platform=$BUILDPLATFORM scratch AS build\n\
COPY busybox /bin/busybox\n\
RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox uname -m > /built-on\"]\n\
FROM scratch\n\
ARG TARGETARCH\n\
COPY --from=build /built-on /\n\
COPY app-${TARGETARCH}.txt /app.txt\n";

fn context(env: &Env) -> PathBuf {
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", CROSS),
            ("app-amd64.txt", "amd64 app\n"),
            ("app-arm64.txt", "arm64 app\n"),
        ],
    );
    fs::copy(busybox_path(), ctx.join("busybox")).unwrap();
    ctx
}

const BOTH: &str = "linux/amd64,linux/arm64";

fn index_of_layout(dir: &Path) -> Value {
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = dir
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    serde_json::from_slice(&fs::read(blob).unwrap()).unwrap()
}

fn blob(dir: &Path, digest: &Value) -> Value {
    let d = digest.as_str().unwrap().trim_start_matches("sha256:");
    serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(d)).unwrap()).unwrap()
}

#[test]
fn two_platforms_make_one_index_and_the_build_stage_runs_once() {
    let env = Env::new();
    let ctx = context(&env);
    let layout = env.path("layout");
    let dest = format!("type=oci,tar=false,dest={}", layout.display());
    let log = env.build_ok(&ctx, &["--platform", BOTH, "-o", &dest, "-t", "app:multi"]);
    let run_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("build 2/2] RUN"))
        .collect();
    assert_eq!(run_lines.len(), 2, "{log}");
    assert!(run_lines[0].contains("[linux/amd64 build 2/2]"), "{log}");
    assert!(
        log.lines()
            .zip(log.lines().skip(1))
            .any(|(a, b)| a.contains("[linux/arm64 build 2/2] RUN") && b.ends_with("CACHED")),
        "the build-platform stage ran once: {log}"
    );

    let index = index_of_layout(&layout);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let entries = index["manifests"].as_array().unwrap();
    let platforms: Vec<String> = entries
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    for entry in entries {
        let manifest = blob(&layout, &entry["digest"]);
        let config = blob(&layout, &manifest["config"]["digest"]);
        assert_eq!(config["architecture"], entry["platform"]["architecture"]);
    }

    // One directory per platform with type=local, as BuildKit.
    let out = env.path("local");
    env.build_ok(
        &ctx,
        &[
            "--platform",
            BOTH,
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
    );
    for (arch, app) in [("amd64", "amd64 app\n"), ("arm64", "arm64 app\n")] {
        let dir = out.join(format!("linux_{arch}"));
        assert_eq!(fs::read_to_string(dir.join("app.txt")).unwrap(), app);
        assert!(dir.join("built-on").exists());
    }
}

#[test]
fn a_pushed_index_pulls_back_per_platform() {
    if !have("docker-registry") || !have("skopeo") {
        eprintln!("SKIP: docker-registry or skopeo is not installed");
        return;
    }
    let reg = Registry::start(Auth::None);
    let env = Env::new();
    let ctx = context(&env);
    let name = format!("127.0.0.1:{}/app:multi", reg.port);
    env.build_ok(&ctx, &["--platform", BOTH, "--push", "-t", &name]);
    let raw = env
        .skopeo()
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let index: Value = serde_json::from_slice(&raw.stdout).unwrap();
    // Each image, then its default `mode=min` provenance (buildx with a docker-container
    // builder attaches one to every pushed image).
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 4, "{index}");
    for att in &manifests[2..] {
        assert_eq!(att["platform"]["os"], "unknown");
        assert_eq!(
            att["annotations"]["vnd.docker.reference.type"],
            "attestation-manifest"
        );
    }
    for arch in ["amd64", "arm64"] {
        let out = env
            .skopeo()
            .args(["inspect", "--tls-verify=false", "--override-arch", arch])
            .arg(format!("docker://{name}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["Architecture"], arch);
    }
}

#[test]
fn what_cannot_hold_an_index_is_refused_before_building() {
    let env = Env::new();
    let ctx = context(&env);
    for (args, says) in [
        (vec!["-o", "type=docker,dest=/tmp/x.tar"], "docker"),
        (
            vec!["-o", "type=image,name=x:1,oci-mediatypes=false"],
            "oci-mediatypes=false",
        ),
    ] {
        let mut all = vec!["--platform", BOTH];
        all.extend(args.iter().copied());
        let out = env.build(&ctx, &all);
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {log}");
        assert!(
            log.contains(says) && log.contains("image index"),
            "{args:?}: {log}"
        );
        assert!(!log.contains("DONE"), "nothing was built: {log}");
    }
    // An oci-layout context is one platform's manifest: refused with several platforms.
    let out = env.build(
        &ctx,
        &[
            "--platform",
            BOTH,
            "-o",
            "type=oci,dest=/tmp/x.tar",
            "--build-context",
            "b=oci-layout:///nowhere",
        ],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains("oci-layout") && log.contains("several platforms"),
        "{log}"
    );
}

/// Under emulation (CI registers qemu-user-static and names an arm64 busybox), the arm64
/// image's own RUN steps run as arm64.
#[test]
fn the_foreign_platform_runs_its_steps_emulated() {
    let Some(arm64) = std::env::var_os("BUILDER_TEST_ARM64_BUSYBOX") else {
        eprintln!("SKIP: BUILDER_TEST_ARM64_BUSYBOX is not set");
        return;
    };
    if !Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists() {
        eprintln!("SKIP: no qemu-aarch64 binfmt handler");
        return;
    }
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch\nARG TARGETARCH\nCOPY busybox-${TARGETARCH} /bin/busybox\n\
             RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox uname -m > /runs-on\"]\n",
        )],
    );
    fs::copy(busybox_path(), ctx.join("busybox-amd64")).unwrap();
    fs::copy(&arm64, ctx.join("busybox-arm64")).unwrap();
    let out = env.path("out");
    env.build_ok(
        &ctx,
        &[
            "--platform",
            BOTH,
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
    );
    let read = |p: &str| fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("linux_amd64/runs-on"), "x86_64\n");
    assert_eq!(read("linux_arm64/runs-on"), "aarch64\n");
}

/// The context is read once for all platforms: a tar on stdin (readable only once) serves both.
#[test]
fn a_context_on_stdin_serves_every_platform() {
    let env = Env::new();
    let ctx = context(&env);
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&ctx)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let out = env.path("local");
    let mut child = env
        .cmd()
        .args(["build", "--progress=plain", "--platform", BOTH, "-o"])
        .arg(format!("type=local,dest={}", out.display()))
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &tar.stdout).unwrap();
    let res = child.wait_with_output().unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    for arch in ["amd64", "arm64"] {
        let app = fs::read_to_string(out.join(format!("linux_{arch}/app.txt"))).unwrap();
        assert_eq!(app, format!("{arch} app\n"));
    }
}

/// `type=tar` of several platforms: one directory per platform in the tar, as BuildKit's tar
/// exporter writes it.
#[test]
fn a_tar_of_several_platforms_has_a_directory_per_platform() {
    let env = Env::new();
    let ctx = context(&env);
    let tar = env.path("out.tar");
    env.build_ok(
        &ctx,
        &[
            "--platform",
            BOTH,
            "-o",
            &format!("type=tar,dest={}", tar.display()),
        ],
    );
    let entries = common::tar_entries(std::fs::File::open(&tar).unwrap());
    let tops: std::collections::BTreeSet<String> = entries
        .iter()
        .map(|e| e.0.split('/').next().unwrap().to_string())
        .collect();
    assert_eq!(
        tops.into_iter().collect::<Vec<_>>(),
        ["linux_amd64", "linux_arm64"],
        "{entries:?}"
    );
}
