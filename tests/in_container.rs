//! builder inside an ordinary container, the way most CI runs it (GitLab's docker and
//! Kubernetes executors, GitHub Actions container jobs, Tekton pods): docker.io's dockerd with
//! its default seccomp profile and capabilities, as root and as a non-root user, with a
//! read-only root, and pushing to a registry on the host.
//!
//! The container image is made here, offline: Debian's static busybox, the builder binary under
//! test and the shared libraries it links, imported with `docker import`. Builds need no base
//! image (busybox comes from the context), so nothing is pulled.
//!
//! Needs a dockerd: `BUILDER_TEST_DOCKER_HOST` names its socket (`.ci/run` starts one and sets
//! it). Without it the tests say SKIP, unless `BUILDER_TEST_REQUIRE_DOCKER=1`, which CI sets so
//! a dockerd that failed to start turns the run red instead of skipping.

mod common;
#[path = "../registry/tests/support/registry.rs"]
#[allow(dead_code)]
mod registry_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{Env, builder_bin, busybox_path, have};
use registry_support::{Auth, Registry};
use serde_json::Value;

const IMAGE: &str = "builder-in-container-test:latest";

/// SOURCE_DATE_EPOCH for every build here, so host and container builds are comparable.
const EPOCH: &str = "1700000000";

/// A multi-stage build with RUN steps, a cache mount and a COPY --from: what a real project's
/// Dockerfile exercises. Its result does not depend on the cache mount's earlier contents.
const MULTI_STAGE: &str = r#"FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc /tmp && chmod 1777 /tmp && echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd

FROM base AS build
RUN --mount=type=cache,target=/cache touch /cache/seen && ls /cache > /listing && echo built-in-step > /built.txt
COPY app.txt /app.txt

FROM base
COPY --from=build /built.txt /listing /out/
RUN cat /out/built.txt > /seen.txt && id -u > /uid.txt
"#;

fn docker_host() -> Option<String> {
    match std::env::var("BUILDER_TEST_DOCKER_HOST") {
        Ok(h) if !h.is_empty() => Some(h),
        _ => {
            assert!(
                std::env::var("BUILDER_TEST_REQUIRE_DOCKER").as_deref() != Ok("1"),
                "BUILDER_TEST_REQUIRE_DOCKER=1 but BUILDER_TEST_DOCKER_HOST is not set"
            );
            eprintln!("SKIP: BUILDER_TEST_DOCKER_HOST is not set (no dockerd to run containers)");
            None
        }
    }
}

/// Debian's client (`/usr/bin/docker`) when present: it matches the daemon .ci/run starts.
fn docker(host: &str) -> Command {
    let bin = if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    };
    let mut c = Command::new(bin);
    c.env("DOCKER_HOST", host);
    c
}

fn must(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The libraries `ldd` says `bin` loads, by the absolute paths the loader will look for.
fn shared_libraries(bin: &Path) -> Vec<PathBuf> {
    let out = must(
        Command::new("ldd").arg(bin).output().expect("run ldd"),
        "ldd builder",
    );
    out.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Imports the test image once per test process: busybox, the builder under test, its
/// libraries, a root and a `ci` (1000:1000) user with homes.
fn image(host: &str) -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let mut tar = tar::Builder::new(Vec::new());
        // docker import refuses a tar naming a path twice: each directory goes in once.
        let mut dirs = std::collections::HashSet::new();
        let mut add_dir = |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, id: u64| {
            if !dirs.insert(path.to_string()) {
                return;
            }
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(mode);
            h.set_uid(id);
            h.set_gid(id);
            h.set_size(0);
            tar.append_data(&mut h, path, std::io::empty()).unwrap();
        };
        for (dir, mode, id) in [
            ("bin", 0o755, 0),
            ("etc", 0o755, 0),
            ("root", 0o700, 0),
            ("home", 0o755, 0),
            ("home/ci", 0o755, 1000),
            ("tmp", 0o1777, 0),
            ("usr", 0o755, 0),
            ("usr/local", 0o755, 0),
            ("usr/local/bin", 0o755, 0),
        ] {
            add_dir(&mut tar, dir, mode, id);
        }
        let add_file = |tar: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode| {
            let mut h = tar::Header::new_gnu();
            h.set_mode(mode);
            h.set_size(data.len() as u64);
            tar.append_data(&mut h, path.trim_start_matches('/'), data)
                .unwrap();
        };
        add_file(
            &mut tar,
            "bin/busybox",
            &fs::read(busybox_path()).unwrap(),
            0o755,
        );
        for applet in ["sh", "cat", "ls", "id", "mkdir", "echo", "true", "env"] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            tar.append_link(&mut h, format!("bin/{applet}"), "busybox")
                .unwrap();
        }
        let bin = builder_bin();
        add_file(
            &mut tar,
            "usr/local/bin/builder",
            &fs::read(&bin).unwrap(),
            0o755,
        );
        for lib in shared_libraries(&bin) {
            // Parents of the library (lib/x86_64-linux-gnu, lib64) as plain directories.
            let rel = lib.strip_prefix("/").unwrap();
            let mut parent = PathBuf::new();
            for part in rel.parent().into_iter().flat_map(|p| p.components()) {
                parent.push(part);
                add_dir(&mut tar, parent.to_str().unwrap(), 0o755, 0);
            }
            add_file(
                &mut tar,
                rel.to_str().unwrap(),
                &fs::read(&lib).unwrap(),
                0o755,
            );
        }
        add_file(
            &mut tar,
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nci:x:1000:1000:ci:/home/ci:/bin/sh\n",
            0o644,
        );
        add_file(&mut tar, "etc/group", b"root:x:0:\nci:x:1000:\n", 0o644);
        let bytes = tar.into_inner().unwrap();

        let file = tempfile::NamedTempFile::new().unwrap();
        fs::write(file.path(), bytes).unwrap();
        must(
            docker(host)
                .arg("import")
                .arg(file.path())
                .arg(IMAGE)
                .output()
                .expect("spawn docker import"),
            "docker import",
        );
    });
    IMAGE
}

/// A build context with the multi-stage Dockerfile, busybox and an app file, readable by the
/// container's non-root user too.
fn context(env: &Env, dockerfile: &str) -> PathBuf {
    let dir = env.context(
        "ctx",
        &[("Dockerfile", dockerfile), ("app.txt", "application\n")],
    );
    fs::copy(busybox_path(), dir.join("busybox")).unwrap();
    let status = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(env.dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

/// `docker run --rm --network host -v CTX:/w:ro [FLAGS] IMAGE builder ARGS`, with its wall time.
fn in_container(host: &str, ctx: &Path, flags: &[&str], args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = docker(host)
        .args(["run", "--rm", "--network", "host", "-e"])
        .arg(format!("SOURCE_DATE_EPOCH={EPOCH}"))
        .arg("-v")
        .arg(format!("{}:/w:ro", ctx.display()))
        .args(flags)
        .arg(image(host))
        .arg("/usr/local/bin/builder")
        .args(args)
        .output()
        .expect("spawn docker run");
    (out, started.elapsed())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The manifest of `reference` in the test registry, as skopeo reads it.
fn manifest(env: &Env, reference: &str) -> Value {
    let out = env
        .skopeo()
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .expect("spawn skopeo");
    serde_json::from_str(&must(out, "skopeo inspect")).expect("a JSON manifest")
}

fn layer_digests(manifest: &Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn root_in_a_default_container_runs_run_steps() {
    let Some(host) = docker_host() else { return };
    let env = Env::new();
    let ctx = context(&env, MULTI_STAGE);
    let (out, _) = in_container(
        &host,
        &ctx,
        &[],
        &[
            "build",
            "--progress=plain",
            "-o",
            "type=tar,dest=/dev/null",
            "/w",
        ],
    );
    let log = stderr(&out);
    assert!(out.status.success(), "build as root failed:\n{log}");
    assert!(
        log.contains("RUN cat /out/built.txt"),
        "the last RUN step ran:\n{log}"
    );
}

#[test]
fn non_root_in_a_container_builds_without_run_and_fails_fast_with_run() {
    let Some(host) = docker_host() else { return };
    let env = Env::new();
    let user = ["-u", "1000:1000", "-e", "HOME=/home/ci"];

    let ctx = context(&env, "FROM scratch\nCOPY app.txt busybox /\n");
    let (out, _) = in_container(
        &host,
        &ctx,
        &user,
        &[
            "build",
            "--progress=plain",
            "-o",
            "type=tar,dest=/dev/null",
            "/w",
        ],
    );
    assert!(
        out.status.success(),
        "a build without RUN steps works as non-root:\n{}",
        stderr(&out)
    );

    // Docker's default seccomp profile refuses new user namespaces to a process without
    // CAP_SYS_ADMIN, and a non-root user holds no CAP_SYS_CHROOT: there is no way to isolate
    // a RUN step, so the build must stop at once with exit 3 and say what to do.
    fs::write(ctx.join("Dockerfile"), MULTI_STAGE).unwrap();
    let (out, took) = in_container(&host, &ctx, &user, &["build", "--progress=plain", "/w"]);
    let log = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit 3 for a sandbox failure:\n{log}"
    );
    assert!(
        took < Duration::from_secs(20),
        "the failure came fast (container start included): {took:?}\n{log}"
    );
    assert!(
        log.contains("user namespace") && log.contains("--isolation"),
        "the message names the probe that failed and the way out:\n{log}"
    );
}

#[test]
fn read_only_root_with_a_tmpfs_store_builds() {
    let Some(host) = docker_host() else { return };
    let env = Env::new();
    let ctx = context(&env, MULTI_STAGE);
    let (out, _) = in_container(
        &host,
        &ctx,
        &[
            "--read-only",
            "--tmpfs",
            "/store:rw,exec,size=1g",
            "--tmpfs",
            "/tmp:rw,exec,size=256m",
            "-e",
            "BUILDER_ROOT=/store",
        ],
        &[
            "build",
            "--progress=plain",
            "-o",
            "type=tar,dest=/dev/null",
            "/w",
        ],
    );
    assert!(
        out.status.success(),
        "build with a read-only root failed:\n{}",
        stderr(&out)
    );
}

#[test]
fn image_pushed_from_a_container_matches_the_host_build() {
    let Some(host) = docker_host() else { return };
    if !have("docker-registry") || !have("skopeo") {
        eprintln!("SKIP: docker-registry or skopeo is not installed");
        return;
    }
    let reg = Registry::start(Auth::None);
    let env = Env::new();
    let ctx = context(&env, MULTI_STAGE);
    let at = |name: &str| format!("127.0.0.1:{}/{name}", reg.port);

    let from_container = at("app:container");
    let cache = format!("type=registry,ref={},mode=max", at("cache:1"));
    let (out, _) = in_container(
        &host,
        &ctx,
        &[],
        &[
            "build",
            "--progress=plain",
            // The image manifests are compared: no provenance index around them.
            "--provenance=false",
            "--push",
            "-t",
            &from_container,
            "--cache-to",
            &cache,
            "/w",
        ],
    );
    assert!(
        out.status.success(),
        "build and push from the container failed:\n{}",
        stderr(&out)
    );

    let from_host = at("app:host");
    let out = env
        .cmd()
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args([
            "build",
            "--progress=plain",
            "--provenance=false",
            "--push",
            "-t",
            &from_host,
        ])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(out.status.success(), "host build failed:\n{}", stderr(&out));

    let (ours, theirs) = (manifest(&env, &from_host), manifest(&env, &from_container));
    assert_eq!(
        layer_digests(&ours),
        layer_digests(&theirs),
        "the same layers from the host and from the container"
    );
    assert_eq!(ours["config"]["digest"], theirs["config"]["digest"]);

    // The cache the container exported serves a fresh store on the host: every step cached.
    let fresh = Env::new();
    let cache_from = format!("type=registry,ref={}", at("cache:1"));
    let out = fresh
        .cmd()
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args(["build", "--progress=plain", "--cache-from", &cache_from])
        .arg(&ctx)
        .output()
        .unwrap();
    let log = stderr(&out);
    assert!(out.status.success(), "build from the cache failed:\n{log}");
    for step in ["RUN --mount=type=cache", "RUN cat /out/built.txt"] {
        assert!(
            log.lines()
                .zip(log.lines().skip(1))
                .any(|(head, next)| head.contains(step) && next.ends_with(" CACHED")),
            "{step} came from the container's cache:\n{log}"
        );
    }
}
