//! Interoperability with GNU tar (Debian's `tar` package, always installed):
//! it must list and extract our layers, and we must apply its PAX archives.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::process::Command;

use builder_snapshot::{Compression, LayerOptions, apply_layer, write_layer};
use common::*;

fn gnu_tar(args: &[&str], dir: &std::path::Path) -> String {
    let out = Command::new("tar")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("GNU tar is installed");
    assert!(
        out.status.success(),
        "tar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sample_tree(root: &std::path::Path) {
    let long = "x".repeat(150);
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::write(root.join("usr/bin/tool"), b"tool").unwrap();
    fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool2")).unwrap();
    symlink("tool", root.join("usr/bin/link")).unwrap();
    fs::create_dir(root.join(&long)).unwrap();
    fs::write(root.join(&long).join(&long), b"long").unwrap();
    setxattr(&root.join("usr/bin/tool"), "user.k", b"v").unwrap();
    // link names beyond the 100-byte ustar field
    symlink(format!("{long}/{long}"), root.join("long-symlink")).unwrap();
    fs::hard_link(
        root.join(&long).join(&long),
        root.join("zz-hardlink-to-long"),
    )
    .unwrap();
}

#[test]
fn gnu_tar_extracts_our_layer_identically() {
    let (src, extracted, tmp) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    sample_tree(src.path());
    let layer = tmp.path().join("layer.tar.gz");
    let o = LayerOptions {
        source_date_epoch: None,
        compression: Compression::Gzip { level: 1 },
        exclude_empty_mountpoints: vec![],
    };
    write_layer(src.path(), fs::File::create(&layer).unwrap(), &o).unwrap();
    let listing = gnu_tar(&["-tzvf", layer.to_str().unwrap()], tmp.path());
    assert!(
        listing.contains("usr/bin/tool2 link to usr/bin/tool"),
        "{listing}"
    );
    gnu_tar(
        &[
            "--xattrs",
            "--xattrs-include=*",
            "-xzpf",
            layer.to_str().unwrap(),
            "-C",
            extracted.path().to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_eq!(tree(extracted.path()), tree(src.path()));
    assert_eq!(
        getxattr(&extracted.path().join("usr/bin/tool"), "user.k").as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn we_apply_gnu_tar_pax_archives_identically() {
    let (src, dest, tmp) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    sample_tree(src.path());
    let layer = tmp.path().join("gnu.tar");
    gnu_tar(
        &[
            "--format=pax",
            "--xattrs",
            "--xattrs-include=*",
            "-cf",
            layer.to_str().unwrap(),
            "-C",
            src.path().to_str().unwrap(),
            ".",
        ],
        tmp.path(),
    );
    let stats = apply_layer(fs::File::open(&layer).unwrap(), dest.path()).unwrap();
    assert_eq!(stats.skipped_xattrs, 0, "{:?}", stats.warnings);
    assert_eq!(tree(dest.path()), tree(src.path()));
    assert_eq!(
        getxattr(&dest.path().join("usr/bin/tool"), "user.k").as_deref(),
        Some(&b"v"[..])
    );
}
