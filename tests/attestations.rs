//! `--sbom`, `--provenance`, `--attest`: attestations attached to the image as BuildKit
//! attaches them (an index holding the image and an `unknown/unknown` attestation manifest of
//! in-toto statements), pushed with the image or kept in an OCI output; refused, with the
//! reason, where no index can go.

mod common;
#[path = "../registry/tests/support/registry.rs"]
#[allow(dead_code)]
mod registry_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{Env, have};
use registry_support::{Auth, Registry};
use serde_json::Value;

/// A Debian minbase rootfs tarball: $BUILDER_TEST_DEBIAN_ROOTFS (.ci/run makes one with
/// debootstrap), else the one bench/ uses.
fn debian_rootfs() -> PathBuf {
    std::env::var_os("BUILDER_TEST_DEBIAN_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/bench/rootfs.tar"))
}

/// A venv with `spdx-tools` and `check-jsonschema` from PyPI: $BUILDER_TEST_ATTEST_VENV
/// (.ci/run makes one).
fn validators() -> Option<PathBuf> {
    let venv = PathBuf::from(std::env::var_os("BUILDER_TEST_ATTEST_VENV")?);
    let bin = venv.join("bin");
    (bin.join("pyspdxtools").exists() && bin.join("check-jsonschema").exists()).then_some(bin)
}

/// The SBOM through `pyspdxtools -i`, the provenance through `check-jsonschema` against the
/// SLSA v0.2 field model (tests/fixtures).
fn validate(env: &Env, sbom: &Value, provenance: &Value) {
    let Some(bin) = validators() else {
        eprintln!(
            "SKIP: validation: BUILDER_TEST_ATTEST_VENV names no venv with spdx-tools and check-jsonschema"
        );
        return;
    };
    let sbom_file = env.path("sbom.spdx.json");
    std::fs::write(&sbom_file, serde_json::to_vec(sbom).unwrap()).unwrap();
    let out = std::process::Command::new(bin.join("pyspdxtools"))
        .arg("-i")
        .arg(&sbom_file)
        .output()
        .expect("run pyspdxtools");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !log.contains("invalid"),
        "pyspdxtools: {log}"
    );
    let prov_file = env.path("provenance.json");
    std::fs::write(&prov_file, serde_json::to_vec(provenance).unwrap()).unwrap();
    let out = std::process::Command::new(bin.join("check-jsonschema"))
        .arg("--schemafile")
        .arg(common::fixtures().join("slsa-provenance-v0.2.schema.json"))
        .arg(&prov_file)
        .output()
        .expect("run check-jsonschema");
    assert!(
        out.status.success(),
        "check-jsonschema: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
const SECRET: &str = "s3cr3t-value-never-in-a-blob";

/// A context whose base is the Debian minbase rootfs tarball (`ADD rootfs.tar /` onto
/// scratch), with a Python dist-info copied in and a step that reads a secret.
fn debian_context(env: &Env) -> Option<PathBuf> {
    let rootfs = debian_rootfs();
    if !rootfs.exists() {
        eprintln!(
            "SKIP: no Debian rootfs at {} (set BUILDER_TEST_DEBIAN_ROOTFS; .ci/run makes one with debootstrap)",
            rootfs.display()
        );
        return None;
    }
    let ctx = env.context(
        "debian",
        &[
            (
                "Dockerfile",
                "FROM scratch\nADD rootfs.tar /\nCOPY six-1.16.0.dist-info /usr/lib/python3/dist-packages/six-1.16.0.dist-info\nRUN --mount=type=secret,id=tok cat /run/secrets/tok > /dev/null\n",
            ),
            (
                "six-1.16.0.dist-info/METADATA",
                "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: MIT\n\nPython 2 and 3 compatibility utilities\n",
            ),
            ("tok", SECRET),
        ],
    );
    if std::fs::hard_link(&rootfs, ctx.join("rootfs.tar")).is_err() {
        std::fs::copy(&rootfs, ctx.join("rootfs.tar")).expect("copy the rootfs");
    }
    Some(ctx)
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON")
}

/// Blobs of an OCI layout directory, by digest.
fn layout_blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    std::fs::read(dir.join("blobs/sha256").join(hex)).expect("blob in the layout")
}

/// The statements of the attestation manifest, by predicate type, checked against the index.
fn statements(index: &Value, fetch: &dyn Fn(&str) -> Vec<u8>) -> BTreeMap<String, Value> {
    let manifests = index["manifests"].as_array().expect("an index");
    assert_eq!(manifests.len(), 2, "{index}");
    let image = &manifests[0];
    assert_eq!(image["platform"]["os"], "linux");
    let att = &manifests[1];
    assert_eq!(att["platform"]["os"], "unknown");
    assert_eq!(att["platform"]["architecture"], "unknown");
    assert_eq!(
        att["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(
        att["annotations"]["vnd.docker.reference.digest"],
        image["digest"]
    );
    let manifest = json(&fetch(att["digest"].as_str().unwrap()));
    let mut out = BTreeMap::new();
    for layer in manifest["layers"].as_array().unwrap() {
        assert_eq!(layer["mediaType"], "application/vnd.in-toto+json");
        let stmt = json(&fetch(layer["digest"].as_str().unwrap()));
        assert_eq!(stmt["_type"], "https://in-toto.io/Statement/v0.1");
        assert_eq!(
            stmt["predicateType"],
            layer["annotations"]["in-toto.io/predicate-type"]
        );
        assert_eq!(
            format!(
                "sha256:{}",
                stmt["subject"][0]["digest"]["sha256"].as_str().unwrap()
            ),
            image["digest"].as_str().unwrap()
        );
        out.insert(stmt["predicateType"].as_str().unwrap().to_string(), stmt);
    }
    out
}

/// name → version of the SBOM's packages.
fn sbom_versions(stmt: &Value) -> BTreeMap<String, String> {
    let doc = &stmt["predicate"];
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["versionInfo"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn pushed_index_carries_an_sbom_matching_dpkg_and_max_provenance_without_secrets() {
    if !have("docker-registry") || !have("skopeo") {
        eprintln!("SKIP: docker-registry or skopeo is not installed");
        return;
    }
    let env = Env::new();
    let Some(ctx) = debian_context(&env) else {
        return;
    };
    let reg = Registry::start(Auth::None);
    let name = format!("localhost:{}/app:1", reg.port);
    let secret = format!("id=tok,src={}", ctx.join("tok").display());
    env.build_ok(
        &ctx,
        &[
            "-t",
            &name,
            "--push",
            "--sbom=true",
            "--provenance=mode=max",
            "--secret",
            &secret,
            "--build-arg",
            "VISIBLE=yes",
        ],
    );
    let raw = |reference: &str| -> Vec<u8> {
        let out = env
            .skopeo()
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{reference}"),
            ])
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let index = json(&raw(&name));
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    // The whole index, attestation manifests and layers included, as a registry client gets it.
    let layout = env.path("pulled");
    let out = env
        .skopeo()
        .args([
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{name}"),
            &format!("oci:{}", layout.display()),
        ])
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let repo = format!("localhost:{}/app", reg.port);
    let fetch = |digest: &str| -> Vec<u8> {
        // Manifests by skopeo inspect --raw from the registry; blobs from the copy.
        let manifest = env
            .skopeo()
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{repo}@{digest}"),
            ])
            .output()
            .expect("run skopeo");
        if manifest.status.success() && !manifest.stdout.is_empty() {
            return manifest.stdout;
        }
        layout_blob(&layout, digest)
    };
    let stmts = statements(&index, &fetch);
    let sbom = &stmts["https://spdx.dev/Document"];
    let versions = sbom_versions(sbom);
    // Every installed package dpkg-query reports in the image, with its version.
    let listed = env.ok(&[
        "run",
        "--rm",
        &name,
        "dpkg-query",
        "-W",
        "-f",
        "${Package} ${Version}\\n",
    ]);
    let mut count = 0;
    for line in listed.lines() {
        let (pkg, version) = line.split_once(' ').unwrap();
        assert_eq!(
            versions.get(pkg).map(String::as_str),
            Some(version),
            "{pkg} in the SBOM"
        );
        count += 1;
    }
    assert!(count > 50, "a Debian base has dozens of packages: {listed}");
    assert_eq!(versions.get("six").map(String::as_str), Some("1.16.0"));
    let six = sbom["predicate"]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "six")
        .unwrap();
    assert_eq!(six["licenseDeclared"], "MIT");
    assert_eq!(
        six["externalRefs"][0]["referenceLocator"],
        "pkg:pypi/six@1.16.0"
    );
    assert!(
        six["sourceInfo"]
            .as_str()
            .unwrap()
            .contains("six-1.16.0.dist-info/METADATA")
    );
    let subject = sbom["subject"][0]["name"].as_str().unwrap();
    assert!(
        subject.starts_with(&format!(
            "pkg:docker/localhost%3A{}/app@1?platform=linux%2F",
            reg.port
        )),
        "{subject}"
    );

    let prov = &stmts["https://slsa.dev/provenance/v0.2"]["predicate"];
    assert_eq!(prov["buildType"], "https://mobyproject.org/buildkit@v1");
    assert_eq!(prov["invocation"]["parameters"]["secrets"][0]["id"], "tok");
    assert_eq!(
        prov["invocation"]["parameters"]["args"]["build-arg:VISIBLE"],
        "yes"
    );
    let steps = prov["buildConfig"]["llbDefinition"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["name"].as_str().unwrap().contains("ADD rootfs.tar")),
        "{prov}"
    );
    validate(&env, &sbom["predicate"], prov);
    // The secret's value is in no blob the registry holds.
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        let blob = std::fs::read(&path).unwrap();
        let mut text = blob.clone();
        if blob.starts_with(&[0x1f, 0x8b]) {
            text.clear();
            std::io::Read::read_to_end(
                &mut flate2::read::MultiGzDecoder::new(&blob[..]),
                &mut text,
            )
            .unwrap();
        }
        assert!(
            !text.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "the secret is in {}",
            path.display()
        );
    }
}

#[test]
fn oci_output_keeps_v1_provenance_of_a_busybox_image() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM busybox:test\nRUN echo hi > /hi\n")],
    );
    let dest = env.path("layout");
    env.build_ok(
        &ctx,
        &[
            "-t",
            "app:1",
            "--attest",
            "type=provenance,mode=min,version=v1",
            "--output",
            &format!("type=oci,dest={},tar=false", dest.display()),
        ],
    );
    let top = json(&std::fs::read(dest.join("index.json")).unwrap());
    let index = json(&layout_blob(
        &dest,
        top["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let stmts = statements(&index, &|d| layout_blob(&dest, d));
    let prov = &stmts["https://slsa.dev/provenance/v1"]["predicate"];
    assert_eq!(
        prov["buildDefinition"]["buildType"],
        "https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md"
    );
    // The base image is a material, with its manifest digest.
    let dep = &prov["buildDefinition"]["resolvedDependencies"][0];
    assert!(
        dep["uri"]
            .as_str()
            .unwrap()
            .starts_with("pkg:docker/busybox@test?platform=linux%2F"),
        "{prov}"
    );
    assert_eq!(dep["digest"]["sha256"].as_str().unwrap().len(), 64);
    // mode=min: no build graph.
    assert!(
        prov["buildDefinition"]["internalParameters"]
            .get("buildConfig")
            .is_none()
    );
    // No SBOM was asked for.
    assert_eq!(stmts.len(), 1);
}

#[test]
fn attestations_where_no_index_can_go_are_refused_before_building() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")],
    );
    for (args, message) in [
        (
            &["-t", "app:1", "--sbom=true"][..],
            "image store cannot hold",
        ),
        (
            &["-t", "app:1", "--provenance=mode=max"][..],
            "image store cannot hold",
        ),
        (
            &[
                "--sbom=generator=docker/scout-sbom-indexer",
                "-o",
                "type=oci,dest=x.tar",
            ][..],
            "scans the image itself",
        ),
        (
            &["--sbom=true", "-o", "type=docker,dest=x.tar"][..],
            "docker archive",
        ),
        (
            &[
                "--attest",
                "type=sbom,scan-all=true",
                "-o",
                "type=oci,dest=x.tar",
            ][..],
            "unknown key \"scan-all\"",
        ),
        (
            &["--attest", "type=nope", "-o", "type=oci,dest=x.tar"][..],
            "expected sbom or provenance",
        ),
        (
            &["--provenance=mode=huge", "-o", "type=oci,dest=x.tar"][..],
            "expected min or max",
        ),
    ] {
        let out = env.build(&ctx, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    // Turned off, they ask for nothing.
    env.build_ok(&ctx, &["-t", "app:1", "--sbom=false", "--provenance=false"]);
}

#[test]
fn each_platform_of_an_index_gets_its_own_attestation_manifest() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY node_modules /app/node_modules\n",
            ),
            (
                "node_modules/left-pad/package.json",
                r#"{"name":"left-pad","version":"1.3.0","license":"WTFPL"}"#,
            ),
        ],
    );
    let dest = env.path("layout");
    env.build_ok(
        &ctx,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "--sbom=true",
            "--output",
            &format!("type=oci,dest={},tar=false", dest.display()),
        ],
    );
    let top = json(&std::fs::read(dest.join("index.json")).unwrap());
    let index = json(&layout_blob(
        &dest,
        top["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 4, "{index}");
    // The images first, then one attestation manifest for each, naming it.
    for (image, att) in manifests[..2].iter().zip(&manifests[2..]) {
        assert_eq!(
            att["annotations"]["vnd.docker.reference.digest"],
            image["digest"]
        );
        assert_eq!(att["platform"]["os"], "unknown");
        let m = json(&layout_blob(&dest, att["digest"].as_str().unwrap()));
        let stmt = json(&layout_blob(
            &dest,
            m["layers"][0]["digest"].as_str().unwrap(),
        ));
        // No name: the subject is `_`, as BuildKit's.
        assert_eq!(stmt["subject"][0]["name"], "_");
        let versions = sbom_versions(&stmt);
        assert_eq!(versions.get("left-pad").map(String::as_str), Some("1.3.0"));
        let pkg = &stmt["predicate"]["packages"][1];
        assert_eq!(pkg["licenseDeclared"], "WTFPL");
        assert_eq!(
            pkg["externalRefs"][0]["referenceLocator"],
            "pkg:npm/left-pad@1.3.0"
        );
    }
}

/// A git context is the provenance's config source (URL and commit, vcs metadata), and an
/// `ADD <url>` download a material with its sha256.
#[test]
fn provenance_names_the_git_commit_and_add_urls() {
    use common::servers::{git, git_daemon, http_files, publish};
    if !have("git") {
        eprintln!("SKIP: git is not installed");
        return;
    }
    let env = Env::new();
    let files = env.path("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("data.txt"), "downloaded\n").unwrap();
    let http = http_files(&files, None);
    let work = env.path("work");
    let base = env.path("srv");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(
        work.join("Dockerfile"),
        format!(
            "FROM scratch\nADD http://127.0.0.1:{}/data.txt /data.txt\n",
            http.port
        ),
    )
    .unwrap();
    git(&work, &["init", "--quiet", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "one"]);
    let commit = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    publish(&work, &base, "repo");
    let daemon = git_daemon(&base);
    let url = format!("git://127.0.0.1:{}/repo.git#main", daemon.port);
    let dest = env.path("layout");
    let out = env
        .cmd()
        .args([
            "build",
            "--provenance=true",
            "--output",
            &format!("type=oci,dest={},tar=false", dest.display()),
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let top = json(&std::fs::read(dest.join("index.json")).unwrap());
    let index = json(&layout_blob(
        &dest,
        top["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let stmts = statements(&index, &|d| layout_blob(&dest, d));
    let prov = &stmts["https://slsa.dev/provenance/v0.2"]["predicate"];
    let source = &prov["invocation"]["configSource"];
    assert_eq!(source["uri"], url.as_str(), "{prov}");
    assert_eq!(source["digest"]["sha1"], commit.as_str());
    // As BuildKit (testGitProvenanceAttestation): the checkout is a material, no local source
    // went in (so the materials are complete), and there is no vcs metadata.
    assert!(
        prov["materials"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["uri"] == url.as_str() && m["digest"]["sha1"] == commit.as_str()),
        "{prov}"
    );
    assert!(
        prov["invocation"]["parameters"].get("locals").is_none(),
        "{prov}"
    );
    assert_eq!(prov["metadata"]["completeness"]["materials"], true);
    let buildkit = &prov["metadata"]["https://mobyproject.org/buildkit@v1#metadata"];
    assert!(buildkit.get("vcs").is_none(), "{prov}");
    let data = builder_store::Digest::of(b"downloaded\n").hex();
    let materials = prov["materials"].as_array().unwrap();
    assert!(
        materials.iter().any(|m| m["uri"]
            == format!("http://127.0.0.1:{}/data.txt", http.port).as_str()
            && m["digest"]["sha256"] == data.as_str()),
        "{prov}"
    );
}

/// `type=local`: the statements are files beside the tree (BuildKit's names), about every
/// file of it.
#[test]
fn local_output_writes_the_statements_as_files() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY node_modules /app/node_modules\n",
            ),
            (
                "node_modules/left-pad/package.json",
                r#"{"name":"left-pad","version":"1.3.0"}"#,
            ),
        ],
    );
    let dest = env.path("out");
    env.build_ok(
        &ctx,
        &[
            "--sbom=true",
            "--provenance=mode=max",
            "--output",
            &format!("type=local,dest={}", dest.display()),
        ],
    );
    assert!(dest.join("app/node_modules/left-pad/package.json").exists());
    let sbom = json(&std::fs::read(dest.join("sbom.spdx.json")).unwrap());
    assert_eq!(sbom["predicateType"], "https://spdx.dev/Document");
    assert_eq!(
        sbom_versions(&sbom).get("left-pad").map(String::as_str),
        Some("1.3.0")
    );
    let subject = &sbom["subject"][0];
    assert_eq!(subject["name"], "app/node_modules/left-pad/package.json");
    assert_eq!(
        subject["digest"]["sha256"].as_str().unwrap(),
        builder_store::Digest::of(br#"{"name":"left-pad","version":"1.3.0"}"#).hex()
    );
    let prov = json(&std::fs::read(dest.join("provenance.json")).unwrap());
    assert_eq!(prov["predicateType"], "https://slsa.dev/provenance/v0.2");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dest.join("provenance.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// The SPDX documents of an output directory (or a tar unpacked), by file name.
fn sbom_files(dir: &Path) -> BTreeMap<String, Value> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("sbom") && n.ends_with(".spdx.json"))
        .map(|n| (n.clone(), json(&std::fs::read(dir.join(&n)).unwrap())))
        .collect()
}

/// `BUILDKIT_SBOM_SCAN_STAGE` / `BUILDKIT_SBOM_SCAN_CONTEXT` (Dockerfile ARGs, global or in a
/// stage) and the `scan-stage` / `scan-context` keys add one SBOM per scanned stage and one of
/// the build context (less its .dockerignore'd files), named as BuildKit's scanner names them.
#[test]
fn scan_stage_and_scan_context_add_their_own_sboms() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch AS build\nARG BUILDKIT_SBOM_SCAN_STAGE=true\nCOPY tools/node_modules /t/node_modules\n\nFROM scratch AS other\nCOPY tools/node_modules /o/node_modules\n\nFROM scratch AS never\nARG BUILDKIT_SBOM_SCAN_STAGE=true\nCOPY Dockerfile /\n\nFROM scratch\nARG BUILDKIT_SBOM_SCAN_CONTEXT=true\nCOPY --from=build /t /app\nCOPY --from=other /o /other\n",
            ),
            (
                "tools/node_modules/left-pad/package.json",
                r#"{"name":"left-pad","version":"1.3.0"}"#,
            ),
            (
                "vendor/node_modules/only-in-context/package.json",
                r#"{"name":"only-in-context","version":"2.0.0"}"#,
            ),
            (
                "ignored/node_modules/hidden/package.json",
                r#"{"name":"hidden","version":"0.0.1"}"#,
            ),
            (".dockerignore", "ignored\n"),
        ],
    );
    let out = env.path("out");
    env.build_ok(
        &ctx,
        &[
            "--sbom=true",
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
    );
    let docs = sbom_files(&out);
    // The target's own, the `build` stage's (its ARG), the context's (the target's ARG);
    // `other` sets nothing and `never` is not built.
    assert_eq!(
        docs.keys().collect::<Vec<_>>(),
        [
            "sbom-build.spdx.json",
            "sbom-context.spdx.json",
            "sbom.spdx.json"
        ]
    );
    assert_eq!(
        docs["sbom-build.spdx.json"]["predicate"]["name"],
        "sbom-build"
    );
    let context = sbom_versions(&docs["sbom-context.spdx.json"]);
    assert_eq!(
        context.get("only-in-context").map(String::as_str),
        Some("2.0.0")
    );
    assert_eq!(context.get("left-pad").map(String::as_str), Some("1.3.0"));
    assert!(!context.contains_key("hidden"), "{context:?}");
    assert!(sbom_versions(&docs["sbom-build.spdx.json"]).contains_key("left-pad"));
    assert!(!sbom_versions(&docs["sbom.spdx.json"]).contains_key("only-in-context"));

    // A build arg overrides the ARG's value: a stage list enables the stages it names.
    let out2 = env.path("out2");
    env.build_ok(
        &ctx,
        &[
            "--sbom=true",
            "--build-arg",
            "BUILDKIT_SBOM_SCAN_CONTEXT=false",
            "--build-arg",
            "BUILDKIT_SBOM_SCAN_STAGE=nope",
            "-o",
            &format!("type=local,dest={}", out2.display()),
        ],
    );
    assert_eq!(
        sbom_files(&out2).keys().collect::<Vec<_>>(),
        ["sbom.spdx.json"]
    );

    // The keys of --attest apply to every stage, as a global ARG would, into an image index
    // too: one statement layer per document, the image's first.
    let plain = env.context(
        "plain",
        &[
            (
                "Dockerfile",
                "FROM scratch AS build\nCOPY tools/node_modules /t/node_modules\nFROM scratch\nCOPY --from=build /t /app\n",
            ),
            (
                "tools/node_modules/left-pad/package.json",
                r#"{"name":"left-pad","version":"1.3.0"}"#,
            ),
        ],
    );
    let dest = env.path("layout");
    env.build_ok(
        &plain,
        &[
            "--attest",
            "type=sbom,scan-stage=true,scan-context=true",
            "-o",
            &format!("type=oci,dest={},tar=false", dest.display()),
        ],
    );
    let top = json(&std::fs::read(dest.join("index.json")).unwrap());
    let index = json(&layout_blob(
        &dest,
        top["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let att = json(&layout_blob(
        &dest,
        index["manifests"][1]["digest"].as_str().unwrap(),
    ));
    let names: Vec<String> = att["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert_eq!(
                l["annotations"]["in-toto.io/predicate-type"],
                "https://spdx.dev/Document"
            );
            let stmt = json(&layout_blob(&dest, l["digest"].as_str().unwrap()));
            stmt["predicate"]["name"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(names, ["image", "sbom-context", "sbom-build"]);

    // The scan ARGs configure the scan only: never a RUN step's environment (as BuildKit).
    env.busybox_base();
    let run = env.context(
        "run",
        &[(
            "Dockerfile",
            "FROM busybox:test\nARG BUILDKIT_SBOM_SCAN_STAGE=true\nARG OTHER=1\nRUN env > /env.txt\n",
        )],
    );
    let out = env.path("run-out");
    env.build_ok(&run, &["-o", &format!("type=local,dest={}", out.display())]);
    let seen = std::fs::read_to_string(out.join("env.txt")).unwrap();
    assert!(
        seen.contains("OTHER=1") && !seen.contains("BUILDKIT_SBOM"),
        "{seen}"
    );
}

/// `type=tar`: the statements are files of the tar after the tree; with several platforms,
/// one directory per platform, each with its own statements (`type=local` alike).
#[test]
fn tar_and_multi_platform_file_outputs_carry_the_statements() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY node_modules /app/node_modules\n",
            ),
            (
                "node_modules/left-pad/package.json",
                r#"{"name":"left-pad","version":"1.3.0"}"#,
            ),
        ],
    );
    let tar = env.path("out.tar");
    env.build_ok(
        &ctx,
        &[
            "--sbom=true",
            "--provenance=mode=max",
            "-o",
            &format!("type=tar,dest={}", tar.display()),
        ],
    );
    let unpacked = env.path("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    tar::Archive::new(std::fs::File::open(&tar).unwrap())
        .unpack(&unpacked)
        .unwrap();
    let sbom = &sbom_files(&unpacked)["sbom.spdx.json"];
    assert_eq!(
        sbom_versions(sbom).get("left-pad").map(String::as_str),
        Some("1.3.0")
    );
    assert_eq!(
        sbom["subject"][0]["name"],
        "app/node_modules/left-pad/package.json"
    );
    assert_eq!(
        sbom["subject"][0]["digest"]["sha256"].as_str().unwrap(),
        builder_store::Digest::of(br#"{"name":"left-pad","version":"1.3.0"}"#).hex()
    );
    let prov = json(&std::fs::read(unpacked.join("provenance.json")).unwrap());
    assert_eq!(prov["predicateType"], "https://slsa.dev/provenance/v0.2");
    assert!(
        prov["predicate"]["buildConfig"].is_object(),
        "mode=max: {prov}"
    );

    for kind in ["tar", "local"] {
        let dest = env.path(&format!("multi-{kind}"));
        let spec = if kind == "tar" {
            format!("type=tar,dest={}.tar", dest.display())
        } else {
            format!("type=local,dest={}", dest.display())
        };
        env.build_ok(
            &ctx,
            &[
                "--sbom=true",
                "--provenance=mode=max",
                "--platform",
                "linux/amd64,linux/arm64",
                "-o",
                &spec,
            ],
        );
        if kind == "tar" {
            std::fs::create_dir_all(&dest).unwrap();
            tar::Archive::new(std::fs::File::open(format!("{}.tar", dest.display())).unwrap())
                .unpack(&dest)
                .unwrap();
        }
        for platform in ["linux_amd64", "linux_arm64"] {
            let dir = dest.join(platform);
            assert!(dir.join("app/node_modules/left-pad/package.json").exists());
            let docs = sbom_files(&dir);
            assert_eq!(docs.len(), 1, "{kind} {platform}: {docs:?}");
            // BuildKit's testProvenanceExportLocalMultiPlatform: a provenance per platform.
            let prov = json(&std::fs::read(dir.join("provenance.json")).unwrap());
            assert_eq!(
                prov["predicate"]["invocation"]["environment"]["platform"],
                platform.replace('_', "/")
            );
            assert_eq!(
                docs["sbom.spdx.json"]["subject"][0]["name"],
                "app/node_modules/left-pad/package.json",
                "{kind}: subjects are relative to the platform's directory"
            );
        }
    }
}

/// A multi-platform build kept in the store holds its attestation manifests in its index, and
/// `builder inspect` lists them: the image each is about, its platform, the predicate types.
#[test]
fn inspect_lists_the_attestations_of_a_stored_index() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")],
    );
    env.build_ok(
        &ctx,
        &[
            "-t",
            "multi:1",
            "--platform",
            "linux/amd64,linux/arm64",
            "--sbom=true",
            "--provenance=mode=min",
        ],
    );
    let inspected = env.inspect("multi:1");
    let obj = if inspected.is_array() {
        &inspected[0]
    } else {
        &inspected
    };
    let atts = obj["Attestations"].as_array().unwrap();
    assert_eq!(atts.len(), 2, "{obj}");
    let images = obj["Manifest"]["manifests"].as_array().unwrap();
    for (att, platform) in atts.iter().zip(["linux/amd64", "linux/arm64"]) {
        assert_eq!(att["Platform"], platform);
        assert!(images.iter().any(|m| m["digest"] == att["For"]));
        assert_eq!(
            att["PredicateTypes"],
            serde_json::json!([
                "https://spdx.dev/Document",
                "https://slsa.dev/provenance/v0.2"
            ])
        );
    }
    assert_eq!(
        obj["Platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
}

/// As buildx with a docker-container builder: a push carries `mode=min` provenance unless
/// `--provenance=false` or BUILDX_NO_DEFAULT_ATTESTATIONS says otherwise; `--metadata-file`
/// names the index pushed. The default is never written into file outputs (`inline-only`).
#[test]
fn pushes_get_min_provenance_by_default() {
    if !have("docker-registry") || !have("skopeo") {
        eprintln!("SKIP: docker-registry or skopeo is not installed");
        return;
    }
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")],
    );
    let reg = Registry::start(Auth::None);
    let raw = |reference: &str| -> Vec<u8> {
        let out = env
            .skopeo()
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{reference}"),
            ])
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let name = format!("localhost:{}/app:default", reg.port);
    let meta = env.path("meta.json");
    let local = env.path("local");
    env.build_ok(
        &ctx,
        &[
            "-t",
            &name,
            "--push",
            "--metadata-file",
            meta.to_str().unwrap(),
            "-o",
            &format!("type=local,dest={}", local.display()),
        ],
    );
    let pushed = raw(&name);
    let index = json(&pushed);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let repo = format!("localhost:{}/app", reg.port);
    let fetch = |digest: &str| raw(&format!("{repo}@{digest}"));
    let att = json(&fetch(index["manifests"][1]["digest"].as_str().unwrap()));
    assert_eq!(att["layers"].as_array().unwrap().len(), 1);
    assert_eq!(
        att["layers"][0]["annotations"]["in-toto.io/predicate-type"],
        "https://slsa.dev/provenance/v0.2"
    );
    let meta = json(&std::fs::read(&meta).unwrap());
    assert_eq!(
        meta["containerimage.digest"].as_str().unwrap(),
        builder_store::Digest::of(&pushed).to_string(),
        "the metadata names the index pushed"
    );
    assert_eq!(
        meta["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert!(!local.join("provenance.json").exists(), "inline-only");

    // Turned off: a plain image manifest.
    for (args, envs) in [
        (&["--provenance=false"][..], None),
        (&[][..], Some("1")),
        (&["--attest", "type=provenance,disabled=true"][..], None),
    ] {
        let name = format!("localhost:{}/app:off", reg.port);
        let mut cmd = env.cmd();
        cmd.args(["build", "-t", &name, "--push"])
            .args(args)
            .arg(&ctx);
        if let Some(v) = envs {
            cmd.env("BUILDX_NO_DEFAULT_ATTESTATIONS", v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let manifest = json(&raw(&name));
        assert_eq!(
            manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json",
            "{args:?} {envs:?}"
        );
    }
    let out = env
        .cmd()
        .env("BUILDX_NO_DEFAULT_ATTESTATIONS", "maybe")
        .args(["build", "-t", &name, "--push"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid BUILDX_NO_DEFAULT_ATTESTATIONS")
    );
    // Where the output cannot carry one (Docker media types), the default is left out.
    let docker = format!("localhost:{}/app:docker", reg.port);
    env.build_ok(
        &ctx,
        &[
            "-o",
            &format!("type=registry,name={docker},oci-mediatypes=false"),
        ],
    );
    assert_eq!(
        json(&raw(&docker))["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
}

/// The SBOM scan of each layer is kept by the layer's diff id (`sbom-scans/` in the store) and
/// reused by the next build: a stored scan changed by hand shows in the next SBOM (nothing read
/// the layer again); `builder prune --all` removes the scans with their layers.
#[test]
fn layer_scans_are_reused_across_builds_and_pruned_with_their_layers() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY node_modules /app/node_modules\n",
            ),
            (
                "node_modules/left-pad/package.json",
                r#"{"name":"left-pad","version":"1.3.0"}"#,
            ),
        ],
    );
    let sbom_of = |out: &str| -> BTreeMap<String, String> {
        let dest = env.path(out);
        env.build_ok(
            &ctx,
            &[
                "--sbom=true",
                "-o",
                &format!("type=local,dest={}", dest.display()),
            ],
        );
        sbom_versions(&json(&std::fs::read(dest.join("sbom.spdx.json")).unwrap()))
    };
    assert_eq!(
        sbom_of("one").get("left-pad").map(String::as_str),
        Some("1.3.0")
    );
    let scans_dir = env.root().join("sbom-scans");
    let stored: Vec<PathBuf> = std::fs::read_dir(&scans_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(stored.len(), 1, "one layer, one stored scan: {stored:?}");
    // Named by the layer's diff id, private to the store's user.
    let name = stored[0].file_name().unwrap().to_str().unwrap().to_string();
    let (hex, _) = name.split_once('-').unwrap();
    assert!(builder_store::Digest::from_hex(hex).is_ok(), "{name}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&stored[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    let text = std::fs::read_to_string(&stored[0]).unwrap();
    std::fs::write(&stored[0], text.replace("1.3.0", "9.9.9")).unwrap();
    assert_eq!(
        sbom_of("two").get("left-pad").map(String::as_str),
        Some("9.9.9"),
        "the stored scan of {name} was used"
    );
    // A torn or foreign file is scanned again (and replaced).
    std::fs::write(&stored[0], b"{not json").unwrap();
    assert_eq!(
        sbom_of("three").get("left-pad").map(String::as_str),
        Some("1.3.0")
    );
    env.ok(&["prune", "--all", "--force"]);
    let left = std::fs::read_dir(&scans_dir)
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "prune removes the scans of the layers it removes");
}

/// Issue #21's "done when": `build --sbom=true --provenance=mode=max --push` of a git context
/// pushes an index whose statements validate and whose provenance names every input: the base
/// image and a `docker-image://` named context with their digests, an `ADD --checksum` URL with
/// its sha256, the git context's commit; local named contexts are listed as locals.
#[test]
fn a_pushed_build_names_every_input_in_validating_attestations() {
    use common::servers::{git, git_daemon, http_files, publish};
    if !have("docker-registry") || !have("skopeo") || !have("git") {
        eprintln!("SKIP: docker-registry, skopeo or git is not installed");
        return;
    }
    let env = Env::new();
    let reg = Registry::start(Auth::None);
    env.busybox_base();
    let base = format!("127.0.0.1:{}/busybox:1", reg.port);
    env.ok(&["tag", "busybox:test", &base]);
    env.ok(&["push", &base]);
    let other_ctx = env.context(
        "other",
        &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /o\n")],
    );
    let other = format!("127.0.0.1:{}/other:1", reg.port);
    env.build_ok(&other_ctx, &["-t", &other, "--push", "--provenance=false"]);

    let files = env.path("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("data.txt"), "downloaded\n").unwrap();
    let http = http_files(&files, None);
    let data_sha = builder_store::Digest::of(b"downloaded\n").hex();
    let work = env.path("work");
    let srv = env.path("srv");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&srv).unwrap();
    std::fs::write(
        work.join("Dockerfile"),
        format!(
            "FROM {base}\nADD --checksum=sha256:{data_sha} http://127.0.0.1:{}/data.txt /data.txt\nCOPY --from=extra hello.txt /hello.txt\nCOPY --from=img /o /o\nRUN --mount=type=secret,id=tok cat /data.txt > /copy.txt\n",
            http.port
        ),
    )
    .unwrap();
    git(&work, &["init", "--quiet", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "one"]);
    let commit = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    publish(&work, &srv, "repo");
    let daemon = git_daemon(&srv);
    let url = format!("git://127.0.0.1:{}/repo.git#main", daemon.port);
    let extra = env.context("extra", &[("hello.txt", "hi\n")]);
    let tok = env.path("tok");
    std::fs::write(&tok, SECRET).unwrap();
    let name = format!("127.0.0.1:{}/app:1", reg.port);
    let out = env
        .cmd()
        .args([
            "build",
            "--sbom=true",
            "--provenance=mode=max",
            "--push",
            "-t",
            &name,
            "--secret",
            &format!("id=tok,src={}", tok.display()),
            "--build-context",
            &format!("extra={}", extra.display()),
            "--build-context",
            &format!("img=docker-image://{other}"),
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The index, read back with skopeo, walked to each statement layer.
    let raw = |reference: &str| -> Vec<u8> {
        let out = env
            .skopeo()
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{reference}"),
            ])
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let index = json(&raw(&name));
    let layout = env.path("pulled");
    let copied = env
        .skopeo()
        .args([
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{name}"),
            &format!("oci:{}", layout.display()),
        ])
        .output()
        .unwrap();
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    let repo = format!("127.0.0.1:{}/app", reg.port);
    let fetch = |digest: &str| -> Vec<u8> {
        let m = env
            .skopeo()
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{repo}@{digest}"),
            ])
            .output()
            .unwrap();
        if m.status.success() && !m.stdout.is_empty() {
            return m.stdout;
        }
        layout_blob(&layout, digest)
    };
    let stmts = statements(&index, &fetch);
    let sbom = &stmts["https://spdx.dev/Document"];
    let prov = &stmts["https://slsa.dev/provenance/v0.2"]["predicate"];
    validate(&env, &sbom["predicate"], prov);

    let materials = prov["materials"].as_array().unwrap();
    let has = |uri_start: &str, algo: &str, digest: &str| {
        materials.iter().any(|m| {
            m["uri"].as_str().unwrap().starts_with(uri_start) && m["digest"][algo] == digest
        })
    };
    let manifest_digest = |reference: &str| {
        let out = env
            .skopeo()
            .args([
                "inspect",
                "--tls-verify=false",
                &format!("docker://{reference}"),
            ])
            .output()
            .unwrap();
        json(&out.stdout)["Digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string()
    };
    let purl = |reference: &str| {
        format!(
            "pkg:docker/{}",
            reference.replacen(':', "%3A", 1).replacen(":1", "@1", 1)
        )
    };
    assert!(
        has(&purl(&base), "sha256", &manifest_digest(&base)),
        "base image: {prov}"
    );
    assert!(
        has(&purl(&other), "sha256", &manifest_digest(&other)),
        "named image context: {prov}"
    );
    assert!(
        has(
            &format!("http://127.0.0.1:{}/data.txt", http.port),
            "sha256",
            &data_sha
        ),
        "ADD url: {prov}"
    );
    assert!(has(&url, "sha1", &commit), "git context: {prov}");
    assert_eq!(
        prov["invocation"]["configSource"]["digest"]["sha1"],
        commit.as_str()
    );
    assert_eq!(
        prov["invocation"]["parameters"]["locals"],
        serde_json::json!([{"name": "extra"}]),
        "only local sources are locals: {prov}"
    );
    assert_eq!(prov["invocation"]["parameters"]["secrets"][0]["id"], "tok");
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let blob = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!blob.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    }
}

/// BuildKit's testOCILayoutProvenance: a base image from an `oci-layout://` context is a
/// material as a local OCI image (`pkg:oci/...`) with its manifest digest.
#[test]
fn an_oci_layout_base_is_a_pkg_oci_material() {
    let env = Env::new();
    let base_ctx = env.context(
        "base",
        &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /foo\n")],
    );
    let layout = env.path("layout");
    env.build_ok(
        &base_ctx,
        &[
            "-o",
            &format!("type=oci,dest={},tar=false", layout.display()),
        ],
    );
    let top = json(&std::fs::read(layout.join("index.json")).unwrap());
    let manifest = top["manifests"][0]["digest"].as_str().unwrap().to_string();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM base\nCOPY Dockerfile /bar\n")],
    );
    let out = env.path("out");
    env.build_ok(
        &ctx,
        &[
            "--provenance=mode=max",
            "--build-context",
            &format!("base=oci-layout://{}", layout.display()),
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
    );
    let prov = json(&std::fs::read(out.join("provenance.json")).unwrap());
    let materials = prov["predicate"]["materials"].as_array().unwrap();
    assert_eq!(materials.len(), 1, "{prov}");
    let uri = materials[0]["uri"].as_str().unwrap();
    assert_eq!(uri.split_once('/').unwrap().0, "pkg:oci", "{uri}");
    assert_eq!(
        format!(
            "sha256:{}",
            materials[0]["digest"]["sha256"].as_str().unwrap()
        ),
        manifest
    );
}
