//! End to end: ports of BuildKit's RUN --mount integration tests (moby/buildkit
//! frontend/dockerfile/dockerfile_mount_test.go), each asserting what the Go test asserts.
//! testCacheMountUser is tests/cache_mount_options.rs; testMountArg, testMountEnvAcrossStages
//! and testMountFromError are in tests/buildkit_run.rs.

mod common;

use common::{Env, read_text};

fn busybox_env() -> Env {
    let env = Env::new();
    env.busybox_base();
    env
}

/// testMountContext: a bind mount without `from` is the build context.
#[test]
fn mount_context() {
    let env = busybox_env();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox:test\n\
                 RUN --mount=target=/context [ \"$(cat /context/testfile)\" == \"contents0\" ]\n",
            ),
            ("testfile", "contents0"),
        ],
    );
    env.build_ok(&ctx, &[]);
}

/// testMountTmpfs: what a RUN writes into a tmpfs mount is not in the image.
#[test]
fn mount_tmpfs() {
    let env = busybox_env();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test\n\
             RUN --mount=target=/mytmp,type=tmpfs touch /mytmp/foo\n\
             RUN [ ! -f /mytmp/foo ]\n",
        )],
    );
    env.build_ok(&ctx, &[]);
}

/// testMountInvalid: a misspelt flag, mount key or mount type is refused with a suggestion.
#[test]
fn mount_invalid() {
    let env = Env::new();
    for (i, (dockerfile, wants)) in [
        (
            "FROM scratch\nRUN --mont=target=/mytmp,type=tmpfs /bin/true\n",
            ["unknown flag: --mont", "did you mean mount?"],
        ),
        (
            "\tFROM scratch\n\tRUN --mount=typ=tmpfs /bin/true\n",
            ["unexpected key 'typ'", "did you mean type?"],
        ),
        (
            "\tFROM scratch\n\tRUN --mount=type=tmp /bin/true\n",
            ["unsupported mount type \"tmp\"", "did you mean tmpfs?"],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let ctx = env.context(&format!("ctx{i}"), &[("Dockerfile", dockerfile)]);
        let out = env.build(&ctx, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{dockerfile}:\n{stderr}");
        for want in wants {
            assert!(stderr.contains(want), "{want:?} not in:\n{stderr}");
        }
    }
}

/// testMountRWCache: a writable bind mount from another stage: the RUN stays cached while the
/// stage it reads has the same content, though that stage's input changed.
#[test]
#[ignore = "not yet: builder keys a step on the op chain of a stage it reads, not on the content it reads (BuildKit's content-based cache); see BUILDKIT_PARITY.md"]
fn mount_rw_cache() {
    let env = busybox_env();
    let dockerfile = "from busybox:test AS build\n\
        copy cachebust /\n\
        run mkdir out && echo foo > out/foo\n\
        from busybox:test as second\n\
        RUN --mount=from=build,src=out,target=/out,rw touch /out/bar && cat /dev/urandom | head -c 100 | sha256sum > /unique\n\
        from scratch\n\
        COPY --from=second /unique /unique\n";
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile), ("cachebust", "0")]);
    let first = read_text(env.build_local(&ctx, "out1", &[]).join("unique"));
    std::fs::write(ctx.join("cachebust"), "1").unwrap();
    let second = read_text(env.build_local(&ctx, "out2", &[]).join("unique"));
    assert_eq!(first, second);
}

/// testCacheMountDefaultID: a cache mount's id defaults to its target.
#[test]
fn cache_mount_default_id() {
    let env = busybox_env();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test\n\
             RUN --mount=type=cache,target=/mycache touch /mycache/foo\n\
             RUN --mount=type=cache,target=/mycache2 [ ! -f /mycache2/foo ]\n\
             RUN --mount=type=cache,target=/mycache [ -f /mycache/foo ]\n",
        )],
    );
    env.build_ok(&ctx, &[]);
}

/// testMountEnvVar: a mount target from an ENV variable (the default id is the expanded
/// target, so the cache is the one mounted at that path before).
#[test]
fn mount_env_var() {
    let env = busybox_env();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test\nENV SOME_PATH=/mycache\n\
             RUN --mount=type=cache,target=/mycache touch /mycache/foo\n\
             RUN --mount=type=cache,target=$SOME_PATH [ -f $SOME_PATH/foo ]\n",
        )],
    );
    env.build_ok(&ctx, &[]);
}

/// testMountMetaArg: a mount target from a global ARG redeclared in the stage.
#[test]
fn mount_meta_arg() {
    let env = busybox_env();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "ARG META_PATH=/tmp/meta\nFROM busybox:test\nARG META_PATH\n\
             RUN --mount=type=cache,id=mycache,target=/tmp/meta touch /tmp/meta/foo\n\
             RUN --mount=type=cache,id=mycache,target=$META_PATH [ -f /tmp/meta/foo ]\n",
        )],
    );
    env.build_ok(&ctx, &[]);
}

/// testMountTmpfsSize: a tmpfs mount's `size` is the mounted file system's size.
#[test]
fn mount_tmpfs_size() {
    let env = busybox_env();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test AS base\n\
             RUN --mount=type=tmpfs,target=/dev/shm,size=128m mount | grep /dev/shm > /tmpfssize\n\
             FROM scratch\nCOPY --from=base /tmpfssize /\n",
        )],
    );
    let out = env.build_local(&ctx, "out", &[]);
    let line = read_text(out.join("tmpfssize"));
    assert!(line.contains("size=131072k"), "{line}");
}

/// testMountDuplicate (moby/buildkit#4123): the context bound twice (the whole and one file)
/// in one RUN; a changed context file reaches the next build.
#[test]
fn mount_duplicate() {
    let env = busybox_env();
    let dockerfile = "FROM busybox:test AS base\n\
        RUN --mount=source=.,target=/tmp/test \\\n\
          --mount=source=b.txt,target=/tmp/b.txt \\\n\
          cat /tmp/test/a.txt /tmp/b.txt > /combined.txt\n\
        FROM scratch\nCOPY --from=base /combined.txt /\n";
    for (i, text) in ["foo\n", "updated\n"].into_iter().enumerate() {
        let ctx = env.context(
            "ctx",
            &[
                ("Dockerfile", dockerfile),
                ("a.txt", text),
                ("b.txt", "bar\n"),
            ],
        );
        let out = env.build_local(&ctx, &format!("out{i}"), &[]);
        assert_eq!(read_text(out.join("combined.txt")), format!("{text}bar\n"));
    }
}

/// testCacheMountParallel (moby/buildkit#5566): two stages with nested cache mounts
/// (`/foo/bar` and `/foo/bar/baz`) run side by side, twenty times without cache.
#[test]
fn cache_mount_parallel() {
    let env = busybox_env();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test AS b1\n\
             RUN --mount=type=cache,target=/foo/bar --mount=type=cache,target=/foo/bar/baz echo 1\n\
             FROM busybox:test AS b2\n\
             RUN --mount=type=cache,target=/foo/bar --mount=type=cache,target=/foo/bar/baz echo 2\n\
             FROM scratch\nCOPY --from=b1 /etc/passwd p1\nCOPY --from=b2 /etc/passwd p2\n",
        )],
    );
    for _ in 0..20 {
        env.build_ok(&ctx, &["--no-cache"]);
    }
}

/// testCacheMountSourceEscape: a cache mount whose `source=` is a symlink out of the cache
/// (to /etc) must not mount what it points to: the build fails. builder refuses a cache
/// `source=` without `from=` outright (see BUILDKIT_PARITY.md), so it fails before any link is
/// followed; the stages before it build.
#[test]
fn cache_mount_source_escape() {
    let env = busybox_env();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test AS init\n\
             RUN --mount=type=cache,id=sourceescape,target=/cache mkdir -p /cache/sel && echo benign > /cache/sel/benign.txt\n\
             FROM init AS link\n\
             RUN --mount=type=cache,id=sourceescape,target=/cache rm -rf /cache/sel && ln -s /etc /cache/sel\n\
             FROM link AS victim\n\
             RUN --mount=type=cache,id=sourceescape,source=sel,target=/victim cat /victim/hostname\n\
             FROM scratch\nCOPY --from=victim /etc/hostname /hostname\n",
        )],
    );
    env.build_ok(&ctx, &["--no-cache", "--target", "link"]);
    let out = env.build(&ctx, &["--no-cache"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
}
