//! A copied regular file keeps every bit of its mode, whatever its owner becomes: setuid and
//! setgid survive `--chown` (a chown clears them, so the mode is applied after it), and bits a
//! umask would take away (group/other write) are kept. The copy writes each file and finishes
//! it through the same descriptor, skipping a chown or chmod that changes nothing: these are
//! the cases where skipping one, or doing them in the wrong order, would show.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Env, read_text};

#[test]
fn copied_files_keep_setuid_setgid_and_umask_bits_with_and_without_chown() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = "FROM busybox:test AS base\n\
        RUN mkdir -m 0777 /out\n\
        COPY files/ /plain/\n\
        COPY --chown=1000:1000 files/ /owned/\n\
        COPY --chown=1000:1000 --chmod=4711 files/open /chmodded\n\
        RUN cd /plain && stat -c '%n %04a %u:%g %s' * > /out/plain\n\
        RUN cd /owned && stat -c '%n %04a %u:%g %s' * > /out/owned\n\
        RUN stat -c '%04a %u:%g' /chmodded > /out/chmodded\n\
        FROM scratch\n\
        COPY --from=base /out /\n";
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", dockerfile),
            ("files/suid", "s"),
            ("files/sgid", "gg"),
            ("files/open", "ooo"),
            ("files/none", "nnnn"),
        ],
    );
    for (name, mode) in [
        ("suid", 0o4755),
        ("sgid", 0o2755),
        ("open", 0o666),
        ("none", 0o000),
    ] {
        std::fs::set_permissions(
            ctx.join("files").join(name),
            std::fs::Permissions::from_mode(mode),
        )
        .unwrap();
    }
    let out = env.build_local(&ctx, "out", &[]);
    assert_eq!(
        read_text(out.join("plain")),
        "none 0000 0:0 4\nopen 0666 0:0 3\nsgid 2755 0:0 2\nsuid 4755 0:0 1\n"
    );
    assert_eq!(
        read_text(out.join("owned")),
        "none 0000 1000:1000 4\nopen 0666 1000:1000 3\nsgid 2755 1000:1000 2\nsuid 4755 1000:1000 1\n"
    );
    assert_eq!(read_text(out.join("chmodded")), "4711 1000:1000\n");
}
