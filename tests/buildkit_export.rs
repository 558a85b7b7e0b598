//! End to end: ports of BuildKit's tar exporter and tar context integration tests
//! (moby/buildkit frontend/dockerfile/dockerfile_export_test.go), each asserting what the Go
//! test asserts. A tar context is given as buildx gives one, on stdin (`-`).

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{Env, read_text, tar_entries};

/// A tar archive of (name, content) regular files.
fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(content.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, content.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

/// `builder build --progress=plain ARGS -` with `archive` on stdin; fails the test unless it
/// succeeds.
fn build_stdin(env: &Env, archive: &[u8], args: &[&str]) {
    let mut child = env
        .cmd()
        .args(["build", "--progress=plain"])
        .args(args)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(archive).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The regular files of a `type=tar` output: (name, content).
fn tar_output(env: &Env, ctx: &std::path::Path, name: &str) -> Vec<(String, String)> {
    tar_output_with(env, ctx, name, &[])
}

/// [`tar_output`] of a build given `extra` flags too.
fn tar_output_with(
    env: &Env,
    ctx: &std::path::Path,
    name: &str,
    extra: &[&str],
) -> Vec<(String, String)> {
    let dest = env.path(name);
    let output = format!("type=tar,dest={}", dest.display());
    let mut args = vec!["--output", &output];
    args.extend(extra);
    env.build_ok(ctx, &args);
    tar_entries(std::fs::File::open(&dest).unwrap())
        .into_iter()
        .filter(|e| e.4 == 'f')
        .map(|e| (e.0.trim_start_matches("./").to_string(), e.5))
        .collect()
}

/// testTarExporterBasic: `type=tar` holds the final stage's files.
#[test]
fn tar_exporter_basic() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY foo foo\n"),
            ("foo", "data"),
        ],
    );
    let files = tar_output(&env, &ctx, "out.tar");
    assert!(files.contains(&("foo".into(), "data".into())), "{files:?}");
}

/// testTarExporterMulti: the stage chosen by `$TARGETOS` is the one exported; built for
/// `linux/amd64,darwin/amd64`, the tar holds one directory per platform, each with its stage.
#[test]
fn tar_exporter_multi() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch AS stage-linux\nCOPY foo forlinux\n\
                 FROM scratch AS stage-darwin\nCOPY bar fordarwin\nFROM stage-$TARGETOS\n",
            ),
            ("foo", "data"),
            ("bar", "data2"),
        ],
    );
    let files = tar_output(&env, &ctx, "out.tar");
    assert!(
        files.contains(&("forlinux".into(), "data".into())),
        "{files:?}"
    );

    let files = tar_output_with(
        &env,
        &ctx,
        "multi.tar",
        &["--platform", "linux/amd64,darwin/amd64"],
    );
    assert!(
        files.contains(&("linux_amd64/forlinux".into(), "data".into())),
        "{files:?}"
    );
    assert!(
        files.contains(&("darwin_amd64/fordarwin".into(), "data2".into())),
        "{files:?}"
    );
}

/// testExportMultiPlatform: each platform's stage picks its file by `$TARGETARCH` and labels
/// the image with `$TARGETPLATFORM`; `type=local` writes one directory per platform (`arm`
/// normalized to `linux_arm_v7`), and `type=oci` an index with one manifest per platform, in
/// the order asked, each with one layer holding that platform's file and a config naming it.
#[test]
fn export_multi_platform() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch
ARG TARGETARCH
ARG TARGETPLATFORM
LABEL target=$TARGETPLATFORM
                 COPY arch-$TARGETARCH whoami
",
            ),
            ("arch-arm", "i am arm"),
            ("arch-amd64", "i am amd64"),
            ("arch-s390x", "i am s390x"),
            ("arch-ppc64le", "i am ppc64le"),
        ],
    );
    let dest = env.path("local");
    env.build_ok(
        &ctx,
        &[
            "--platform",
            "windows/amd64,linux/arm,linux/s390x",
            "--output",
            &format!("type=local,dest={}", dest.display()),
        ],
    );
    for (dir, want) in [
        ("windows_amd64", "i am amd64"),
        ("linux_arm_v7", "i am arm"),
        ("linux_s390x", "i am s390x"),
    ] {
        assert_eq!(read_text(dest.join(dir).join("whoami")), want, "{dir}");
    }

    let out = env.path("out.tar");
    env.build_ok(
        &ctx,
        &[
            "--platform",
            "windows/amd64,linux/arm/v6,linux/ppc64le",
            "--output",
            &format!("type=oci,dest={}", out.display()),
        ],
    );
    let member = |name: &str| -> Vec<u8> {
        let mut archive = tar::Archive::new(std::fs::File::open(&out).unwrap());
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap().to_str() == Some(name) {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
                return bytes;
            }
        }
        panic!("{name} is not in the archive");
    };
    let blob = |digest: &serde_json::Value| {
        member(&format!(
            "blobs/sha256/{}",
            digest.as_str().unwrap().trim_start_matches("sha256:")
        ))
    };
    let json = |bytes: Vec<u8>| serde_json::from_slice::<serde_json::Value>(&bytes).unwrap();
    let top = json(member("index.json"));
    let index = json(blob(&top["manifests"][0]["digest"]));
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{index}");
    for (entry, (p, os, arch, data)) in entries.iter().zip([
        ("windows/amd64", "windows", "amd64", "i am amd64"),
        ("linux/arm/v6", "linux", "arm", "i am arm"),
        ("linux/ppc64le", "linux", "ppc64le", "i am ppc64le"),
    ]) {
        let plat = &entry["platform"];
        let mut named = format!(
            "{}/{}",
            plat["os"].as_str().unwrap(),
            plat["architecture"].as_str().unwrap()
        );
        if let Some(v) = plat["variant"].as_str() {
            named = format!("{named}/{v}");
        }
        assert_eq!(named, p);
        let manifest = json(blob(&entry["digest"]));
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "{p}: {manifest}");
        let files: Vec<(String, String)> = tar_entries(flate2::read::GzDecoder::new(
            std::io::Cursor::new(blob(&layers[0]["digest"])),
        ))
        .into_iter()
        .filter(|e| e.4 == 'f')
        .map(|e| (e.0, e.5))
        .collect();
        assert_eq!(files, [("whoami".to_string(), data.to_string())], "{p}");
        let config = json(blob(&manifest["config"]["digest"]));
        assert_eq!(config["os"], os, "{p}");
        assert_eq!(config["architecture"], arch, "{p}");
        assert_eq!(config["config"]["Labels"]["target"], p, "{p}");
    }
}

/// testTarContext: a tar archive as the whole context, Dockerfile included.
#[test]
fn tar_context() {
    let env = Env::new();
    let archive = tar_of(&[
        ("Dockerfile", "FROM scratch\nCOPY foo /"),
        ("foo", "contents"),
    ]);
    build_stdin(&env, &archive, &[]);
}

/// testTarContextExternalDockerfile, without its `contextsubdir` (a frontend attribute no
/// buildx flag sets for a tar on stdin): a tar context with the Dockerfile given from the
/// local disk.
#[test]
fn tar_context_external_dockerfile() {
    let env = Env::new();
    let archive = tar_of(&[("foo", "contents")]);
    let dir = env.context("df", &[("Dockerfile", "FROM scratch\nCOPY foo bar\n")]);
    let out = env.path("out");
    let output = format!("type=local,dest={}", out.display());
    build_stdin(
        &env,
        &archive,
        &[
            "-f",
            dir.join("Dockerfile").to_str().unwrap(),
            "--output",
            &output,
        ],
    );
    assert_eq!(read_text(out.join("bar")), "contents");
}
