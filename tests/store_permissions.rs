//! End to end: the store is private to its owner. A setuid-root binary or a device node that a
//! root build leaves in the store cannot be run, opened or even found by another local user;
//! the same for a rootless build's setuid files; a store made with looser permissions is
//! tightened by the next command; a store whose parent another user could replace is refused.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Env, builder_bin};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg(name)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().mode() & 0o7777
}

/// `runuser -u USER -- ARGS` (we are root).
fn as_user(user: &str, args: &[&str]) -> Output {
    Command::new("runuser")
        .args(["-u", user, "--"])
        .args(args)
        .output()
        .expect("spawn runuser")
}

/// Everything under `dir` whose name is `name` (unpacked layers and scratch alike).
fn find_named(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if e.file_name() == name {
            out.push(path.clone());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            find_named(&path, name, out);
        }
    }
}

/// Asserts `user` can neither stat nor run/open `path`, and that the refusal is a permission
/// error (not, say, a missing file or a missing command).
fn assert_out_of_reach(user: &str, path: &Path, open: &[&str]) {
    let p = path.to_str().unwrap();
    let stat = as_user(user, &["/bin/busybox", "stat", p]);
    let stat_err = String::from_utf8_lossy(&stat.stderr);
    assert!(
        !stat.status.success() && stat_err.contains("Permission denied"),
        "{user} could stat {p}: {}{stat_err}",
        String::from_utf8_lossy(&stat.stdout)
    );
    let mut argv = open.to_vec();
    argv.push(p);
    let used = as_user(user, &argv);
    let used_err = String::from_utf8_lossy(&used.stderr);
    assert!(
        !used.status.success() && used_err.contains("Permission denied"),
        "{user} could use {p} ({:?}): {}{used_err}",
        used.status,
        String::from_utf8_lossy(&used.stdout)
    );
}

#[test]
fn setuid_files_and_devices_a_root_build_makes_are_out_of_other_users_reach() {
    if !is_root() {
        eprintln!("SKIP: needs root (a root build, and runuser to try its files as another user)");
        return;
    }
    let env = Env::new();
    // The test's own temp dir is 0700: open it as a home or /var/lib would be, so only the
    // store's own permissions stand between other users and its files.
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    env.busybox_base();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox:test\n\
             RUN cp /bin/busybox /suid && chmod 4755 /suid && mknod /tty-copy c 5 0 && chmod 666 /tty-copy\n",
        )],
    );
    env.build_ok(&ctx, &["-t", "suid:1"]);
    let root = env.root();
    assert_eq!(mode(&root), 0o700, "the store root is private");

    let mut suid = Vec::new();
    find_named(&root, "suid", &mut suid);
    assert!(!suid.is_empty(), "the setuid file is in the store");
    let mut devices = Vec::new();
    find_named(&root, "tty-copy", &mut devices);
    assert!(!devices.is_empty(), "the device node is in the store");
    for path in &suid {
        let m = fs::metadata(path).unwrap();
        assert!(
            m.mode() & 0o4000 != 0 && m.uid() == 0,
            "{path:?} is setuid root"
        );
        // Run as nobody, it would be root: `id -u` would print 0.
        assert_out_of_reach("nobody", path, &[path.to_str().unwrap(), "id", "-u"]);
    }
    for path in &devices {
        assert!(fs::metadata(path).unwrap().file_type().is_char_device());
        assert_out_of_reach("nobody", path, &["/bin/busybox", "head", "-c", "1"]);
    }
}

#[test]
fn a_rootless_builds_setuid_files_are_out_of_other_users_reach() {
    let env = Env::new();
    if !is_root() {
        // As the unprivileged CI user: the build is rootless; no other user can be tried, so
        // check what decides it, the store root's mode.
        env.busybox_base();
        let ctx = env.context(
            "ctx",
            &[(
                "Dockerfile",
                "FROM busybox:test\nRUN cp /bin/busybox /suid && chmod 4755 /suid\n",
            )],
        );
        env.build_ok(&ctx, &[]);
        assert_eq!(mode(&env.root()), 0o700, "the store root is private");
        eprintln!("SKIP (partly): trying the files as another user needs root for runuser");
        return;
    }
    let Some(builder_user) = ["builder-ci", "builder-nosub"]
        .into_iter()
        .find(|u| user_exists(u))
    else {
        eprintln!("SKIP: no unprivileged builder-ci/builder-nosub user to build rootless as");
        return;
    };
    // A store owned by the unprivileged user, reachable up to its root as a home would be.
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let home = env.path("home");
    fs::create_dir(&home).unwrap();
    let ctx = home.join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::copy(common::busybox_path(), ctx.join("busybox")).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"cp\", \"/bin/busybox\", \"/suid\"]\n\
         RUN [\"/bin/busybox\", \"chmod\", \"4755\", \"/suid\"]\n",
    )
    .unwrap();
    let status = Command::new("chown")
        .args(["-R", builder_user])
        .arg(&home)
        .status()
        .unwrap();
    assert!(status.success());
    let root = home.join("root");
    let out = Command::new("runuser")
        .args(["-u", builder_user, "--", "env"])
        .arg(format!("BUILDER_ROOT={}", root.display()))
        .arg(format!("HOME={}", home.display()))
        .arg(builder_bin())
        .args(["build", "--progress=plain"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rootless build as {builder_user} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&root), 0o700, "the store root is private");
    let mut suid = Vec::new();
    find_named(&root, "suid", &mut suid);
    let suid: Vec<_> = suid
        .into_iter()
        .filter(|p| fs::metadata(p).is_ok_and(|m| m.mode() & 0o4000 != 0))
        .collect();
    assert!(!suid.is_empty(), "the setuid file is in the store");
    for path in &suid {
        assert_out_of_reach("nobody", path, &[path.to_str().unwrap(), "id", "-u"]);
    }
}

#[test]
fn a_store_made_before_stores_were_private_is_tightened_on_the_next_command() {
    let env = Env::new();
    env.ok(&["images"]);
    let root = env.root();
    assert_eq!(mode(&root), 0o700, "a new store is private");
    // As stores were made before: 0755, with its layout inside.
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    let out = env.run(&["images"]);
    assert!(out.status.success());
    assert_eq!(mode(&root), 0o700, "the next command tightened the store");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reachable by other users (mode 0755)") && stderr.contains("now 0700"),
        "{stderr}"
    );
    // Once private, nothing more is said.
    let again = env.run(&["images"]);
    assert!(String::from_utf8_lossy(&again.stderr).is_empty());
}

#[test]
fn a_store_under_a_directory_other_users_can_write_is_refused() {
    let env = Env::new();
    let open = env.path("shared");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let root = open.join("store");
    let out = env
        .cmd()
        .env("BUILDER_ROOT", &root)
        .arg("images")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("refusing to use a store under {}", open.display()))
            && stderr.contains("writable by every user (mode 0777, no sticky bit)"),
        "{stderr}"
    );
    assert!(!root.exists(), "nothing was created there");

    // Group-writable is refused too; sticky (as /tmp) is fine: others cannot rename our entries.
    fs::set_permissions(&open, fs::Permissions::from_mode(0o775)).unwrap();
    let out = env.cmd().env("BUILDER_ROOT", &root).arg("images").output();
    let out = out.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("writable by its group"));
    fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
    let out = env.cmd().env("BUILDER_ROOT", &root).arg("images").output();
    let out = out.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&root), 0o700);

    // A parent owned by another user (root owns the test's dir when it runs as root).
    if is_root() && user_exists("nobody") {
        let theirs = env.path("theirs");
        fs::create_dir(&theirs).unwrap();
        let status = Command::new("chown")
            .args(["nobody"])
            .arg(&theirs)
            .status()
            .unwrap();
        assert!(status.success());
        let out = env
            .cmd()
            .env("BUILDER_ROOT", theirs.join("store"))
            .arg("images")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&theirs.display().to_string()) && stderr.contains("another user"),
            "{stderr}"
        );
    }
}
