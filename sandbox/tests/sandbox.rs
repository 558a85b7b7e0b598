//! End-to-end tests: a busybox rootfs in a temp dir, run through the real harness binary
//! (src/bin/sandbox-harness.rs), which re-executes itself as the sandbox init.
//!
//! The same suite runs as root and as an unprivileged user with /etc/subuid ranges (the
//! harness then enters a rootless user namespace first); expectations that differ are
//! derived from the uid map the harness reports.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

const HARNESS: &str = env!("CARGO_BIN_EXE_builder-sandbox-harness");
const APPLETS: &[&str] = &[
    "sh", "echo", "id", "hostname", "ls", "cat", "mount", "touch", "pwd", "env", "mkdir", "test",
    "sleep", "ip", "grep", "chown", "dd", "true", "head", "wc", "yes", "stat",
];

#[derive(Debug, Deserialize)]
struct Out {
    userns: String,
    uid_map: String,
    status: Option<String>,
    error: Option<String>,
    created_mount_points: Vec<String>,
    removed_stubs: Vec<String>,
    stdout: String,
    stderr: String,
    parallel: Vec<Out>,
}

impl Out {
    fn status(&self) -> &str {
        match (&self.status, &self.error) {
            (Some(s), _) => s,
            (None, Some(e)) => panic!("sandbox error: {e}"),
            (None, None) => panic!("harness reported neither status nor error"),
        }
    }

    fn ok(&self) -> &Self {
        assert_eq!(self.status(), "Exited(0)", "stderr: {}", self.stderr);
        self
    }

    fn err(&self) -> &str {
        self.error
            .as_deref()
            .unwrap_or_else(|| panic!("expected an error, got status {:?}", self.status))
    }

    /// In a single-id user namespace (no /etc/subuid range) other ids cannot exist: the run
    /// must fail with an explanation. Returns true when that was the case and checked.
    fn other_ids_unrepresentable(&self) -> bool {
        if self.userns != "SingleId" {
            return false;
        }
        let err = self.err();
        assert!(
            err.contains("single-id user namespace")
                || err.contains("not mapped in the user namespace"),
            "{err}"
        );
        true
    }

    /// Host uid for an in-sandbox uid, from the reported /proc/self/uid_map.
    fn host_uid(&self, inside: u64) -> u64 {
        builder_sandbox::parse_id_map(&self.uid_map)
            .into_iter()
            .find(|(i, _, n)| (*i..i + n).contains(&inside))
            .map(|(i, o, _)| o + (inside - i))
            .unwrap_or_else(|| panic!("uid {inside} not mapped in {:?}", self.uid_map))
    }
}

/// A temp dir holding `rootfs/` (busybox, /etc/passwd, /etc/group, /tmp) and room outside it.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("rootfs");
        for d in ["bin", "etc", "root", "home/tester"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        let tmp = root.join("tmp");
        std::fs::create_dir(&tmp).expect("mkdir tmp");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let busybox = std::env::var("BUSYBOX").unwrap_or_else(|_| "/bin/busybox".into());
        std::fs::copy(&busybox, root.join("bin/busybox"))
            .expect("copy busybox (apt-get install busybox-static)");
        for applet in APPLETS {
            symlink("busybox", root.join("bin").join(applet)).expect("symlink applet");
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\ntester:x:1000:1000:Tester:/home/tester:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(
            root.join("etc/group"),
            "root:x:0:\ntester:x:1000:\nextra:x:2000:tester\n",
        )
        .expect("group");
        Fixture { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    fn outside(&self) -> &Path {
        self.dir.path()
    }

    fn spec(&self, args: &[&str], extra: Value) -> String {
        let mut spec = json!({
            "rootfs": self.root(),
            "args": args,
            "env": ["PATH=/bin"],
            "hostname": "sandbox-test",
        });
        if let (Some(s), Value::Object(e)) = (spec.as_object_mut(), extra) {
            s.extend(e);
        }
        spec.to_string()
    }

    /// Run `args` with extra spec fields merged in.
    fn run(&self, args: &[&str], extra: Value) -> Out {
        let mut child = Command::new(HARNESS)
            .arg("-")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run harness");
        let spec = self.spec(args, extra);
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(spec.as_bytes()).expect("send spec");
        }
        let out = child.wait_with_output().expect("wait harness");
        assert!(
            out.status.success(),
            "harness failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "harness output {:?}: {e}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn sh(&self, script: &str, extra: Value) -> Out {
        self.run(&["/bin/sh", "-c", script], extra)
    }
}

fn interfaces(net_dev: &str) -> Vec<String> {
    net_dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn userns_mode_matches_the_caller() {
    let f = Fixture::new();
    let out = f.run(&["true"], json!({}));
    out.ok();
    if nix::unistd::geteuid().is_root() {
        assert_eq!(out.userns, "Root");
    } else {
        assert!(
            out.userns.starts_with("MappedRange") || out.userns == "SingleId",
            "{}",
            out.userns
        );
        assert_eq!(out.host_uid(0), u64::from(nix::unistd::getuid().as_raw()));
    }
}

#[test]
fn stdout_and_stderr_are_captured_through_pipes() {
    let f = Fixture::new();
    let out = f.sh("echo hello sandbox; echo oops >&2", json!({}));
    out.ok();
    assert_eq!(out.stdout, "hello sandbox\n");
    assert_eq!(out.stderr, "oops\n");
}

#[test]
fn exit_code_is_propagated() {
    let f = Fixture::new();
    assert_eq!(f.sh("exit 42", json!({})).status(), "Exited(42)");
    assert_eq!(f.run(&["true"], json!({})).status(), "Exited(0)");
}

#[test]
fn kill_cancels_the_whole_sandbox() {
    let f = Fixture::new();
    let started = Instant::now();
    // The background sleep would keep the pipes open if it survived its PID 1.
    let out = f.sh("sleep 60 & sleep 60", json!({"kill_after_ms": 300}));
    assert_eq!(out.status(), "Signaled(9)");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn env_cwd_and_home() {
    let f = Fixture::new();
    let out = f.sh(
        "echo $FOO; pwd; echo $HOME",
        json!({"env": ["PATH=/bin", "FOO=bar baz"], "cwd": "/srv/work"}),
    );
    out.ok();
    assert_eq!(out.stdout, "bar baz\n/srv/work\n/root\n");
    assert!(
        f.root().join("srv/work").is_dir(),
        "cwd is created in the rootfs"
    );
}

#[test]
fn relative_command_is_resolved_against_payload_path() {
    let f = Fixture::new();
    // A script earlier in the payload's PATH must win over /bin/echo.
    std::fs::create_dir(f.root().join("opt")).expect("mkdir");
    std::fs::write(
        f.root().join("opt/echo"),
        "#!/bin/sh\necho from-opt \"$@\"\n",
    )
    .expect("write");
    std::fs::set_permissions(
        f.root().join("opt/echo"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let out = f.run(&["echo", "found"], json!({"env": ["PATH=/opt:/bin"]}));
    out.ok();
    assert_eq!(out.stdout, "from-opt found\n");
}

#[test]
fn user_by_name_gets_passwd_ids_and_supplementary_groups() {
    let f = Fixture::new();
    let out = f.run(&["id"], json!({"user": "tester"}));
    if out.other_ids_unrepresentable() {
        return;
    }
    out.ok();
    assert!(
        out.stdout.starts_with("uid=1000(tester) gid=1000(tester)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("2000(extra)"), "{}", out.stdout);
    let home = f.sh("echo $HOME", json!({"user": "tester"}));
    assert_eq!(home.ok().stdout, "/home/tester\n");
}

#[test]
fn numeric_uid_gid_needs_no_passwd_entry() {
    let f = Fixture::new();
    let out = f.run(&["id"], json!({"user": "4242:4343"}));
    if out.other_ids_unrepresentable() {
        return;
    }
    out.ok();
    assert!(
        out.stdout.starts_with("uid=4242 gid=4343"),
        "{}",
        out.stdout
    );
}

#[test]
fn unknown_user_is_a_clear_error() {
    let f = Fixture::new();
    let out = f.run(&["id"], json!({"user": "nosuchuser"}));
    assert!(
        out.err().contains("unable to find user nosuchuser"),
        "{}",
        out.err()
    );
}

#[test]
fn hostname_and_generated_etc_files() {
    let f = Fixture::new();
    let out = f.sh(
        "hostname; cat /etc/hostname; cat /etc/hosts",
        json!({"hostname": "box1"}),
    );
    out.ok();
    assert!(
        out.stdout
            .starts_with("box1\nbox1\n127.0.0.1\tlocalhost box1\n"),
        "{}",
        out.stdout
    );
    // Only empty mount points are left in the rootfs, and they are reported.
    for p in [
        "/proc",
        "/sys",
        "/dev",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/etc/hostname",
    ] {
        assert!(
            out.created_mount_points.iter().any(|c| c == p),
            "{p} in {:?}",
            out.created_mount_points
        );
    }
    assert_eq!(
        std::fs::read(f.root().join("etc/hosts"))
            .expect("hosts")
            .len(),
        0
    );
}

#[test]
fn existing_mount_points_are_not_reported() {
    let f = Fixture::new();
    std::fs::create_dir(f.root().join("proc")).expect("mkdir");
    std::fs::write(f.root().join("etc/hosts"), "keep me\n").expect("write");
    let out = f.sh("cat /etc/hosts", json!({}));
    out.ok();
    assert!(
        !out.created_mount_points
            .iter()
            .any(|c| c == "/proc" || c == "/etc/hosts")
    );
    assert!(
        out.stdout.starts_with("127.0.0.1"),
        "generated file wins: {}",
        out.stdout
    );
    assert_eq!(
        std::fs::read_to_string(f.root().join("etc/hosts")).expect("read"),
        "keep me\n"
    );
}

#[test]
fn host_resolv_conf_is_copied_with_host_network() {
    let f = Fixture::new();
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let out = f.run(&["cat", "/etc/resolv.conf"], json!({"network": "Host"}));
    out.ok();
    if host.contains("nameserver") {
        assert_eq!(out.stdout, host);
    } else {
        assert!(out.stdout.contains("nameserver"));
    }
}

#[test]
fn payload_is_pid_1_and_host_processes_are_invisible() {
    let f = Fixture::new();
    let out = f.run(&["ls", "/proc"], json!({}));
    out.ok();
    let pids: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(pids, ["1"]);
    assert_eq!(f.sh("echo $$", json!({})).ok().stdout, "1\n");
}

#[test]
fn network_none_has_only_loopback_and_it_is_up() {
    let f = Fixture::new();
    let out = f.sh(
        "cat /proc/net/dev; ip link show lo",
        json!({"network": "None"}),
    );
    out.ok();
    assert_eq!(
        interfaces(out.stdout.split("1: lo").next().unwrap_or_default()),
        ["lo"]
    );
    assert!(out.stdout.contains("1: lo: <LOOPBACK,UP"), "{}", out.stdout);
}

#[test]
fn network_host_shares_the_callers_interfaces() {
    let f = Fixture::new();
    let host = std::fs::read_to_string("/proc/self/net/dev").expect("host net/dev");
    let out = f.run(&["cat", "/proc/net/dev"], json!({"network": "Host"}));
    out.ok();
    let mut inside = interfaces(&out.stdout);
    let mut outside = interfaces(&host);
    inside.sort();
    outside.sort();
    assert_eq!(inside, outside);
}

#[test]
fn host_files_outside_the_rootfs_are_invisible() {
    let f = Fixture::new();
    let marker = f.outside().join("host-marker");
    std::fs::write(&marker, "secret").expect("marker");
    let script = format!("test -e {0} || test -e /{0}", marker.display());
    assert_eq!(f.sh(&script, json!({})).status(), "Exited(1)");
    // ...while the same check for a rootfs file succeeds (the test itself can fail).
    assert_eq!(f.sh("test -e /etc/passwd", json!({})).status(), "Exited(0)");
}

#[test]
fn symlinked_mount_targets_cannot_escape_the_rootfs() {
    let f = Fixture::new();
    let victim = f.outside().join("victim");
    std::fs::write(&victim, "untouched").expect("victim");
    // An absolute symlink must be resolved relative to the rootfs, not the host.
    symlink(&victim, f.root().join("etc/hosts")).expect("symlink");
    let out = f.sh("cat /etc/hosts", json!({}));
    out.ok();
    assert!(out.stdout.starts_with("127.0.0.1"), "{}", out.stdout);
    assert_eq!(std::fs::read_to_string(&victim).expect("read"), "untouched");
    let inside_victim = f.root().join(victim.strip_prefix("/").expect("absolute"));
    assert!(
        inside_victim.exists(),
        "mount point created inside the rootfs instead"
    );
}

#[test]
fn read_only_bind_is_read_only_and_rw_bind_writes_through() {
    let f = Fixture::new();
    let ro = f.outside().join("ro");
    let rw = f.outside().join("rw");
    std::fs::create_dir(&ro).expect("mkdir");
    std::fs::create_dir(&rw).expect("mkdir");
    std::fs::write(ro.join("data.txt"), "payload data\n").expect("write");
    let mounts = json!([
        {"target": "/data", "kind": {"Bind": {"source": ro, "read_only": true}}},
        {"target": "/out", "kind": {"Bind": {"source": rw, "read_only": false}}},
    ]);
    let out = f.sh(
        "cat /data/data.txt; echo hi > /out/new; touch /data/new",
        json!({"mounts": mounts}),
    );
    assert_eq!(out.status(), "Exited(1)");
    assert_eq!(out.stdout, "payload data\n");
    assert!(
        out.stderr.contains("Read-only file system"),
        "{}",
        out.stderr
    );
    assert!(!ro.join("new").exists());
    assert_eq!(
        std::fs::read_to_string(rw.join("new")).expect("rw write"),
        "hi\n"
    );
}

#[test]
fn file_bind_mount() {
    let f = Fixture::new();
    let src = f.outside().join("config");
    std::fs::write(&src, "k=v\n").expect("write");
    let mounts = json!([{"target": "/etc/app/config", "kind": {"Bind": {"source": src, "read_only": true}}}]);
    let out = f.run(&["cat", "/etc/app/config"], json!({"mounts": mounts}));
    out.ok();
    assert_eq!(out.stdout, "k=v\n");
    assert!(out.created_mount_points.contains(&"/etc/app".to_string()));
    assert!(
        out.created_mount_points
            .contains(&"/etc/app/config".to_string())
    );
}

#[test]
fn tmpfs_mount_is_writable_bounded_and_not_persisted() {
    let f = Fixture::new();
    let mounts = json!([{"target": "/scratch", "kind": {"Tmpfs": {"size": 1048576}}}]);
    let out = f.sh(
        "echo x > /scratch/f && cat /scratch/f && ! dd if=/dev/zero of=/scratch/big bs=1024 count=2048 2>/dev/null",
        json!({"mounts": mounts}),
    );
    out.ok();
    assert_eq!(out.stdout, "x\n");
    assert!(f.root().join("scratch").is_dir());
    assert!(!f.root().join("scratch/f").exists());
}

#[test]
fn mount_inside_the_sandbox_is_denied() {
    let f = Fixture::new();
    std::fs::create_dir(f.root().join("mnt")).expect("mkdir");
    let out = f.run(&["mount", "-t", "tmpfs", "none", "/mnt"], json!({}));
    assert_ne!(out.status(), "Exited(0)");
    assert!(out.stderr.contains("mount"), "{}", out.stderr);
}

#[test]
fn capabilities_are_dockers_default_set_and_no_new_privs() {
    let f = Fixture::new();
    let status = |user: &str| {
        let out = f.run(&["cat", "/proc/self/status"], json!({"user": user}));
        if !user.is_empty() && out.other_ids_unrepresentable() {
            return None;
        }
        out.ok();
        Some(out.stdout)
    };
    let Some(root) = status("") else {
        panic!("uid 0 is always mapped");
    };
    assert!(root.contains("CapBnd:\t00000000a80425fb"), "{root}");
    assert!(root.contains("CapEff:\t00000000a80425fb"), "{root}");
    assert!(root.contains("NoNewPrivs:\t1"), "{root}");
    let Some(user) = status("tester") else {
        return;
    };
    assert!(user.contains("CapEff:\t0000000000000000"), "{user}");
    assert!(user.contains("CapBnd:\t00000000a80425fb"), "{user}");
}

#[test]
fn missing_executable_is_a_clear_error() {
    let f = Fixture::new();
    let out = f.run(&["/bin/nonexistent", "arg"], json!({}));
    let err = out.err();
    assert!(err.contains("exec /bin/nonexistent"), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
    let out = f.run(&["nosuchcmd"], json!({}));
    assert!(
        out.err().contains("executable file not found in $PATH"),
        "{}",
        out.err()
    );
}

#[test]
fn files_created_as_uid_1000_are_owned_by_the_mapped_host_uid() {
    let f = Fixture::new();
    let out = f.sh("touch /tmp/owned", json!({"user": "1000:1000"}));
    if out.other_ids_unrepresentable() {
        return;
    }
    out.ok();
    let meta = std::fs::metadata(f.root().join("tmp/owned")).expect("stat");
    assert_eq!(u64::from(meta.uid()), out.host_uid(1000));
    if out.userns.starts_with("MappedRange") {
        let start = builder_sandbox::parse_id_map(&out.uid_map)
            .into_iter()
            .find(|(inside, _, _)| *inside == 1)
            .map(|(_, outside, _)| outside)
            .expect("subordinate range");
        assert_eq!(u64::from(meta.uid()), start + 999);
    }
}

#[test]
fn chown_in_the_sandbox() {
    let f = Fixture::new();
    let out = f.sh("touch /tmp/c && chown 1000:2000 /tmp/c", json!({}));
    if out.userns == "SingleId" {
        // Other uids cannot be represented in a single-id namespace.
        assert_ne!(out.status(), "Exited(0)");
        return;
    }
    out.ok();
    let meta = std::fs::metadata(f.root().join("tmp/c")).expect("stat");
    assert_eq!(u64::from(meta.uid()), out.host_uid(1000));
}

#[test]
fn pid_1_exit_ends_background_processes() {
    let f = Fixture::new();
    let started = Instant::now();
    // The background sleep inherits stdout; only tearing down the pid namespace closes it.
    let out = f.sh("sleep 60 & exit 7", json!({}));
    assert_eq!(out.status(), "Exited(7)");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

/// Wait long enough for a payload that survived its caller to leave its marker.
fn assert_no_survivor(marker: &Path) {
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!marker.exists(), "payload outlived its caller");
}

#[test]
fn caller_exit_kills_the_sandbox() {
    let f = Fixture::new();
    // Earlier versions kept the generated /etc files in builder-sandbox-* temp dirs.
    let leftovers = || {
        std::fs::read_dir(std::env::temp_dir())
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with("builder-sandbox-")
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let before = leftovers();
    let status = Command::new(HARNESS)
        .arg(f.spec(
            &["/bin/sh", "-c", "sleep 1; touch /tmp/survived"],
            json!({"abandon_after_ms": 200}),
        ))
        .status()
        .expect("run harness");
    assert_eq!(status.code(), Some(3));
    assert_no_survivor(&f.root().join("tmp/survived"));
    // A crashed caller leaves nothing behind in the temp dir.
    assert_eq!(leftovers(), before);
}

#[test]
fn sigterm_to_the_caller_kills_the_sandbox() {
    use std::os::unix::process::ExitStatusExt;
    let f = Fixture::new();
    let mut child = Command::new(HARNESS)
        .arg(f.spec(
            &["/bin/sh", "-c", "sleep 1; touch /tmp/survived"],
            json!({}),
        ))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn harness");
    std::thread::sleep(Duration::from_millis(300));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("kill");
    let status = child.wait().expect("wait");
    // Rootless, the outer process forwards SIGTERM and then dies of it itself.
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert_no_survivor(&f.root().join("tmp/survived"));
}

#[test]
fn mount_stubs_can_be_removed_after_the_run() {
    let f = Fixture::new();
    let mounts = json!([{"target": "/run/cache", "kind": {"Tmpfs": {"size": null}}}]);
    let out = f.sh(
        "mkdir -p /var/log && echo ok > /var/log/x",
        json!({"mounts": mounts, "remove_stubs": true}),
    );
    out.ok();
    let mut removed = out.removed_stubs.clone();
    let mut created = out.created_mount_points.clone();
    removed.sort();
    created.sort();
    assert_eq!(removed, created);
    for stub in [
        "proc",
        "sys",
        "dev",
        "run",
        "etc/hosts",
        "etc/resolv.conf",
        "etc/hostname",
    ] {
        assert!(!f.root().join(stub).exists(), "{stub} left behind");
    }
    assert!(f.root().join("etc/passwd").exists());
    assert!(
        f.root().join("var/log/x").exists(),
        "payload output is kept"
    );
}

#[test]
fn stdin_null_reads_eof() {
    let f = Fixture::new();
    let out = f.run(&["cat"], json!({}));
    out.ok();
    assert_eq!(out.stdout, "");
}

#[test]
fn dropping_the_sandbox_cancels_it() {
    let f = Fixture::new();
    let started = Instant::now();
    let out = f.sh(
        "sleep 1; touch /tmp/survived",
        json!({"drop_after_ms": 200}),
    );
    assert!(out.err().contains("dropped"), "{}", out.err());
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "drop blocked {:?}",
        started.elapsed()
    );
    assert_no_survivor(&f.root().join("tmp/survived"));
}

#[test]
fn minimal_dev_is_usable() {
    let f = Fixture::new();
    let out = f.sh(
        "test -c /dev/null && echo gone > /dev/null && head -c 5 /dev/zero | wc -c \
         && head -c 3 /dev/urandom | wc -c && test -c /dev/pts/ptmx && test -L /dev/ptmx \
         && echo s > /dev/shm/f && cat /dev/shm/f && ls -a /dev",
        json!({}),
    );
    out.ok();
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next().map(str::trim), Some("5"));
    assert_eq!(lines.next().map(str::trim), Some("3"));
    assert_eq!(lines.next(), Some("s"));
    let devs: Vec<&str> = lines.collect();
    for d in [
        "full", "null", "pts", "random", "shm", "tty", "urandom", "zero",
    ] {
        assert!(devs.contains(&d), "{d} missing from /dev: {devs:?}");
    }
    assert!(!devs.contains(&".generated"), "staging dir left in /dev");
    assert!(
        !devs.contains(&"sda") && !devs.contains(&"vda"),
        "host devices leaked: {devs:?}"
    );
}

#[test]
fn sys_is_read_only_in_both_network_modes() {
    let f = Fixture::new();
    for network in ["Host", "None"] {
        let out = f.sh(
            "test -d /sys/kernel && ! touch /sys/kernel/x 2>/dev/null && grep ' /sys ' /proc/mounts",
            json!({"network": network}),
        );
        out.ok();
        assert!(out.stdout.contains(" ro,"), "{network}: {}", out.stdout);
    }
}

#[test]
fn setup_errors_are_reported_with_context() {
    let f = Fixture::new();
    let missing = f.outside().join("no-such-source");
    let mounts =
        json!([{"target": "/m", "kind": {"Bind": {"source": missing, "read_only": false}}}]);
    let out = f.run(&["true"], json!({"mounts": mounts}));
    let err = out.err();
    assert!(
        err.contains("bind source") && err.contains("no-such-source"),
        "{err}"
    );
    assert!(err.contains("No such file or directory"), "{err}");

    let out = f.run(&["true"], json!({"cwd": "/etc/passwd/sub"}));
    assert!(
        out.err().contains("working directory /etc/passwd/sub"),
        "{}",
        out.err()
    );

    let out = f.run(&["/etc/passwd"], json!({}));
    assert!(
        out.err().contains("exec /etc/passwd: Permission denied"),
        "{}",
        out.err()
    );
}

#[test]
fn payload_starts_with_default_signal_dispositions() {
    let f = Fixture::new();
    let out = f.run(&["cat", "/proc/self/status"], json!({}));
    out.ok();
    assert!(
        out.stdout.contains("SigIgn:\t0000000000000000"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("SigBlk:\t0000000000000000"),
        "{}",
        out.stdout
    );
    // With SIGPIPE ignored, `yes` would complain about EPIPE instead of dying quietly.
    let out = f.sh("yes | head -1", json!({}));
    out.ok();
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("y\n", ""));
}

#[test]
fn umask_is_0022_whatever_the_callers_is() {
    let f = Fixture::new();
    let spec = f.spec(
        &["/bin/sh", "-c", "umask; mkdir /tmp/d && stat -c %a /tmp/d"],
        json!({"cwd": "/new/workdir"}),
    );
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg("umask 077; exec \"$0\" \"$1\"")
        .arg(HARNESS)
        .arg(spec)
        .output()
        .expect("run harness");
    let out: Out = serde_json::from_slice(&out.stdout).expect("harness output");
    out.ok();
    assert_eq!(out.stdout, "0022\n755\n");
    let mode = std::fs::metadata(f.root().join("new/workdir"))
        .expect("workdir")
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let proc_mode = std::fs::metadata(f.root().join("proc"))
        .expect("stub")
        .mode();
    assert_eq!(proc_mode & 0o777, 0o755);
}

#[test]
fn concurrent_runs_from_one_multithreaded_caller_do_not_interfere() {
    let f = Fixture::new();
    let out = f.sh(
        "echo start; sleep 0.3; echo $$ end",
        json!({"parallel": 8, "network": "None"}),
    );
    assert_eq!(out.parallel.len(), 7);
    for o in std::iter::once(&out).chain(&out.parallel) {
        o.ok();
        assert_eq!(o.stdout, "start\n1 end\n");
    }
}

#[test]
fn large_specs_larger_than_the_socket_buffer_are_delivered() {
    let f = Fixture::new();
    // 4 x 100 KiB: more than a socketpair buffer, each below the kernel's 128 KiB per-string cap.
    let big = "x".repeat(100 * 1024);
    let env: Vec<String> = (0..4)
        .map(|i| format!("BIG{i}={big}"))
        .chain(["PATH=/bin".to_string()])
        .collect();
    let out = f.sh(
        "echo ${#BIG0} ${#BIG1} ${#BIG2} ${#BIG3}",
        json!({ "env": env }),
    );
    out.ok();
    assert_eq!(out.stdout, "102400 102400 102400 102400\n");
}
