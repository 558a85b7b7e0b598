//! End to end: ports of BuildKit's build cache integration tests (moby/buildkit
//! frontend/dockerfile/dockerfile_cache_test.go), each asserting what the Go test asserts.

mod common;

use common::{Env, read_text};

/// testReproducibleIDs: building the same Dockerfile twice (the second time from the cache)
/// under two names gives the same image.
#[test]
#[ignore = "not yet: builder dates an image (and its history) by the build's clock, BuildKit by when its layers were first made; see BUILDKIT_PARITY.md"]
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
