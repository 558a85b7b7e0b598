//! End to end: ports of BuildKit's ADD integration tests (moby/buildkit
//! frontend/dockerfile/dockerfile_add_test.go), each asserting what the Go test asserts. URLs
//! are served by a small HTTP server on 127.0.0.1 that, like BuildKit's test server, gives each
//! path an ETag (and optionally a Last-Modified) and logs every request. testAddInvalidChmod and
//! testDockerfileAddArchiveWildcard are in tests/buildkit_copy.rs.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{Env, read_text, tar_entries};

/// A test HTTP server: each route has a body, an ETag and maybe a Last-Modified; a request
/// carrying the route's ETag in If-None-Match gets 304. Every request is logged as
/// `METHOD PATH STATUS`.
struct Served {
    child: Child,
    port: u16,
    log: PathBuf,
}

const SERVER: &str = r#"
import http.server, json, socketserver, sys
routes = json.load(open(sys.argv[1]))
log = open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def answer(self, body):
        r = routes.get(self.path)
        if r is None:
            self.send_response(404); self.end_headers(); log.write(f"{self.command} {self.path} 404\n"); return
        if self.headers.get("If-None-Match") == r["etag"]:
            self.send_response(304); self.send_header("ETag", r["etag"]); self.end_headers()
            log.write(f"{self.command} {self.path} 304\n"); return
        data = r["body"].encode()
        self.send_response(200)
        self.send_header("ETag", r["etag"])
        if r.get("last_modified"):
            self.send_header("Last-Modified", r["last_modified"])
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)
        log.write(f"{self.command} {self.path} 200\n")
    def do_GET(self):
        self.answer(True)
    def do_HEAD(self):
        self.answer(False)
s = socketserver.ThreadingTCPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

impl Served {
    /// Serves `routes`: (path, body, etag, last-modified in HTTP date form).
    fn start(dir: &Path, routes: &[(&str, &str, &str, Option<&str>)]) -> Served {
        let table: serde_json::Map<String, serde_json::Value> = routes
            .iter()
            .map(|(path, body, etag, modified)| {
                (
                    path.to_string(),
                    serde_json::json!({"body": body, "etag": etag, "last_modified": modified}),
                )
            })
            .collect();
        std::fs::create_dir_all(dir).unwrap();
        let routes_file = dir.join("routes.json");
        std::fs::write(&routes_file, serde_json::to_vec(&table).unwrap()).unwrap();
        let log = dir.join("requests.log");
        let mut child = Command::new("python3")
            .args(["-c", SERVER])
            .arg(&routes_file)
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is needed for the ADD <url> tests");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the server's port");
        Served { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The requests made for `path`: (method, status).
    fn requests(&self, path: &str) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut parts = l.split(' ');
                let (method, p, status) = (parts.next()?, parts.next()?, parts.next()?);
                (p == path).then(|| (method.to_string(), status.to_string()))
            })
            .collect()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tar archive of (name, kind `d|f|l|h`, content or link target, mode).
fn tar_of(entries: &[(&str, char, &str, u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, content, mode) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mode(*mode);
        match kind {
            'd' => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, name, std::io::empty()).unwrap();
            }
            'f' => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(content.len() as u64);
                b.append_data(&mut h, name, content.as_bytes()).unwrap();
            }
            'l' | 'h' => {
                h.set_entry_type(if *kind == 'l' {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_size(0);
                b.append_link(&mut h, name, content).unwrap();
            }
            _ => unreachable!("entry kind {kind}"),
        }
    }
    b.into_inner().unwrap()
}

/// testDockerfileADDFromURL: `ADD <url> /dest/` names the file after the URL's last segment;
/// a second build revalidates without downloading again (BuildKit sends HEAD with the ETag it
/// has; builder sends a conditional GET the server answers 304: no body either way); a URL
/// without a file name gives `__unnamed__`, with the Last-Modified time as its mtime.
#[test]
fn dockerfile_add_from_url() {
    let env = Env::new();
    let modified = "Sat, 01 Jan 2022 10:00:00 GMT";
    let server = Served::start(
        &env.path("served"),
        &[
            ("/foo", "content1", "\"etag-foo\"", None),
            ("/", "content2", "\"etag-root\"", Some(modified)),
        ],
    );
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            &format!("FROM scratch\nADD {} /dest/\n", server.url("/foo")),
        )],
    );
    let out = env.build_local(&ctx, "out1", &[]);
    assert_eq!(read_text(out.join("dest/foo")), "content1");
    env.build_ok(&ctx, &[]);
    let requests = server.requests("/foo");
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0], ("GET".to_string(), "200".to_string()));
    assert!(
        requests[1].0 == "HEAD" || requests[1].1 == "304",
        "the second build downloaded again: {requests:?}"
    );

    let ctx = env.context(
        "ctx2",
        &[(
            "Dockerfile",
            &format!("FROM scratch\nADD {} /dest/\n", server.url("/")),
        )],
    );
    let out = env.build_local(&ctx, "out2", &[]);
    let file = out.join("dest/__unnamed__");
    assert_eq!(read_text(&file), "content2");
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    let secs = mtime
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(secs, 1_641_031_200, "mtime from Last-Modified ({modified})");
}

/// testDockerfileAddArchiveWithImpliedParentDir: a gzipped archive whose first entry is a
/// nested directory (its parents implied) is extracted.
#[test]
fn dockerfile_add_archive_with_implied_parent_dir() {
    let env = Env::new();
    let tar = tar_of(&[
        ("etc/dnf/", 'd', "", 0o755),
        ("etc/dnf/dnf.conf", 'f', "content0", 0o644),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM scratch\nADD t.tar.gz /\n")]);
    std::fs::write(ctx.join("t.tar.gz"), gz.finish().unwrap()).unwrap();
    let out = env.build_local(&ctx, "out", &[]);
    assert_eq!(read_text(out.join("etc/dnf/dnf.conf")), "content0");
}

/// testDockerfileAddArchiveThroughAbsoluteSymlink (moby/moby#53258): an archive extracted
/// through an absolute symlink already in the image (`/var/run` → `/run`) lands below its
/// target inside the root, hard links included.
#[test]
fn dockerfile_add_archive_through_absolute_symlink() {
    let env = Env::new();
    let rootfs = tar_of(&[
        ("run/", 'd', "", 0o755),
        ("var/", 'd', "", 0o755),
        ("var/run", 'l', "/run", 0o777),
    ]);
    let head = "ref: refs/heads/main\n";
    let payload = tar_of(&[
        ("var/run/act/", 'd', "", 0o755),
        ("var/run/act/actions/", 'd', "", 0o755),
        ("var/run/act/actions/broad/", 'd', "", 0o755),
        ("var/run/act/actions/broad/.git/", 'd', "", 0o755),
        ("var/run/act/actions/broad/.git/HEAD", 'f', head, 0o644),
        (
            "var/run/act/actions/broad/.git/HEAD.link",
            'h',
            "var/run/act/actions/broad/.git/HEAD",
            0o644,
        ),
    ]);
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch\nADD rootfs.tar /\nADD payload.tar /\n",
        )],
    );
    std::fs::write(ctx.join("rootfs.tar"), rootfs).unwrap();
    std::fs::write(ctx.join("payload.tar"), payload).unwrap();
    let out = env.build_local(&ctx, "out", &[]);
    let file = out.join("run/act/actions/broad/.git/HEAD");
    let link = out.join("run/act/actions/broad/.git/HEAD.link");
    assert_eq!(read_text(&file), head);
    assert_eq!(read_text(&link), head);
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (
        std::fs::metadata(&file).unwrap(),
        std::fs::metadata(&link).unwrap(),
    );
    assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()), "the same file");
}

/// testDockerfileAddChownArchive: `ADD --chown` of a local archive owns the extracted files
/// and the created destination directory.
#[test]
fn dockerfile_add_chown_archive() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch\nADD --chown=100:200 t.tar /out/\n",
        )],
    );
    std::fs::write(
        ctx.join("t.tar"),
        tar_of(&[("foo", 'f', "content0", 0o644)]),
    )
    .unwrap();
    let dest = env.path("out.tar");
    let output = format!("type=tar,dest={}", dest.display());
    env.build_ok(&ctx, &["--output", &output]);
    let entries = tar_entries(std::fs::File::open(&dest).unwrap());
    let find = |name: &str| {
        entries
            .iter()
            // directories end in `/`, as Go's archive/tar names them
            .find(|e| e.0.trim_start_matches("./") == name)
            .unwrap_or_else(|| panic!("{name} not in {entries:?}"))
            .clone()
    };
    let foo = find("out/foo");
    assert_eq!(foo.5, "content0");
    assert_eq!((foo.2, foo.3), (100, 200));
    let dir = find("out/");
    assert_eq!((dir.2, dir.3), (100, 200));
}

/// testDockerfileAddChownExpand: `ADD --chown` from an ENV and a build ARG.
#[test]
fn dockerfile_add_chown_expand() {
    let env = Env::new();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox:test\n\
                 RUN echo 'nobody:x:65534:' >> /etc/group\n\
                 ARG group\nENV owner 1000\n\
                 ADD --chown=${owner}:${group} foo /\n\
                 RUN [ \"$(stat -c \"%u %G\" /foo)\" == \"1000 nobody\" ]\n",
            ),
            ("foo", "foo-contents"),
        ],
    );
    env.build_ok(&ctx, &["--build-arg", "group=nobody"]);
}

/// testAddURLChmod: `ADD --chmod` of a URL, literal and from a build ARG.
#[test]
fn add_url_chmod() {
    let env = Env::new();
    env.busybox_base();
    let server = Served::start(
        &env.path("served"),
        &[("/foo", "content1", "\"etag-foo\"", None)],
    );
    let dockerfile = format!(
        "FROM busybox:test AS build\n\
         ADD --chmod=644 {url} /tmp/foo1\n\
         ADD --chmod=755 {url} /tmp/foo2\n\
         ADD --chmod=0413 {url} /tmp/foo3\n\
         ARG mode\n\
         ADD --chmod=${{mode}} {url} /tmp/foo4\n\
         RUN stat -c \"%04a\" /tmp/foo1 >> /dest && \\\n\
         \tstat -c \"%04a\" /tmp/foo2 >> /dest && \\\n\
         \tstat -c \"%04a\" /tmp/foo3 >> /dest && \\\n\
         \tstat -c \"%04a\" /tmp/foo4 >> /dest\n\
         FROM scratch\nCOPY --from=build /dest /dest\n",
        url = server.url("/foo")
    );
    let ctx = env.context("ctx", &[("Dockerfile", &dockerfile)]);
    let out = env.build_local(&ctx, "out", &["--build-arg", "mode=400"]);
    assert_eq!(read_text(out.join("dest")), "0644\n0755\n0413\n0400\n");
}

/// testAddChecksum: `--checksum` of a URL: the right digest (literal or from ENV, the URL too)
/// passes; a wrong one, an unsupported or unknown algorithm, a digest without its algorithm and
/// a checksum on a local file fail.
#[test]
fn add_checksum() {
    let env = Env::new();
    let server = Served::start(
        &env.path("served"),
        &[("/foo", "content1", "\"etag-foo\"", None)],
    );
    let url = server.url("/foo");
    // sha256("content1"), sha256("")
    let good = "sha256:d0b425e00e15a0d36b9b361f02bab63563aed6cb4665083905386c55d5b679fa";
    let empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let encoded = good.trim_start_matches("sha256:");
    let cases: Vec<(&str, String, bool)> = vec![
        (
            "Valid",
            format!("FROM scratch\nADD --checksum={good} {url} /tmp/foo\n"),
            true,
        ),
        (
            "DigestFromEnv",
            format!(
                "FROM scratch\nENV DIGEST={good}\nENV LINK={url}\nADD --checksum=${{DIGEST}} ${{LINK}} /tmp/foo\n"
            ),
            true,
        ),
        (
            "DigestMismatch",
            format!("FROM scratch\nADD --checksum={empty} {url} /tmp/foo\n"),
            false,
        ),
        (
            "DigestWithKnownButUnsupportedAlgoName",
            format!(
                "FROM scratch\nADD --checksum=md5:7e55db001d319a94b0b713529a756623 {url} /tmp/foo\n"
            ),
            false,
        ),
        (
            "DigestWithUnknownAlgoName",
            format!("FROM scratch\nADD --checksum=unknown:{encoded} {url} /tmp/foo\n"),
            false,
        ),
        (
            "DigestWithoutAlgoName",
            format!("FROM scratch\nADD --checksum={encoded} {url} /tmp/foo\n"),
            false,
        ),
        (
            "NonHTTPSource",
            // sha256("local file")
            "FROM scratch\nADD --checksum=sha256:f924f9de03dcbb7d617555ef2b4fdd500a63a55420b403d73636298e66483cc3 foo /tmp/foo\n".to_string(),
            false,
        ),
    ];
    for (name, dockerfile, ok) in cases {
        let ctx = env.context(
            &format!("ctx-{name}"),
            &[("Dockerfile", &dockerfile), ("foo", "local file")],
        );
        let out = env.build(&ctx, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), ok, "{name}:\n{stderr}");
    }
}

/// testDockerfileAddArchive: a local tar and tar.gz are extracted; `--unpack=false` and COPY
/// keep the archive; a URL's archive is kept unless `--unpack=true`, and keeps the name given.
#[test]
fn dockerfile_add_archive() {
    let env = Env::new();
    let tar = tar_of(&[("foo", 'f', "content0", 0o644)]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let targz = gz.finish().unwrap();
    let build = |name: &str, dockerfile: &str| {
        let ctx = env.context(name, &[("Dockerfile", dockerfile)]);
        std::fs::write(ctx.join("t.tar"), &tar).unwrap();
        std::fs::write(ctx.join("t.tar.gz"), &targz).unwrap();
        env.build_local(&ctx, &format!("out-{name}"), &[])
    };
    let out = build("tar", "FROM scratch\nADD t.tar /\n");
    assert_eq!(read_text(out.join("foo")), "content0");
    let out = build("gz", "FROM scratch\nADD t.tar.gz /\n");
    assert_eq!(read_text(out.join("foo")), "content0");
    let out = build(
        "nounpack",
        "\tFROM scratch\n\tADD --unpack=false t.tar.gz /\n\t",
    );
    assert!(!out.join("foo").exists());
    assert_eq!(std::fs::read(out.join("t.tar.gz")).unwrap(), targz);
    let out = build("copy", "FROM scratch\nCOPY t.tar.gz /\n");
    assert_eq!(std::fs::read(out.join("t.tar.gz")).unwrap(), targz);

    // The server's route body is text: serve the archive from a file server instead.
    let served = env.path("served-files");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::write(served.join("t.tar.gz"), &targz).unwrap();
    let server = common::servers::http_files(&served, None);
    let url = format!("http://127.0.0.1:{}/t.tar.gz", server.port);
    let out = build("url", &format!("FROM scratch\nADD {url} /\n"));
    assert_eq!(std::fs::read(out.join("t.tar.gz")).unwrap(), targz);
    let out = build(
        "urlunpack",
        &format!("FROM scratch\nADD --unpack=true {url} /dest/\n"),
    );
    assert_eq!(read_text(out.join("dest/foo")), "content0");
    let out = build(
        "urlname",
        &format!("FROM scratch\nADD {url} /newname.tar.gz\n"),
    );
    assert_eq!(std::fs::read(out.join("newname.tar.gz")).unwrap(), targz);
}
