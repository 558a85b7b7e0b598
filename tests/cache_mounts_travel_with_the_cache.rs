//! `--cache-to …,mounts=true` exports the contents of `RUN --mount=type=cache` mounts with the
//! layer cache, and `--cache-from` restores them in a fresh store before the build (issue #22):
//! a CI runner that starts empty gets its compiler and package caches back.

mod common;
#[path = "../registry/tests/support/registry.rs"]
#[allow(dead_code)]
mod registry_support;

use std::fs;
use std::path::Path;

use common::{Env, have};
use registry_support::{Auth, Registry};

/// The step fills its cache the first time and reports whether it found it warm. `salt` changes
/// the step (so the layer cache cannot answer it) without changing the cache mount.
fn dockerfile(salt: &str) -> String {
    format!(
        "FROM busybox:test\n\
         RUN --mount=type=cache,target=/root/.cache/tool \
         echo {salt} >/dev/null; \
         if [ -f /root/.cache/tool/done ]; then echo warm > /result; \
         else mkdir -p /root/.cache/tool/objects && seq 1 5000 > /root/.cache/tool/objects/big && echo cold > /result && touch /root/.cache/tool/done; fi\n"
    )
}

fn result_of(env: &Env, ctx: &Path, args: &[&str], out: &str) -> (String, String) {
    let dir = env.path(out);
    let dest = format!("type=local,dest={}", dir.display());
    let mut all = args.to_vec();
    all.extend(["-o", &dest]);
    let log = env.build_ok(ctx, &all);
    (fs::read_to_string(dir.join("result")).unwrap(), log)
}

#[test]
fn a_fresh_store_gets_the_cache_mount_back_from_a_local_export() {
    let first = Env::new();
    first.busybox_base();
    let ctx = first.context("ctx", &[("Dockerfile", &dockerfile("one"))]);
    let cache = first.path("exported");
    let to = format!("type=local,dest={},mode=max,mounts=true", cache.display());
    let (result, log) = result_of(&first, &ctx, &["--cache-to", &to], "out1");
    assert_eq!(result, "cold\n");
    assert!(log.contains("1 cache mounts"), "{log}");

    // A new machine: an empty store, another step using the same cache mount.
    let second = Env::new();
    second.busybox_base();
    fs::write(ctx.join("Dockerfile"), dockerfile("two")).unwrap();
    let from = format!("type=local,src={}", cache.display());
    let (result, log) = result_of(&second, &ctx, &["--cache-from", &from], "out2");
    assert!(log.contains("restored 1 cache mount"), "{log}");
    assert_eq!(
        result, "warm\n",
        "the step found the first build's cache mount"
    );

    // Without mounts=true nothing travels.
    let plain = first.path("plain");
    let to = format!("type=local,dest={},mode=max", plain.display());
    first.build_ok(&ctx, &["--cache-to", &to]);
    let third = Env::new();
    third.busybox_base();
    fs::write(ctx.join("Dockerfile"), dockerfile("three")).unwrap();
    let from = format!("type=local,src={}", plain.display());
    let (result, _) = result_of(&third, &ctx, &["--cache-from", &from], "out3");
    assert_eq!(result, "cold\n");
}

#[test]
fn a_registry_export_uploads_only_what_changed() {
    if !have("docker-registry") {
        eprintln!("SKIP: docker-registry is not installed");
        return;
    }
    let reg = Registry::start(Auth::None);
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context("ctx", &[("Dockerfile", &dockerfile("one"))]);
    let to = format!(
        "type=registry,ref=127.0.0.1:{}/cache:mounts,mode=max,mounts=true",
        reg.port
    );
    let log = env.build_ok(&ctx, &["--cache-to", &to]);
    assert!(log.contains("1 cache mounts"), "{log}");
    // Another step, the same cache mount contents: its chunks are in the registry already.
    fs::write(ctx.join("Dockerfile"), dockerfile("again")).unwrap();
    let log = env.build_ok(&ctx, &["--cache-to", &to]);
    let line = log
        .lines()
        .find(|l| l.starts_with("exported"))
        .unwrap_or_default()
        .to_string();
    assert!(
        !line.contains(" 0 already there") && line.contains("already there"),
        "the unchanged chunks are not uploaded again: {line}"
    );

    let fresh = Env::new();
    fresh.busybox_base();
    fs::write(ctx.join("Dockerfile"), dockerfile("fresh")).unwrap();
    let from = format!("type=registry,ref=127.0.0.1:{}/cache:mounts", reg.port);
    let (result, log) = result_of(&fresh, &ctx, &["--cache-from", &from], "out");
    assert!(log.contains("restored 1 cache mount"), "{log}");
    assert_eq!(result, "warm\n");
}

#[test]
fn mount_export_options_are_checked() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context("ctx", &[("Dockerfile", &dockerfile("one"))]);
    let cache = env.path("c");
    let capped = format!(
        "type=local,dest={},mounts=true,mounts-max-size=1k",
        cache.display()
    );
    let log = env.build_ok(&ctx, &["--cache-to", &capped]);
    assert!(
        log.contains("larger than mounts-max-size") && !log.contains("1 cache mounts"),
        "{log}"
    );
    for bad in ["mounts=maybe", "mounts-max-size=1m"] {
        let spec = format!("type=local,dest={},{bad}", cache.display());
        let out = env.build(&ctx, &["--cache-to", &spec]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
    }
}
