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

/// Writes `files` (path, content, mode) and `links` (path, target) into the context `ctx`.
fn populate(ctx: &Path, files: &[(&str, &str, u32)], links: &[(&str, &str)]) {
    use std::os::unix::fs::PermissionsExt;
    for (path, content, mode) in files {
        let p = ctx.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    for (path, target) in links {
        let p = ctx.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
    }
}

/// Sets directory modes in the context (fstest.CreateDir's mode).
fn dir_modes(ctx: &Path, dirs: &[(&str, u32)]) {
    use std::os::unix::fs::PermissionsExt;
    for (path, mode) in dirs {
        let p = ctx.join(path);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
}

/// testEmptyDestDir: a destination that expands to nothing is the working directory.
#[test]
fn empty_dest_dir() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox:test\nENV empty=\"\"\nCOPY testfile $empty\n\
                 RUN [ \"$(cat testfile)\" == \"contents0\" ]\n",
            ),
            ("testfile", "contents0"),
        ],
    );
    env.build_ok(&ctx, &[]);
}

/// testPreserveDestDirSlash: a destination ending in `/` is a directory the file goes into.
#[test]
fn preserve_dest_dir_slash() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox:test\nCOPY testfile /sample/\n\
                 RUN [ \"$(cat /sample/testfile)\" == \"contents0\" ]\n",
            ),
            ("testfile", "contents0"),
        ],
    );
    env.build_ok(&ctx, &[]);
}

/// testCopyLinkEmptyDestDir: the same with `--link` under a WORKDIR.
#[test]
fn copy_link_empty_dest_dir() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox:test\nWORKDIR /var/www\nENV empty=\"\"\nCOPY --link testfile $empty\n\
                 RUN [ \"$(cat testfile)\" == \"contents0\" ]\n",
            ),
            ("testfile", "contents0"),
        ],
    );
    env.build_ok(&ctx, &[]);
}

/// testCopyWildcardCache: a wildcard COPY's cache depends on the files it matches only: a change
/// to a later COPY's file keeps the RUN between them cached; a change to a matched file does not.
#[test]
fn copy_wildcard_cache() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox:test AS base\nCOPY foo* files/\n\
                 RUN cat /dev/urandom | head -c 100 | sha256sum > unique\n\
                 COPY bar files/\nFROM scratch\nCOPY --from=base unique /\n",
            ),
            ("foo1", "foo1-data"),
            ("foo2", "foo2-data"),
            ("bar", "bar-data"),
        ],
    );
    let first = read_text(env.build_local(&ctx, "out1", &[]).join("unique"));
    std::fs::write(ctx.join("bar"), "bar-data-mod").unwrap();
    let second = read_text(env.build_local(&ctx, "out2", &[]).join("unique"));
    assert_eq!(first, second);
    std::fs::write(ctx.join("foo2"), "foo2-data-mod").unwrap();
    let third = read_text(env.build_local(&ctx, "out3", &[]).join("unique"));
    assert_ne!(first, third);
}

/// testCopyThroughSymlinkContext: a source path through a symlinked directory of the context
/// is followed.
#[test]
fn copy_through_symlink_context() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM scratch\nCOPY link/foo .\n")]);
    dir_modes(&ctx, &[("sub", 0o700)]);
    populate(&ctx, &[("sub/foo", "contents", 0o600)], &[("link", "sub")]);
    let out = env.build_local(&ctx, "out", &[]);
    assert_eq!(read_text(out.join("foo")), "contents");
}

/// testCopyThroughSymlinkMultiStage: a source path through absolute and relative symlinks in
/// another stage is followed inside that stage's root.
#[test]
fn copy_through_symlink_multi_stage() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test AS build\n\
             RUN mkdir -p /out/sub && ln -s /out/sub /sub && ln -s out/sub /sub2 && echo -n \"data\" > /sub/foo\n\
             FROM scratch\nCOPY --from=build /sub/foo .\nCOPY --from=build /sub2/foo bar\n",
        )],
    );
    let out = env.build_local(&ctx, "out", &[]);
    assert_eq!(read_text(out.join("foo")), "data");
}

/// testCopyFollowAllSymlinks: a named source that is a symlink (`foo/sub` → `../bar`) is
/// followed, even when it points out of the copied directory.
#[test]
fn copy_follow_all_symlinks() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY foo /\nCOPY foo/sub bar\n")],
    );
    dir_modes(&ctx, &[("foo", 0o700)]);
    populate(
        &ctx,
        &[("bar", "bar-contents", 0o600)],
        &[("foo/sub", "../bar")],
    );
    env.build_ok(&ctx, &[]);
}

/// testCopySymlinks: a source that is a symlink is copied as the file it points to, through
/// chains of links, and wildcard matches that are links too.
#[test]
fn copy_symlinks() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY foo /\nCOPY sub/l* alllinks/\n",
        )],
    );
    dir_modes(&ctx, &[("sub", 0o700)]);
    populate(
        &ctx,
        &[
            ("bar", "bar-contents", 0o600),
            ("sub/lfile", "lfile-contents", 0o600),
            ("sub/subfile", "subfile-contents", 0o600),
            ("sub/baz", "baz-contents", 0o600),
        ],
        &[
            ("foo", "bar"),
            ("sub/l0", "subfile"),
            ("sub/l1", "second"),
            ("sub/second", "baz"),
        ],
    );
    let out = env.build_local(&ctx, "out", &[]);
    assert_eq!(read_text(out.join("foo")), "bar-contents");
    assert_eq!(read_text(out.join("alllinks/l0")), "subfile-contents");
    assert_eq!(read_text(out.join("alllinks/lfile")), "lfile-contents");
    assert_eq!(read_text(out.join("alllinks/l1")), "baz-contents");
}

/// testCopyChown: `--chown` by user name (its group the user's), by `uid:group`, and from
/// variables (an ENV and a build ARG).
#[test]
fn copy_chown() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = "FROM busybox:test AS base\n\
        RUN echo 'daemon:x:1:1:daemon:/usr/sbin:/bin/false' >> /etc/passwd && \
            echo 'nobody:x:65534:65534:nobody:/home:/bin/false' >> /etc/passwd && \
            echo 'daemon:x:1:' >> /etc/group && echo 'nobody:x:65534:' >> /etc/group\n\
        ENV owner 1000\n\
        RUN mkdir -m 0777 /out\n\
        COPY --chown=daemon foo /\n\
        COPY --chown=1000:nobody bar /baz\n\
        ARG group\n\
        COPY --chown=${owner}:${group} foo /foobis\n\
        RUN stat -c \"%U %G\" /foo  > /out/fooowner\n\
        RUN stat -c \"%u %G\" /baz/sub  > /out/subowner\n\
        RUN stat -c \"%u %G\" /foobis  > /out/foobisowner\n\
        FROM scratch\n\
        COPY --from=base /out /\n";
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    dir_modes(&ctx, &[("bar", 0o700)]);
    populate(
        &ctx,
        &[("foo", "foo-contents", 0o600), ("bar/sub", "", 0o600)],
        &[],
    );
    let out = env.build_local(&ctx, "out", &["--build-arg", "group=nobody"]);
    assert_eq!(read_text(out.join("fooowner")), "daemon daemon\n");
    assert_eq!(read_text(out.join("subowner")), "1000 nobody\n");
    assert_eq!(read_text(out.join("foobisowner")), "1000 nobody\n");
}

/// testCopyOverrideFiles: copying the same directory and file twice over themselves works and
/// keeps the contents.
#[test]
fn copy_override_files() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch AS base\nCOPY sub sub\nCOPY sub sub\n\
             COPY files/foo.go dest/foo.go\nCOPY files/foo.go dest/foo.go\nCOPY files dest\n",
        )],
    );
    dir_modes(
        &ctx,
        &[
            ("sub", 0o700),
            ("sub/dir1", 0o700),
            ("sub/dir1/dir2", 0o700),
            ("files", 0o700),
        ],
    );
    populate(
        &ctx,
        &[
            ("sub/dir1/dir2/foo", "foo-contents", 0o600),
            ("files/foo.go", "foo.go-contents", 0o600),
        ],
        &[],
    );
    let out = env.build_local(&ctx, "out", &[]);
    assert_eq!(read_text(out.join("sub/dir1/dir2/foo")), "foo-contents");
    assert_eq!(read_text(out.join("dest/foo.go")), "foo.go-contents");
}

/// testCopyVarSubstitution: a COPY source comes from an ENV variable.
#[test]
fn copy_var_substitution() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch AS base\nENV FOO bar\nCOPY $FOO baz\n",
            ),
            ("bar", "bar-contents"),
        ],
    );
    let out = env.build_local(&ctx, "out", &[]);
    assert_eq!(read_text(out.join("baz")), "bar-contents");
}

/// testCopyWildcards: wildcards in file names and directory segments, to a directory, a file
/// name and without a trailing slash; `.`, `dir/`, `dir/.` and `dir` sources copy contents.
#[test]
fn copy_wildcards() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch AS base\nCOPY *.go /gofiles/\nCOPY f*.go foo2.go\nCOPY sub/* /subdest/\n\
             COPY sub/*/dir2/foo /subdest2/\nCOPY sub/*/dir2/foo /subdest3/bar\nCOPY . all/\n\
             COPY sub/dir1/ subdest4\nCOPY sub/dir1/. subdest5\nCOPY sub/dir1 subdest6\n",
        )],
    );
    dir_modes(
        &ctx,
        &[
            ("sub", 0o700),
            ("sub/dir1", 0o700),
            ("sub/dir1/dir2", 0o700),
        ],
    );
    populate(
        &ctx,
        &[
            ("foo.go", "foo-contents", 0o600),
            ("bar.go", "bar-contents", 0o600),
            ("sub/dir1/dir2/foo", "foo-contents", 0o600),
        ],
        &[],
    );
    let out = env.build_local(&ctx, "out", &[]);
    for (file, want) in [
        ("gofiles/foo.go", "foo-contents"),
        ("gofiles/bar.go", "bar-contents"),
        ("foo2.go", "foo-contents"),
        ("subdest/dir2/foo", "foo-contents"),
        ("subdest2/foo", "foo-contents"),
        ("subdest3/bar", "foo-contents"),
        ("all/foo.go", "foo-contents"),
        ("subdest4/dir2/foo", "foo-contents"),
        ("subdest5/dir2/foo", "foo-contents"),
        ("subdest6/dir2/foo", "foo-contents"),
    ] {
        assert_eq!(read_text(out.join(file)), want, "{file}");
    }
}

/// testCopyRelative: relative WORKDIRs and COPY/ADD destinations (`./`, `./bar/baz`, `..`,
/// `../`) resolve against the working directory.
#[test]
fn copy_relative() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = "FROM busybox:test\n\
        WORKDIR /test1\n\
        WORKDIR test2\n\
        RUN sh -c \"[ \"$PWD\" = '/test1/test2' ]\"\n\
        COPY foo ./\n\
        RUN sh -c \"[ $(cat /test1/test2/foo) = 'hello' ]\"\n\
        ADD foo ./bar/baz\n\
        RUN sh -c \"[ $(cat /test1/test2/bar/baz) = 'hello' ]\"\n\
        COPY foo ./bar/baz2\n\
        RUN sh -c \"[ $(cat /test1/test2/bar/baz2) = 'hello' ]\"\n\
        WORKDIR ..\n\
        COPY foo ./\n\
        RUN sh -c \"[ $(cat /test1/foo) = 'hello' ]\"\n\
        COPY foo /test3/\n\
        RUN sh -c \"[ $(cat /test3/foo) = 'hello' ]\"\n\
        WORKDIR /test4\n\
        COPY . .\n\
        RUN sh -c \"[ $(cat /test4/foo) = 'hello' ]\"\n\
        WORKDIR /test5/test6\n\
        COPY foo ../\n\
        RUN sh -c \"[ $(cat /test5/foo) = 'hello' ]\"\n";
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile), ("foo", "hello")]);
    env.build_ok(&ctx, &[]);
}

/// testCopyUnicodePath: non-ASCII, percent-escaped-looking and `+` names are copied as named.
#[test]
fn copy_unicode_path() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox:test\nCOPY test-äöü.txt /\nCOPY test-%C3%A4%C3%B6%C3%BC.txt /\nCOPY test+aou.txt /\n",
            ),
            ("test-äöü.txt", "foo"),
            ("test-%C3%A4%C3%B6%C3%BC.txt", "bar"),
            ("test+aou.txt", "baz"),
        ],
    );
    let out = env.build_local(&ctx, "out", &[]);
    assert_eq!(read_text(out.join("test-äöü.txt")), "foo");
    assert_eq!(read_text(out.join("test-%C3%A4%C3%B6%C3%BC.txt")), "bar");
    assert_eq!(read_text(out.join("test+aou.txt")), "baz");
}

/// testLocalCustomSessionID: the context, and a second local directory given as the named
/// context `base` (BuildKit's test sends both over one custom session; buildx's
/// `--build-context base=DIR` is the user's way), are both read.
#[test]
fn local_custom_session_id() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch AS base\nFROM scratch\nCOPY out /out1\nCOPY --from=base /another /out2\n",
            ),
            ("out", "contents1"),
        ],
    );
    let basedir = env.context("basedir", &[("another", "contents2")]);
    let named = format!("base={}", basedir.display());
    let out = env.build_local(&ctx, "out", &["--build-context", &named]);
    assert_eq!(read_text(out.join("out1")), "contents1");
    assert_eq!(read_text(out.join("out2")), "contents2");
}
