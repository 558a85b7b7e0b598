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
    let index: Value = env.raw_manifest(&name);
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
        (
            vec!["-o", "type=oci,dest=/tmp/x.tar,oci-mediatypes=false"],
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

/// Files of one platform's image in an OCI layout directory (`skopeo copy` wrote it): every
/// regular file of every layer, by path, as bytes (later layers win).
fn layout_files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let manifest = index_of_layout(dir);
    let mut files = std::collections::BTreeMap::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let d = layer["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let f = fs::File::open(dir.join("blobs/sha256").join(d)).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let path = String::from_utf8_lossy(&entry.path_bytes())
                .trim_start_matches("./")
                .to_string();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            files.insert(path, bytes);
        }
    }
    files
}

/// An ELF file's `e_machine` (little-endian at offset 18): 62 is x86-64, 183 is AArch64.
fn elf_machine(bytes: &[u8]) -> u16 {
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    u16::from_le_bytes([bytes[18], bytes[19]])
}

/// Counts the HTTP requests a RUN step makes to it, so a test can count how often a step
/// really ran (a cached step makes none).
struct RunCounter {
    port: u16,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl RunCounter {
    fn start() -> RunCounter {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut buf = [0u8; 4096];
                let _ = std::io::Read::read(&mut conn, &mut buf);
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = std::io::Write::write_all(
                    &mut conn,
                    b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
                );
            }
        });
        RunCounter { port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Issue #18's done-when command, end to end: `build --platform linux/amd64,linux/arm64 -t
/// REG/app:1 --push .` on an amd64 host. The native (build-platform) stage runs once for both
/// targets (counted by the requests it makes); each target's RUN step runs on its platform, so
/// the pushed arm64 image, pulled back with `skopeo copy --override-arch arm64`, holds
/// `uname -m` = aarch64 and a binary the step produced that is an AArch64 ELF.
#[test]
fn the_pushed_index_holds_a_really_arm64_image() {
    if !have("docker-registry") || !have("skopeo") {
        eprintln!("SKIP: docker-registry or skopeo is not installed");
        return;
    }
    let Some(arm64) = std::env::var_os("BUILDER_TEST_ARM64_BUSYBOX") else {
        eprintln!("SKIP: BUILDER_TEST_ARM64_BUSYBOX is not set");
        return;
    };
    if std::env::consts::ARCH != "x86_64"
        || !Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists()
    {
        eprintln!("SKIP: needs an x86_64 host with a qemu-aarch64 binfmt handler");
        return;
    }
    let counter = RunCounter::start();
    let dockerfile = format!(
        "FROM --platform=$BUILDPLATFORM scratch AS native\n\
         COPY busybox-amd64 /bin/busybox\n\
         RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox wget -q -O /fetched http://127.0.0.1:{}/native\"]\n\
         FROM scratch\n\
         ARG TARGETARCH\n\
         COPY busybox-${{TARGETARCH}} /bin/busybox\n\
         COPY --from=native /fetched /fetched\n\
         RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox uname -m > /uname && /bin/busybox cp /bin/busybox /app\"]\n",
        counter.port
    );
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", &dockerfile)]);
    fs::copy(busybox_path(), ctx.join("busybox-amd64")).unwrap();
    fs::copy(&arm64, ctx.join("busybox-arm64")).unwrap();

    let reg = Registry::start(Auth::None);
    let name = format!("127.0.0.1:{}/app:1", reg.port);
    let log = env.build_ok(&ctx, &["--platform", BOTH, "-t", &name, "--push"]);
    assert_eq!(counter.hits(), 1, "the native stage ran once: {log}");
    assert!(log.contains("[linux/arm64 stage-1 3/3] RUN"), "{log}");

    let index: Value = env.raw_manifest(&name);
    // A push carries buildx's default provenance: one attestation manifest per image, after
    // the images.
    let (attestations, images): (Vec<&Value>, Vec<&Value>) = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .partition(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest");
    let platforms: Vec<&Value> = images
        .iter()
        .map(|m| &m["platform"]["architecture"])
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"], "{index}");
    assert_eq!(attestations.len(), 2, "{index}");

    for (arch, uname, machine) in [("amd64", "x86_64\n", 62), ("arm64", "aarch64\n", 183)] {
        let dir = env.path(&format!("pulled-{arch}"));
        let out = env
            .skopeo()
            .args(["copy", "--src-tls-verify=false", "--override-arch", arch])
            .arg(format!("docker://{name}"))
            .arg(format!("oci:{}:pulled", dir.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = blob(&dir, &index_of_layout(&dir)["config"]["digest"]);
        assert_eq!(config["architecture"], arch, "{config}");
        let files = layout_files(&dir);
        assert_eq!(
            files["uname"],
            uname.as_bytes(),
            "{arch}: the RUN step ran as {arch}"
        );
        assert_eq!(elf_machine(&files["app"]), machine, "{arch}: /app");
        assert_eq!(files["fetched"], b"ok\n", "{arch}: the native stage's file");
    }
}
