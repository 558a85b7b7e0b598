//! End to end: `ADD <url>` downloads from a real HTTP server (Python's http.server on
//! 127.0.0.1): docker's file mode and mtime, `--chmod`, `--checksum`, a conditional request
//! that keeps the step cached while the file is unchanged, and a changed file invalidating it.

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Env, set_mtime};

/// `python3 -m http.server` serving `dir`, killed on drop; its access log goes to `log`.
struct FileServer {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl FileServer {
    fn start(dir: &Path) -> FileServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.with_extension("log");
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("python3 (http.server) is needed for ADD <url> tests");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        FileServer { child, port, log }
    }

    /// How many requests the server answered with `status`.
    fn answered(&self, status: u16) -> usize {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        log.matches(&format!("\" {status} ")).count()
    }

    fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds and returns (stdout, stderr), failing the test unless the build succeeds.
fn build(env: &Env, ctx: &Path, tag: &str) -> String {
    let out = env.run(&[
        "build",
        "--progress=plain",
        "-t",
        tag,
        ctx.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "build failed:\n{stderr}");
    stderr
}

#[test]
fn add_url_downloads_caches_and_revalidates() {
    let env = Env::new();
    env.busybox_base();
    let served = env.path("served");
    fs::create_dir_all(&served).unwrap();
    let tool = served.join("tool.sh");
    fs::write(&tool, "#!/bin/sh\necho version one\n").unwrap();
    set_mtime(&tool, 1_500_000_000);
    let server = FileServer::start(&served);

    let dockerfile = format!(
        "FROM busybox:test\n\
         ADD {url} /opt/\n\
         ADD --chmod=755 {url} /usr/local/bin/tool\n\
         RUN stat -c '%a %u:%g %Y' /opt/tool.sh > /facts && tool >> /facts\n",
        url = server.url("tool.sh")
    );
    let ctx = env.context("ctx", &[("Dockerfile", &dockerfile)]);
    let first = build(&env, &ctx, "addurl:1");
    assert!(!first.contains("CACHED"), "{first}");
    assert_eq!(
        server.answered(200),
        1,
        "one download for the URL named twice"
    );
    let facts = env.ok(&["run", "--rm", "addurl:1", "cat", "/facts"]);
    // docker: mode 0600, owned by root, mtime from Last-Modified.
    assert_eq!(facts, "600 0:0 1500000000\nversion one\n");

    // Unchanged on the server: a conditional request (304), every step cached.
    assert_eq!(server.answered(304), 0);
    let second = build(&env, &ctx, "addurl:2");
    assert_eq!(server.answered(304), 1, "no conditional request was made");
    assert_eq!(
        second.matches("CACHED").count(),
        3,
        "all three steps should be cached:\n{second}"
    );
    // The same layers (and, as every step was cached, the same image: history is dated by
    // when each layer was first made, as BuildKit dates it).
    let layers = |name: &str| env.inspect(name)["rootfs"]["diff_ids"].clone();
    assert!(layers("addurl:1").as_array().is_some_and(|l| l.len() >= 3));
    assert_eq!(layers("addurl:1"), layers("addurl:2"), "same layers");

    // Changed on the server: the ADD steps and the RUN after them run again.
    fs::write(&tool, "#!/bin/sh\necho version two\n").unwrap();
    set_mtime(
        &tool,
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 10,
    );
    let third = build(&env, &ctx, "addurl:3");
    assert!(!third.contains("CACHED"), "{third}");
    let facts = env.ok(&["run", "--rm", "addurl:3", "cat", "/facts"]);
    assert!(facts.ends_with("version two\n"), "{facts}");
}

#[test]
fn add_url_checksum_and_http_errors_are_clear() {
    let env = Env::new();
    let served = env.path("served");
    fs::create_dir_all(&served).unwrap();
    fs::write(served.join("data.txt"), "hello\n").unwrap();
    let server = FileServer::start(&served);
    // sha256 of "hello\n"
    let good = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    let bad = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    let ok_ctx = env.context(
        "ok",
        &[(
            "Dockerfile",
            &format!(
                "FROM scratch\nADD --checksum={good} {} /data.txt\n",
                server.url("data.txt")
            ),
        )],
    );
    build(&env, &ok_ctx, "sum:ok");

    let bad_ctx = env.context(
        "bad",
        &[(
            "Dockerfile",
            &format!(
                "FROM scratch\nADD --checksum={bad} {} /data.txt\n",
                server.url("data.txt")
            ),
        )],
    );
    let out = env.run(&["build", "--progress=plain", bad_ctx.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Dockerfile:2") && stderr.contains("checksum mismatch"),
        "{stderr}"
    );

    let missing = env.context(
        "missing",
        &[(
            "Dockerfile",
            &format!("FROM scratch\nADD {} /x\n", server.url("nope.txt")),
        )],
    );
    let out = env.run(&["build", "--progress=plain", missing.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("nope.txt") && stderr.contains("404"),
        "{stderr}"
    );
}

/// A gzipped tar archive holding `foo` with `content`.
fn tar_gz(content: &str) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, "foo", content.as_bytes()).unwrap();
    let raw = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    gz.finish().unwrap()
}

/// What a case expects of the output tree: each path's bytes, or None for absent.
type Expected<'a> = &'a [(&'a str, Option<&'a [u8]>)];

/// BuildKit's testDockerfileAddArchive, the `--unpack` parts (dockerfile 1.17): a local
/// archive is extracted unless `--unpack=false`, COPY never extracts, a downloaded archive is
/// kept as downloaded unless `--unpack=true`, which extracts it into the destination.
#[test]
fn add_unpack_decides_whether_archives_are_extracted() {
    let env = Env::new();
    let archive = tar_gz("content0");
    let served = env.path("served-archives");
    fs::create_dir_all(&served).unwrap();
    fs::write(served.join("t.tar.gz"), &archive).unwrap();
    let server = FileServer::start(&served);
    let url = server.url("t.tar.gz");
    let cases: [(&str, &str, Expected); 6] = [
        (
            "default",
            "ADD t.tar.gz /",
            &[("foo", Some(b"content0")), ("t.tar.gz", None)],
        ),
        (
            "local-false",
            "ADD --unpack=false t.tar.gz /",
            &[("foo", None), ("t.tar.gz", Some(&archive))],
        ),
        (
            "copy",
            "COPY t.tar.gz /",
            &[("foo", None), ("t.tar.gz", Some(&archive))],
        ),
        (
            "url",
            &format!("ADD {url} /"),
            &[("foo", None), ("t.tar.gz", Some(&archive))],
        ),
        (
            "url-true",
            &format!("ADD --unpack=true {url} /dest/"),
            &[("dest/foo", Some(b"content0")), ("dest/t.tar.gz", None)],
        ),
        (
            "url-rename",
            &format!("ADD {url} /newname.tar.gz"),
            &[("newname.tar.gz", Some(&archive))],
        ),
    ];
    for (name, instruction, expect) in cases {
        let ctx = env.context(
            &format!("unpack-{name}"),
            &[("Dockerfile", &format!("FROM scratch\n{instruction}\n"))],
        );
        fs::write(ctx.join("t.tar.gz"), &archive).unwrap();
        let out = env.build_local(&ctx, &format!("unpack-out-{name}"), &[]);
        for (path, want) in expect.iter() {
            match want {
                Some(bytes) => assert_eq!(
                    fs::read(out.join(path)).unwrap_or_default(),
                    *bytes,
                    "{instruction}: {path}"
                ),
                None => assert!(!out.join(path).exists(), "{instruction}: {path} exists"),
            }
        }
    }
}
