//! End to end: the cache index shared by concurrent `builder` processes (a step both builds need
//! runs once), the import of records from the JSON-file format, and `builder cache verify`
//! finding damage and `--repair` leaving a store the next build uses. CI runs this file as root
//! and as an unprivileged user.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use common::{Env, step_status};
use serde_json::Value;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn records(env: &Env) -> Vec<Value> {
    serde_json::from_str(&env.ok(&["cache", "ls", "--format", "json"])).unwrap()
}

/// `builder cache verify` output, failing the test unless it reports a clean store.
fn verify_clean(env: &Env) -> String {
    let out = env.run(&["cache", "verify"]);
    assert!(
        out.status.success() && stdout(&out).contains("no problems found"),
        "verify is not clean ({}):\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn strip(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

#[test]
fn concurrent_builds_run_a_shared_step_once() {
    let env = Env::new();
    env.busybox_base();
    // Same slow first step, different second steps: both builds need the first one.
    let shared = "FROM busybox:test\nRUN sleep 2 && date +%s%N > /f\n";
    let a = env.context(
        "a",
        &[("Dockerfile", &format!("{shared}RUN echo a > /a\n"))],
    );
    let b = env.context(
        "b",
        &[("Dockerfile", &format!("{shared}RUN echo b > /b\n"))],
    );
    let spawn = |tag: &str, ctx: &Path| {
        env.cmd()
            .args([
                "build",
                "--progress=plain",
                "-t",
                tag,
                ctx.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (pa, pb) = (spawn("a:1", &a), spawn("b:1", &b));
    let (oa, ob) = (
        pa.wait_with_output().unwrap(),
        pb.wait_with_output().unwrap(),
    );
    assert!(oa.status.success(), "build a:\n{}", stderr(&oa));
    assert!(ob.status.success(), "build b:\n{}", stderr(&ob));
    // Exactly one build ran the step and the other took its result.
    let status = |o: &Output| step_status(&stderr(o), "RUN sleep 2 && date +%s%N > /f").to_string();
    let mut both = [status(&oa), status(&ob)];
    both.sort();
    assert_eq!(
        both,
        ["CACHED", "DONE"],
        "one build must run the shared step and the other hit:\n--- a\n{}\n--- b\n{}",
        stderr(&oa),
        stderr(&ob)
    );
    let f = |tag: &str| env.ok(&["run", "--rm", tag, "cat", "/f"]);
    assert_eq!(f("a:1"), f("b:1"));
    assert_eq!(env.ok(&["run", "--rm", "a:1", "cat", "/a"]), "a\n");
    assert_eq!(env.ok(&["run", "--rm", "b:1", "cat", "/b"]), "b\n");
    let shared_records = records(&env)
        .into_iter()
        .filter(|r| r["Description"].as_str().unwrap().contains("sleep 2"))
        .count();
    assert_eq!(shared_records, 1);
    assert_eq!(
        fs::read_dir(env.root().join("locks")).unwrap().count(),
        0,
        "step locks are removed by their holders"
    );
    verify_clean(&env);
}

#[test]
fn json_records_of_older_stores_are_imported() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY a.txt /a\nCOPY b.txt /b\n"),
            ("a.txt", "a"),
            ("b.txt", "b"),
        ],
    );
    env.ok(&["build", "-q", "-t", "legacy:1", ctx.to_str().unwrap()]);
    let before = records(&env);
    assert_eq!(before.len(), 2);
    // Turn the store into one written before the index database: a JSON file per record.
    let cache = env.root().join("cache");
    for name in ["index.db", "index.db-wal", "index.db-shm"] {
        let _ = fs::remove_file(cache.join(name));
    }
    for r in &before {
        let layer = &r["Layer"];
        let legacy = serde_json::json!({
            "layer": {
                "diff_id": layer["diffID"],
                "digest": layer["digest"],
                "size": layer["size"],
                "media_type": layer["mediaType"],
            },
            "description": r["Description"],
        });
        let file = cache.join(format!("{}.json", strip(r["ID"].as_str().unwrap())));
        fs::write(file, legacy.to_string()).unwrap();
    }
    let out = env.run(&[
        "build",
        "--progress=plain",
        "-t",
        "legacy:1",
        ctx.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("CACHED").count(),
        2,
        "imported records are hits:\n{}",
        stderr(&out)
    );
    let after = records(&env);
    let ids = |rs: &[Value]| rs.iter().map(|r| r["ID"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&after), ids(&before));
    assert_eq!(after[0]["Layer"], before[0]["Layer"]);
    let left: Vec<_> = fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert!(left.is_empty(), "legacy files left: {left:?}");
    verify_clean(&env);
}

/// Flips one byte in the middle of a blob (blobs are read-only; the owner may chmod).
fn flip_byte(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o444)).unwrap();
}

#[test]
fn verify_finds_a_flipped_byte_and_repair_lets_the_next_build_succeed() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox:test\nCOPY data /data\nRUN cat /data > /copy\n",
            ),
            ("data", "payload\n"),
        ],
    );
    env.ok(&["build", "-q", "-t", "app:1", ctx.to_str().unwrap()]);
    let out = verify_clean(&env);
    assert!(out.contains("2 images"), "{out}");
    let rec = records(&env)
        .into_iter()
        .find(|r| r["Description"].as_str().unwrap().contains("RUN cat"))
        .unwrap();
    let digest = rec["Layer"]["digest"].as_str().unwrap().to_string();
    let diff_id = rec["Layer"]["diffID"].as_str().unwrap().to_string();
    flip_byte(&env.root().join("blobs/sha256").join(strip(&digest)));

    let out = env.run(&["cache", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report = stdout(&out);
    assert!(
        report.contains(&format!("damaged blob {digest}")),
        "{report}"
    );
    assert!(report.contains("image app:1"), "{report}");
    assert!(report.contains("RUN cat /data > /copy"), "{report}");
    // A plain verify changes nothing.
    assert!(
        env.root()
            .join("blobs/sha256")
            .join(strip(&digest))
            .exists()
    );

    let out = env.run(&["cache", "verify", "--repair"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(&format!("removed damaged blob {digest}")));
    assert!(
        stderr(&out).contains("WARNING: removed image app:1"),
        "the image that lost a layer is reported: {}",
        stderr(&out)
    );
    assert!(
        !env.root()
            .join("blobs/sha256")
            .join(strip(&digest))
            .exists()
    );
    assert!(!env.root().join("snapshots").join(strip(&diff_id)).exists());
    verify_clean(&env);

    let out = env.run(&[
        "build",
        "--progress=plain",
        "-t",
        "app:1",
        ctx.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        step_status(&stderr(&out), "RUN cat /data > /copy"),
        "DONE",
        "the step whose record went runs again:\n{}",
        stderr(&out)
    );
    assert_eq!(
        env.ok(&["run", "--rm", "app:1", "cat", "/copy"]),
        "payload\n"
    );
    verify_clean(&env);
}

#[test]
fn verify_resets_a_damaged_index_and_cleans_leftovers() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY a.txt /a\n"),
            ("a.txt", "a"),
        ],
    );
    env.ok(&["build", "-q", "-t", "x:1", ctx.to_str().unwrap()]);
    // What a killed writer leaves: a half-written blob, an unfinished unpack, a step lock.
    fs::write(env.root().join("tmp/blob-half"), b"partial").unwrap();
    fs::create_dir_all(env.root().join("snapshots/.unpack-x/etc")).unwrap();
    fs::write(env.root().join("locks/0.lock"), b"").unwrap();
    let out = verify_clean(&env);
    assert!(out.contains("Cleaned 3 leftover"), "{out}");
    assert_eq!(fs::read_dir(env.root().join("tmp")).unwrap().count(), 0);

    let db = env.root().join("cache/index.db");
    for name in ["index.db-wal", "index.db-shm"] {
        let _ = fs::remove_file(env.root().join("cache").join(name));
    }
    fs::write(&db, vec![0x5au8; 8192]).unwrap();
    let out = env.run(&["cache", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("cache index"), "{}", stdout(&out));
    let out = env.run(&["cache", "verify", "--repair"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    verify_clean(&env);
    // The records are gone, so the step runs again; the image it makes is the same.
    let id = env.ok(&["build", "-q", "-t", "x:1", ctx.to_str().unwrap()]);
    assert_eq!(env.inspect("x:1")["Id"].as_str().unwrap(), id.trim());
    assert_eq!(records(&env).len(), 1);
}
