//! End to end: `COPY --chmod` takes symbolic modes (`go-w`, `u=rw,g=r,o=r`, `a+X`,
//! `u+rw,g+r,o-x,o+w`) applied to each file's own mode, for files and directories alike. As in
//! BuildKit's testChmodNonOctal, the expected modes come from chmod(1) run on copies of the same
//! inputs, and the two are compared with `stat -c %A` inside a RUN step.

mod common;

use common::Env;

#[test]
fn symbolic_chmod_matches_chmod_on_files_and_directories() {
    let env = Env::new();
    env.busybox_base();
    // (source, destination name, mode, is a directory)
    let cases = [
        ("file", "f1", "go-w", false),
        ("file", "f2", "u=rw,g=r,o=r", false),
        ("file", "f3", "a+X", false),
        ("dir", "d1", "go-w", true),
        ("dir", "d2", "u+rw,g+r,o-x,o+w", true),
        ("dir", "d3", "a+X", true),
    ];
    let mut expected = String::new();
    let mut copies = String::new();
    let mut checks = String::new();
    for (src, dst, mode, is_dir) in cases {
        if is_dir {
            // COPY copies a directory's contents, so the directory to chmod sits one level down.
            expected.push_str(&format!(
                "RUN mkdir -p /input/dirs/{dst} && cp -a /input/{src} /input/dirs/{dst}/{dst}\n\
                 RUN cp -a /input/dirs/{dst}/. /expected/ && chmod {mode} /expected/{dst}\n"
            ));
            copies.push_str(&format!(
                "COPY --from=base --chmod={mode} /input/dirs/{dst} /\n"
            ));
        } else {
            expected.push_str(&format!(
                "RUN cp -a /input/{src} /expected/{dst} && chmod {mode} /expected/{dst}\n"
            ));
            copies.push_str(&format!(
                "COPY --from=base --chmod={mode} /input/{src} /{dst}\n"
            ));
        }
        checks.push_str(&format!(
            "RUN [ \"$(stat -c %A /actual/{dst})\" = \"$(stat -c %A /expected/{dst})\" ] || \
             {{ stat -c '%n %A' /actual/{dst} /expected/{dst}; exit 1; }}\n"
        ));
    }
    let dockerfile = format!(
        "FROM busybox:test AS base\n\
         RUN mkdir /input && touch /input/file && chmod 666 /input/file && mkdir /input/dir \
             && chmod 124 /input/dir && mkdir /expected\n\
         {expected}\
         FROM scratch AS result\n\
         {copies}\
         FROM base\n\
         COPY --from=result / /actual/\n\
         {checks}"
    );
    let ctx = env.context("ctx", &[("Dockerfile", &dockerfile)]);
    env.build_ok(&ctx, &[]);
}

#[test]
fn an_invalid_chmod_is_refused_with_buildkits_wording() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY --chmod=999 a /a\n"),
            ("a", "a\n"),
        ],
    );
    let out = env.build(&ctx, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "invalid chmod parameter: '999'. it should be octal string and between 0 and 07777"
        ),
        "{stderr}"
    );
}
