//! `--isolation=chroot`: RUN steps without namespaces of their own, mounts made of files
//! (issue #23). The same Dockerfile must give the same image as the namespaced sandbox, byte
//! for byte, so caches and images are shared between a CI container and a workstation.
//!
//! chroot(2) needs root (CAP_SYS_CHROOT): as another user these tests say SKIP; the non-root
//! case is `tests/in_container.rs`'s.

mod common;

use std::fs;
use std::path::Path;

use common::{Env, busybox_path};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Every kind of RUN mount, and a step that looks at what stands in for them.
const DOCKERFILE: &str = r#"FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc /tmp /app && chmod 1777 /tmp && echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd && echo hidden > /app/under-the-mount

FROM base
RUN --mount=type=cache,target=/cache,id=c1 echo run >> /cache/runs && cp /cache/runs /runs-seen
RUN --mount=type=bind,target=/app cat /app/app.txt > /from-context && ls /app > /app-listing && echo scribble > /app/scribble || true
RUN --mount=type=tmpfs,target=/scratch echo x > /scratch/x && ls -A /scratch > /tmpfs-listing
RUN --mount=type=secret,id=token cat /run/secrets/token > /secret-len && wc -c < /run/secrets/token > /secret-len
RUN ls /dev > /dev-listing && echo ok > /dev/null && head -c 4 /dev/zero | wc -c > /zero-bytes && echo written > /dev/shm/x
"#;

fn context(env: &Env) -> std::path::PathBuf {
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", DOCKERFILE),
            ("app.txt", "from the context\n"),
        ],
    );
    fs::copy(busybox_path(), ctx.join("busybox")).unwrap();
    ctx
}

/// (path, size) of every entry of an OCI archive: blob names are their digests.
fn archive_entries(tar: &Path) -> Vec<(String, u64)> {
    let mut archive = tar::Archive::new(fs::File::open(tar).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path().unwrap().display().to_string(), e.size())
        })
        .collect()
}

fn build_oci(env: &Env, ctx: &Path, isolation: &str, dest: &Path) -> String {
    let secret = env.path("token");
    fs::write(&secret, "s3cret").unwrap();
    let out = env
        .cmd()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "--progress=plain", "--isolation", isolation])
        .arg("--secret")
        .arg(format!("id=token,src={}", secret.display()))
        .arg("-o")
        .arg(format!("type=oci,dest={}", dest.display()))
        .arg(ctx)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{isolation} build failed:\n{log}");
    log
}

#[test]
fn chroot_isolation_builds_the_same_image_as_the_namespaced_sandbox() {
    if !is_root() {
        eprintln!("SKIP: chroot isolation needs root");
        return;
    }
    let (ns_env, chroot_env) = (Env::new(), Env::new());
    let ctx = context(&ns_env);
    let ns_tar = ns_env.path("ns.tar");
    let chroot_tar = chroot_env.path("chroot.tar");
    let ns_log = build_oci(&ns_env, &ctx, "rootless", &ns_tar);
    let chroot_log = build_oci(&chroot_env, &ctx, "chroot", &chroot_tar);
    assert!(
        ns_log
            .lines()
            .next()
            .unwrap_or("")
            .starts_with("#0 isolation: rootless"),
        "{ns_log}"
    );
    assert!(
        chroot_log
            .lines()
            .next()
            .unwrap_or("")
            .starts_with("#0 isolation: chroot"),
        "{chroot_log}"
    );
    assert!(
        chroot_log.contains("WARNING: chroot isolation"),
        "{chroot_log}"
    );
    assert_eq!(
        archive_entries(&ns_tar),
        archive_entries(&chroot_tar),
        "the same OCI archive (every blob) from both isolations"
    );

    // And what the steps saw is what a mount would have shown.
    let out = chroot_env.path("tree");
    let dest = format!("type=local,dest={}", out.display());
    chroot_env.build_ok(
        &ctx,
        &[
            "--isolation=chroot",
            "--secret",
            &format!("id=token,src={}", chroot_env.path("token").display()),
            "-o",
            &dest,
        ],
    );
    let read = |name: &str| fs::read_to_string(out.join(name)).unwrap_or_default();
    assert_eq!(read("from-context"), "from the context\n");
    assert!(
        !read("app-listing").contains("under-the-mount"),
        "the bind mount hides what the image had there: {}",
        read("app-listing")
    );
    assert_eq!(read("tmpfs-listing"), "x\n");
    assert_eq!(read("secret-len").trim(), "6");
    assert_eq!(read("zero-bytes").trim(), "4");
    for dev in ["null", "zero", "urandom", "shm"] {
        assert!(
            read("dev-listing").lines().any(|l| l == dev),
            "/dev/{dev}: {}",
            read("dev-listing")
        );
    }
    for leaked in [
        "app/scribble",
        "scratch/x",
        "cache/runs",
        "dev/shm/x",
        "run/secrets/token",
        "run",
    ] {
        assert!(
            !out.join(leaked).exists(),
            "{leaked} was under a mount point and must not reach the image"
        );
    }
    assert!(
        out.join("app/under-the-mount").exists(),
        "what the mount hid is still in the image"
    );
}

#[test]
fn cache_mount_contents_persist_between_chroot_builds() {
    if !is_root() {
        eprintln!("SKIP: chroot isolation needs root");
        return;
    }
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context("cache", &[]);
    let runs = |n: usize| {
        fs::write(
            ctx.join("Dockerfile"),
            format!(
                "FROM busybox:test\nRUN --mount=type=cache,target=/var/cache/x echo {n} >> /var/cache/x/runs && cp /var/cache/x/runs /seen\n"
            ),
        )
        .unwrap();
        let out = env.path(&format!("out{n}"));
        let dest = format!("type=local,dest={}", out.display());
        env.build_ok(&ctx, &["--isolation=chroot", "-o", &dest]);
        fs::read_to_string(out.join("seen")).unwrap()
    };
    assert_eq!(runs(1), "1\n");
    assert_eq!(
        runs(2),
        "1\n2\n",
        "the second build saw the first one's cache"
    );
}

#[test]
fn options_chroot_cannot_honour_are_refused_with_the_reason() {
    if !is_root() {
        eprintln!("SKIP: chroot isolation needs root");
        return;
    }
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "refused",
        &[("Dockerfile", "FROM busybox:test\nRUN --network=none true\n")],
    );
    let out = env.build(&ctx, &["--isolation=chroot"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("RUN --network=none") && log.contains("network namespace"),
        "{log}"
    );

    fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:test\nRUN --mount=type=tmpfs,target=/t,size=1m true\n",
    )
    .unwrap();
    let out = env.build(&ctx, &["--isolation=chroot"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("size"), "{log}");
}

#[test]
fn an_unknown_isolation_is_a_usage_error() {
    let env = Env::new();
    let ctx = env.context("any", &[("Dockerfile", "FROM scratch\n")]);
    let out = env.build(&ctx, &["--isolation=hyperv"]);
    assert_eq!(out.status.code(), Some(2));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("auto, rootless or chroot"), "{log}");
    let out = env
        .cmd()
        .env("BUILDER_ISOLATION", "process")
        .args(["build", "--progress=plain"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
