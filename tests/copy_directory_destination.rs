//! End to end: `COPY <dir> <dest>` copies the directory's contents and leaves the destination
//! directory itself alone, as BuildKit does: an existing destination keeps its owner and mode
//! (also under `--chown` and with a `src/.` source), a created one is 0755 and owned by root or
//! the `--chown` owner. Checkouts made under umask 002 have 0775 directories, so giving the
//! destination the source's mode and root ownership broke `USER app; COPY . .` in a home.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Env, run_output_lines};

/// Builds `dockerfile` with a context holding `sub/a` (sub is 0775, as under umask 002) and
/// returns the RUN steps' output lines (the text after the `#N 0.123 ` prefix).
fn build_lines(env: &Env, dockerfile: &str) -> Vec<String> {
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile), ("sub/a", "a\n")]);
    std::fs::set_permissions(ctx.join("sub"), std::fs::Permissions::from_mode(0o775)).unwrap();
    run_output_lines(&env.build_ok(&ctx, &[]))
}

#[test]
fn an_existing_destination_keeps_its_owner_and_mode() {
    let env = Env::new();
    env.busybox_base();
    let lines = build_lines(
        &env,
        "FROM busybox:test\n\
         RUN mkdir /d && chown 1000:1000 /d && chmod 700 /d\n\
         COPY sub /d\n\
         RUN stat -c 'dest %u:%g %a' /d && stat -c 'file %u:%g %a' /d/a\n",
    );
    assert!(lines.contains(&"dest 1000:1000 700".into()), "{lines:?}");
    assert!(lines.contains(&"file 0:0 644".into()), "{lines:?}");
}

#[test]
fn chown_and_a_dot_source_leave_an_existing_destination_alone() {
    let env = Env::new();
    env.busybox_base();
    let lines = build_lines(
        &env,
        "FROM busybox:test\n\
         RUN mkdir /d && chown 1000:1000 /d && chmod 750 /d\n\
         COPY --chown=2000:2000 sub/. /d\n\
         RUN stat -c 'dest %u:%g %a' /d && stat -c 'file %u:%g %a' /d/a\n",
    );
    assert!(lines.contains(&"dest 1000:1000 750".into()), "{lines:?}");
    assert!(lines.contains(&"file 2000:2000 644".into()), "{lines:?}");
}

#[test]
fn a_created_destination_is_0755_and_owned_by_root_or_the_chown_owner() {
    let env = Env::new();
    env.busybox_base();
    let lines = build_lines(
        &env,
        "FROM busybox:test\n\
         COPY sub /new\n\
         COPY --chown=1000:1000 sub /owned/deep\n\
         RUN stat -c '%n %u:%g %a' /new /owned /owned/deep\n",
    );
    for want in [
        "/new 0:0 755",
        "/owned 1000:1000 755",
        "/owned/deep 1000:1000 755",
    ] {
        assert!(lines.contains(&want.to_string()), "{want}: {lines:?}");
    }
}

#[test]
fn an_app_user_can_still_write_its_home_after_copying_into_it() {
    let env = Env::new();
    env.busybox_base();
    let lines = build_lines(
        &env,
        "FROM busybox:test\n\
         RUN mkdir -p /home/app && echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd \
             && echo 'app:x:1000:' >> /etc/group && chown app:app /home/app && chmod 755 /home/app\n\
         WORKDIR /home/app\n\
         COPY sub .\n\
         USER app\n\
         RUN touch /home/app/written && echo wrote\n",
    );
    assert!(lines.contains(&"wrote".into()), "{lines:?}");
}

/// The parents a heredoc COPY makes are owned like the file (`--chown`), as fsutil's copy
/// makes them in BuildKit.
#[test]
fn a_heredocs_created_parents_are_owned_by_the_chown_owner() {
    let env = Env::new();
    env.busybox_base();
    let lines = build_lines(
        &env,
        "FROM busybox:test\n\
         COPY --chown=1000:1000 <<EOT /hd/deep/\nhi\nEOT\n\
         RUN stat -c '%n %u:%g %a' /hd /hd/deep /hd/deep/EOT\n",
    );
    for want in [
        "/hd 1000:1000 755",
        "/hd/deep 1000:1000 755",
        "/hd/deep/EOT 1000:1000 644",
    ] {
        assert!(lines.contains(&want.to_string()), "{want}: {lines:?}");
    }
}
