//! End to end: `-o -` writes the image's filesystem as a tar to stdout and `dest=-` writes a
//! docker or OCI archive there, as buildx does; refused when stdout is a terminal, when two
//! outputs want it, and with `-q` (whose image id also goes to stdout).

mod common;

use std::process::{Command, Stdio};

use common::{Env, tar_entries};

fn context(env: &Env) -> std::path::PathBuf {
    env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY f /etc/f\n"),
            ("f", "payload"),
        ],
    )
}

#[test]
fn dash_writes_the_archive_to_stdout() {
    let env = Env::new();
    let ctx = context(&env);
    let out = env.build(&ctx, &["-o", "-"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = tar_entries(&out.stdout[..]);
    assert!(
        entries.iter().any(|e| e.0 == "etc/f" && e.5 == "payload"),
        "{entries:?}"
    );
    assert!(!ctx.join("-").exists() && !env.path("-").exists());

    let out = env.build(&ctx, &["--output", "type=docker,dest=-", "-t", "stdout:1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = tar_entries(&out.stdout[..])
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert!(names.iter().any(|n| n == "manifest.json"), "{names:?}");
    assert!(names.iter().any(|n| n == "oci-layout"), "{names:?}");

    let out = env.build(&ctx, &["--output", "type=oci,dest=-"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = tar_entries(&out.stdout[..])
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert!(names.iter().any(|n| n == "index.json"), "{names:?}");
}

#[test]
fn stdout_output_is_refused_on_a_terminal_twice_or_with_quiet() {
    let env = Env::new();
    let ctx = context(&env);
    let dir = ctx.to_str().unwrap();
    for args in [
        &["-o", "-", "-o", "type=tar,dest=-"][..],
        &["-q", "-o", "-"],
    ] {
        let out = env.build(&ctx, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // A terminal on stdout: `script` gives the command a pseudo-terminal.
    if !common::have("script") {
        eprintln!("SKIP: script (util-linux) is not installed");
        return;
    }
    let bin = common::builder_bin();
    let cmd = format!("{} build --progress=plain -o - {dir}", bin.display());
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("BUILDER_ROOT", env.root())
        .stdin(Stdio::null())
        .output()
        .expect("spawn script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("stdout is a terminal"), "{text}");
}
