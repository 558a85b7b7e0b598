//! Contexts that come as one stream (issue #19): `builder build - < ctx.tar[.gz|.zst]`, a
//! Dockerfile on stdin with no context (`builder build - < Dockerfile`), and an http(s) URL of a
//! tarball or of a Dockerfile. The same files give the same image as a directory.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::servers::http_files;
use common::{Env, have};

const EPOCH: &str = "1700000000";

fn context(env: &Env) -> PathBuf {
    env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY . /src\n"),
            ("a.txt", "a\n"),
            ("dir/b.txt", "b\n"),
            (".dockerignore", "ignored.txt\n"),
            ("ignored.txt", "not in the image\n"),
        ],
    )
}

/// `tar -c` of `dir` with the given compression flag (`""`, `"-z"`, `"--zstd"`).
fn tar_of(dir: &Path, flag: &str) -> Vec<u8> {
    let mut cmd = Command::new("tar");
    cmd.arg("-C").arg(dir).arg("-c");
    if !flag.is_empty() {
        cmd.arg(flag);
    }
    let out = cmd.args(["-f", "-", "."]).output().expect("run tar");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `builder build ARGS -` with `input` on stdin.
fn build_stdin(env: &Env, args: &[&str], input: &[u8]) -> Output {
    let mut child = env
        .cmd()
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args(["build", "--progress=plain"])
        .args(args)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn layers_of(env: &Env, tag: &str) -> serde_json::Value {
    env.inspect(tag)["Manifest"]["layers"].clone()
}

fn build_dir(env: &Env, dir: &Path, tag: &str) -> serde_json::Value {
    let out = env
        .cmd()
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args(["build", "--progress=plain", "-t", tag])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    layers_of(env, tag)
}

#[test]
fn a_tar_on_stdin_in_each_compression_is_the_context() {
    let env = Env::new();
    let dir = context(&env);
    let want = build_dir(&env, &dir, "dir:1");
    let mut flags = vec![("plain", ""), ("gzip", "-z")];
    for (name, flag, tool) in [
        ("zstd", "--zstd", "zstd"),
        ("bzip2", "-j", "bzip2"),
        ("xz", "-J", "xz"),
    ] {
        if have(tool) {
            flags.push((name, flag));
        } else {
            eprintln!("SKIP (in part): {tool} is not installed");
        }
    }
    for (name, flag) in flags {
        let tag = format!("stdin-{name}:1");
        let out = build_stdin(&env, &["-t", &tag], &tar_of(&dir, flag));
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            layers_of(&env, &tag),
            want,
            "{name}: the same layers as the directory"
        );
    }
}

#[test]
fn a_dockerfile_on_stdin_builds_with_an_empty_context() {
    let env = Env::new();
    let out = build_stdin(
        &env,
        &["-t", "nocontext:1"],
        b"FROM scratch\nLABEL from=stdin\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        env.inspect("nocontext:1")["config"]["Labels"]["from"],
        "stdin"
    );

    let out = build_stdin(&env, &[], b"FROM scratch\nCOPY a.txt /\n");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "there is no a.txt to copy:\n{log}");
    assert!(log.contains("a.txt"), "{log}");

    let out = build_stdin(&env, &["-f", "-"], b"FROM scratch\n");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("stdin"), "{log}");
}

#[test]
fn a_hostile_tar_is_refused_and_leaves_nothing_behind() {
    let env = Env::new();
    let mut builder = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    // tar::Builder refuses `..` itself; write the name into the header by hand.
    h.as_old_mut().name[..9].copy_from_slice(b"../escape");
    h.set_cksum();
    builder.append(&h, &b"evil\n"[..]).unwrap();
    let bytes = builder.into_inner().unwrap();
    let out = build_stdin(&env, &[], &bytes);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("escape") && log.contains("context"), "{log}");
    assert!(!env.dir.path().join("escape").exists());
    let leftovers: Vec<_> = fs::read_dir(env.root().join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "nothing left in tmp/: {leftovers:?}");
}

#[test]
fn an_http_url_of_a_tarball_or_a_dockerfile_is_the_context() {
    if !have("python3") {
        eprintln!("SKIP: python3 is not installed");
        return;
    }
    let env = Env::new();
    let dir = context(&env);
    let want = build_dir(&env, &dir, "dir:1");
    let served = env.path("served");
    fs::create_dir_all(&served).unwrap();
    fs::write(served.join("ctx.tar.gz"), tar_of(&dir, "-z")).unwrap();
    fs::write(
        served.join("Dockerfile"),
        "FROM scratch\nLABEL remote=yes\n",
    )
    .unwrap();
    let server = http_files(&served, None);

    let url = format!("http://127.0.0.1:{}/ctx.tar.gz", server.port);
    let out = env
        .cmd()
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args(["build", "--progress=plain", "-t", "remote:1", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(layers_of(&env, "remote:1"), want);

    let url = format!("http://127.0.0.1:{}/Dockerfile", server.port);
    let out = env
        .cmd()
        .args(["build", "--progress=plain", "-t", "remote:2", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.inspect("remote:2")["config"]["Labels"]["remote"], "yes");

    // As named contexts: an archive is a directory, any other file a directory holding it.
    let main = env.context(
        "main",
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY --from=files dir/b.txt /b.txt\nCOPY --from=one Dockerfile /one\n",
        )],
    );
    let out = env.path("named");
    let files = format!("files=http://127.0.0.1:{}/ctx.tar.gz", server.port);
    let one = format!("one=http://127.0.0.1:{}/Dockerfile", server.port);
    let dest = format!("type=local,dest={}", out.display());
    env.build_ok(
        &main,
        &[
            "--build-context",
            &files,
            "--build-context",
            &one,
            "-o",
            &dest,
        ],
    );
    assert_eq!(fs::read_to_string(out.join("b.txt")).unwrap(), "b\n");
    assert!(
        fs::read_to_string(out.join("one"))
            .unwrap()
            .contains("remote=yes")
    );

    let url = format!("http://127.0.0.1:{}/missing.tar", server.port);
    let out = env.cmd().args(["build", &url]).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("404"), "{log}");
}
