//! End to end: `--ssh ID=KEYFILE[,KEYFILE]` serves private key files through an agent of
//! builder's own, as buildx does: `ssh-add -l` in a RUN step lists exactly those keys. Keys it
//! cannot use (passphrase, RSA) and mixing keys with a socket are refused by name. The agent's
//! signing is checked against OpenSSH in src/cli/key_agent.rs. A real ssh-agent passed by its
//! socket is read-only to RUN steps, as with BuildKit: they list its keys but cannot remove them.

mod common;

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Env, have};

fn keygen(env: &Env, name: &str, kind: &[&str], passphrase: &str) -> PathBuf {
    let path = env.path(name);
    let out = Command::new("ssh-keygen")
        .args(kind)
        .args(["-q", "-N", passphrase, "-C", name, "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    path
}

fn fingerprint(key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

/// A context whose image has the host's `ssh-add` with the libraries it links (busybox has no
/// agent client), placed where the host has them.
fn context_with_ssh_add(env: &Env, dockerfile: &str) -> PathBuf {
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    let root = ctx.join("root");
    let ssh_add = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v ssh-add"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let ssh_add = ssh_add.trim();
    let ldd = Command::new("ldd").arg(ssh_add).output().unwrap();
    let mut files = vec![ssh_add.to_string()];
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux... (0x...)"
        if let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) {
            files.push(path.to_string());
        }
    }
    for file in files {
        let dest = root.join(file.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&file, &dest).unwrap();
    }
    std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
    std::fs::copy(ssh_add, root.join("usr/local/bin/ssh-add")).unwrap();
    ctx
}

#[test]
fn key_files_are_served_by_an_agent_run_steps_can_list() {
    if !have("ssh-keygen") || !have("ssh-add") || !have("ldd") {
        eprintln!("SKIP: openssh-client (ssh-keygen, ssh-add) or ldd is not installed");
        return;
    }
    let env = Env::new();
    env.busybox_base();
    let ed = keygen(&env, "id_ed25519", &["-t", "ed25519"], "");
    let ec = keygen(&env, "id_ecdsa", &["-t", "ecdsa"], "");
    let ctx = context_with_ssh_add(
        &env,
        "FROM busybox:test\nCOPY root/ /\n\
         RUN --mount=type=ssh /usr/local/bin/ssh-add -l > /default\n\
         RUN --mount=type=ssh,id=deploy /usr/local/bin/ssh-add -l > /deploy\n",
    );
    env.ok(&[
        "build",
        "--progress=plain",
        "-t",
        "keys:1",
        "--ssh",
        &format!("default={}", ed.display()),
        "--ssh",
        &format!("deploy={},{}", ed.display(), ec.display()),
        ctx.to_str().unwrap(),
    ]);
    let listed = |file: &str| env.ok(&["run", "--rm", "keys:1", "cat", file]);
    let default = listed("/default");
    assert_eq!(default.lines().count(), 1, "{default}");
    assert!(default.contains(&fingerprint(&ed)), "{default}");
    let deploy = listed("/deploy");
    assert_eq!(deploy.lines().count(), 2, "{deploy}");
    assert!(deploy.contains(&fingerprint(&ed)) && deploy.contains(&fingerprint(&ec)));
}

#[test]
fn key_files_the_agent_cannot_use_are_refused_by_name() {
    if !have("ssh-keygen") {
        eprintln!("SKIP: openssh-client (ssh-keygen) is not installed");
        return;
    }
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")],
    );
    let ctx = ctx.to_str().unwrap();
    let ed = keygen(&env, "ok", &["-t", "ed25519"], "");
    let locked = keygen(&env, "locked", &["-t", "ed25519"], "a passphrase");
    let rsa = keygen(&env, "rsa", &["-t", "rsa", "-b", "2048"], "");
    let socket = env.path("agent.sock");
    let _listener = UnixListener::bind(&socket).unwrap();
    let d = |p: &Path| p.display().to_string();
    for (spec, message) in [
        (
            format!("default={}", d(&locked)),
            "encrypted with a passphrase",
        ),
        (
            format!("default={}", d(&rsa)),
            "ssh-rsa key files are not supported",
        ),
        (
            format!("default={},{}", d(&ed), d(&socket)),
            "one agent socket or key files, not both",
        ),
        (format!("default={}", d(&env.path("missing"))), "missing"),
    ] {
        let out = env.run(&["build", "--ssh", &spec, ctx]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{spec}: {stderr}");
        assert!(stderr.contains(message), "{spec}: {stderr}");
    }
    let out = env.run(&[
        "build",
        "--ssh",
        &format!("a={}", d(&ed)),
        "--ssh",
        &format!("a={}", d(&socket)),
        ctx,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("id \"a\" is given twice"));
}

#[test]
fn a_real_agent_is_read_only_to_run_steps() {
    if !have("ssh-keygen") || !have("ssh-add") || !have("ssh-agent") || !have("ldd") {
        eprintln!("SKIP: openssh-client (ssh-agent, ssh-add, ssh-keygen) or ldd is not installed");
        return;
    }
    let env = Env::new();
    env.busybox_base();
    let key = keygen(&env, "id_ed25519", &["-t", "ed25519"], "");
    // A short socket path: unix socket addresses are limited to 108 bytes.
    let dir = tempfile::Builder::new()
        .prefix("agent")
        .tempdir_in("/tmp")
        .unwrap();
    let socket = dir.path().join("s");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The socket file appears at bind(), before the agent listens: wait until it accepts.
    for _ in 0..500 {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let added = Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    let ctx = context_with_ssh_add(
        &env,
        "FROM busybox:test\nCOPY root/ /\n\
         RUN --mount=type=ssh /usr/local/bin/ssh-add -l > /before && \
             { /usr/local/bin/ssh-add -D || echo refused; } > /remove && \
             /usr/local/bin/ssh-add -l > /after\n",
    );
    let out = env.run(&[
        "build",
        "--progress=plain",
        "-t",
        "agent:1",
        "--ssh",
        &format!("default={}", socket.display()),
        ctx.to_str().unwrap(),
    ]);
    let listed = Command::new("ssh-add")
        .arg("-l")
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let show = |file: &str| env.ok(&["run", "--rm", "agent:1", "cat", file]);
    let fp = fingerprint(&key);
    assert!(show("/before").contains(&fp));
    assert_eq!(show("/remove"), "refused\n");
    assert!(show("/after").contains(&fp));
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&fp),
        "the user's agent still holds the key"
    );
}
