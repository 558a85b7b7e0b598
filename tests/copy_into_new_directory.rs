//! A COPY whose destination directory does not exist yet fills it without going through the
//! step's overlay mount (issue #17: written into the upper directory directly). What the
//! image holds must not change: the same files, modes, owners, links and times as the copy
//! snapshotter (chroot isolation) writes through a plain directory, byte for byte, also when
//! a second source of the same COPY replaces what the first wrote there, and a later step
//! sees every file.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use common::{Env, busybox_path};

const DOCKERFILE: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY tree/ /new/deep/
COPY tree/ other/ /new2/
COPY --chown=7:8 --chmod=750 tree/ /owned/
RUN cat /new/deep/a.txt /new/deep/sub/b.txt /new2/a.txt /new2/only-other.txt > /seen && readlink /new/deep/link >> /seen && stat -c '%a %u:%g %n' /new/deep/sub/x.sh /owned/a.txt /owned/sub >> /seen && ls /new2 >> /seen
"#;

fn context(env: &Env) -> std::path::PathBuf {
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", DOCKERFILE),
            ("tree/a.txt", "tree a\n"),
            ("tree/sub/b.txt", "tree b\n"),
            ("tree/sub/x.sh", "#!/bin/sh\n"),
            ("other/a.txt", "other a\n"),
            ("other/only-other.txt", "only other\n"),
        ],
    );
    fs::set_permissions(ctx.join("tree/sub/x.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("a.txt", ctx.join("tree/link")).unwrap();
    fs::copy(busybox_path(), ctx.join("busybox")).unwrap();
    ctx
}

fn build(env: &Env, ctx: &Path, isolation: &str) -> (String, std::path::PathBuf) {
    let out = env.path("tree-out");
    let tar = env.path("image.tar");
    for dest in [
        format!("type=local,dest={}", out.display()),
        format!("type=oci,dest={}", tar.display()),
    ] {
        let result = env
            .cmd()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["build", "--progress=plain", "--isolation", isolation, "-o"])
            .arg(&dest)
            .arg(ctx)
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "{isolation} build failed:\n{}",
            String::from_utf8_lossy(&result.stderr)
        );
    }
    (fs::read_to_string(out.join("seen")).unwrap(), tar)
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

#[test]
fn a_copy_into_a_new_directory_writes_what_the_mount_would_have() {
    let env = Env::new();
    let ctx = context(&env);
    let (seen, tar) = build(&env, &ctx, "rootless");
    assert_eq!(
        seen,
        "tree a\ntree b\nother a\nonly other\na.txt\n\
         755 0:0 /new/deep/sub/x.sh\n750 7:8 /owned/a.txt\n750 7:8 /owned/sub\n\
         a.txt\nlink\nonly-other.txt\nsub\n"
    );

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: the comparison with chroot isolation needs root");
        return;
    }
    let chroot_env = Env::new();
    let (chroot_seen, chroot_tar) = build(&chroot_env, &ctx, "chroot");
    assert_eq!(seen, chroot_seen);
    assert_eq!(
        archive_entries(&tar),
        archive_entries(&chroot_tar),
        "the same OCI archive (every blob) whether the COPY wrote through a mount or not"
    );
}
