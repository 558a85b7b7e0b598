//! End to end: ports of BuildKit's named context integration tests (moby/buildkit
//! frontend/dockerfile/dockerfile_namedcontext_test.go), each asserting what the Go test
//! asserts. Images the Go tests push to a registry stay in builder's store here, and an OCI
//! layout store is a directory written by `--output type=oci,tar=false`. testNamedImageContext
//! and testNamedLocalContext are in tests/build_context.rs.

mod common;
#[path = "../registry/tests/support/registry.rs"]
#[allow(dead_code)]
mod registry_support;

use common::{Env, read_text, tar_entries};

/// Builds `dockerfile` into an OCI layout directory `name`; returns it and its one manifest's
/// digest.
fn oci_layout(env: &Env, name: &str, dockerfile: &str) -> (std::path::PathBuf, String) {
    let ctx = env.context(&format!("{name}-ctx"), &[("Dockerfile", dockerfile)]);
    let dir = env.path(name);
    let output = format!("type=oci,dest={},tar=false", dir.display());
    env.build_ok(&ctx, &["--output", &output]);
    let index: serde_json::Value =
        serde_json::from_str(&read_text(dir.join("index.json"))).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    let digest = manifests[0]["digest"].as_str().unwrap().to_string();
    (dir, digest)
}

/// testNamedImageContextTimestamps: an image built on a named image context gets its own
/// creation time, later than the base's (not the base's time).
#[test]
fn named_image_context_timestamps() {
    let env = Env::new();
    env.busybox_base();
    let dockerfile = "FROM alpine\nRUN echo foo >> /test\n";
    let base = env.context("base", &[("Dockerfile", dockerfile)]);
    env.build_ok(
        &base,
        &[
            "--build-context",
            "alpine=docker-image://busybox:test",
            "-t",
            "localhost/buildkit/testnamedimagecontexttimestamps:latest",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let derived = env.context("derived", &[("Dockerfile", dockerfile)]);
    env.build_ok(
        &derived,
        &[
            "--build-context",
            "alpine=docker-image://localhost/buildkit/testnamedimagecontexttimestamps:latest",
            "-t",
            "localhost/buildkit/testnamedimagecontexttimestampsderived:latest",
        ],
    );
    let created = |name: &str| {
        let v = env.inspect(name)["created"].as_str().unwrap().to_string();
        chrono_secs(&v)
    };
    let base = created("localhost/buildkit/testnamedimagecontexttimestamps:latest");
    let derived = created("localhost/buildkit/testnamedimagecontexttimestampsderived:latest");
    assert!(derived > base, "{derived} > {base}");
    assert!(derived - base < 600);
}

/// Seconds since the epoch of an RFC 3339 UTC time `YYYY-MM-DDTHH:MM:SS[.frac]Z`.
fn chrono_secs(t: &str) -> i64 {
    let num = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap();
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let (hh, mm, ss) = (num(11..13), num(14..16), num(17..19));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}

/// testNamedImageContextScratch: `docker-image://scratch` as a named context is the empty
/// image.
#[test]
fn named_image_context_scratch() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "\nFROM busybox AS build\nCOPY <<EOF /out\nhello world!\nEOF\n",
        )],
    );
    let out = env.build_local(
        &ctx,
        "out",
        &["--build-context", "busybox=docker-image://scratch"],
    );
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["out"]);
    assert_eq!(read_text(out.join("out")), "hello world!\n");
}

/// testNamedOCILayoutContext: an image from an OCI layout replaces a stage (`base`: its RUN is
/// not run) and is the base of another (`foo`), with its ENV and WORKDIR.
#[test]
fn named_oci_layout_context() {
    let env = Env::new();
    env.busybox_base();
    let (dir, digest) = oci_layout(
        &env,
        "ocione",
        "\tFROM busybox:test\n\tWORKDIR /test\n\tRUN sh -c \"echo -n first > out\"\n\
         \tRUN sh -c \"echo -n second > out2\"\n\tENV foo=bar\n\t",
    );
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test AS base\nRUN cat /etc/alpine-release > out\n\
             FROM foo AS imported\nRUN echo -n $foo > outfoo\n\
             FROM scratch\nCOPY --from=base /test/o* /\nCOPY --from=imported /test/outfoo /\n",
        )],
    );
    let base = format!("base=oci-layout://{}@{digest}", dir.display());
    let foo = format!("foo=oci-layout://{}@{digest}", dir.display());
    let out = env.build_local(
        &ctx,
        "out",
        &["--build-context", &base, "--build-context", &foo],
    );
    assert_eq!(read_text(out.join("out")), "first");
    assert_eq!(read_text(out.join("out2")), "second");
    assert_eq!(read_text(out.join("outfoo")), "bar");
}

/// testNamedOCILayoutContextExport: an image from an OCI layout standing for a missing image,
/// exported as OCI: its WORKDIR and ENV are in the exported config.
#[test]
fn named_oci_layout_context_export() {
    let env = Env::new();
    let (dir, digest) = oci_layout(&env, "ocione", "FROM scratch\nWORKDIR /test\nENV foo=bar\n");
    let ctx = env.context("ctx", &[("Dockerfile", "\nFROM nonexistent AS base\n")]);
    let archive = env.path("out.tar");
    let named = format!("nonexistent=oci-layout://{}@{digest}", dir.display());
    let output = format!("type=oci,dest={}", archive.display());
    env.build_ok(&ctx, &["--build-context", &named, "--output", &output]);
    let entries = tar_entries(std::fs::File::open(&archive).unwrap());
    let file = |name: &str| -> serde_json::Value {
        let e = entries
            .iter()
            .find(|e| e.0.trim_start_matches("./") == name)
            .unwrap_or_else(|| panic!("{name} not in the archive"));
        serde_json::from_str(&e.5).unwrap()
    };
    let index = file("index.json");
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    let blob = |d: &serde_json::Value| {
        file(&format!(
            "blobs/sha256/{}",
            d.as_str().unwrap().trim_start_matches("sha256:")
        ))
    };
    let manifest = blob(&manifests[0]["digest"]);
    let config = blob(&manifest["config"]["digest"]);
    assert_eq!(config["config"]["WorkingDir"], "/test");
    assert!(
        config["config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("foo=bar")),
        "{config}"
    );
}

/// testEagerNamedContextLookup: named image contexts of stages the target does not need are
/// never resolved (they name images that do not exist).
#[test]
fn eager_named_context_lookup() {
    let env = Env::new();
    env.busybox_base();
    env.ok(&["tag", "busybox:test", "alpine:latest"]);
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "\nFROM broken AS notused\nFROM alpine AS base\nRUN echo \"base\" > /foo\n\
             FROM busybox AS otherstage\nFROM scratch\nCOPY --from=base /foo /foo\n\t",
        )],
    );
    let out = env.build_local(
        &ctx,
        "out",
        &[
            "--build-context",
            "notused=docker-image://docker.io/library/nosuchimage:latest",
            "--build-context",
            "busybox=docker-image://docker.io/library/dontexist:latest",
        ],
    );
    assert_eq!(read_text(out.join("foo")), "base\n");
}

/// testNamedImageContextPlatform: a base pushed as an image index (`BUILDKIT_MULTI_PLATFORM=1`,
/// one manifest for the build platform) replaces `busybox` by `--build-context
/// busybox=docker-image://…`; a stage `FROM --platform=$BUILDPLATFORM busybox` with a RUN step
/// takes the build platform's manifest from it, not the target's (`darwin/ppc64le`, which the
/// index lacks and nothing here could run). Pushed to a real registry, as the Go test does.
#[test]
fn named_image_context_platform() {
    if !common::have("docker-registry") {
        eprintln!("SKIP: docker-registry is not installed");
        return;
    }
    let reg = registry_support::Registry::start(registry_support::Auth::None);
    let env = Env::new();
    env.busybox_base();
    let target = format!(
        "127.0.0.1:{}/buildkit/testnamedimagecontextplatform:latest",
        reg.port
    );
    let base = env.context(
        "base",
        &[(
            "Dockerfile",
            "FROM --platform=$BUILDPLATFORM busybox:test\n",
        )],
    );
    env.build_ok(
        &base,
        &[
            "--build-arg",
            "BUILDKIT_MULTI_PLATFORM=1",
            "-t",
            &target,
            "--push",
        ],
    );
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM --platform=$BUILDPLATFORM busybox AS target\nRUN echo hello\n",
        )],
    );
    let log = env.build_ok(
        &ctx,
        &[
            "--build-context",
            &format!("busybox=docker-image://{target}"),
            "--platform",
            "darwin/ppc64le",
        ],
    );
    assert!(
        common::run_output_lines(&log).contains(&"hello".to_string()),
        "the RUN step ran: {log}"
    );
}
