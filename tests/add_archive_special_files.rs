//! End to end: `ADD <archive>` of a root filesystem tarball, as debootstrap makes one, carries
//! device nodes (`dev/null`, `dev/full`, ...) and FIFOs. The build must not fail on them:
//! a FIFO is made, a device node is made where the builder may (root outside a user
//! namespace) and skipped where it may not (every rootless build), as BuildKit's untar does.

mod common;

use std::path::Path;
use std::process::Command;

use common::Env;

/// A tar with a regular file, a FIFO and a character device (1:7, Linux's /dev/full).
fn rootfs_with_nodes() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    b.append_data(&mut dir, "dev/", std::io::empty()).unwrap();
    let mut full = tar::Header::new_ustar();
    full.set_entry_type(tar::EntryType::Char);
    full.set_mode(0o666);
    full.set_size(0);
    full.set_device_major(1).unwrap();
    full.set_device_minor(7).unwrap();
    b.append_data(&mut full, "dev/full", std::io::empty())
        .unwrap();
    let mut fifo = tar::Header::new_ustar();
    fifo.set_entry_type(tar::EntryType::Fifo);
    fifo.set_mode(0o640);
    fifo.set_size(0);
    b.append_data(&mut fifo, "run/initctl", std::io::empty())
        .unwrap();
    let body = b"bookworm\n";
    let mut file = tar::Header::new_ustar();
    file.set_entry_type(tar::EntryType::Regular);
    file.set_mode(0o644);
    file.set_size(body.len() as u64);
    b.append_data(&mut file, "etc/debian_version", &body[..])
        .unwrap();
    b.into_inner().unwrap()
}

/// Whether this process may make a character device (what the builder it starts may do).
fn may_mknod(dir: &Path) -> bool {
    let probe = dir.join("mknod-probe");
    let ok = Command::new("mknod")
        .arg(&probe)
        .args(["c", "1", "7"])
        .status()
        .is_ok_and(|s| s.success());
    let _ = std::fs::remove_file(&probe);
    ok
}

#[test]
fn an_archive_with_device_nodes_and_fifos_is_added() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM scratch\nADD rootfs.tar /\n")]);
    std::fs::write(ctx.join("rootfs.tar"), rootfs_with_nodes()).unwrap();
    let dest = env.path("image.tar");
    let output = format!("type=tar,dest={}", dest.display());
    env.build_ok(&ctx, &["--output", &output]);

    let mut kinds = std::collections::BTreeMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&dest).unwrap());
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        let name = String::from_utf8_lossy(&entry.path_bytes())
            .trim_start_matches("./")
            .to_string();
        let dev = (
            h.device_major().ok().flatten(),
            h.device_minor().ok().flatten(),
        );
        kinds.insert(name, (h.entry_type(), h.mode().unwrap() & 0o7777, dev));
    }
    assert_eq!(
        kinds.get("etc/debian_version").map(|k| k.0),
        Some(tar::EntryType::Regular),
        "{kinds:?}"
    );
    let fifo = kinds.get("run/initctl").expect("the FIFO is in the image");
    assert_eq!((fifo.0, fifo.1), (tar::EntryType::Fifo, 0o640));
    if may_mknod(&env.path("")) {
        let full = kinds
            .get("dev/full")
            .expect("the device node is in the image");
        assert_eq!(full.0, tar::EntryType::Char);
        assert_eq!(full.1, 0o666);
        assert_eq!(full.2, (Some(1), Some(7)));
    } else {
        assert!(
            !kinds.contains_key("dev/full"),
            "a rootless build cannot make a device node: {kinds:?}"
        );
        assert!(kinds.contains_key("dev/"), "{kinds:?}");
    }
}
