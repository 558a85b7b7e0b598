//! BuildKit's `frontend/dockerfile/dockerfile_heredoc_test.go`, ported: heredocs in COPY and
//! RUN (several per line, `<<-` tab stripping, quoting that turns expansion off, shebangs,
//! extra file descriptors, ONBUILD). Each test builds with the real binary, exports with
//! `--output type=local` (BuildKit's local exporter) and compares the files. BuildKit's
//! `busybox` base is our `busybox:test`, built from Debian's static busybox.

mod common;

use std::path::PathBuf;

use common::Env;

/// Builds `dockerfile` (a context holding only it) into a local directory and returns it.
fn build_local(env: &Env, name: &str, dockerfile: &str, args: &[&str]) -> PathBuf {
    let ctx = env.context(&format!("{name}-ctx"), &[("Dockerfile", dockerfile)]);
    env.build_local(&ctx, &format!("{name}-out"), args)
}

/// Asserts each (file, content) pair of the exported directory.
fn assert_files(dest: &std::path::Path, expected: &[(&str, &str)]) {
    for (name, content) in expected {
        let got = std::fs::read(dest.join(name))
            .unwrap_or_else(|e| panic!("read {name} from the export: {e}"));
        assert_eq!(
            String::from_utf8_lossy(&got),
            *content,
            "content of {name} in the export"
        );
    }
}

/// BuildKit: testCopyHeredoc — `COPY <<EOF` writes a file, two heredocs on one line write two
/// files named after their delimiters into a directory, and `--chmod`/`--chown` apply to the
/// created file (checked with `stat` inside a RUN). Debian's static busybox has no `adduser`,
/// so the user `adduser -D user` would make is written to /etc/passwd and /etc/group directly.
#[test]
fn copy_heredoc() {
    let env = Env::new();
    env.busybox_base();
    let dest = build_local(
        &env,
        "copy",
        r#"
FROM busybox:test AS build

RUN echo 'user:x:1000:1000::/home/user:/bin/sh' >> /etc/passwd && echo 'user:x:1000:' >> /etc/group
WORKDIR /dest

COPY <<EOF single
single file
EOF

COPY <<EOF <<EOF2 double/
first file
EOF
second file
EOF2

RUN mkdir -p /permfiles
COPY --chmod=777 <<EOF /permfiles/all
dummy content
EOF
COPY --chmod=0644 <<EOF /permfiles/rw
dummy content
EOF
COPY --chown=user:user <<EOF /permfiles/owned
dummy content
EOF
RUN stat -c "%04a" /permfiles/all >> perms && \
	stat -c "%04a" /permfiles/rw >> perms && \
	stat -c "%U:%G" /permfiles/owned >> perms

FROM scratch
COPY --from=build /dest /
"#,
        &[],
    );
    assert_files(
        &dest,
        &[
            ("single", "single file\n"),
            ("double/EOF", "first file\n"),
            ("double/EOF2", "second file\n"),
            ("perms", "0777\n0644\nuser:user\n"),
        ],
    );
}

/// BuildKit: testCopyHeredocSpecialSymbols — quotes are kept; an unquoted `<<EOF` body
/// processes backslash escapes (`\` + newline joins, `\\` → `\`, `\$` → `$`) while a quoted
/// `<<"EOF"` body is kept byte for byte.
#[test]
fn copy_heredoc_special_symbols() {
    let env = Env::new();
    let dest = build_local(
        &env,
        "symbols",
        r#"
FROM scratch

COPY <<EOF quotefile
"quotes in file"
EOF

COPY <<EOF slashfile1
\
EOF
COPY <<EOF slashfile2
\\
EOF
COPY <<EOF slashfile3
\$
EOF

COPY <<"EOF" rawslashfile1
\
EOF
COPY <<"EOF" rawslashfile2
\\
EOF
COPY <<"EOF" rawslashfile3
\$
EOF
"#,
        &[],
    );
    assert_files(
        &dest,
        &[
            ("quotefile", "\"quotes in file\"\n"),
            ("slashfile1", "\n"),
            ("slashfile2", "\\\n"),
            ("slashfile3", "$\n"),
            ("rawslashfile1", "\\\n"),
            ("rawslashfile2", "\\\\\n"),
            ("rawslashfile3", "\\$\n"),
        ],
    );
}

/// BuildKit: testRunBasicHeredoc — a `RUN <<EOF` body runs as a script, line by line, as root.
#[test]
fn run_basic_heredoc() {
    let env = Env::new();
    env.busybox_base();
    let dest = build_local(
        &env,
        "basic",
        r#"
FROM busybox:test AS build

RUN <<EOF
echo "i am" >> /dest
whoami >> /dest
EOF

FROM scratch
COPY --from=build /dest /dest
"#,
        &[],
    );
    assert_files(&dest, &[("dest", "i am\nroot\n")]);
}

/// BuildKit: testRunFakeHeredoc — with `SHELL ["/bin/awk"]` the heredoc body is given to awk,
/// not to sh: only awk can produce the file.
#[test]
fn run_fake_heredoc() {
    let env = Env::new();
    env.busybox_base();
    let dest = build_local(
        &env,
        "fake",
        r#"
FROM busybox:test AS build

SHELL ["/bin/awk"]
RUN <<EOF
BEGIN {
	print "foo" > "/dest"
}
EOF

FROM scratch
COPY --from=build /dest /dest
"#,
        &[],
    );
    assert_files(&dest, &[("dest", "foo\n")]);
}

/// BuildKit: testRunShebangHeredoc — a heredoc starting with `#!/bin/awk -f` runs under awk
/// (the shebang's interpreter), also when `<<-` strips the tabs in front of the shebang.
#[test]
fn run_shebang_heredoc() {
    let env = Env::new();
    env.busybox_base();
    let dest = build_local(
        &env,
        "shebang",
        r#"
FROM busybox:test AS build

WORKDIR /dest

RUN <<EOF
#!/bin/awk -f
BEGIN {
	print "hello" >> "./out1"
	print "world" >> "./out1"
}
EOF

RUN <<-EOF
	#!/bin/awk -f
	BEGIN {
		print "hello" >> "./out2"
		print "world" >> "./out2"
	}
EOF

FROM scratch
COPY --from=build /dest /
"#,
        &[],
    );
    assert_files(
        &dest,
        &[("out1", "hello\nworld\n"), ("out2", "hello\nworld\n")],
    );
}

/// BuildKit: testRunComplexHeredoc — heredocs piped through commands across a continued line,
/// and heredocs on file descriptors 3 and 4 (`3<<IN1 4<<IN2`) read by awk from /proc/self/fd.
#[test]
fn run_complex_heredoc() {
    let env = Env::new();
    env.busybox_base();
    let dest = build_local(
        &env,
        "complex",
        r#"
FROM busybox:test AS build

WORKDIR /dest

RUN cat <<EOF1 | tr '[:upper:]' '[:lower:]' > ./out1; \
	cat <<EOF2 | tr '[:lower:]' '[:upper:]' > ./out2
hello WORLD
EOF1
HELLO world
EOF2

RUN <<EOF 3<<IN1 4<<IN2 awk -f -
BEGIN {
	while ((getline line < "/proc/self/fd/3") > 0)
		print tolower(line) > "./fd3"
	while ((getline line < "/proc/self/fd/4") > 0)
		print toupper(line) > "./fd4"
}
EOF
hello WORLD
IN1
HELLO world
IN2

FROM scratch
COPY --from=build /dest /
"#,
        &[],
    );
    assert_files(
        &dest,
        &[
            ("out1", "hello world\n"),
            ("out2", "HELLO WORLD\n"),
            ("fd3", "hello world\n"),
            ("fd4", "HELLO WORLD\n"),
        ],
    );
}

/// BuildKit: testHeredocIndent — `<<EOF` keeps leading tabs and `<<-EOF` strips them, in COPY
/// and in RUN (plain script, `#!/bin/sh` script, and heredoc as stdin of `sh`).
#[test]
fn heredoc_indent() {
    let env = Env::new();
    env.busybox_base();
    let dest = build_local(
        &env,
        "indent",
        r#"
FROM busybox:test AS build

COPY <<EOF /dest/foo-copy
	foo
EOF

COPY <<-EOF /dest/bar-copy
	bar
EOF

RUN <<EOF
echo "
	foo" > /dest/foo-run
EOF

RUN <<-EOF
echo "
	bar" > /dest/bar-run
EOF

RUN <<EOF
#!/bin/sh
echo "
	foo" > /dest/foo2-run
EOF

RUN <<-EOF
#!/bin/sh
echo "
	bar" > /dest/bar2-run
EOF

RUN <<EOF sh > /dest/foo3-run
echo "
	foo"
EOF

RUN <<-EOF sh > /dest/bar3-run
echo "
	bar"
EOF

FROM scratch
COPY --from=build /dest /
"#,
        &[],
    );
    assert_files(
        &dest,
        &[
            ("foo-copy", "\tfoo\n"),
            ("foo-run", "\n\tfoo\n"),
            ("foo2-run", "\n\tfoo\n"),
            ("foo3-run", "\n\tfoo\n"),
            ("bar-copy", "bar\n"),
            ("bar-run", "\nbar\n"),
            ("bar2-run", "\nbar\n"),
            ("bar3-run", "\nbar\n"),
        ],
    );
}

/// BuildKit: testHeredocVarSubstitution — an unquoted COPY heredoc expands build ARGs (quotes
/// in the body stay), a quoted one (`<<'EOF'`, `<<"EOF"`) keeps `${name}`; a RUN heredoc sees
/// the ARG in its environment and the script's own assignments shadow it.
#[test]
fn heredoc_var_substitution() {
    let env = Env::new();
    env.busybox_base();
    let dest = build_local(
        &env,
        "vars",
        r#"
FROM busybox:test as build

ARG name=world

COPY <<EOF /dest/c1
Hello ${name}!
EOF
COPY <<'EOF' /dest/c2
Hello ${name}!
EOF
COPY <<"EOF" /dest/c3
Hello ${name}!
EOF

COPY <<EOF /dest/q1
Hello '${name}'!
EOF
COPY <<EOF /dest/q2
Hello "${name}"!
EOF
COPY <<'EOF' /dest/qsingle1
Hello '${name}'!
EOF
COPY <<'EOF' /dest/qsingle2
Hello "${name}"!
EOF
COPY <<"EOF" /dest/qdouble1
Hello '${name}'!
EOF
COPY <<"EOF" /dest/qdouble2
Hello "${name}"!
EOF

RUN <<EOF
greeting="Hello"
echo "${greeting} ${name}!" > /dest/r1
EOF
RUN <<EOF
name="new world"
echo "Hello ${name}!" > /dest/r2
EOF

FROM scratch
COPY --from=build /dest /
"#,
        &[],
    );
    assert_files(
        &dest,
        &[
            ("c1", "Hello world!\n"),
            ("c2", "Hello ${name}!\n"),
            ("c3", "Hello ${name}!\n"),
            ("q1", "Hello 'world'!\n"),
            ("q2", "Hello \"world\"!\n"),
            ("qsingle1", "Hello '${name}'!\n"),
            ("qsingle2", "Hello \"${name}\"!\n"),
            ("qdouble1", "Hello '${name}'!\n"),
            ("qdouble2", "Hello \"${name}\"!\n"),
            ("r1", "Hello world!\n"),
            ("r2", "Hello new world!\n"),
        ],
    );
}

/// BuildKit: testOnBuildHeredoc — an `ONBUILD RUN <<EOF` trigger stored in a base image runs,
/// heredoc and all, when a child build starts `FROM` that image. BuildKit pushes the base to a
/// registry; here it stays in the store, which `FROM` reads the same way.
#[test]
fn on_build_heredoc() {
    let env = Env::new();
    env.busybox_base();
    let base = env.context(
        "onbuild-base",
        &[(
            "Dockerfile",
            "\nFROM busybox:test\nONBUILD RUN <<EOF\necho \"hello world\" >> /dest\nEOF\n",
        )],
    );
    env.build_ok(&base, &["-t", "testonbuildheredoc:base"]);
    let dest = build_local(
        &env,
        "onbuild-child",
        "\n\tFROM testonbuildheredoc:base AS base\n\tFROM scratch\n\tCOPY --from=base /dest /dest\n\t",
        &[],
    );
    assert_files(&dest, &[("dest", "hello world\n")]);
}
