//! End to end: ports of BuildKit's tar exporter and tar context integration tests
//! (moby/buildkit frontend/dockerfile/dockerfile_export_test.go), each asserting what the Go
//! test asserts. A tar context is given as buildx gives one, on stdin (`-`).

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{Env, read_text, tar_entries};

/// A tar archive of (name, content) regular files.
fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(content.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, content.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

/// `builder build --progress=plain ARGS -` with `archive` on stdin; fails the test unless it
/// succeeds.
fn build_stdin(env: &Env, archive: &[u8], args: &[&str]) {
    let mut child = env
        .cmd()
        .args(["build", "--progress=plain"])
        .args(args)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(archive).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The regular files of a `type=tar` output: (name, content).
fn tar_output(env: &Env, ctx: &std::path::Path, name: &str) -> Vec<(String, String)> {
    let dest = env.path(name);
    let output = format!("type=tar,dest={}", dest.display());
    env.build_ok(ctx, &["--output", &output]);
    tar_entries(std::fs::File::open(&dest).unwrap())
        .into_iter()
        .filter(|e| e.4 == 'f')
        .map(|e| (e.0.trim_start_matches("./").to_string(), e.5))
        .collect()
}

/// testTarExporterBasic: `type=tar` holds the final stage's files.
#[test]
fn tar_exporter_basic() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY foo foo\n"),
            ("foo", "data"),
        ],
    );
    let files = tar_output(&env, &ctx, "out.tar");
    assert!(files.contains(&("foo".into(), "data".into())), "{files:?}");
}

/// testTarExporterMulti, its single-platform build: the stage chosen by `$TARGETOS` is the one
/// exported. (The `linux/amd64,darwin/amd64` build, one directory per platform in the tar, is
/// multi-platform output: issue #18.)
#[test]
fn tar_exporter_multi() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch AS stage-linux\nCOPY foo forlinux\n\
                 FROM scratch AS stage-darwin\nCOPY bar fordarwin\nFROM stage-$TARGETOS\n",
            ),
            ("foo", "data"),
            ("bar", "data2"),
        ],
    );
    let files = tar_output(&env, &ctx, "out.tar");
    assert!(
        files.contains(&("forlinux".into(), "data".into())),
        "{files:?}"
    );
}

/// testTarContext: a tar archive as the whole context, Dockerfile included.
#[test]
fn tar_context() {
    let env = Env::new();
    let archive = tar_of(&[
        ("Dockerfile", "FROM scratch\nCOPY foo /"),
        ("foo", "contents"),
    ]);
    build_stdin(&env, &archive, &[]);
}

/// testTarContextExternalDockerfile, without its `contextsubdir` (a frontend attribute no
/// buildx flag sets for a tar on stdin): a tar context with the Dockerfile given from the
/// local disk.
#[test]
fn tar_context_external_dockerfile() {
    let env = Env::new();
    let archive = tar_of(&[("foo", "contents")]);
    let dir = env.context("df", &[("Dockerfile", "FROM scratch\nCOPY foo bar\n")]);
    let out = env.path("out");
    let output = format!("type=local,dest={}", out.display());
    build_stdin(
        &env,
        &archive,
        &[
            "-f",
            dir.join("Dockerfile").to_str().unwrap(),
            "--output",
            &output,
        ],
    );
    assert_eq!(read_text(out.join("bar")), "contents");
}
