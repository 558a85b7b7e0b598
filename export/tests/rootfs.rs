//! Flattened root filesystems (type=local / type=tar): whiteouts, opaque
//! dirs, hard links, and containment of hostile layers.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use builder_export::{ExportError, write_rootfs_dir, write_rootfs_tar};
use common::*;

/// Path → (entry type, content) of a tar stream, in order.
fn entries(bytes: &[u8]) -> Vec<(String, tar::EntryType, Vec<u8>)> {
    tar::Archive::new(bytes)
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let kind = e.header().entry_type();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (path, kind, data)
        })
        .collect()
}

/// A layer tar with one raw header whose name bypasses the tar crate's checks.
fn raw_layer(name: &str, kind: tar::EntryType, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, data).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn dir_export_merges_layers() {
    let img = standard_image();
    let dest = tempfile::tempdir().unwrap();
    let summary = write_rootfs_dir(&img.store, &img.image.manifest, dest.path()).unwrap();
    assert_standard_rootfs(dest.path());
    assert_eq!(summary.skipped_devices, 0);
    // etc, etc/hello.txt, etc/hard, opt, opt/keep, opt/keep/b.txt, bin, bin/tool, bin/link, usr, usr/new.txt
    assert_eq!(summary.entries, 11);
    let mtime = fs::metadata(dest.path().join("usr/new.txt"))
        .unwrap()
        .mtime();
    assert_eq!(mtime, 1_700_000_000);
    assert_eq!(
        fs::metadata(dest.path().join("opt")).unwrap().mtime(),
        1_700_000_000
    );
}

#[test]
fn tar_export_contains_only_the_merged_view() {
    let img = standard_image();
    let bytes = write_rootfs_tar(&img.store, &img.image.manifest, Vec::new()).unwrap();
    let list = entries(&bytes);
    let paths: Vec<&str> = list.iter().map(|(p, _, _)| p.as_str()).collect();
    // Lower layer first; the hidden etc/hello.txt's data is carried by its hard link.
    assert_eq!(
        paths,
        [
            "etc/hard",
            "opt/",
            "bin/",
            "bin/tool",
            "bin/link",
            "etc/",
            "etc/hello.txt",
            "opt/keep/",
            "opt/keep/b.txt",
            "usr/",
            "usr/new.txt"
        ]
    );
    assert!(list.iter().all(|(p, _, _)| !p.contains(".wh.")));
    let hard = list.iter().find(|(p, _, _)| p == "etc/hard").unwrap();
    assert_eq!(
        (hard.1, hard.2.as_slice()),
        (tar::EntryType::Regular, b"hello".as_slice())
    );
    // And it unpacks to the same tree.
    let dest = tempfile::tempdir().unwrap();
    tar::Archive::new(bytes.as_slice())
        .unpack(dest.path())
        .unwrap();
    assert_standard_rootfs(dest.path());
    // Deterministic.
    assert_eq!(
        write_rootfs_tar(&img.store, &img.image.manifest, Vec::new()).unwrap(),
        bytes
    );
}

#[test]
fn several_links_to_a_hidden_file_share_its_old_content() {
    let l1 = layer_tar(&[
        E::File("a", b"old", 0o644),
        E::HardLink("l1", "a"),
        E::HardLink("l2", "a"),
    ]);
    let l2 = layer_tar(&[E::File("a", b"new", 0o644)]);
    let img = build_image(&[l1, l2]);
    let dest = tempfile::tempdir().unwrap();
    write_rootfs_dir(&img.store, &img.image.manifest, dest.path()).unwrap();
    assert_eq!(read(&dest.path().join("a")), "new");
    assert_eq!(read(&dest.path().join("l1")), "old");
    let ino = |p: &str| fs::metadata(dest.path().join(p)).unwrap().ino();
    assert_eq!(ino("l1"), ino("l2"));
    assert_ne!(ino("a"), ino("l1"));
    let list = entries(&write_rootfs_tar(&img.store, &img.image.manifest, Vec::new()).unwrap());
    let summary: Vec<(&str, tar::EntryType)> =
        list.iter().map(|(p, k, _)| (p.as_str(), *k)).collect();
    assert_eq!(
        summary,
        [
            ("l1", tar::EntryType::Regular),
            ("l2", tar::EntryType::Link),
            ("a", tar::EntryType::Regular)
        ]
    );
}

#[test]
fn upper_file_replaces_lower_directory_tree() {
    let l1 = layer_tar(&[
        E::Dir("d/", 0o755),
        E::File("d/x", b"x", 0o644),
        E::File("f", b"file", 0o644),
    ]);
    let l2 = layer_tar(&[
        E::File("d", b"now a file", 0o644),
        E::Dir("f/", 0o755),
        E::File("f/y", b"y", 0o644),
    ]);
    let img = build_image(&[l1, l2]);
    let dest = tempfile::tempdir().unwrap();
    write_rootfs_dir(&img.store, &img.image.manifest, dest.path()).unwrap();
    assert_eq!(read(&dest.path().join("d")), "now a file");
    assert_eq!(read(&dest.path().join("f/y")), "y");
    let list = entries(&write_rootfs_tar(&img.store, &img.image.manifest, Vec::new()).unwrap());
    let paths: Vec<&str> = list.iter().map(|(p, _, _)| p.as_str()).collect();
    // directories end in `/`, as BuildKit's (Go's) tar writer names them
    assert_eq!(paths, ["d", "f/", "f/y"]);
}

#[test]
fn existing_destination_content_is_replaced() {
    let img = standard_image();
    let dest = tempfile::tempdir().unwrap();
    fs::create_dir_all(dest.path().join("etc/hello.txt/sub")).unwrap();
    fs::write(dest.path().join("usr"), b"a file where a dir goes").unwrap();
    write_rootfs_dir(&img.store, &img.image.manifest, dest.path()).unwrap();
    assert_standard_rootfs(dest.path());
}

#[test]
fn dotdot_entries_are_refused() {
    let img = build_image(&[raw_layer("../escape", tar::EntryType::Regular, b"evil")]);
    let dest = tempfile::tempdir().unwrap();
    let inner = dest.path().join("out");
    let err = write_rootfs_dir(&img.store, &img.image.manifest, &inner).unwrap_err();
    assert!(
        matches!(&err, ExportError::UnsafeEntry { path, .. } if path == "../escape"),
        "{err}"
    );
    assert!(!dest.path().join("escape").exists());
    assert!(write_rootfs_tar(&img.store, &img.image.manifest, Vec::new()).is_err());
}

#[test]
fn symlinks_cannot_redirect_writes_outside_dest() {
    let outside = tempfile::tempdir().unwrap();
    let abs_target = outside.path().to_str().unwrap().to_string();
    let l1 = layer_tar(&[
        E::Symlink("abs", &abs_target),
        E::Symlink("rel", "../../../../../../.."),
    ]);
    let l2 = layer_tar(&[
        E::File("abs/pwned", b"1", 0o644),
        E::File("rel/pwned2", b"2", 0o644),
    ]);
    let img = build_image(&[l1, l2]);
    let dest = tempfile::tempdir().unwrap();
    write_rootfs_dir(&img.store, &img.image.manifest, dest.path()).unwrap();
    assert_eq!(
        fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing written through the absolute symlink"
    );
    // Resolved as if dest were the root directory.
    assert_eq!(
        read(
            &dest
                .path()
                .join(abs_target.trim_start_matches('/'))
                .join("pwned")
        ),
        "1"
    );
    assert_eq!(read(&dest.path().join("pwned2")), "2");
    assert!(!Path::new("/pwned2").exists());
}

#[test]
fn hard_link_outside_the_layer_is_refused() {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..1].copy_from_slice(b"x");
    h.as_old_mut().linkname[..16].copy_from_slice(b"../../etc/passwd");
    h.set_entry_type(tar::EntryType::Link);
    h.set_mode(0o644);
    h.set_size(0);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, std::io::empty()).unwrap();
    let img = build_image(&[b.into_inner().unwrap()]);
    let dest = tempfile::tempdir().unwrap();
    let err = write_rootfs_dir(&img.store, &img.image.manifest, dest.path()).unwrap_err();
    assert!(
        matches!(&err, ExportError::UnsafeEntry { path, .. } if path == "../../etc/passwd"),
        "{err}"
    );
}

#[test]
fn fifos_are_created_and_devices_skipped() {
    let mut fifo = raw_layer("pipe", tar::EntryType::Fifo, b"");
    let dev = raw_layer("null", tar::EntryType::Char, b"");
    // Concatenate: drop the first archive's two zero end blocks.
    fifo.truncate(fifo.len() - 1024);
    fifo.extend_from_slice(&dev);
    let img = build_image(&[fifo]);
    let dest = tempfile::tempdir().unwrap();
    let summary = write_rootfs_dir(&img.store, &img.image.manifest, dest.path()).unwrap();
    assert!(
        fs::symlink_metadata(dest.path().join("pipe"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert!(!dest.path().join("null").exists());
    assert_eq!((summary.entries, summary.skipped_devices), (1, 1));
}

#[test]
fn index_must_be_narrowed_to_a_platform() {
    let img = standard_image();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{}}}]}}"#,
        img.image.manifest, img.image.manifest_size
    );
    let index = img.store.blobs().put_bytes(index.as_bytes()).unwrap();
    let err = write_rootfs_tar(&img.store, &index, Vec::new()).unwrap_err();
    assert!(
        matches!(err, ExportError::UnsupportedManifest { digest, .. } if digest == index),
        "{err}"
    );
}

fn getxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the stated length.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| buf[..len as usize].to_vec())
}

#[test]
fn xattrs_owners_and_setuid_survive() {
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("SCHILY.xattr.user.builder", b"yes".as_slice())])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o4755);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_size(3);
    h.set_mtime(0);
    b.append_data(&mut h, "usr/bin/suid", b"elf".as_slice())
        .unwrap();
    let img = build_image(&[b.into_inner().unwrap()]);

    let bytes = write_rootfs_tar(&img.store, &img.image.manifest, Vec::new()).unwrap();
    let mut archive = tar::Archive::new(bytes.as_slice());
    // The parents no entry provides (usr/, usr/bin/) come first, as plain 0755 directories.
    let mut entries = archive.entries().unwrap().map(|e| e.unwrap());
    for dir in ["usr", "usr/bin"] {
        let d = entries.next().unwrap();
        assert_eq!(d.path().unwrap(), Path::new(dir));
        assert_eq!(d.header().entry_type(), tar::EntryType::Directory);
        assert_eq!(d.header().mode().unwrap(), 0o755);
    }
    let mut e = entries.next().unwrap();
    assert_eq!(e.path().unwrap(), Path::new("usr/bin/suid"));
    assert_eq!(
        (e.header().mode().unwrap(), e.header().uid().unwrap()),
        (0o4755, 1000)
    );
    let exts: Vec<(String, Vec<u8>)> = e
        .pax_extensions()
        .unwrap()
        .unwrap()
        .map(|x| x.unwrap())
        .map(|x| (x.key().unwrap().to_string(), x.value_bytes().to_vec()))
        .collect();
    assert_eq!(
        exts,
        [("SCHILY.xattr.user.builder".to_string(), b"yes".to_vec())]
    );

    let dest = tempfile::tempdir().unwrap();
    let summary = write_rootfs_dir(&img.store, &img.image.manifest, dest.path()).unwrap();
    let file = dest.path().join("usr/bin/suid");
    assert_eq!(summary.skipped_xattrs, 0);
    assert_eq!(
        getxattr(&file, "user.builder").as_deref(),
        Some(b"yes".as_slice())
    );
    let meta = fs::metadata(&file).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o4755);
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
    }
}
