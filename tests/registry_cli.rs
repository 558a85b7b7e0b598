//! End to end against a real registry (Debian's docker-registry on 127.0.0.1): push and pull
//! through the CLI, base images pulled by `FROM` with their ONBUILD triggers, `COPY --from` an
//! image reference, `build --push`, and interoperability with skopeo.

mod common;
#[path = "../registry/tests/support/registry.rs"]
#[allow(dead_code)]
mod registry_support;

use common::{Env, have};
use registry_support::{Auth, Registry};

fn registry() -> Option<Registry> {
    if !have("docker-registry") {
        eprintln!("SKIP: docker-registry is not installed");
        return None;
    }
    Some(Registry::start(Auth::None))
}

/// Pushes busybox:test from `env` as `<host>/base/busybox:1`; returns that name.
fn push_base(env: &Env, reg: &Registry) -> String {
    env.busybox_base();
    let name = format!("{}/base/busybox:1", reg.host());
    env.ok(&["tag", "busybox:test", &name]);
    env.ok(&["push", &name]);
    name
}

#[test]
fn push_then_pull_round_trip_keeps_digests() {
    let Some(reg) = registry() else { return };
    let a = Env::new();
    let name = push_base(&a, &reg);
    let pushed = a.inspect(&name);
    let b = Env::new();
    b.ok(&["pull", &name]);
    let pulled = b.inspect(&name);
    assert_eq!(pushed["ManifestDigest"], pulled["ManifestDigest"]);
    assert_eq!(pushed["Id"], pulled["Id"]);
    // The pulled image runs.
    assert_eq!(b.ok(&["run", "--rm", &name, "echo", "pulled"]), "pulled\n");
    // Re-pushing an unchanged image uploads nothing.
    let out = a.run(&["push", &name]);
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !log.contains(": Pushed"),
        "nothing should be uploaded again:\n{log}"
    );
    if have("skopeo") {
        let out = a
            .skopeo()
            .args(["inspect", "--tls-verify=false", &format!("docker://{name}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo inspect: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn from_registry_runs_onbuild_triggers_once() {
    let Some(reg) = registry() else { return };
    let a = Env::new();
    let base = push_base(&a, &reg);
    let lib = format!("{}/lib/onbuild:1", reg.host());
    let ctx = a.context(
        "lib",
        &[(
            "Dockerfile",
            &format!("FROM {base}\nONBUILD RUN echo triggered > /onbuild-ran\n"),
        )],
    );
    a.ok(&[
        "build",
        "--progress=plain",
        "--push",
        "-t",
        &lib,
        ctx.to_str().unwrap(),
    ]);

    // A fresh machine: FROM pulls the image and runs its trigger.
    let b = Env::new();
    let child = format!("{}/app/child:1", reg.host());
    let ctx = b.context(
        "child",
        &[(
            "Dockerfile",
            &format!("FROM {lib}\nRUN cat /onbuild-ran > /seen\n"),
        )],
    );
    b.ok(&[
        "build",
        "--progress=plain",
        "-t",
        &child,
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(
        b.ok(&["run", "--rm", &child, "cat", "/seen"]),
        "triggered\n"
    );
    let config = b.inspect(&child);
    assert!(
        config["config"]["OnBuild"].is_null(),
        "triggers are not inherited: {}",
        config["config"]
    );
}

#[test]
fn copy_from_an_image_reference() {
    let Some(reg) = registry() else { return };
    let a = Env::new();
    let base = push_base(&a, &reg);
    let b = Env::new();
    let ctx = b.context(
        "c",
        &[(
            "Dockerfile",
            &format!("FROM scratch\nCOPY --from={base} /bin/busybox /bb\n"),
        )],
    );
    b.ok(&[
        "build",
        "--progress=plain",
        "-t",
        "copied:1",
        ctx.to_str().unwrap(),
    ]);
    let layers = common::image_layers(&b, "copied:1");
    assert!(
        layers.iter().flatten().any(|e| e.0 == "bb"),
        "busybox copied out of the pulled image"
    );
}

#[test]
fn build_push_writes_metadata() {
    let Some(reg) = registry() else { return };
    let a = Env::new();
    let base = push_base(&a, &reg);
    let name = format!("{}/app/meta:1", reg.host());
    let meta = a.path("meta.json");
    let ctx = a.context(
        "m",
        &[("Dockerfile", &format!("FROM {base}\nRUN echo hi > /hi\n"))],
    );
    a.ok(&[
        "build",
        "--progress=quiet",
        "--push",
        "-t",
        &name,
        "--metadata-file",
        meta.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]);
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let digest = meta["containerimage.digest"].as_str().unwrap().to_string();
    assert!(
        meta["containerimage.pushed"][0]
            .as_str()
            .unwrap()
            .ends_with(&digest),
        "{meta}"
    );
    // As buildx with a docker-container builder: the push carries the default provenance, so
    // the digest is the index's; pulled, the index gives the platform's image, whose config is
    // the one built.
    assert_eq!(
        meta["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let b = Env::new();
    b.ok(&["pull", &name]);
    assert_eq!(b.inspect(&name)["Id"], meta["containerimage.config.digest"]);
    assert_ne!(b.inspect(&name)["ManifestDigest"], digest.as_str());
}

#[test]
fn login_checks_credentials_and_push_uses_them() {
    if !have("docker-registry") || !have("htpasswd") {
        eprintln!("SKIP: docker-registry or htpasswd (apache2-utils) not installed");
        return;
    }
    let env = Env::new();
    let htpasswd = env.path("htpasswd");
    let out = std::process::Command::new("htpasswd")
        .args(["-Bbn", "ci", "s3cret"])
        .output()
        .unwrap();
    std::fs::write(&htpasswd, &out.stdout).unwrap();
    let reg = Registry::start(Auth::Htpasswd(htpasswd));
    env.busybox_base();
    let name = format!("{}/private/busybox:1", reg.host());
    env.ok(&["tag", "busybox:test", &name]);
    let denied = env.run(&["push", &name]);
    assert!(!denied.status.success(), "anonymous push must be refused");
    let bad = env.run(&["login", "-u", "ci", "-p", "wrong", &reg.host()]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("login to") && err.contains(&reg.host()),
        "{err}"
    );
    let config = env.path("docker-config/config.json");
    assert!(
        !std::fs::read_to_string(&config)
            .unwrap_or_default()
            .contains(&reg.host()),
        "bad credentials are not kept"
    );
    env.ok(&["login", "-u", "ci", "-p", "s3cret", &reg.host()]);
    env.ok(&["push", &name]);
    env.ok(&["logout", &reg.host()]);
    assert!(
        !env.run(&["push", &name]).status.success(),
        "logged out again"
    );
    // --password-stdin reads the password from the first line of stdin.
    let login_stdin = |password: &str| {
        use std::io::Write;
        let mut child = env
            .cmd()
            .args(["login", "-u", "ci", "--password-stdin", &reg.host()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(!login_stdin("wrong").status.success());
    let out = login_stdin("s3cret");
    assert!(out.status.success(), "{out:?}");
    env.ok(&["push", &name]);
    let out = env.run(&[
        "login",
        "-u",
        "ci",
        "-p",
        "x",
        "--password-stdin",
        &reg.host(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// `HEAD` or `PUT` one manifest on the test registry over plain HTTP; returns the status line and
/// headers.
fn registry_http(host: &str, method: &str, path: &str, media_type: &str, body: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAccept: {media_type}\r\nContent-Type: {media_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(body).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn pull_platform_picks_from_an_index_and_quiet_prints_only_the_name() {
    let Some(reg) = registry() else { return };
    let a = Env::new();
    let ctx = a.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch\nARG TARGETPLATFORM\nLABEL platform=$TARGETPLATFORM\nCOPY Dockerfile /\n",
        )],
    );
    // One image per platform (no RUN, so nothing needs to execute), pushed by tag.
    let mut entries = Vec::new();
    for (os, arch) in [("linux", "amd64"), ("linux", "arm64")] {
        let tag = format!("{}/multi/img:{arch}", reg.host());
        let platform = format!("{os}/{arch}");
        a.build_ok(&ctx, &["--platform", &platform, "-t", &tag]);
        let out = a.run(&["push", "-q", &tag]);
        assert!(out.status.success());
        assert!(
            out.stderr.is_empty(),
            "-q: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let digest = a.inspect(&tag)["ManifestDigest"]
            .as_str()
            .unwrap()
            .to_string();
        let head = registry_http(
            &reg.host(),
            "HEAD",
            &format!("/v2/multi/img/manifests/{digest}"),
            "application/vnd.oci.image.manifest.v1+json",
            b"",
        );
        let size = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_string)
            })
            .unwrap();
        entries.push(format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":{},"platform":{{"os":"{os}","architecture":"{arch}"}}}}"#,
            size.trim()
        ));
    }
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
        entries.join(",")
    );
    let put = registry_http(
        &reg.host(),
        "PUT",
        "/v2/multi/img/manifests/both",
        "application/vnd.oci.image.index.v1+json",
        index.as_bytes(),
    );
    assert!(put.starts_with("HTTP/1.1 201"), "{put}");

    let name = format!("{}/multi/img:both", reg.host());
    for (platform, wanted) in [
        ("linux/arm64", "linux/arm64"),
        ("linux/amd64", "linux/amd64"),
    ] {
        let b = Env::new();
        let out = b.run(&["pull", "-q", "--platform", platform, &name]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), name);
        assert!(
            out.stderr.is_empty(),
            "-q: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = b.inspect(&name);
        assert_eq!(config["config"]["Labels"]["platform"], wanted);
        assert_eq!(config["architecture"], wanted.split('/').nth(1).unwrap());
    }
    let out = Env::new().run(&["pull", "--platform", "linux/s390x", &name]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no manifest for platform linux/s390x"));
}

/// The `progress` events of one action in a rawjson stderr: blob id → (current, total) in order.
fn transfers(stderr: &[u8], action: &str) -> std::collections::BTreeMap<String, Vec<(u64, u64)>> {
    let mut out = std::collections::BTreeMap::<String, Vec<(u64, u64)>>::new();
    for line in String::from_utf8_lossy(stderr).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["type"] == "progress" && v["action"] == action {
            let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {line}"));
            let id = v["id"].as_str().expect("id").to_string();
            out.entry(id).or_default().push((n("current"), n("total")));
        }
    }
    out
}

/// Every blob's byte counts start at 0, only grow, and end at its size in `env`'s store.
fn assert_transfers_reach_blob_sizes(
    env: &Env,
    events: &std::collections::BTreeMap<String, Vec<(u64, u64)>>,
) {
    for (id, steps) in events {
        let hex = id.strip_prefix("sha256:").expect("a sha256 digest");
        let size = std::fs::metadata(env.root().join("blobs/sha256").join(hex))
            .unwrap_or_else(|e| panic!("{id} not in the store: {e}"))
            .len();
        assert_eq!(steps.first().map(|s| s.0), Some(0), "{id}: {steps:?}");
        assert_eq!(steps.last().map(|s| s.0), Some(size), "{id}: {steps:?}");
        assert!(steps.iter().all(|s| s.1 == size), "{id}: {steps:?}");
        assert!(
            steps.windows(2).all(|w| w[0].0 <= w[1].0),
            "{id} went backwards: {steps:?}"
        );
    }
}

#[test]
fn rawjson_reports_bytes_of_every_blob_pushed_pulled_and_exported() {
    let Some(reg) = registry() else { return };
    let a = Env::new();
    a.busybox_base();
    let name = format!("{}/progress/busybox:1", reg.host());
    a.ok(&["tag", "busybox:test", &name]);
    let manifest = a.inspect(&name);
    let layers = manifest["Manifest"]["layers"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(layers >= 1, "{manifest}");

    let out = a.run(&["push", "--progress=rawjson", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pushed = transfers(&out.stderr, "push");
    // The layers and the config travel as blobs (the manifest is PUT, not a blob upload).
    assert_eq!(pushed.len(), layers + 1, "{pushed:?}");
    assert_transfers_reach_blob_sizes(&a, &pushed);

    let b = Env::new();
    let out = b.run(&["pull", "--progress=rawjson", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pulled = transfers(&out.stderr, "pull");
    assert_eq!(
        pulled.keys().collect::<Vec<_>>(),
        pushed.keys().collect::<Vec<_>>()
    );
    assert_transfers_reach_blob_sizes(&b, &pulled);

    let archive = b.path("image.tar");
    let out = b.run(&[
        "save",
        "--progress=rawjson",
        "-o",
        archive.to_str().unwrap(),
        &name,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = transfers(&out.stderr, "export");
    // The archive holds the manifest blob too.
    assert_eq!(exported.len(), layers + 2, "{exported:?}");
    assert_transfers_reach_blob_sizes(&b, &exported);
}

/// A base image that `FROM` pulls during a build shows its downloads in the build's own
/// progress, as `builder pull` does.
#[test]
fn build_reports_bytes_of_the_base_image_it_pulls() {
    let Some(reg) = registry() else { return };
    let a = Env::new();
    let base = push_base(&a, &reg);
    let layers = a.inspect(&base)["Manifest"]["layers"]
        .as_array()
        .map_or(0, Vec::len);

    let b = Env::new();
    let ctx = b.context(
        "ctx",
        &[("Dockerfile", &format!("FROM {base}\nRUN echo hi > /hi\n"))],
    );
    let out = b
        .cmd()
        .args(["build", "--progress=rawjson", "-t", "app:1"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pulled = transfers(&out.stderr, "pull");
    // Its layers and its config.
    assert_eq!(pulled.len(), layers + 1, "{pulled:?}");
    assert_transfers_reach_blob_sizes(&b, &pulled);
    assert_eq!(b.ok(&["run", "--rm", "app:1", "cat", "/hi"]), "hi\n");
}
