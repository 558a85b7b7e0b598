//! Build cache shared between machines: `--cache-to` in one store, `--cache-from` in another
//! (a fresh store, its own copy of the context), through a directory, a real registry, and an
//! image pushed with inline cache; what `mode=min|max` keep; broken sources; `--no-cache-filter`.
//!
//! The Dockerfile needs no base image (busybox comes from the context), so the second store
//! starts empty, and SOURCE_DATE_EPOCH makes image ids comparable across the two stores.

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

const DOCKERFILE: &str = r#"FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc /tmp && echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd

FROM base AS build
RUN echo built > /built.txt
COPY app.txt /app.txt

FROM base
COPY --from=build /built.txt /out.txt
RUN cat /out.txt > /seen.txt
"#;

/// Steps of the `build` stage, which only `mode=max` exports.
const BUILD_STAGE: [&str; 2] = [
    "[build 1/2] RUN echo built > /built.txt",
    "[build 2/2] COPY app.txt /app.txt",
];

const STEPS: usize = 7;

/// A build context of the test Dockerfile; `age` sets its files' mtimes, so two contexts can
/// differ in everything but content.
fn context(env: &Env, age: &str) -> PathBuf {
    let dir = env.context(
        "ctx",
        &[("Dockerfile", DOCKERFILE), ("app.txt", "application\n")],
    );
    fs::copy(busybox_path(), dir.join("busybox")).expect("copy busybox");
    let status = Command::new("touch")
        .args(["-d", age])
        .args(["Dockerfile", "app.txt", "busybox"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

struct Built {
    started: Vec<String>,
    cached: Vec<String>,
    stderr: String,
}

/// Builds `ctx` with `--progress=rawjson` and the given flags; the build must succeed.
fn build(env: &Env, ctx: &Path, tag: &str, flags: &[&str]) -> Built {
    let mut cmd = env.cmd();
    cmd.env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "--progress=rawjson", "-t", tag])
        .args(flags)
        .arg(ctx);
    let out = cmd.output().expect("spawn builder");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "build {flags:?} failed:\n{stderr}");
    let mut built = Built {
        started: Vec::new(),
        cached: Vec::new(),
        stderr: stderr.clone(),
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

fn image_id(env: &Env, name: &str) -> Value {
    env.inspect(name)["Id"].clone()
}

fn registry() -> Option<Registry> {
    if !have("docker-registry") {
        eprintln!("SKIP: docker-registry is not installed");
        return None;
    }
    Some(Registry::start(Auth::None))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn local_cache_serves_every_step_to_a_fresh_store() {
    let a = Env::new();
    let cache = a.path("cache");
    let dest = format!("type=local,dest={},mode=max", cache.display());
    let first = build(
        &a,
        &context(&a, "2020-01-01"),
        "app:1",
        &["--cache-to", &dest],
    );
    assert_eq!(first.started.len(), STEPS, "{}", first.stderr);
    assert!(cache.join("index.json").is_file() && cache.join("oci-layout").is_file());

    // Another store, another context directory with other mtimes: the keys are the same.
    let b = Env::new();
    let src = format!("type=local,src={}", cache.display());
    let second = build(
        &b,
        &context(&b, "2024-06-01"),
        "app:1",
        &["--cache-from", &src],
    );
    assert!(second.started.is_empty(), "ran: {:?}", second.started);
    assert_eq!(second.cached.len(), STEPS);
    assert_eq!(image_id(&a, "app:1"), image_id(&b, "app:1"));
    // The imported layers are real: the image runs, and the records are now local.
    assert_eq!(
        b.ok(&["run", "--rm", "app:1", "cat", "/seen.txt"]),
        "built\n"
    );
    let again = build(&b, &context(&b, "2024-06-01"), "app:1", &[]);
    assert_eq!(again.cached.len(), STEPS, "{}", again.stderr);
}

#[test]
fn mode_min_exports_only_the_image_steps() {
    let a = Env::new();
    let ctx = context(&a, "2020-01-01");
    let (min, max) = (a.path("min"), a.path("max"));
    build(
        &a,
        &ctx,
        "app:1",
        &[
            "--cache-to",
            &format!("type=local,dest={}", min.display()),
            "--cache-to",
            &format!("type=local,dest={},mode=max", max.display()),
        ],
    );
    let from_min = build(
        &Env::new(),
        &ctx,
        "app:1",
        &["--cache-from", &format!("type=local,src={}", min.display())],
    );
    assert_eq!(
        sorted(from_min.started),
        sorted(BUILD_STAGE.map(String::from).to_vec())
    );
    assert_eq!(from_min.cached.len(), STEPS - BUILD_STAGE.len());
    let from_max = build(
        &Env::new(),
        &ctx,
        "app:1",
        &["--cache-from", &format!("type=local,src={}", max.display())],
    );
    assert!(from_max.started.is_empty(), "ran: {:?}", from_max.started);

    // Layers are fetched only for the steps that hit: building just the base stage from the
    // max cache copies none of the other stages' layers.
    let b = Env::new();
    let src = format!("type=local,src={}", max.display());
    let base = build(
        &b,
        &ctx,
        "base:1",
        &["--target", "base", "--cache-from", &src],
    );
    assert!(
        base.started.is_empty() && base.cached.len() == 3,
        "{}",
        base.stderr
    );
    let records = cache_records(&max);
    assert_eq!(records.len(), STEPS);
    for r in &records {
        let Some(digest) = r["layer"]["digest"].as_str() else {
            continue;
        };
        let local = b
            .root()
            .join("blobs/sha256")
            .join(&digest["sha256:".len()..]);
        let in_base = r["description"].as_str().unwrap().starts_with("[base ");
        assert_eq!(local.exists(), in_base, "{r}");
    }
}

/// The records of a `type=local` cache export: index → manifest → config.
fn cache_records(dir: &Path) -> Vec<Value> {
    let read = |digest: &Value| -> Value {
        let hex = &digest.as_str().unwrap()["sha256:".len()..];
        serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest = read(&index["manifests"][0]["digest"]);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.builder.cache.config.v1+json"
    );
    read(&manifest["config"]["digest"])["records"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn registry_cache_round_trip() {
    let Some(reg) = registry() else { return };
    let cache_ref = format!("{}/cache/app:buildcache", reg.host());
    let a = Env::new();
    let export = [
        "--cache-to",
        &format!("type=registry,ref={cache_ref},mode=max"),
    ];
    let first = build(&a, &context(&a, "2020-01-01"), "app:1", &export);
    // Seven layers (every step adds one) and the records document.
    assert!(
        first
            .stderr
            .contains("blobs: 8 uploaded, 0 mounted, 0 already there"),
        "{}",
        first.stderr
    );
    let b = Env::new();
    let second = build(
        &b,
        &context(&b, "2024-06-01"),
        "app:1",
        &["--cache-from", &format!("type=registry,ref={cache_ref}")],
    );
    assert!(second.started.is_empty(), "ran: {:?}", second.started);
    assert_eq!(image_id(&a, "app:1"), image_id(&b, "app:1"));
    assert_eq!(
        b.ok(&["run", "--rm", "app:1", "cat", "/seen.txt"]),
        "built\n"
    );
    // Exporting again to the same tag sends nothing: the registry has every blob.
    let again = build(&a, &context(&a, "2020-01-01"), "app:1", &export);
    assert!(
        again
            .stderr
            .contains("blobs: 0 uploaded, 0 mounted, 8 already there"),
        "{}",
        again.stderr
    );
}

#[test]
fn cache_export_mounts_the_layers_of_the_pushed_image() {
    let Some(reg) = registry() else { return };
    let image = format!("{}/app/img:1", reg.host());
    let export = format!("type=registry,ref={}/cache/img:min", reg.host());
    let a = Env::new();
    let ctx = context(&a, "2020-01-01");
    let built = build(&a, &ctx, &image, &["--push", "--cache-to", &export]);
    // mode=min: the image's five layers, linked from app/img; only the records are sent.
    assert!(
        built
            .stderr
            .contains("(5 layers); blobs: 1 uploaded, 5 mounted, 0 already there"),
        "{}",
        built.stderr
    );
}

#[test]
fn inline_cache_of_a_pushed_image() {
    let Some(reg) = registry() else { return };
    let image = format!("{}/app/inline:1", reg.host());
    let a = Env::new();
    build(
        &a,
        &context(&a, "2020-01-01"),
        &image,
        &["--cache-to", "type=inline", "--push"],
    );
    assert!(
        a.inspect(&image)["builder.cache.v1"]["records"].is_array(),
        "records are in the image config"
    );
    // A fresh store uses the pushed image as its cache (bare NAME means type=registry). Inline
    // cache is min mode: the build stage runs, everything on the image's chain is cached.
    let b = Env::new();
    let second = build(
        &b,
        &context(&b, "2024-06-01"),
        &image,
        &["--cache-from", &image, "--cache-to", "type=inline"],
    );
    assert_eq!(
        sorted(second.started),
        sorted(BUILD_STAGE.map(String::from).to_vec())
    );
    assert_eq!(image_id(&a, &image), image_id(&b, &image));
}

#[test]
fn broken_cache_sources_warn_and_the_build_goes_on() {
    let a = Env::new();
    let ctx = context(&a, "2020-01-01");
    let missing = format!("type=local,src={}", a.path("nowhere").display());
    let built = build(&a, &ctx, "app:1", &["--cache-from", &missing]);
    assert_eq!(built.started.len(), STEPS);
    assert!(
        built.stderr.contains("WARNING: importing cache directory")
            && built.stderr.contains("nowhere"),
        "{}",
        built.stderr
    );

    // A cache whose layer blobs were damaged: the records read, the layers do not verify.
    let cache = a.path("cache");
    build(
        &a,
        &ctx,
        "app:1",
        &[
            "--cache-to",
            &format!("type=local,dest={},mode=max", cache.display()),
        ],
    );
    for r in cache_records(&cache) {
        if let Some(digest) = r["layer"]["digest"].as_str() {
            let blob = cache.join("blobs/sha256").join(&digest["sha256:".len()..]);
            fs::write(blob, b"not the layer").unwrap();
        }
    }
    let b = Env::new();
    let src = format!("type=local,src={}", cache.display());
    let built = build(&b, &ctx, "app:1", &["--cache-from", &src]);
    assert_eq!(built.started.len(), STEPS, "every layer was damaged");
    assert!(
        built.stderr.contains("could not be fetched"),
        "{}",
        built.stderr
    );
    assert_eq!(image_id(&a, "app:1"), image_id(&b, "app:1"));

    // An index that is not JSON.
    fs::write(cache.join("index.json"), b"{").unwrap();
    let built = build(&Env::new(), &ctx, "app:1", &["--cache-from", &src]);
    assert!(
        built.stderr.contains("WARNING: importing"),
        "{}",
        built.stderr
    );

    // Bad flags are usage errors (exit 2).
    for flags in [
        ["--cache-to", "type=gha"],
        ["--cache-to", "type=inline,mode=max"],
        ["--cache-from", "type=local"],
    ] {
        let mut args = vec!["build"];
        args.extend(flags);
        args.push(ctx.to_str().unwrap());
        let out = a.run(&args);
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
    }
}

#[test]
fn no_cache_filter_reruns_only_the_named_stage() {
    let env = Env::new();
    let ctx = context(&env, "2020-01-01");
    build(&env, &ctx, "app:1", &[]);
    let again = build(&env, &ctx, "app:1", &["--no-cache-filter=build"]);
    assert_eq!(
        sorted(again.started),
        sorted(BUILD_STAGE.map(String::from).to_vec())
    );
    assert_eq!(again.cached.len(), STEPS - BUILD_STAGE.len());
    // Several stages, comma-separated; a name that is no stage is a warning.
    let again = build(
        &env,
        &ctx,
        "app:1",
        &["--no-cache-filter", "base,build,nosuch"],
    );
    assert_eq!(again.started.len(), 5, "{:?}", again.started);
    assert!(
        again.stderr.contains("no stage named \"nosuch\""),
        "{}",
        again.stderr
    );
}

/// What else a step's key could pick up from the host: the context's location and mtimes, the
/// secret's file path and value, the store's cache-mount directory, WORKDIR/USER/--chown.
/// None of it may keep a second machine from hitting the first one's records.
#[test]
fn cache_keys_carry_nothing_of_the_host() {
    const HOSTILE: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
WORKDIR /work
COPY --chown=1000:1000 app.txt ./
ADD dir/ /dir/
RUN --mount=type=bind,source=dir,target=/mnt --mount=type=secret,id=tok --mount=type=cache,target=/cache find /mnt > /from-bind.txt
RUN mkdir /out && chmod 777 /out
USER 1000
RUN id -u > /out/uid
"#;
    let setup = |env: &Env, age: &str, secret: &str| -> (PathBuf, String) {
        let dir = context(env, age);
        fs::write(dir.join("Dockerfile"), HOSTILE).unwrap();
        fs::create_dir_all(dir.join("dir/sub")).unwrap();
        fs::write(dir.join("dir/sub/f.txt"), "nested\n").unwrap();
        let secret_file = env.path(&format!("secret-{secret}"));
        fs::write(&secret_file, secret).unwrap();
        (dir, format!("id=tok,src={}", secret_file.display()))
    };
    let a = Env::new();
    let cache = a.path("cache");
    let (ctx, secret) = setup(&a, "2020-01-01", "one");
    let dest = format!("type=local,dest={},mode=max", cache.display());
    let first = build(&a, &ctx, "h:1", &["--secret", &secret, "--cache-to", &dest]);
    assert_eq!(first.started.len(), 8, "{}", first.stderr);

    let b = Env::new();
    let (ctx, secret) = setup(&b, "2024-06-01", "two");
    let src = format!("type=local,src={}", cache.display());
    let second = build(
        &b,
        &ctx,
        "h:1",
        &["--secret", &secret, "--cache-from", &src],
    );
    assert!(second.started.is_empty(), "ran: {:?}", second.started);
    assert_eq!(image_id(&a, "h:1"), image_id(&b, "h:1"));

    // Content does count: one changed byte in the context misses from that step on.
    fs::write(ctx.join("dir/sub/f.txt"), "nestee\n").unwrap();
    let third = build(
        &Env::new(),
        &ctx,
        "h:1",
        &["--secret", &secret, "--cache-from", &src],
    );
    assert_eq!(
        third.started.len(),
        4,
        "ADD and the three RUNs after it: {:?}",
        third.started
    );
}
