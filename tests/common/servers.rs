//! Real servers on 127.0.0.1 for source tests: `git daemon` (git://) and a small HTTP file
//! server (python's http.server, optionally demanding an Authorization header) for dumb-HTTP
//! git and remote tarballs. Each is killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_for_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server on port {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `git daemon` exporting every repository below `base` (read-only).
pub fn git_daemon(base: &Path) -> Server {
    let port = free_port();
    let child = Command::new("git")
        .arg("daemon")
        .arg(format!("--base-path={}", base.display()))
        .args(["--export-all", "--reuseaddr", "--listen=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn git daemon (install git)");
    wait_for_port(port);
    Server { child, port }
}

/// A static file server for `dir`. With `token`, every request must carry
/// `Authorization: <token>` or gets 401.
pub fn http_files(dir: &Path, token: Option<&str>) -> Server {
    const SCRIPT: &str = r#"
import http.server, os, socketserver, sys
root, token = sys.argv[1], sys.argv[2]
class H(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k):
        super().__init__(*a, directory=root, **k)
    def log_message(self, *a):
        pass
    def do_GET(self):
        if token and self.headers.get("Authorization") != token:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="test"')
            self.end_headers()
            return
        super().do_GET()
s = socketserver.ThreadingTCPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(dir)
        .arg(token.unwrap_or(""))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn python3 http.server (install python3)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the server's port");
    let port = line.trim().parse().expect("a port number");
    wait_for_port(port);
    Server { child, port }
}

/// Runs git with a fixed identity, outside any host configuration.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_AUTHOR_DATE", "2023-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2023-01-01T00:00:00Z")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare repository `name.git` below `base`, cloned from the work tree `work`.
pub fn publish(work: &Path, base: &Path, name: &str) -> PathBuf {
    let bare = base.join(format!("{name}.git"));
    let _ = std::fs::remove_dir_all(&bare);
    git(
        base,
        &[
            "clone",
            "--quiet",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    // For dumb HTTP: the info/refs and objects/info/packs files a static server serves.
    git(&bare, &["update-server-info"]);
    bare
}
