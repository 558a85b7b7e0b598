//! `builder build <git URL>`: the context is a commit of a git repository, fetched over
//! git:// (`git daemon`) or dumb HTTP (a static server), by BuildKit's URL rules (issue #19).
//! The same files give the same image as a local directory build.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::servers::{Server, git, git_daemon, http_files, publish};
use common::{Env, have};

const EPOCH: &str = "1700000000";

/// A repository with two commits on `main` (v1 tagged), a `sub/` with its own Dockerfile.
struct Repo {
    base: PathBuf,
    work: PathBuf,
    /// The first commit's files, without `.git`: the local twin of `#v1`.
    plain_v1: PathBuf,
    v1: String,
    v2: String,
}

fn repo(env: &Env) -> Repo {
    let base = env.path("srv");
    let plain_v1 = env.path("plain-v1");
    let work = env.path("work");
    for d in [&base, &plain_v1] {
        fs::create_dir_all(d).unwrap();
    }
    let files: &[(&str, &str)] = &[
        ("Dockerfile", "FROM scratch\nCOPY . /src\n"),
        ("hello.txt", "v1\n"),
        ("sub/Dockerfile", "FROM scratch\nCOPY . /sub\n"),
        ("sub/s.txt", "in sub\n"),
    ];
    for (p, content) in files {
        for root in [&plain_v1, &work] {
            let path = root.join(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
    }
    git(&work, &["init", "--quiet", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "one"]);
    git(&work, &["tag", "-a", "v1", "-m", "release 1"]);
    let v1 = git(&work, &["rev-parse", "HEAD"]);
    fs::write(work.join("hello.txt"), "v2\n").unwrap();
    git(&work, &["commit", "--quiet", "-am", "two"]);
    let v2 = git(&work, &["rev-parse", "HEAD"]);
    publish(&work, &base, "repo");
    Repo {
        base,
        work,
        plain_v1,
        v1,
        v2,
    }
}

/// A store, the repository, and `git daemon` serving it; None (saying SKIP) without git.
fn served() -> Option<(Env, Repo, Server)> {
    if !have("git") {
        eprintln!("SKIP: git is not installed");
        return None;
    }
    let env = Env::new();
    let r = repo(&env);
    let daemon = git_daemon(&r.base);
    Some((env, r, daemon))
}

/// Builds `context` to a local directory and returns it.
fn build_tree(env: &Env, context: &str, name: &str, extra: &[&str]) -> PathBuf {
    let out = env.path(name);
    let dest = format!("type=local,dest={}", out.display());
    let res = env
        .cmd()
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args(["build", "--progress=plain", "-o", &dest])
        .args(extra)
        .arg(context)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "build {context} failed:\n{log}");
    out
}

fn layers(env: &Env, context: &str, tag: &str) -> serde_json::Value {
    let res = env
        .cmd()
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args(["build", "--progress=plain", "-t", tag])
        .arg(context)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "build {context} failed:\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    env.inspect(tag)["Manifest"]["layers"].clone()
}

fn read(p: impl AsRef<Path>) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn a_git_url_builds_the_same_image_as_a_directory_with_its_files() {
    let Some((env, r, daemon)) = served() else {
        return;
    };
    let url = format!("git://127.0.0.1:{}/repo.git#v1", daemon.port);
    let from_git = layers(&env, &url, "from-git:1");
    let from_dir = layers(&env, r.plain_v1.to_str().unwrap(), "from-dir:1");
    assert_eq!(
        from_git, from_dir,
        "the same layers from git and from a directory"
    );

    // No .git in the context unless asked for, as in BuildKit.
    let tree = build_tree(&env, &url, "plain", &[]);
    assert!(!tree.join("src/.git").exists());
    let kept = build_tree(
        &env,
        &url,
        "kept",
        &["--build-arg", "BUILDKIT_CONTEXT_KEEP_GIT_DIR=1"],
    );
    assert!(
        kept.join("src/.git/HEAD").exists(),
        "BUILDKIT_CONTEXT_KEEP_GIT_DIR=1 keeps .git"
    );
}

#[test]
fn refs_pick_tags_branches_commits_and_subdirectories() {
    let Some((env, r, daemon)) = served() else {
        return;
    };
    let at = |frag: &str| format!("git://127.0.0.1:{}/repo.git{frag}", daemon.port);
    let cases = [
        ("", "v2\n"),
        ("#main", "v2\n"),
        ("#v1", "v1\n"),
        ("#refs/tags/v1", "v1\n"),
        ("?tag=v1", "v1\n"),
        ("?branch=main", "v2\n"),
    ];
    for (i, (frag, want)) in cases.iter().enumerate() {
        let out = build_tree(&env, &at(frag), &format!("case{i}"), &[]);
        assert_eq!(read(out.join("src/hello.txt")), *want, "{frag}");
    }
    let full = build_tree(&env, &at(&format!("#{}", r.v1)), "full", &[]);
    assert_eq!(read(full.join("src/hello.txt")), "v1\n", "a full commit id");
    let short = build_tree(&env, &at(&format!("#{}", &r.v1[..8])), "short", &[]);
    assert_eq!(
        read(short.join("src/hello.txt")),
        "v1\n",
        "a short commit id"
    );
    let sub = build_tree(&env, &at("#main:sub"), "sub", &[]);
    assert_eq!(
        read(sub.join("sub/s.txt")),
        "in sub\n",
        "the subdirectory is the context, with its own Dockerfile"
    );
    assert!(!sub.join("sub/hello.txt").exists());
    let checked = build_tree(
        &env,
        &at(&format!("?tag=v1&checksum={}", &r.v1[..10])),
        "sum",
        &[],
    );
    assert_eq!(read(checked.join("src/hello.txt")), "v1\n");
    let _ = &r.v2;
}

#[test]
fn a_named_context_can_be_a_git_url() {
    let Some((env, r, daemon)) = served() else {
        return;
    };
    let ctx = env.context(
        "main",
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY --from=lib hello.txt sub/s.txt /got/\n",
        )],
    );
    let lib = format!("lib=git://127.0.0.1:{}/repo.git#v1", daemon.port);
    let out = env.path("named");
    let dest = format!("type=local,dest={}", out.display());
    env.build_ok(&ctx, &["--build-context", &lib, "-o", &dest]);
    assert_eq!(read(out.join("got/hello.txt")), "v1\n");
    assert_eq!(read(out.join("got/s.txt")), "in sub\n");
    let _ = &r.v1;
}

#[test]
fn add_of_a_git_url_copies_the_checkout_and_checks_the_commit() {
    let Some((env, r, daemon)) = served() else {
        return;
    };
    let url = format!("git://127.0.0.1:{}/repo.git#v1", daemon.port);
    let ctx = env.context(
        "add",
        &[(
            "Dockerfile",
            &format!(
                "FROM scratch\nADD {url} /src\nADD --keep-git-dir=true {url} /with-git\nADD --checksum={} {url} /checked\n",
                &r.v1[..12]
            ),
        )],
    );
    let out = env.path("add-out");
    let dest = format!("type=local,dest={}", out.display());
    env.build_ok(&ctx, &["-o", &dest]);
    assert_eq!(read(out.join("src/hello.txt")), "v1\n");
    assert_eq!(read(out.join("src/sub/s.txt")), "in sub\n");
    assert!(
        !out.join("src/.git").exists(),
        "no .git without --keep-git-dir"
    );
    assert!(
        out.join("with-git/.git/HEAD").exists(),
        "--keep-git-dir keeps it"
    );
    assert_eq!(read(out.join("checked/hello.txt")), "v1\n");

    // The same commit again: cached (a kept .git differs between checkouts: its index and
    // logs hold times, so that step is left out here).
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM scratch\nADD {url} /src\n"),
    )
    .unwrap();
    env.build_ok(&ctx, &[]);
    let log = env.build_ok(&ctx, &[]);
    assert!(!log.contains(" DONE "), "cached: {log}");

    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM scratch\nADD --checksum={} {url} /x\n", &r.v2[..12]),
    )
    .unwrap();
    let res = env.build(&ctx, &[]);
    let log = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success(), "{log}");
    assert!(log.contains("expected checksum to match"), "{log}");
}

#[test]
fn a_rebuild_of_the_same_commit_is_fully_cached() {
    let Some((env, r, daemon)) = served() else {
        return;
    };
    let url = format!("git://127.0.0.1:{}/repo.git#main", daemon.port);
    env.build_ok(Path::new(&url), &[]);
    let log = env.build_ok(Path::new(&url), &[]);
    assert!(log.contains(&r.v2), "the log names the commit:\n{log}");
    assert!(
        log.lines().any(|l| l.ends_with(" CACHED")) && !log.contains(" DONE "),
        "every step cached:\n{log}"
    );
    // A new commit reruns only what changed.
    fs::write(r.work.join("sub/s.txt"), "changed\n").unwrap();
    git(&r.work, &["commit", "--quiet", "-am", "three"]);
    publish(&r.work, &r.base, "repo");
    let log = env.build_ok(Path::new(&url), &[]);
    assert!(log.contains(" DONE "), "the new commit's COPY ran:\n{log}");
}

#[test]
fn submodules_are_checked_out_recursively() {
    if !have("git") {
        eprintln!("SKIP: git is not installed");
        return;
    }
    let env = Env::new();
    let r = repo(&env);
    let lib = env.path("lib");
    fs::create_dir_all(&lib).unwrap();
    fs::write(lib.join("lib.txt"), "library\n").unwrap();
    git(&lib, &["init", "--quiet", "-b", "main"]);
    git(&lib, &["add", "."]);
    git(&lib, &["commit", "--quiet", "-m", "lib"]);
    publish(&lib, &r.base, "lib");
    let origin = r.base.join("repo.git");
    git(
        &r.work,
        &["remote", "add", "origin", origin.to_str().unwrap()],
    );
    git(
        &r.work,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "--quiet",
            "../lib.git",
            "lib",
        ],
    );
    git(&r.work, &["commit", "--quiet", "-m", "with lib"]);
    publish(&r.work, &r.base, "repo");
    let daemon = git_daemon(&r.base);
    let url = format!("git://127.0.0.1:{}/repo.git", daemon.port);
    let out = build_tree(&env, &url, "with-lib", &[]);
    assert_eq!(read(out.join("src/lib/lib.txt")), "library\n");
    assert!(
        !out.join("src/lib/.git").exists(),
        "no .git file of the submodule"
    );
}

#[test]
fn dumb_http_with_a_token_from_a_secret_and_the_token_stays_out_of_the_store() {
    if !have("git") || !have("python3") {
        eprintln!("SKIP: needs git and python3");
        return;
    }
    let env = Env::new();
    let r = repo(&env);
    const TOKEN: &str = "tok-SECRET-4242";
    // What git sends for GIT_AUTH_TOKEN: basic auth as x-access-token.
    let header = format!("basic {}", base64_of(&format!("x-access-token:{TOKEN}")));
    let server = http_files(&r.base, Some(&header));
    let url = format!("http://127.0.0.1:{}/repo.git#v1", server.port);

    let denied = env.build(Path::new(&url), &[]);
    let log = String::from_utf8_lossy(&denied.stderr);
    assert!(!denied.status.success(), "no token, no checkout:\n{log}");
    assert!(log.contains("git"), "{log}");

    let token_file = env.path("token");
    fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let secret = format!("id=GIT_AUTH_TOKEN,src={}", token_file.display());
    let out = build_tree(&env, &url, "http", &["--secret", &secret]);
    assert_eq!(read(out.join("src/hello.txt")), "v1\n");

    let leaks = files_containing(&env.root(), TOKEN.as_bytes());
    assert!(leaks.is_empty(), "the token is in the store: {leaks:?}");
}

#[test]
fn bad_git_sources_fail_with_a_clear_error() {
    let Some((env, r, daemon)) = served() else {
        return;
    };
    let at = |frag: &str| format!("git://127.0.0.1:{}/repo.git{frag}", daemon.port);
    for (url, says) in [
        (at("#no-such-branch"), "not found"),
        (at("#main:no/such/dir"), "subdirectory"),
        (at(&format!("?tag=v1&checksum={}", &r.v2[..10])), "checksum"),
        (at("?mtime=1"), "not supported"),
        (
            format!("git://127.0.0.1:{}/nothing.git", daemon.port),
            "git",
        ),
    ] {
        let res = env.build(Path::new(&url), &[]);
        let log = String::from_utf8_lossy(&res.stderr);
        assert!(!res.status.success(), "{url} must fail:\n{log}");
        assert!(log.contains(says), "{url}: want {says:?} in:\n{log}");
        assert!(!log.contains("panicked"), "{log}");
    }
    let leftovers: Vec<_> = fs::read_dir(env.root().join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "nothing left in tmp/: {leftovers:?}");
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return hits;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            hits.extend(files_containing(&p, needle));
        } else if ft.is_file()
            && let Ok(bytes) = fs::read(&p)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            hits.push(p);
        }
    }
    hits
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
