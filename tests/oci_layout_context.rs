//! `--build-context NAME=oci-layout:///DIR[:TAG|@DIGEST]`: a stage's base image taken from an
//! OCI image layout directory, offline, as BuildKit's oci-layout contexts (issue #19).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Env, have};

/// A base image with `/a.txt`, written as an OCI layout directory by builder's own exporter.
fn layout(env: &Env) -> PathBuf {
    let ctx = env.context(
        "base",
        &[
            ("Dockerfile", "FROM scratch\nCOPY a.txt /\n"),
            ("a.txt", "from the layout\n"),
        ],
    );
    let tar = env.path("base.tar");
    env.build_ok(&ctx, &["-o", &format!("type=oci,dest={}", tar.display())]);
    let dir = env.path("layout");
    fs::create_dir_all(&dir).unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

fn app(env: &Env) -> PathBuf {
    env.context(
        "app",
        &[
            ("Dockerfile", "FROM base\nCOPY b.txt /\n"),
            ("b.txt", "from the app\n"),
        ],
    )
}

fn build_tree(env: &Env, ctx: &Path, base: &str, out: &str) -> Result<PathBuf, String> {
    let dir = env.path(out);
    let res = env.build(
        ctx,
        &[
            "--build-context",
            &format!("base={base}"),
            "-o",
            &format!("type=local,dest={}", dir.display()),
        ],
    );
    let log = String::from_utf8_lossy(&res.stderr).into_owned();
    if res.status.success() {
        Ok(dir)
    } else {
        Err(log)
    }
}

#[test]
fn a_stage_can_start_from_an_image_in_an_oci_layout() {
    let producer = Env::new();
    let dir = layout(&producer);
    // Another store, which has never seen the base image: it comes from the layout alone.
    let env = Env::new();
    let ctx = app(&env);
    let out = build_tree(
        &env,
        &ctx,
        &format!("oci-layout://{}", dir.display()),
        "out",
    )
    .expect("build from the layout");
    assert_eq!(
        fs::read_to_string(out.join("a.txt")).unwrap(),
        "from the layout\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("b.txt")).unwrap(),
        "from the app\n"
    );

    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    build_tree(
        &env,
        &ctx,
        &format!("oci-layout://{}@{digest}", dir.display()),
        "pinned",
    )
    .expect("build from the layout by digest");
    let wrong = format!("sha256:{}", "0".repeat(64));
    let err = build_tree(
        &env,
        &ctx,
        &format!("oci-layout://{}@{wrong}", dir.display()),
        "x",
    )
    .expect_err("no such digest");
    assert!(err.contains("no image") && err.contains(&wrong), "{err}");
}

#[test]
fn a_tag_picks_the_image_of_a_layout_written_by_skopeo() {
    if !have("skopeo") {
        eprintln!("SKIP: skopeo is not installed");
        return;
    }
    let producer = Env::new();
    let dir = layout(&producer);
    let tagged = producer.path("tagged");
    let out = producer
        .skopeo()
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}", dir.display()))
        .arg(format!("oci:{}:v1", tagged.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let env = Env::new();
    let ctx = app(&env);
    let out = build_tree(
        &env,
        &ctx,
        &format!("oci-layout://{}:v1", tagged.display()),
        "out",
    )
    .expect("build from the tag");
    assert_eq!(
        fs::read_to_string(out.join("a.txt")).unwrap(),
        "from the layout\n"
    );
    let err = build_tree(
        &env,
        &ctx,
        &format!("oci-layout://{}:v2", tagged.display()),
        "x",
    )
    .expect_err("no such tag");
    assert!(
        err.contains("\"v2\"") && err.contains("v1"),
        "names the tags there are: {err}"
    );
}
