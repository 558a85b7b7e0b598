//! End to end: ports of BuildKit's git and HTTP context integration tests
//! (moby/buildkit frontend/dockerfile/dockerfile_git_http_test.go), each asserting what the Go
//! test asserts. The repository is served over dumb HTTP from its work tree's `.git` and the
//! HTTP contexts from a static file server, both on 127.0.0.1.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::servers::{git, http_files};
use common::{Env, have};

/// Builds `context` (with `extra` flags) to a local directory and returns it; fails the test
/// with the build's log unless it succeeds.
fn build_local(env: &Env, context: &str, name: &str, extra: &[&str]) -> PathBuf {
    let out = env.path(name);
    let dest = format!("type=local,dest={}", out.display());
    let res = env
        .cmd()
        .args(["build", "--progress=plain", "-o", &dest])
        .args(extra)
        .arg(context)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "build {context} failed:\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    out
}

fn tools_present() -> bool {
    for tool in ["git", "python3"] {
        if !have(tool) {
            eprintln!("SKIP: {tool} is not installed");
            return false;
        }
    }
    true
}

/// testDockerfileFromGit: a repository with two commits (branch `first` at the first), served
/// over HTTP as `/.git`; `#first` builds the first commit's Dockerfile (only `bar`), no
/// fragment the default branch's (`bar` and `bar2`).
fn dockerfile_from_git(format: &str) {
    if !tools_present() {
        return;
    }
    let env = Env::new();
    env.busybox_base();
    let work = env.path("repo");
    fs::create_dir_all(&work).unwrap();
    let mut dockerfile = String::from(
        "FROM busybox:test AS build\nRUN echo -n fromgit > foo\nFROM scratch\nCOPY --from=build foo bar\n",
    );
    fs::write(work.join("Dockerfile"), &dockerfile).unwrap();
    let object_format = format!("--object-format={format}");
    git(&work, &["init", "--quiet", "-b", "master", &object_format]);
    git(&work, &["add", "Dockerfile"]);
    git(&work, &["commit", "--quiet", "-m", "initial"]);
    git(&work, &["branch", "first"]);
    dockerfile.push_str("COPY --from=build foo bar2\n");
    fs::write(work.join("Dockerfile"), &dockerfile).unwrap();
    git(&work, &["add", "Dockerfile"]);
    git(&work, &["commit", "--quiet", "-m", "second"]);
    git(&work, &["update-server-info"]);
    let server = http_files(&work, None);

    let url = format!("http://127.0.0.1:{}/.git", server.port);
    let first = build_local(&env, &format!("{url}#first"), "first", &[]);
    assert_eq!(read(first.join("bar")), "fromgit");
    assert!(
        !first.join("bar2").exists(),
        "bar2 is only on the default branch"
    );

    let default = build_local(&env, &url, "default", &[]);
    assert_eq!(read(default.join("bar")), "fromgit");
    assert_eq!(read(default.join("bar2")), "fromgit");
}

fn read(p: impl AsRef<Path>) -> String {
    let p = p.as_ref();
    fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn dockerfile_from_git_sha1() {
    dockerfile_from_git("sha1");
}

#[test]
fn dockerfile_from_git_sha256() {
    dockerfile_from_git("sha256");
}

/// testDockerfileFromHTTP: a tar (0600 entries, no file name extension in the URL) is the
/// context, its Dockerfile named by `-f`.
#[test]
fn dockerfile_from_http() {
    if !tools_present() {
        return;
    }
    let env = Env::new();
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in [
        ("mydockerfile", "FROM scratch\nCOPY foo bar\n"),
        ("foo", "foo-contents"),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o600);
        h.set_size(content.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, content.as_bytes()).unwrap();
    }
    let served = env.path("served");
    fs::create_dir_all(&served).unwrap();
    fs::write(served.join("myurl"), b.into_inner().unwrap()).unwrap();
    let server = http_files(&served, None);

    let url = format!("http://127.0.0.1:{}/myurl", server.port);
    let out = build_local(&env, &url, "out", &["-f", "mydockerfile"]);
    assert_eq!(read(out.join("bar")), "foo-contents");
}

/// testHTTPDockerfile: a URL serving a Dockerfile is the build (with an empty context); the
/// Dockerfile name given does not matter ("this is bogus, any name should work").
#[test]
fn http_dockerfile() {
    if !tools_present() {
        return;
    }
    let env = Env::new();
    env.busybox_base();
    let served = env.path("served");
    fs::create_dir_all(&served).unwrap();
    fs::write(
        served.join("df"),
        "FROM busybox:test\nRUN echo -n \"foo-contents\" > /foo\nFROM scratch\nCOPY --from=0 /foo /foo\n",
    )
    .unwrap();
    let server = http_files(&served, None);

    let url = format!("http://127.0.0.1:{}/df", server.port);
    let out = build_local(&env, &url, "out", &["-f", "mydockerfile"]);
    assert_eq!(read(out.join("foo")), "foo-contents");
}
