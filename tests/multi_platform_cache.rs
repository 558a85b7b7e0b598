//! `--cache-to`/`--cache-from` with `--platform a,b` (issue #18): the exported cache carries
//! every platform's records, so a fresh store builds both platforms fully cached, to the same
//! index.

mod common;
#[path = "../registry/tests/support/registry.rs"]
#[allow(dead_code)]
mod registry_support;

use std::fs;
use std::path::{Path, PathBuf};

use common::{Env, busybox_path};
use serde_json::Value;

/// A build stage on the build platform (shared), then per-platform steps: a COPY of the
/// platform's files and, where an arm64 emulator and busybox are available, a RUN of the
/// platform's own binary (emulated for arm64).
fn context(env: &Env) -> PathBuf {
    let arm64 = std::env::var_os("BUILDER_TEST_ARM64_BUSYBOX")
        .filter(|_| Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists());
    let mut dockerfile = String::from(
        "FROM --platform=$BUILDPLATFORM scratch AS build\n\
         COPY busybox-amd64 /bin/busybox\n\
         RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox uname -m > /built-on\"]\n\
         FROM scratch\n\
         ARG TARGETARCH\n\
         COPY busybox-${TARGETARCH} /bin/busybox\n\
         COPY --from=build /built-on /\n\
         COPY app-${TARGETARCH}.txt /app.txt\n",
    );
    if arm64.is_some() {
        dockerfile.push_str(
            "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox uname -m > /runs-on\"]\n",
        );
    }
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", dockerfile.as_str()),
            ("app-amd64.txt", "amd64 app\n"),
            ("app-arm64.txt", "arm64 app\n"),
        ],
    );
    fs::copy(busybox_path(), ctx.join("busybox-amd64")).unwrap();
    let arm = arm64.map(PathBuf::from).unwrap_or_else(busybox_path);
    fs::copy(arm, ctx.join("busybox-arm64")).unwrap();
    ctx
}

struct Built {
    started: Vec<String>,
    cached: Vec<String>,
    index: String,
}

fn build(env: &Env, ctx: &Path, flags: &[&str]) -> Built {
    let iid = env.path("iid");
    let layout = env.path("layout");
    let out = env
        .cmd()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args([
            "build",
            "--progress=rawjson",
            "--platform",
            "linux/amd64,linux/arm64",
        ])
        .arg("--iidfile")
        .arg(&iid)
        .arg("-o")
        .arg(format!("type=oci,tar=false,dest={}", layout.display()))
        .args(flags)
        .arg(ctx)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{flags:?}: {stderr}");
    let mut built = Built {
        started: Vec::new(),
        cached: Vec::new(),
        index: fs::read_to_string(&iid).unwrap(),
    };
    for line in stderr.lines().filter(|l| l.starts_with('{')) {
        let event: Value = serde_json::from_str(line).unwrap();
        let name = event["name"].as_str().unwrap_or_default().to_string();
        match event["type"].as_str() {
            Some("started") => built.started.push(name),
            Some("cached") => built.cached.push(name),
            _ => {}
        }
    }
    built
}

#[test]
fn a_fresh_store_builds_both_platforms_from_the_exported_cache() {
    let a = Env::new();
    let cache = a.path("cache");
    let first = build(
        &a,
        &context(&a),
        &[
            "--cache-to",
            &format!("type=local,dest={},mode=max", cache.display()),
        ],
    );
    // Both platforms' own steps ran (the shared build stage once, then cached).
    for platform in ["linux/amd64", "linux/arm64"] {
        assert!(
            first
                .started
                .iter()
                .any(|s| s.starts_with(&format!("[{platform} ")) && s.contains("COPY app-")),
            "{:?}",
            first.started
        );
    }

    let b = Env::new();
    let second = build(
        &b,
        &context(&b),
        &[
            "--cache-from",
            &format!("type=local,src={}", cache.display()),
        ],
    );
    assert!(second.started.is_empty(), "ran: {:?}", second.started);
    for platform in ["linux/amd64", "linux/arm64"] {
        assert!(
            second
                .cached
                .iter()
                .any(|s| s.starts_with(&format!("[{platform} ")) && s.contains("COPY app-")),
            "{:?}",
            second.cached
        );
    }
    assert_eq!(first.index, second.index, "the same index from the cache");
}

/// testCacheMultiPlatformImportExport's inline part (BuildKit's dockerfile_cache_test.go): a
/// two-platform build pushed with `--cache-to type=inline` carries each platform's records in
/// that platform's config; a fresh store with `--cache-from` of the pushed index builds both
/// platforms' steps cached and pushes the same index again. (The Go test's build stage writes
/// random bytes; here it is deterministic, as builder's mode=min reruns a stage outside the
/// image: see BUILDKIT_PARITY.md.)
#[test]
fn inline_cache_of_a_pushed_index_serves_every_platform() {
    if !common::have("docker-registry") {
        eprintln!("SKIP: docker-registry is not installed");
        return;
    }
    let reg = registry_support::Registry::start(registry_support::Auth::None);
    let image = format!("127.0.0.1:{}/buildkit/testexportdf:multi-img", reg.port);
    let a = Env::new();
    let first = build(
        &a,
        &context(&a),
        // No default provenance: its start time would make every index differ.
        &[
            "--cache-to",
            "type=inline",
            "-t",
            &image,
            "--push",
            "--provenance=false",
        ],
    );
    assert!(!first.started.is_empty());

    for _ in 0..2 {
        let b = Env::new();
        let again = build(
            &b,
            &context(&b),
            &[
                "--cache-from",
                &image,
                "--cache-to",
                "type=inline",
                "-t",
                &image,
                "--push",
                "--provenance=false",
            ],
        );
        // Inline cache is mode=min: only the images' own steps have records, so the shared
        // build stage (not in the images) runs again, once; everything per platform is cached.
        assert!(
            again.started.iter().all(|s| s.contains(" build ")),
            "ran: {:?}",
            again.started
        );
        for platform in ["linux/amd64", "linux/arm64"] {
            assert!(
                again
                    .cached
                    .iter()
                    .any(|s| s.starts_with(&format!("[{platform} ")) && s.contains("COPY app-")),
                "{:?}",
                again.cached
            );
        }
        assert_eq!(first.index, again.index, "the same index from the cache");
    }
}
