//! A small two-layer image built in a temp store, shared by the export tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::Command;

use builder_store::image::{History, ImageConfig, RootFs};
use builder_store::manifest::{Descriptor, ManifestFormat};
use builder_store::{Digest, Store, StoredImage, put_image};
use flate2::Compression;
use flate2::write::GzEncoder;

pub const NAME: &str = "docker.io/library/app:1";

/// One tar entry of a test layer.
pub enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
}

pub struct TestImage {
    pub store: Store,
    pub image: StoredImage,
    /// (compressed blob digest, diff id), bottom first.
    pub layers: Vec<(Digest, Digest)>,
    _dir: tempfile::TempDir,
}

/// Builds an uncompressed layer tar with fixed metadata.
pub fn layer_tar(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            E::Dir(p, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::File(p, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, *data).unwrap();
            }
            E::Symlink(p, target) | E::HardLink(p, target) => {
                let kind = if matches!(e, E::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                h.set_entry_type(kind);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Stores gzip layers made from `layers` and an OCI image over them.
pub fn build_image(layers: &[Vec<u8>]) -> TestImage {
    build_image_as(layers, ManifestFormat::Oci)
}

pub fn build_image_as(layers: &[Vec<u8>], format: ManifestFormat) -> TestImage {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let mut descs = Vec::new();
    let mut digests = Vec::new();
    for tar in layers {
        let gz = gzip(tar);
        let d = store.blobs().put_bytes(&gz).unwrap();
        descs.push(Descriptor::new(
            format.gzip_layer_media_type(),
            d,
            gz.len() as u64,
        ));
        digests.push((d, Digest::of(tar)));
    }
    let config = ImageConfig {
        created: Some("2023-11-14T22:13:20Z".into()),
        architecture: "amd64".into(),
        os: "linux".into(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: digests.iter().map(|(_, d)| *d).collect(),
        },
        history: layers
            .iter()
            .enumerate()
            .map(|(i, _)| History {
                created_by: Some(format!("layer {i}")),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let image = put_image(store.blobs(), &config, &descs, format).unwrap();
    TestImage {
        store,
        image,
        layers: digests,
        _dir: dir,
    }
}

/// The standard test image: layer 2 rewrites, whites out and makes a dir opaque.
pub fn standard_image() -> TestImage {
    let l1 = layer_tar(&[
        E::Dir("etc/", 0o755),
        E::File("etc/hello.txt", b"hello", 0o644),
        E::HardLink("etc/hard", "etc/hello.txt"),
        E::File("etc/remove-me", b"x", 0o644),
        E::Dir("opt/", 0o755),
        E::Dir("opt/keep/", 0o755),
        E::File("opt/keep/a.txt", b"a", 0o644),
        E::Dir("bin/", 0o755),
        E::File("bin/tool", b"#!/bin/sh\n", 0o755),
        E::Symlink("bin/link", "../etc/hello.txt"),
    ]);
    let l2 = layer_tar(&[
        E::Dir("etc/", 0o755),
        E::File("etc/hello.txt", b"hello v2", 0o600),
        E::File("etc/.wh.remove-me", b"", 0o644),
        E::Dir("opt/keep/", 0o700),
        E::File("opt/keep/.wh..wh..opq", b"", 0o644),
        E::File("opt/keep/b.txt", b"b", 0o644),
        E::Dir("usr/", 0o755),
        E::File("usr/new.txt", b"new", 0o644),
    ]);
    build_image(&[l1, l2])
}

/// Runs a tool, failing the test with its stderr if it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd} (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The merged view of `standard_image`, as found in an unpacked rootfs.
pub fn assert_standard_rootfs(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(read(&root.join("etc/hello.txt")), "hello v2");
    assert_eq!(
        read(&root.join("etc/hard")),
        "hello",
        "hard link keeps the layer-1 content"
    );
    assert!(
        !root.join("etc/remove-me").exists(),
        "whiteout removes the file"
    );
    assert!(
        !root.join("opt/keep/a.txt").exists(),
        "opaque dir hides lower content"
    );
    assert_eq!(read(&root.join("opt/keep/b.txt")), "b");
    assert_eq!(read(&root.join("usr/new.txt")), "new");
    assert_eq!(
        std::fs::read_link(root.join("bin/link")).unwrap(),
        Path::new("../etc/hello.txt")
    );
    let mode = |p: &str| {
        std::fs::metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("bin/tool"), 0o755);
    assert_eq!(mode("etc/hello.txt"), 0o600);
    assert_eq!(mode("opt/keep"), 0o700);
}
