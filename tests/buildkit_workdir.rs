//! End to end: ports of BuildKit's WORKDIR integration tests (moby/buildkit
//! frontend/dockerfile/dockerfile_workdir_test.go), each asserting what the Go test asserts.
//! `busybox:test` stands in for `busybox`/`alpine`; Debian's static busybox has no `adduser`, so
//! users are written to /etc/passwd and /etc/group (what `adduser -D user` does).

mod common;

use common::{Env, read_text};

/// What `adduser -D user` leaves: user and group `user`, 1000:1000.
const ADDUSER: &str = "RUN echo 'user:x:1000:1000::/home/user:/bin/sh' >> /etc/passwd && \
    echo 'user:x:1000:' >> /etc/group && mkdir -p /home/user && chown user:user /home/user\n";

/// testWorkdirCreatesDir: WORKDIR creates its directory, which stays when a later WORKDIR
/// moves elsewhere.
#[test]
fn workdir_creates_dir() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nWORKDIR /foo\nWORKDIR /\n")],
    );
    let out = env.build_local(&ctx, "out", &[]);
    let meta = std::fs::symlink_metadata(out.join("foo")).unwrap();
    assert!(meta.is_dir());
}

/// testWorkdirSourceDateEpochReproducible: with SOURCE_DATE_EPOCH, a WORKDIR step gives the
/// same image (the same OCI index) after all build cache is pruned and time has passed.
#[test]
fn workdir_source_date_epoch_reproducible() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM busybox:test\nWORKDIR /mydir\n")],
    );
    // 2023-01-10T15:34:56Z
    let epoch = "SOURCE_DATE_EPOCH=1673364896";
    let build = |name: &str| {
        let dest = env.path(name);
        let output = format!("type=oci,dest={},tar=false", dest.display());
        env.build_ok(&ctx, &["--build-arg", epoch, "--output", &output]);
        read_text(dest.join("index.json"))
    };
    let first = build("oci1");
    env.ok(&["prune", "--all", "--force"]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let second = build("oci2");
    assert_eq!(first, second);
}

/// testWorkdirUser: a directory WORKDIR creates belongs to the USER in effect.
#[test]
fn workdir_user() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = format!(
        "FROM busybox:test\n{ADDUSER}USER user\nWORKDIR /mydir\n\
         RUN [ \"$(stat -c \"%U %G\" /mydir)\" == \"user user\" ]\n"
    );
    let ctx = env.context("ctx", &[("Dockerfile", &dockerfile)]);
    env.build_ok(&ctx, &[]);
}

/// testWorkdirCopyIgnoreRelative: `COPY --from=base Dockerfile .` reads the source from the
/// other stage's root, not relative to that stage's WORKDIR.
#[test]
fn workdir_copy_ignore_relative() {
    let env = Env::new();
    let dockerfile = "FROM scratch AS base\n\
        WORKDIR /foo\n\
        COPY Dockerfile /\n\
        FROM scratch\n\
        # relative path still loaded as absolute\n\
        COPY --from=base Dockerfile .\n";
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    let out = env.build_local(&ctx, "out", &[]);
    assert_eq!(read_text(out.join("Dockerfile")), dockerfile);
}

/// testWorkdirExists: WORKDIR on an existing directory leaves its owner alone.
#[test]
fn workdir_exists() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = format!(
        "FROM busybox:test\n{ADDUSER}RUN mkdir /mydir && chown user:user /mydir\nWORKDIR /mydir\n\
         RUN [ \"$(stat -c \"%U %G\" /mydir)\" == \"user user\" ]\n"
    );
    let ctx = env.context("ctx", &[("Dockerfile", &dockerfile)]);
    env.build_ok(&ctx, &[]);
}
