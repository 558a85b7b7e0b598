//! End to end: the flags of the store's own commands, `images --format json`, `history
//! --no-trunc`, `rmi -f`, and the global `--root` (the tests' helpers use `BUILDER_ROOT`, its
//! environment spelling). Each is checked against what it changes.

mod common;

use common::Env;

/// An image whose history has a long `created by` line, named twice; returns the long word.
fn long_history_image(env: &Env) -> String {
    let long = "x".repeat(80);
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            &format!("FROM busybox:test\nRUN echo {long} > /long\n"),
        )],
    );
    env.build_ok(&ctx, &["-t", "flags:1", "-t", "flags:2"]);
    long
}

#[test]
fn images_history_and_rmi_flags_change_what_they_say() {
    let env = Env::new();
    env.busybox_base();
    let long = long_history_image(&env);
    let id = env.inspect("flags:1")["Id"].as_str().unwrap().to_string();

    // images --format json: one object per line, with the full id; table otherwise.
    let json = env.ok(&["images", "--format", "json"]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        rows.iter()
            .any(|r| r["Repository"] == "flags" && r["Tag"] == "1" && r["ID"] == id.as_str()),
        "{json}"
    );
    let table = env.ok(&["images", "--format", "table"]);
    assert!(table.starts_with("REPOSITORY"), "{table}");

    // history truncates long lines unless --no-trunc.
    let short = env.ok(&["history", "flags:1"]);
    assert!(!short.contains(&long) && short.contains("..."), "{short}");
    let full = env.ok(&["history", "--no-trunc", "flags:1"]);
    assert!(full.contains(&long), "{full}");

    // rmi by id refuses an image with several names unless forced.
    let out = env.run(&["rmi", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be forced"));
    assert!(env.run(&["inspect", "flags:2"]).status.success());
    let removed = env.ok(&["rmi", "-f", &id]);
    assert!(removed.contains(&format!("Deleted: {id}")), "{removed}");
    assert!(!env.run(&["inspect", "flags:1"]).status.success());
    assert!(!env.run(&["inspect", "flags:2"]).status.success());
    long_history_image(&env);
    let id = env.inspect("flags:1")["Id"].as_str().unwrap().to_string();
    assert!(env.ok(&["rmi", "--force", &id]).contains("Deleted"));
}

#[test]
fn root_flag_chooses_the_store() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY a /a\n"), ("a", "a")],
    );
    let other = env.path("other-store");
    let other = other.to_str().unwrap();
    env.ok(&[
        "--root",
        other,
        "build",
        "--progress=quiet",
        "-t",
        "rooted:1",
        ctx.to_str().unwrap(),
    ]);
    assert!(env.ok(&["--root", other, "images", "-q"]).trim().len() > 3);
    // The BUILDER_ROOT store (env.root()) has nothing.
    assert!(env.ok(&["images", "-q"]).trim().is_empty());
    assert!(std::path::Path::new(other).join("cache").is_dir());
}
