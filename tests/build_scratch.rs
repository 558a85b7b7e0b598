//! End to end: a multi-stage `FROM scratch` build (no RUN, no registry) produces the config docker
//! would, the right file tree, and archives that skopeo and umoci accept.

mod common;

use common::{Env, fixtures, have, image_layers, tar_entries};
use serde_json::json;

fn build_fixture(env: &Env) {
    let ctx = fixtures().join("scratch-multistage");
    env.ok(&[
        "build",
        "--progress=plain",
        "-t",
        "demo:1",
        "--label",
        "from-cli=yes",
        ctx.to_str().unwrap(),
    ]);
}

#[test]
fn config_matches_docker() {
    let env = Env::new();
    build_fixture(&env);
    let v = env.inspect("demo:1");
    let c = &v["config"];
    assert_eq!(
        c["Env"],
        json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "APP_HOME=/app",
            "MODE=plain"
        ])
    );
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["Entrypoint"], json!(["/app/run"]));
    // Shell-form CMD after SHELL uses the new shell; the command text is not expanded.
    assert_eq!(c["Cmd"], json!(["/bin/sh", "-ec", "echo ${MODE}"]));
    assert_eq!(c["Shell"], json!(["/bin/sh", "-ec"]));
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(c["OnBuild"], json!(["RUN echo triggered"]));
    assert_eq!(c["ExposedPorts"], json!({"53/udp": {}, "8080/tcp": {}}));
    assert_eq!(c["Volumes"], json!({"/data": {}}));
    assert_eq!(
        c["Labels"],
        json!({"org.example.name": "demo", "version": "1", "from-cli": "yes"})
    );
    assert_eq!(
        c["Healthcheck"],
        json!({"Test": ["CMD", "/app/health"], "Interval": 30_000_000_000u64, "Timeout": 3_000_000_000u64, "Retries": 2})
    );
    assert_eq!(v["os"], "linux");
    assert_eq!(v["rootfs"]["type"], "layers");
    // Layers: WORKDIR, COPY assets, COPY flavor, COPY config — one diff_id per layer.
    let diff_ids = v["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), 4, "{v:#}");
    let history = v["history"].as_array().unwrap();
    let non_empty = history
        .iter()
        .filter(|h| h["empty_layer"] != json!(true))
        .count();
    assert_eq!(
        non_empty,
        diff_ids.len(),
        "history must account for every layer: {history:#?}"
    );
}

#[test]
fn file_tree_respects_dockerignore_chown_and_chmod() {
    let env = Env::new();
    build_fixture(&env);
    let layers = image_layers(&env, "demo:1");
    let all: Vec<_> = layers.iter().flatten().cloned().collect();
    let find = |p: &str| all.iter().find(|e| e.0.trim_end_matches('/') == p).cloned();
    let app = find("app").expect("WORKDIR creates /app");
    assert_eq!((app.4, app.1), ('d', 0o755));
    let main = find("app/assets/main.txt").expect("main.txt copied");
    assert_eq!(
        (main.1, main.2, main.3, main.5.as_str()),
        (0o640, 0, 0, "main file\n")
    );
    assert!(find("app/assets/sub/nested.txt").is_some());
    assert!(
        find("app/assets/keep.key").is_some(),
        "the ! exception re-includes keep.key"
    );
    assert!(
        find("app/assets/secret.key").is_none(),
        "**/*.key is ignored"
    );
    // docker anchors patterns at the context root: `*.log` does not reach src/build.log.
    assert!(
        find("app/assets/build.log").is_some(),
        "*.log only matches at the root"
    );
    let cfg = find("app/etc/config.json").expect("config copied");
    assert_eq!((cfg.2, cfg.3), (1000, 1000));
    let flavor = find("app/flavor.txt").expect("heredoc file copied from stage 0");
    assert_eq!(flavor.5, "heredoc content\n");
}

#[test]
fn rebuild_is_cached_and_identical() {
    let env = Env::new();
    build_fixture(&env);
    let first = env.inspect("demo:1");
    let ctx = fixtures().join("scratch-multistage");
    let out = env
        .cmd()
        .args([
            "build",
            "--progress=plain",
            "-t",
            "demo:2",
            "--label",
            "from-cli=yes",
            ctx.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("CACHED"),
        "second build should hit the cache:\n{log}"
    );
    let second = env.inspect("demo:2");
    assert_eq!(first["rootfs"], second["rootfs"]);
}

#[test]
fn save_is_accepted_by_skopeo_and_umoci() {
    if !have("skopeo") || !have("umoci") {
        eprintln!("SKIP: skopeo/umoci not installed");
        return;
    }
    let env = Env::new();
    build_fixture(&env);
    let archive = env.path("demo.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), "demo:1"]);
    let out = std::process::Command::new("skopeo")
        .args([
            "inspect",
            "--config",
            &format!("docker-archive:{}", archive.display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["config"]["WorkingDir"], "/app");

    let oci = env.path("demo-oci.tar");
    env.ok(&[
        "save",
        "--format",
        "oci",
        "-o",
        oci.to_str().unwrap(),
        "demo:1",
    ]);
    let layout = env.path("layout");
    std::fs::create_dir_all(&layout).unwrap();
    let untar = std::process::Command::new("tar")
        .args(["-xf", oci.to_str().unwrap(), "-C", layout.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(untar.success());
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let tag = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .unwrap_or("1")
        .to_string();
    let bundle = env.path("bundle");
    let out = std::process::Command::new("umoci")
        .args([
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:{tag}", layout.display()),
            bundle.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // (/app/assets is mode 0640, as COPY --chmod makes it: only root could traverse it.)
    let content = std::fs::read_to_string(bundle.join("rootfs/app/flavor.txt")).unwrap();
    assert_eq!(content, "heredoc content\n");
    assert!(bundle.join("rootfs/app/assets").is_dir());
}

#[test]
fn outputs_and_iidfile() {
    let env = Env::new();
    let ctx = fixtures().join("scratch-multistage");
    let iid = env.path("iid");
    let rootfs_tar = env.path("rootfs.tar");
    let local = env.path("local-out");
    env.ok(&[
        "build",
        "--progress=quiet",
        "--iidfile",
        iid.to_str().unwrap(),
        "--output",
        &format!("type=tar,dest={}", rootfs_tar.display()),
        "--output",
        &format!("type=local,dest={}", local.display()),
        ctx.to_str().unwrap(),
    ]);
    let id = std::fs::read_to_string(&iid).unwrap();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let entries = tar_entries(std::fs::File::open(&rootfs_tar).unwrap());
    assert!(
        entries
            .iter()
            .any(|e| e.0.trim_end_matches('/') == "app/flavor.txt")
    );
    // Read outside /app/assets, whose 0640 mode (COPY --chmod) only root can traverse.
    assert_eq!(
        std::fs::read_to_string(local.join("app/flavor.txt")).unwrap(),
        "heredoc content\n"
    );
    assert!(local.join("app/assets").is_dir());
}

#[test]
fn target_selects_a_stage() {
    let env = Env::new();
    let ctx = fixtures().join("scratch-multistage");
    env.ok(&[
        "build",
        "--progress=quiet",
        "--target",
        "assets",
        "-t",
        "assets:1",
        ctx.to_str().unwrap(),
    ]);
    let v = env.inspect("assets:1");
    assert_eq!(v["config"]["Env"][1], "ASSET_DIR=/assets");
    let out = env.run(&[
        "build",
        "--progress=quiet",
        "--target",
        "nope",
        ctx.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("target stage \"nope\" could not be found")
    );
}

#[test]
fn add_extracts_local_archives() {
    let env = Env::new();
    // A gzip tar made with the system tar: dir/, dir/file, a symlink.
    let src = env.path("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    std::fs::write(src.join("dir/file"), "inside the archive\n").unwrap();
    std::os::unix::fs::symlink("file", src.join("dir/link")).unwrap();
    let ctx = env.context(
        "add",
        &[
            (
                "Dockerfile",
                "FROM scratch\nADD bundle.tar.gz /opt/\nADD plain.txt /opt/plain.txt\n",
            ),
            ("plain.txt", "not an archive\n"),
        ],
    );
    let ok = std::process::Command::new("tar")
        .args([
            "-czf",
            ctx.join("bundle.tar.gz").to_str().unwrap(),
            "-C",
            src.to_str().unwrap(),
            "dir",
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    env.ok(&[
        "build",
        "--progress=plain",
        "-t",
        "add:1",
        ctx.to_str().unwrap(),
    ]);
    let entries: Vec<_> = image_layers(&env, "add:1").into_iter().flatten().collect();
    let file = entries
        .iter()
        .find(|e| e.0 == "opt/dir/file")
        .expect("archive extracted");
    assert_eq!(file.5, "inside the archive\n");
    let link = entries
        .iter()
        .find(|e| e.0 == "opt/dir/link")
        .expect("symlink kept");
    assert_eq!((link.4, link.5.as_str()), ('l', "file"));
    assert!(entries.iter().any(|e| e.0 == "opt/plain.txt"));
    assert!(!entries.iter().any(|e| e.0.ends_with("bundle.tar.gz")));
}

#[test]
fn source_date_epoch_makes_builds_reproducible() {
    let ctx = fixtures().join("scratch-multistage");
    let digest = |env: &Env| {
        let out = env.run(&[
            "build",
            "--progress=quiet",
            "--build-arg",
            "SOURCE_DATE_EPOCH=1700000000",
            "-t",
            "repro:1",
            ctx.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        // The builder consumes it; no "build-args were not consumed" warning.
        assert!(!stderr.contains("not consumed"), "{stderr}");
        env.inspect("repro:1")
    };
    let (a, b) = (Env::new(), Env::new());
    let (ia, ib) = (digest(&a), digest(&b));
    assert_eq!(ia["created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        ia["ManifestDigest"], ib["ManifestDigest"],
        "two stores, same bytes"
    );
    assert_eq!(ia["Id"], ib["Id"]);
}

/// With no `-f`, a context holding only `dockerfile` (lower case) builds from it, as with
/// docker and BuildKit; `-f DIR/Dockerfile` falls back the same way.
#[test]
fn a_lowercase_dockerfile_is_found_without_f() {
    let env = Env::new();
    let ctx = env.context(
        "lower",
        &[
            ("dockerfile", "FROM scratch\nCOPY a.txt /lower.txt\n"),
            ("a.txt", "a\n"),
        ],
    );
    env.build_ok(&ctx, &["-t", "lower:1"]);
    let df = ctx.join("Dockerfile");
    env.build_ok(&ctx, &["-f", df.to_str().unwrap(), "-t", "lower:2"]);
    let layers = image_layers(&env, "lower:1");
    assert!(
        layers.iter().flatten().any(|e| e.0 == "lower.txt"),
        "{layers:?}"
    );
}

/// BuildKit's config of `FROM scratch` has `WorkingDir` `/` (and the default PATH), so an image
/// with no WORKDIR still says where its processes start.
#[test]
fn a_scratch_image_works_in_the_root_directory() {
    let env = Env::new();
    let ctx = env.context(
        "wd",
        &[
            ("Dockerfile", "FROM scratch\nCOPY a.txt /\n"),
            ("a.txt", "a\n"),
        ],
    );
    env.build_ok(&ctx, &["-t", "wd:1"]);
    let v = env.inspect("wd:1");
    assert_eq!(v["config"]["WorkingDir"], "/", "{v:#}");
}
