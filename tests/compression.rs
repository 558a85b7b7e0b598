//! End to end: `--output ...,compression=gzip|zstd|uncompressed,compression-level=N` decides how
//! the build's layers are compressed; zstd images export, save and unpack with standard tools.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Env, have, step_status};

/// A context whose one COPY layer is big enough to span several parallel-gzip chunks.
fn context(env: &Env) -> std::path::PathBuf {
    let big = "some config line that repeats\n".repeat(150_000);
    env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY big.txt /data/big.txt\nCOPY small.txt /data/small.txt\n",
            ),
            ("big.txt", &big),
            ("small.txt", "hello\n"),
        ],
    )
}

fn build(env: &Env, tag: &str, extra: &[&str]) {
    let ctx = context(env);
    let mut args = vec!["build", "--progress=plain", "-t", tag];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    env.ok(&args);
}

/// (media type, blob path) of each layer of a stored image.
fn layers(env: &Env, name: &str) -> Vec<(String, std::path::PathBuf)> {
    let v = env.inspect(name);
    v["Manifest"]["layers"]
        .as_array()
        .expect("manifest has layers")
        .iter()
        .map(|l| {
            let hex = l["digest"].as_str().unwrap().trim_start_matches("sha256:");
            (
                l["mediaType"].as_str().unwrap().to_string(),
                env.root().join("blobs/sha256").join(hex),
            )
        })
        .collect()
}

/// Runs `tool ARGS < file` and asserts it succeeds.
fn tool_accepts(tool: &str, args: &[&str], file: &Path) {
    let out = Command::new(tool)
        .args(args)
        .stdin(std::fs::File::open(file).unwrap())
        .stdout(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e} (install it)"));
    assert!(
        out.status.success(),
        "{tool} {args:?} < {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn default_layers_are_parallel_gzip_that_gzip_accepts() {
    let env = Env::new();
    build(&env, "gz:1", &[]);
    let layers = layers(&env, "gz:1");
    assert_eq!(layers.len(), 2);
    for (mt, blob) in &layers {
        assert_eq!(mt, "application/vnd.oci.image.layer.v1.tar+gzip");
        tool_accepts("gzip", &["-t"], blob);
    }
}

#[test]
fn zstd_image_store_output_is_valid_zstd_and_unpacks_with_umoci() {
    let env = Env::new();
    build(
        &env,
        "z:1",
        &[
            "--output",
            "type=image,compression=zstd,compression-level=9",
        ],
    );
    for (mt, blob) in layers(&env, "z:1") {
        assert_eq!(mt, "application/vnd.oci.image.layer.v1.tar+zstd");
        tool_accepts("zstd", &["-t", "-q"], &blob);
    }
    let oci = env.path("z-oci.tar");
    env.ok(&[
        "save",
        "--format",
        "oci",
        "-o",
        oci.to_str().unwrap(),
        "z:1",
    ]);
    let inspect = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            &format!("oci-archive:{}", oci.display()),
        ])
        .output()
        .expect("skopeo is installed");
    assert!(
        inspect.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let types = info["layers"]
        .as_array()
        .expect("an image manifest")
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert_eq!(
        types,
        vec!["application/vnd.oci.image.layer.v1.tar+zstd"; 2],
        "{info:#}"
    );
    let rootfs = umoci_unpack(&env, &oci);
    assert_eq!(
        std::fs::read_to_string(rootfs.join("data/small.txt")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::metadata(rootfs.join("data/big.txt"))
            .unwrap()
            .len(),
        30 * 150_000
    );
}

/// Unpacks the only image of an OCI archive with umoci; returns its rootfs. umoci before 0.5
/// (Debian 12 ships 0.4.7) refuses zstd layers by media type; then skopeo — which decodes zstd
/// and checks every digest on the way — recompresses the archive to gzip for umoci to unpack.
fn umoci_unpack(env: &Env, oci: &Path) -> std::path::PathBuf {
    assert!(have("umoci"), "umoci is not installed");
    let layout = env.path("layout");
    std::fs::create_dir_all(&layout).unwrap();
    let untar = Command::new("tar")
        .args(["-xf", oci.to_str().unwrap(), "-C", layout.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(untar.success());
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let tag = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .expect("saved image is tagged")
        .to_string();
    let bundle = env.path("bundle");
    let unpack = |image: &str| {
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image", image])
            .arg(&bundle)
            .output()
            .unwrap()
    };
    let direct = unpack(&format!("{}:{tag}", layout.display()));
    if direct.status.success() {
        return bundle.join("rootfs");
    }
    let err = String::from_utf8_lossy(&direct.stderr);
    assert!(
        err.contains("not correct mediatype") && umoci_version().starts_with("0.4"),
        "umoci {}: {err}",
        umoci_version()
    );
    let converted = env.path("converted");
    let copy = Command::new("skopeo")
        .args(["copy", "--dest-compress", "--dest-compress-format", "gzip"])
        .arg(format!("oci-archive:{}", oci.display()))
        .arg(format!("oci:{}:{tag}", converted.display()))
        .output()
        .expect("skopeo is installed");
    assert!(
        copy.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let out = unpack(&format!("{}:{tag}", converted.display()));
    assert!(
        out.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bundle.join("rootfs")
}

fn umoci_version() -> String {
    let out = Command::new("umoci").arg("--version").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("umoci version ")
        .to_string()
}

#[test]
fn zstd_archive_outputs_and_filesystem_exports() {
    let env = Env::new();
    let oci = env.path("out-oci.tar");
    let docker = env.path("out-docker.tar");
    let local = env.path("out-local");
    build(
        &env,
        "z:2",
        &[
            "--output",
            &format!("type=oci,dest={},compression=zstd", oci.display()),
            "--output",
            &format!("type=docker,dest={},compression=zstd", docker.display()),
            "--output",
            &format!("type=local,dest={}", local.display()),
        ],
    );
    // The filesystem export reads the zstd layers back.
    assert_eq!(
        std::fs::read_to_string(local.join("data/small.txt")).unwrap(),
        "hello\n"
    );
    let rootfs = umoci_unpack(&env, &oci);
    assert_eq!(
        std::fs::read_to_string(rootfs.join("data/small.txt")).unwrap(),
        "hello\n"
    );
    // docker load (Docker 23+ and the containerd store) sniffs zstd layers; skopeo reads the
    // docker-archive side of the same tar.
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            &format!("docker-archive:{}", docker.display()),
        ])
        .output()
        .expect("skopeo is installed");
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn uncompressed_layers_are_plain_tar() {
    let env = Env::new();
    build(
        &env,
        "u:1",
        &["--output", "type=image,compression=uncompressed"],
    );
    for (mt, blob) in layers(&env, "u:1") {
        assert_eq!(mt, "application/vnd.oci.image.layer.v1.tar");
        tool_accepts("tar", &["-t"], &blob);
    }
}

#[test]
fn same_compression_same_layers_across_stores() {
    // Thread count never changes the bytes; the same input and level give the same digests.
    let a = Env::new();
    let b = Env::new();
    // Context files are written at different times in each Env: clamp their mtimes.
    let opt = [
        "--output",
        "type=image,compression=zstd",
        "--build-arg",
        "SOURCE_DATE_EPOCH=1000",
    ];
    build(&a, "d:1", &opt);
    build(&b, "d:1", &opt);
    assert_eq!(
        a.inspect("d:1")["Manifest"]["layers"],
        b.inspect("d:1")["Manifest"]["layers"]
    );
}

#[test]
fn bad_compression_options_are_usage_errors() {
    let env = Env::new();
    let ctx = context(&env);
    let ctx = ctx.to_str().unwrap();
    let dest = env.path("x.tar");
    let dest = dest.display();
    for (output, needle) in [
        ("type=image,compression=lz4".to_string(), "compression=lz4"),
        (
            "type=image,compression=gzip,compression-level=10".to_string(),
            "out of range",
        ),
        (
            "type=image,compression=zstd,compression-level=fast".to_string(),
            "not a number",
        ),
        (
            format!("type=tar,dest={dest},compression=zstd"),
            "filesystem",
        ),
        (
            format!("type=local,dest={dest}.d,force-compression=true"),
            "filesystem",
        ),
        (
            "type=image,force-compression=yes".to_string(),
            "not a boolean",
        ),
    ] {
        let out = env.run(&["build", "--output", &output, ctx]);
        assert_eq!(out.status.code(), Some(2), "{output}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{output}: {err}");
    }
    let out = env.run(&[
        "build",
        "--output",
        "type=image,compression=zstd",
        "--output",
        &format!("type=oci,dest={dest},compression=gzip"),
        ctx,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("different layer compressions"));
}

#[test]
fn a_warm_cache_serves_every_compression_without_running_steps_again() {
    // The compression is not part of a step's cache key: a zstd build after a gzip build of
    // the same steps is fully cached and still gets zstd layers, converted from the cached
    // gzip ones (`builder_snapshot::layer_in`).
    let env = Env::new();
    // `build` rewrites the context (new mtimes): clamp them so both builds make the same tars.
    let epoch = ["--build-arg", "SOURCE_DATE_EPOCH=1000"];
    build(&env, "w:gz", &epoch);
    let ctx = context(&env);
    let out = env.build(
        &ctx,
        &[
            "-t",
            "w:zst",
            epoch[0],
            epoch[1],
            "--output",
            "type=image,compression=zstd",
        ],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    for step in [
        "COPY big.txt /data/big.txt",
        "COPY small.txt /data/small.txt",
    ] {
        assert_eq!(step_status(&log, step), "CACHED", "{log}");
    }
    let gz = env.inspect("w:gz");
    let zst = env.inspect("w:zst");
    assert_eq!(gz["rootfs"]["diff_ids"], zst["rootfs"]["diff_ids"]);
    for (mt, blob) in layers(&env, "w:zst") {
        assert_eq!(mt, "application/vnd.oci.image.layer.v1.tar+zstd");
        tool_accepts("zstd", &["-t", "-q"], &blob);
    }
}

/// A context on top of `base`, adding one layer of its own.
fn child_context(env: &Env, base: &str) -> std::path::PathBuf {
    env.context(
        "child",
        &[
            ("Dockerfile", &format!("FROM {base}\nCOPY g /g\n")),
            ("g", "child layer\n"),
        ],
    )
}

fn media_types(env: &Env, name: &str) -> Vec<String> {
    layers(env, name).into_iter().map(|(mt, _)| mt).collect()
}

#[test]
fn force_compression_recompresses_base_layers_too() {
    const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    let env = Env::new();
    build(&env, "base:gz", &[]);
    assert_eq!(media_types(&env, "base:gz"), vec![GZIP; 2]);
    let child = child_context(&env, "base:gz");
    let child = child.to_str().unwrap();

    // Without force-compression the base keeps its gzip layers (as in BuildKit).
    env.ok(&[
        "build",
        "--output",
        "type=image,name=child:z,compression=zstd",
        child,
    ]);
    assert_eq!(media_types(&env, "child:z"), vec![GZIP, GZIP, ZSTD]);

    // With it, every layer is zstd: the same tars (diff ids) in new blobs.
    let diff_ids = env.inspect("child:z")["rootfs"]["diff_ids"].clone();
    assert_eq!(diff_ids.as_array().map(Vec::len), Some(3));
    let oci = env.path("forced.oci.tar");
    env.ok(&[
        "build",
        "--output",
        "type=image,name=child:forced,compression=zstd,force-compression=true",
        "--output",
        &format!(
            "type=oci,dest={},compression=zstd,force-compression=true",
            oci.display()
        ),
        child,
    ]);
    assert_eq!(env.inspect("child:forced")["rootfs"]["diff_ids"], diff_ids);
    let forced = layers(&env, "child:forced");
    assert_eq!(
        forced.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(),
        vec![ZSTD; 3]
    );
    for (_, blob) in &forced {
        tool_accepts("zstd", &["-t", "-q"], blob);
    }
    // skopeo reads the archive, checking every blob against its digest on the way.
    let copied = env.path("copied");
    let copy = Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci-archive:{}", oci.display()))
        .arg(format!("oci:{}:x", copied.display()))
        .output()
        .expect("skopeo is installed");
    assert!(
        copy.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&copy.stderr)
    );

    // force-compression alone forces the build's compression, gzip by default.
    let other = Env::new();
    build(
        &other,
        "base:z",
        &["--output", "type=image,compression=zstd"],
    );
    let child = child_context(&other, "base:z");
    other.ok(&[
        "build",
        "--output",
        "type=image,name=child:gz,force-compression=true",
        child.to_str().unwrap(),
    ]);
    let gz = layers(&other, "child:gz");
    assert_eq!(
        gz.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(),
        vec![GZIP; 3]
    );
    for (_, blob) in &gz {
        tool_accepts("gzip", &["-t"], blob);
    }
}
