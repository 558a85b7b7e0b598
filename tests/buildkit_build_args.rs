//! End to end: BuildKit's built-in build args do what BuildKit does with them and are never
//! reported as unused: `BUILDKIT_CACHE_MOUNT_NS` (a namespace for cache mount ids),
//! `BUILDKIT_INLINE_CACHE` (as `--cache-to type=inline`), `BUILDKIT_CONTEXT_KEEP_GIT_DIR`
//! (nothing to change for a local context, whose .git is sent anyway), and
//! `BUILDKIT_MULTI_PLATFORM` (0: a single manifest; 1: an image index even for one platform).
//! `BUILDKIT_SANDBOX_HOSTNAME` is tests/sandbox_hostname.rs, `BUILDKIT_SYNTAX`
//! tests/syntax_directive.rs.

mod common;

use common::Env;

fn tagged(env: &Env, ctx: &std::path::Path, tag: &str, args: &[&str]) -> String {
    let mut all = vec!["-t", tag];
    all.extend_from_slice(args);
    let log = env.build_ok(ctx, &all);
    assert!(!log.contains("not consumed"), "{args:?}:\n{log}");
    log
}

#[test]
fn cache_mount_ns_gives_each_namespace_its_own_caches() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test\nARG N\n\
             RUN --mount=type=cache,target=/c,id=shared ls /c > /before && touch /c/f$N\n",
        )],
    );
    let before = |ns: Option<&str>, n: &str| {
        let mut args = vec!["--build-arg".to_string(), format!("N={n}")];
        if let Some(ns) = ns {
            args.extend([
                "--build-arg".into(),
                format!("BUILDKIT_CACHE_MOUNT_NS={ns}"),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tagged(&env, &ctx, "ns:1", &args);
        env.ok(&["run", "--rm", "ns:1", "cat", "/before"])
    };
    assert_eq!(before(Some("a"), "1"), "");
    assert_eq!(before(Some("a"), "2"), "f1\n");
    assert_eq!(
        before(Some("b"), "3"),
        "",
        "another namespace, another cache"
    );
    assert_eq!(before(None, "4"), "", "no namespace is not namespace a");
    assert_eq!(before(Some(""), "5"), "f4\n", "an empty namespace is none");
    assert_eq!(before(Some("a"), "6"), "f1\nf2\n");
}

#[test]
fn inline_cache_arg_embeds_the_cache_records_like_cache_to_inline() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM busybox:test\nRUN echo hi > /hi\n")],
    );
    tagged(
        &env,
        &ctx,
        "inline:1",
        &["--build-arg", "BUILDKIT_INLINE_CACHE=1"],
    );
    assert!(
        env.inspect("inline:1")["builder.cache.v1"]["records"].is_array(),
        "records are in the image config"
    );
    tagged(
        &env,
        &ctx,
        "inline:0",
        &["--build-arg", "BUILDKIT_INLINE_CACHE=0"],
    );
    assert!(env.inspect("inline:0")["builder.cache.v1"].is_null());
    // Without it the image is the same as with =0 (config and layers; its creation time is
    // the build's, which may fall in another second).
    tagged(&env, &ctx, "inline:none", &[]);
    let (none, zero) = (env.inspect("inline:none"), env.inspect("inline:0"));
    assert_eq!(none["config"], zero["config"]);
    assert_eq!(none["rootfs"], zero["rootfs"]);
    assert!(none["builder.cache.v1"].is_null());
}

#[test]
fn keep_git_dir_changes_nothing_for_a_local_context_and_bad_booleans_are_refused() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM busybox:test\nCOPY . /src\n"),
            (".git/HEAD", "ref: refs/heads/main\n"),
        ],
    );
    for value in ["1", "0"] {
        let arg = format!("BUILDKIT_CONTEXT_KEEP_GIT_DIR={value}");
        tagged(&env, &ctx, "git:1", &["--build-arg", &arg]);
        assert_eq!(
            env.ok(&["run", "--rm", "git:1", "cat", "/src/.git/HEAD"]),
            "ref: refs/heads/main\n"
        );
    }
    tagged(
        &env,
        &ctx,
        "mp:0",
        &["--build-arg", "BUILDKIT_MULTI_PLATFORM=0"],
    );
    tagged(
        &env,
        &ctx,
        "mp:f",
        &["--build-arg", "BUILDKIT_MULTI_PLATFORM=false"],
    );

    for (arg, message) in [
        ("BUILDKIT_MULTI_PLATFORM=yes", "\"yes\" is not a boolean"),
        ("BUILDKIT_INLINE_CACHE=on", "\"on\" is not a boolean"),
        ("BUILDKIT_CONTEXT_KEEP_GIT_DIR=2", "\"2\" is not a boolean"),
    ] {
        let out = env.build(&ctx, &["--build-arg", arg]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{arg}: {stderr}");
        assert!(
            stderr.contains(arg.split('=').next().unwrap()) && stderr.contains(message),
            "{arg}: {stderr}"
        );
    }
}

/// `BUILDKIT_MULTI_PLATFORM=1`: an image index even for one platform, as BuildKit makes.
#[test]
fn multi_platform_1_makes_an_index_of_one_platform() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")],
    );
    for value in ["1", "true"] {
        let layout = env.path(&format!("layout-{value}"));
        let arg = format!("BUILDKIT_MULTI_PLATFORM={value}");
        let dest = format!("type=oci,tar=false,dest={}", layout.display());
        let log = env.build_ok(&ctx, &["--build-arg", &arg, "-o", &dest]);
        assert!(log.contains("writing image index"), "{log}");
        let top: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let digest = top["manifests"][0]["digest"].as_str().unwrap();
        let blob = layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap();
        assert_eq!(
            index["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
        let entries = index["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{index}");
        let arch = match std::env::consts::ARCH {
            "aarch64" => "arm64",
            _ => "amd64",
        };
        assert_eq!(entries[0]["platform"]["architecture"], arch);
    }
    // Kept in the store under the tag, as an index.
    env.build_ok(
        &ctx,
        &["--build-arg", "BUILDKIT_MULTI_PLATFORM=1", "-t", "mp:1"],
    );
    let index = env.inspect("mp:1");
    assert_eq!(
        index["MediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
}
