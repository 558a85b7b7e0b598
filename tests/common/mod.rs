//! Shared helpers for the end-to-end tests: run the real `builder` binary against a throwaway
//! store, read what it stored, build the busybox base image the RUN tests need.
#![allow(dead_code)]

pub mod servers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test. CI runs the rootless suite from a copy, as an unprivileged user, and
/// points BUILDER_BIN at it.
pub fn builder_bin() -> PathBuf {
    std::env::var_os("BUILDER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_builder")))
}

pub fn fixtures() -> PathBuf {
    std::env::var_os("BUILDER_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
}

/// A store root and scratch space that disappear with the test.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(builder_bin());
        c.env("BUILDER_ROOT", self.root())
            .env("DOCKER_CONFIG", self.path("docker-config"));
        c
    }

    /// `skopeo`, cut off from the host's registry credentials: its own empty auth file,
    /// runtime dir and docker config, so neither a root-only `/run/containers` (left by a root
    /// podman or buildah) nor someone's saved logins change what the test sees.
    /// `skopeo inspect --raw` of `reference` in a registry on 127.0.0.1 (plain HTTP): the
    /// manifest or index as pushed.
    pub fn raw_manifest(&self, reference: &str) -> serde_json::Value {
        let raw = self
            .skopeo()
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .output()
            .expect("run skopeo");
        assert!(
            raw.status.success(),
            "{}",
            String::from_utf8_lossy(&raw.stderr)
        );
        serde_json::from_slice(&raw.stdout).expect("a JSON manifest")
    }

    pub fn skopeo(&self) -> Command {
        let auth = self.path("skopeo-auth.json");
        if !auth.exists() {
            std::fs::write(&auth, "{\"auths\":{}}").expect("write the skopeo auth file");
        }
        let runtime = self.path("xdg-runtime");
        std::fs::create_dir_all(&runtime).expect("create the runtime dir");
        let mut c = Command::new("skopeo");
        c.env("REGISTRY_AUTH_FILE", &auth)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("DOCKER_CONFIG", self.path("docker-config"));
        c
    }

    /// Runs `builder ARGS` and returns its output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("spawn builder")
    }

    /// Runs `builder ARGS`, failing the test with its output unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "builder {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `builder build --progress=plain ARGS CONTEXT`, whatever the exit status.
    pub fn build(&self, ctx: &Path, args: &[&str]) -> Output {
        self.cmd()
            .args(["build", "--progress=plain"])
            .args(args)
            .arg(ctx)
            .output()
            .expect("spawn builder")
    }

    /// [`build`](Self::build), failing the test unless it succeeds; returns the progress log.
    pub fn build_ok(&self, ctx: &Path, args: &[&str]) -> String {
        let out = self.build(ctx, args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "build {args:?} failed:\n{stderr}");
        stderr
    }

    /// Builds `ctx` with `--output type=local` into a fresh directory `out_name` (plus `extra`
    /// flags) and returns that directory: the final stage's file tree, as BuildKit's tests read
    /// it from their local exporter.
    pub fn build_local(&self, ctx: &Path, out_name: &str, extra: &[&str]) -> PathBuf {
        let out = self.path(out_name);
        let dest = format!("type=local,dest={}", out.display());
        let mut args = vec!["--output", dest.as_str()];
        args.extend_from_slice(extra);
        self.build_ok(ctx, &args);
        out
    }

    /// `builder inspect NAME` parsed.
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let out = self.ok(&["inspect", name]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("inspect prints JSON");
        v[0].clone()
    }

    /// Writes a build context: files given as (path, content).
    pub fn context(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.path(name);
        for (path, content) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, content).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Builds `busybox:test`: scratch + the static busybox from Debian, installed as /bin/*.
    /// Every RUN test builds on it; nothing comes from a registry.
    pub fn busybox_base(&self) {
        let ctx = self.path("busybox-ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::copy(busybox_path(), ctx.join("busybox"))
            .expect("copy busybox (install busybox-static)");
        std::fs::write(
            ctx.join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
             RUN mkdir -p /etc /tmp && chmod 1777 /tmp && echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd && echo 'root:x:0:' > /etc/group\n",
        )
        .unwrap();
        self.ok(&[
            "build",
            "--progress=plain",
            "-t",
            "busybox:test",
            ctx.to_str().unwrap(),
        ]);
    }
}

pub fn busybox_path() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox-static is not installed (apt-get install busybox-static)");
}

/// True when a command-line tool is available (skopeo, umoci, docker-registry).
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// One tar entry: (path, mode, uid, gid, kind `d|l|h|f`, content or link target).
pub type Entry = (String, u32, u64, u64, char, String);

/// Lists a tar file, entry by entry.
pub fn tar_entries(reader: impl std::io::Read) -> Vec<Entry> {
    let mut archive = tar::Archive::new(reader);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let h = entry.header().clone();
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            _ => 'f',
        };
        let mut content = String::new();
        if kind == 'f' {
            std::io::Read::read_to_string(&mut entry, &mut content).ok();
        } else if kind == 'l' || kind == 'h' {
            content = h
                .link_name()
                .unwrap()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        out.push((
            path,
            h.mode().unwrap() & 0o7777,
            h.uid().unwrap(),
            h.gid().unwrap(),
            kind,
            content,
        ));
    }
    out
}

/// Entries of every layer of a built image, layer by layer (from an OCI `--output type=oci` tar).
pub fn image_layers(env: &Env, name: &str) -> Vec<Vec<Entry>> {
    let v = env.inspect(name);
    let layers = v["Manifest"]["layers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    layers
        .iter()
        .map(|l| {
            let digest = l["digest"]
                .as_str()
                .unwrap()
                .strip_prefix("sha256:")
                .unwrap()
                .to_string();
            let blob = env.root().join("blobs/sha256").join(digest);
            let f = std::fs::File::open(blob).unwrap();
            tar_entries(flate2::read::GzDecoder::new(f))
        })
        .collect()
}

/// The lines RUN steps printed in a plain-progress log: the text after each `#N 0.123 ` prefix.
pub fn run_output_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter_map(|l| {
            let mut parts = l.splitn(3, ' ');
            let (_, time, rest) = (parts.next()?, parts.next()?, parts.next()?);
            time.parse::<f64>().ok().map(|_| rest.to_string())
        })
        .collect()
}

/// A file's text, failing the test with its path when it cannot be read.
pub fn read_text(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// How a plain-progress log says the step whose line ends with `step` ended: "CACHED" or "DONE".
pub fn step_status<'a>(log: &'a str, step: &str) -> &'a str {
    let lines: Vec<&str> = log.lines().collect();
    let Some(pos) = lines.iter().position(|l| l.ends_with(step)) else {
        return "absent";
    };
    let number = lines[pos].split(' ').next().unwrap_or_default();
    lines[pos + 1..]
        .iter()
        .filter_map(|l| l.strip_prefix(number)?.strip_prefix(' '))
        .find_map(|rest| ["CACHED", "DONE"].into_iter().find(|s| rest.starts_with(s)))
        .unwrap_or("unfinished")
}

/// Sets the access and modification times of the file or directory at `path` to `secs` seconds
/// after the epoch.
pub fn set_mtime(path: &Path, secs: u64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    let f = std::fs::File::open(path).unwrap();
    f.set_times(std::fs::FileTimes::new().set_modified(t).set_accessed(t))
        .unwrap();
}

/// `len` varied bytes, the same for the same `seed` and different for another: file contents a
/// copy from the wrong source, or cut short, would not match.
pub fn varied_bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect()
}
