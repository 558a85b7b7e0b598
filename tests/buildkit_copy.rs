//! End to end: ports of BuildKit's COPY/ADD integration tests (moby/buildkit
//! frontend/dockerfile/dockerfile_copy_test.go, dockerfile_add_test.go,
//! dockerfile_parents_test.go, exclude_patterns_test.go, dockerfile_core_test.go), each asserting
//! what the Go test asserts. Named after the BuildKit test each one ports.

mod common;

use std::path::Path;

use common::{Env, read_text};

/// The output directory of a build of `ctx`, named after it.
fn out_name(ctx: &Path) -> String {
    format!("out-{}", ctx.file_name().unwrap().to_string_lossy())
}

/// A tar archive holding one regular file.
fn tar_with(name: &str, content: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, content.as_bytes()).unwrap();
    b.into_inner().unwrap()
}

/// testEmptyWildcard: a wildcard source that matches nothing, next to one that does, is no
/// error (BuildKit copies each source on its own and lets a wildcard match nothing).
#[test]
fn empty_wildcard() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY foo nomatch* /\n"),
            ("foo", "contents0"),
        ],
    );
    let out = env.build_local(&ctx, &out_name(&ctx), &[]);
    assert_eq!(read_text(out.join("foo")), "contents0");
}

/// testCopyParentsMissingDirectory: with --parents a wildcard that matches nothing still makes
/// the destination and copies nothing; a missing literal path is an error naming it.
#[test]
fn copy_parents_missing_directory() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = "FROM busybox:test AS base\n\
        WORKDIR /test\n\
        RUN mkdir -p a/b/c/d/e && touch a/b/c/d/foo a/b/c/d/e/bay\n\
        FROM busybox:test AS normal\n\
        COPY --from=base --parents /test/a/b/c/d /out/\n\
        RUN [ -d /out/test/a/b/c/d/e ] && [ -f /out/test/a/b/c/d/e/bay ] && [ ! -d /out/e ] && [ ! -d /out/a ]\n\
        FROM busybox:test AS withpivot\n\
        COPY --from=base --parents /test/a/b/./c/d /out/\n\
        RUN [ -d /out/c/d/e ] && [ -f /out/c/d/foo ] && [ ! -d /out/a ] && [ ! -d /out/e ]\n\
        FROM busybox:test AS nonexistentfile\n\
        COPY --from=base --parents /test/nonexistent-file /out/\n\
        FROM busybox:test AS wildcard-nonexistent\n\
        COPY --from=base --parents /test/a/b2*/c /out/\n\
        RUN [ -d /out ] && [ ! -d /out/a ]\n\
        FROM busybox:test AS wildcard-afterpivot\n\
        COPY --from=base --parents /test/a/b/./c2* /out/\n\
        RUN [ -d /out ] && [ ! -d /out/a ] && [ ! -d /out/c2 ]\n";
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    for target in [
        "normal",
        "withpivot",
        "wildcard-nonexistent",
        "wildcard-afterpivot",
    ] {
        env.build_ok(&ctx, &["--target", target]);
    }
    let out = env.build(&ctx, &["--target", "nonexistentfile"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("test/nonexistent-file") && err.contains("no such file"),
        "{err}"
    );
}

/// testCopyRelativeParents: `/./` pivots, wildcards before the pivot, and `**` after it
/// (any number of directories, including none).
#[test]
fn copy_relative_parents() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = "FROM busybox:test AS base\n\
        WORKDIR /test\n\
        RUN mkdir -p a/b/c/d/e a/b2/c/d/e a/b/c2/d/e a/b/c2/d/e2 && touch a/b/c/d/foo a/b/c/d/e/bay a/b2/c/d/e/bar a/b/c2/d/e/baz a/b/c2/d/e2/baz\n\
        FROM busybox:test AS middle\n\
        COPY --from=base --parents /test/a/b/./c/d /out/\n\
        RUN [ -d /out/c/d/e ] && [ -f /out/c/d/foo ] && [ ! -d /out/a ] && [ ! -d /out/e ]\n\
        FROM busybox:test AS end\n\
        COPY --from=base --parents /test/a/b/c/d/. /out/\n\
        RUN [ -d /out/test/a/b/c/d/e ] && [ -f /out/test/a/b/c/d/foo ]\n\
        FROM busybox:test AS start\n\
        COPY --from=base --parents ./test/a/b/c/d /out/\n\
        RUN [ -d /out/test/a/b/c/d/e ] && [ -f /out/test/a/b/c/d/foo ]\n\
        FROM busybox:test AS double\n\
        COPY --from=base --parents /test/a/./b/./c /out/\n\
        RUN [ -d /out/b/c/d/e ] && [ -f /out/b/c/d/foo ]\n\
        FROM busybox:test AS wildcard\n\
        COPY --from=base --parents /test/a/./*/c /out/\n\
        RUN [ -d /out/b/c/d/e ] && [ -f /out/b2/c/d/e/bar ]\n\
        FROM busybox:test AS doublewildcard\n\
        COPY --from=base --parents /test/a/b*/./c/**/e /out/\n\
        RUN [ -d /out/c/d/e ] && [ -f /out/c/d/e/bay ] && [ -f /out/c/d/e/bar ]\n\
        FROM busybox:test AS doubleinputs\n\
        COPY --from=base --parents /test/a/b/c*/./d/**/baz /test/a/b*/./c/**/bar /out/\n\
        RUN [ -f /out/d/e/baz ] && [ ! -f /out/d/e/bay ] && [ -f /out/d/e2/baz ] && [ -f /out/c/d/e/bar ]\n";
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    for target in [
        "middle",
        "end",
        "start",
        "double",
        "wildcard",
        "doublewildcard",
        "doubleinputs",
    ] {
        env.build_ok(&ctx, &["--target", target]);
    }
}

/// testDockerfileAddArchiveWildcard (dockerfile_add_test.go): a wildcard matching two archives
/// with a destination that does not end in `/` extracts both into it.
#[test]
fn add_multiple_archives_to_dest_without_slash() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM scratch\nADD *.tar /dest\n")]);
    std::fs::write(ctx.join("t.tar"), tar_with("foo", "content0")).unwrap();
    std::fs::write(ctx.join("b.tar"), tar_with("bar", "content1")).unwrap();
    let out = env.build_local(&ctx, &out_name(&ctx), &[]);
    assert_eq!(read_text(out.join("dest/foo")), "content0");
    assert_eq!(read_text(out.join("dest/bar")), "content1");
}

/// testExcludedFilesOnCopy (exclude_patterns_test.go), builders 5 and 6: `ADD --exclude=… dir* /5`
/// copies the contents of every matched directory into /5; excluding everything leaves it
/// empty.
#[test]
fn exclude_patterns_wildcard_dirs_to_dest_without_slash() {
    let env = Env::new();
    let dockerfile = "FROM scratch AS builder5\n\
        ADD --exclude=*.mp* --exclude=*.jpeg --exclude=*.png --exclude=*.pdf dir* /5\n\
        FROM scratch AS builder6\n\
        ADD --exclude=* dir* /6\n\
        FROM scratch\n\
        COPY --from=builder5 / /builder5\n\
        COPY --from=builder6 / /builder6\n";
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", dockerfile),
            ("dir1/file-101.png", "2"),
            ("dir1/file-102.txt", "3"),
            ("dir1/file-103.jpeg", "4"),
            ("dir2/file-201.pdf", "6"),
            ("dir2/file-202.jpeg", "7"),
            ("dir3/file-301.mp3", "9"),
            ("dir3/file-302.mpeg", "10"),
        ],
    );
    let out = env.build_local(&ctx, &out_name(&ctx), &[]);
    let mut names: Vec<String> = std::fs::read_dir(out.join("builder5/5"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["file-102.txt"]);
    assert_eq!(
        std::fs::read_dir(out.join("builder6/6")).unwrap().count(),
        0
    );
}

/// testSymlinkDestination (dockerfile_core_test.go): `COPY foo /symlink/` where /symlink is a dangling link to ../tmp/symlink-target follows the link
/// inside the root and creates its target.
#[test]
fn symlink_destination() {
    let env = Env::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_link(&mut h, "symlink", "../tmp/symlink-target")
        .unwrap();
    let archive = b.into_inner().unwrap();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch\nADD t.tar /\nCOPY foo /symlink/\n",
            ),
            ("foo", "content0"),
        ],
    );
    std::fs::write(ctx.join("t.tar"), archive).unwrap();
    let out = env.build_local(&ctx, &out_name(&ctx), &[]);
    assert_eq!(read_text(out.join("tmp/symlink-target/foo")), "content0");
}

/// testCopySocket: a socket in the context becomes an empty regular file.
#[test]
fn copy_socket() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM scratch\nCOPY . /\n")]);
    let _listener = std::os::unix::net::UnixListener::bind(ctx.join("socket.sock")).unwrap();
    let out = env.build_local(&ctx, &out_name(&ctx), &[]);
    let meta = std::fs::symlink_metadata(out.join("socket.sock")).unwrap();
    assert!(meta.file_type().is_file(), "{meta:?}");
    assert_eq!(meta.len(), 0);
}

/// testCopyChmod: `--chmod` sets the copied file's mode, and (BuildKit ≥ 0.13) an octal one is
/// also the mode of the directories the copy creates on the way (`/parent` 0777, then
/// `/parent/sub` 0770 while the existing `/parent` keeps 0777). Also: a symbolic `--chmod`
/// leaves created parents at 0755, a mode without the search bit still lets the copy finish
/// inside the directories it makes, and a heredoc's parents get the mode too.
#[test]
fn copy_chmod() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "chmod",
        &[
            (
                "Dockerfile",
                "FROM busybox:test AS base\n\
                 RUN mkdir -m 0777 /out\n\
                 COPY --chmod=0644 foo /\n\
                 COPY --chmod=777 bar /baz\n\
                 COPY --chmod=0 foo /foobis\n\
                 COPY --chmod=777 foo /parent/foo\n\
                 COPY --chmod=770 foo /parent/sub/foo\n\
                 ARG mode\n\
                 COPY --chmod=${mode} foo /footer\n\
                 COPY --chmod=u+x foo /symbolic/deep/foo\n\
                 COPY --chmod=644 foo /nosearch/deep/foo\n\
                 COPY --chmod=750 <<EOT /heredoc/deep/\nhi\nEOT\n\
                 RUN stat -c \"%04a\" /foo  > /out/fooperm\n\
                 RUN stat -c \"%04a\" /baz  > /out/barperm\n\
                 RUN stat -c \"%04a\" /foobis  > /out/foobisperm\n\
                 RUN stat -c \"%04a\" /parent  > /out/parentperm\n\
                 RUN stat -c \"%04a\" /parent/sub  > /out/subparentperm\n\
                 RUN stat -c \"%04a\" /footer  > /out/footerperm\n\
                 RUN stat -c \"%04a\" /symbolic /symbolic/deep > /out/symbolicperm\n\
                 RUN stat -c \"%04a\" /nosearch /nosearch/deep /nosearch/deep/foo > /out/nosearchperm\n\
                 RUN stat -c \"%04a\" /heredoc /heredoc/deep /heredoc/deep/EOT > /out/heredocperm\n\
                 FROM scratch\n\
                 COPY --from=base /out /\n",
            ),
            ("foo", "foo-contents"),
            ("bar", "bar-contents"),
        ],
    );
    let out = env.build_local(&ctx, &out_name(&ctx), &["--build-arg", "mode=755"]);
    for (file, want) in [
        ("fooperm", "0644\n"),
        ("barperm", "0777\n"),
        ("foobisperm", "0000\n"),
        ("parentperm", "0777\n"),
        ("subparentperm", "0770\n"),
        ("footerperm", "0755\n"),
        ("symbolicperm", "0755\n0755\n"),
        ("nosearchperm", "0644\n0644\n0644\n"),
        // A heredoc's parents too (their owner: copy_directory_destination).
        ("heredocperm", "0750\n0750\n0750\n"),
    ] {
        assert_eq!(read_text(out.join(file)), want, "{file}");
    }
}

/// testDockerfileCopyFromArgs: a variable in `COPY --from` is refused (the stage a step reads
/// must be known before any variable has a value).
#[test]
fn dockerfile_copy_from_args() {
    let env = Env::new();
    let ctx = env.context(
        "fromargs",
        &[("Dockerfile", "FROM scratch\nCOPY --from=$FOO . .\n")],
    );
    let out = env.build(&ctx, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"),
        "{stderr}"
    );
}

/// testCopyInvalidChmod and testAddInvalidChmod: a value that starts like a number but is not
/// an octal mode up to 07777 gets BuildKit's error.
#[test]
fn copy_invalid_chmod() {
    let env = Env::new();
    for (instruction, value) in [
        ("COPY", "64a"),
        ("COPY", "10000"),
        ("ADD", "64a"),
        ("ADD", "10000"),
    ] {
        let ctx = env.context(
            &format!("chmod-{instruction}-{value}"),
            &[
                (
                    "Dockerfile",
                    &format!("FROM scratch\n{instruction} --chmod={value} foo /\n"),
                ),
                ("foo", "foo-contents"),
            ],
        );
        let out = env.build(&ctx, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        let want = format!(
            "invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777"
        );
        assert!(stderr.contains(&want), "{instruction} {value}: {stderr}");
    }
}
