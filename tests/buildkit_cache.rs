//! End to end: ports of BuildKit's build cache integration tests (moby/buildkit
//! frontend/dockerfile/dockerfile_cache_test.go), each asserting what the Go test asserts.

mod common;
#[path = "../registry/tests/support/registry.rs"]
#[allow(dead_code)]
mod registry_support;

use common::{Env, have, read_text};
use registry_support::{Auth, Registry};

/// testReproducibleIDs: building the same Dockerfile twice (the second time from the cache)
/// under two names gives the same image.
#[test]
fn reproducible_ids() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox:test\nENV foo=bar\nCOPY foo /\nRUN echo bar > bar\n",
            ),
            ("foo", "foo-contents"),
        ],
    );
    env.build_ok(&ctx, &["-t", "example.com/moby/dockerfileids:test"]);
    // A second later: an image id that depended on the build's clock would change.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.build_ok(&ctx, &["-t", "example.com/moby/dockerfileids2:test"]);
    assert_eq!(
        env.inspect("example.com/moby/dockerfileids:test")["Id"],
        env.inspect("example.com/moby/dockerfileids2:test")["Id"]
    );
}

/// testNoCache: `--no-cache` reruns every step; `--no-cache-filter s1` only stage s1's.
#[test]
fn no_cache() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test AS s0\nRUN cat /dev/urandom | head -c 100 | sha256sum | tee unique\n\
             FROM busybox:test AS s1\nRUN cat /dev/urandom | head -c 100 | sha256sum | tee unique2\n\
             FROM scratch\nCOPY --from=s0 unique /\nCOPY --from=s1 unique2 /\n",
        )],
    );
    let read = |dir: &std::path::Path| {
        (
            read_text(dir.join("unique")),
            read_text(dir.join("unique2")),
        )
    };
    let first = read(&env.build_local(&ctx, "out1", &[]));
    let second = read(&env.build_local(&ctx, "out2", &["--no-cache"]));
    assert_ne!(first.0, second.0);
    assert_ne!(first.1, second.1);
    let third = read(&env.build_local(&ctx, "out3", &["--no-cache-filter", "s1"]));
    assert_eq!(second.0, third.0);
    assert_ne!(first.1, third.1);
}

/// testCacheMountModeNoCache: a `--no-cache` build gets fresh cache mounts and leaves the kept
/// cache alone; a later cached build sees the kept cache plus its own file.
#[test]
#[ignore = "deliberate difference: builder keys a cache mount by its id only, so --no-cache keeps using it; see BUILDKIT_PARITY.md"]
fn cache_mount_mode_no_cache() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test AS base\nARG FOO=abc\n\
             RUN --mount=type=cache,target=/cache,mode=0773 touch /cache/$FOO && ls -l /cache | wc -l > /out\n\
             FROM scratch\nCOPY --from=base /out /\n",
        )],
    );
    env.build_local(&ctx, "out1", &[]);
    let out = env.build_local(&ctx, "out2", &["--no-cache"]);
    assert_eq!(read_text(out.join("out")), "2\n");
    let out = env.build_local(&ctx, "out3", &["--no-cache", "--build-arg", "FOO=def"]);
    assert_eq!(read_text(out.join("out")), "2\n");
    let out = env.build_local(&ctx, "out4", &["--build-arg", "FOO=ghi"]);
    assert_eq!(read_text(out.join("out")), "3\n");
}

/// testWildcardRenameCache: renaming the file a wildcard COPY matched invalidates the step (the
/// RUN needing the old name then fails).
#[test]
fn wildcard_rename_cache() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox:test\nCOPY file* /files/\nRUN ls /files/file1\n",
            ),
            ("file1", "foo"),
        ],
    );
    env.build_ok(&ctx, &[]);
    std::fs::rename(ctx.join("file1"), ctx.join("file2")).unwrap();
    let out = env.build(&ctx, &[]);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const IMPORT_EXPORT: &str = "FROM busybox:test AS base\nCOPY foo const\n#RUN echo -n foobar > const\n\
    RUN cat /dev/urandom | head -c 100 | sha256sum > unique\n\
    FROM scratch\nCOPY --from=base const /\nCOPY --from=base unique /\n";

/// Builds IMPORT_EXPORT in a store of its own with `args`; returns (const, unique).
fn import_export_build(env: &Env, args: &[&str], out: &str) -> (String, String) {
    let ctx = env.context("ctx", &[("Dockerfile", IMPORT_EXPORT), ("foo", "foobar")]);
    let dest = env.path(out);
    let output = format!("type=local,dest={}", dest.display());
    let mut all = vec!["--output", output.as_str()];
    all.extend_from_slice(args);
    env.build_ok(&ctx, &all);
    let dir = dest;
    (read_text(dir.join("const")), read_text(dir.join("unique")))
}

/// testCacheImportExport: a cache exported to a registry lets a build after `prune --all` skip
/// the RUN (the same random output).
#[test]
fn cache_import_export() {
    if !have("docker-registry") {
        eprintln!("SKIP: docker-registry is not installed");
        return;
    }
    let reg = Registry::start(Auth::None);
    let target = format!("127.0.0.1:{}/buildkit/testexportdf:latest", reg.port);
    let env = Env::new();
    env.busybox_base();
    let (c1, u1) = import_export_build(
        &env,
        &["--cache-to", &format!("type=registry,ref={target}")],
        "out1",
    );
    assert_eq!(c1, "foobar");
    // BuildKit's ensurePruneAll: the build cache goes, the base image stays the same.
    env.ok(&["prune", "--all", "--force"]);
    let (c2, u2) = import_export_build(
        &env,
        &["--cache-from", &format!("type=registry,ref={target}")],
        "out2",
    );
    assert_eq!(c2, "foobar");
    assert_eq!(u1, u2);
}

/// testExportCacheLoop: exporting a cache, pruning, then importing and exporting the same
/// local cache directory in one build works (stages copying from each other).
#[test]
fn export_cache_loop() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox:test as base\nRUN echo aa > /foo\nWORKDIR /bar\n\
                 FROM base as base1\nCOPY hello.txt .\n\
                 FROM base as base2\nCOPY --from=base1 /bar/hello.txt .\nRUN true\n\
                 FROM scratch\nCOPY --from=base2 /foo /f\n",
            ),
            ("hello.txt", "hello"),
        ],
    );
    let cache = env.path("cache");
    let to = format!("type=local,dest={}", cache.display());
    let from = format!("type=local,src={}", cache.display());
    env.build_ok(&ctx, &["--cache-to", &to]);
    env.ok(&["prune", "--all", "--force"]);
    env.build_ok(&ctx, &["--cache-to", &to, "--cache-from", &from]);
}
