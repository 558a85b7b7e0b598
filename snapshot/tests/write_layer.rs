//! write_layer on hand-made overlay-format diff directories.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use builder_snapshot::{Compression, LayerOptions, SnapshotError, write_layer};
use common::*;

const T: i64 = 1_600_000_000;

fn opts(epoch: Option<i64>, compression: Compression) -> LayerOptions {
    LayerOptions {
        source_date_epoch: epoch,
        compression,
        exclude_empty_mountpoints: Vec::new(),
    }
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

const LONG: &str = "a-very-long-directory-name-that-goes-on-and-on-well-past-one-hundred-bytes-of-ustar-name-field";

/// A diff with every kind of entry write_layer must handle; all mtimes = `mtime`.
fn build_diff(root: &Path, mtime: i64) {
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/config"), b"cfg").unwrap();
    chmod(&root.join("etc/config"), 0o4755);
    fs::create_dir(root.join("opaque")).unwrap();
    setxattr(&root.join("opaque"), "user.overlay.opaque", b"y").unwrap();
    fs::write(root.join("opaque/inside"), b"i").unwrap();
    mknod(&root.join("gone"), libc::S_IFCHR, 0, 0).unwrap();
    mknod(&root.join("etc/gone-too"), libc::S_IFCHR, 0, 0).unwrap();
    symlink("../etc/config", root.join("link")).unwrap();
    fs::write(root.join("hard1"), b"shared").unwrap();
    fs::hard_link(root.join("hard1"), root.join("hard2")).unwrap();
    mknod(&root.join("fifo"), libc::S_IFIFO, 0, 0).unwrap();
    fs::create_dir(root.join(LONG)).unwrap();
    fs::write(root.join(LONG).join("file-with-a-long-path"), b"long").unwrap();
    fs::write(root.join("xattr-file"), b"x").unwrap();
    setxattr(&root.join("xattr-file"), "user.keep", b"1").unwrap();
    // overlayfs bookkeeping that must never leak into a layer
    setxattr(&root.join("xattr-file"), "user.overlay.origin", b"junk").unwrap();
    for e in [
        "etc/config",
        "opaque/inside",
        "link",
        "hard1",
        "fifo",
        "xattr-file",
        "etc",
        "opaque",
    ] {
        set_mtime(&root.join(e), mtime);
    }
    set_mtime(&root.join(LONG).join("file-with-a-long-path"), mtime);
    set_mtime(&root.join(LONG), mtime);
}

fn layer(root: &Path, o: &LayerOptions) -> (builder_snapshot::LayerDigests, Vec<u8>) {
    let mut out = Vec::new();
    let d = write_layer(root, &mut out, o).unwrap();
    (d, out)
}

#[test]
fn entries_are_sorted_typed_and_carry_metadata() {
    let t = tempfile::tempdir().unwrap();
    build_diff(t.path(), T);
    let (d, bytes) = layer(t.path(), &opts(None, Compression::Uncompressed));
    assert_eq!(d.diff_id, d.digest, "uncompressed: digest is the diff_id");
    assert_eq!(d.size, bytes.len() as u64);
    assert_eq!(d.uncompressed_size, bytes.len() as u64);
    assert_eq!(d.digest, builder_store::Digest::of(&bytes));
    let ents = read_tar(&bytes);
    let long_dir = format!("{LONG}/");
    let long_file = format!("{LONG}/file-with-a-long-path");
    assert_eq!(
        names(&ents),
        [
            ".wh.gone",
            long_dir.as_str(),
            long_file.as_str(),
            "etc/",
            "etc/.wh.gone-too",
            "etc/config",
            "fifo",
            "hard1",
            "hard2",
            "link",
            "opaque/",
            "opaque/.wh..wh..opq",
            "opaque/inside",
            "xattr-file",
        ]
    );
    let by = |n: &str| ents.iter().find(|e| e.name == n).unwrap().clone();
    let wh = by(".wh.gone");
    assert_eq!((wh.kind, wh.data.len()), ('f', 0));
    let cfg = by("etc/config");
    assert_eq!(
        (cfg.kind, cfg.mode, cfg.mtime, cfg.data.as_slice()),
        ('f', 0o4755, T as u64, &b"cfg"[..])
    );
    assert_eq!((cfg.uid, cfg.gid), (0, 0));
    assert_eq!(by("etc/").kind, 'd');
    assert_eq!(by("link").kind, 'l');
    assert_eq!(by("link").link.as_deref(), Some("../etc/config"));
    assert_eq!(by("hard1").kind, 'f');
    assert_eq!(by("hard1").data, b"shared");
    assert_eq!(by("hard2").kind, 'h');
    assert_eq!(by("hard2").link.as_deref(), Some("hard1"));
    assert_eq!(by("fifo").kind, 'p');
    assert_eq!(by(&long_file).data, b"long");
    let xf = by("xattr-file");
    assert_eq!(
        xf.xattrs.keys().collect::<Vec<_>>(),
        ["user.keep"],
        "overlay xattrs are dropped"
    );
    assert!(ents.iter().all(|e| e.uname.is_empty()));
    assert!(
        ents.iter()
            .all(|e| !e.xattrs.keys().any(|k| k.contains("overlay")))
    );
}

#[test]
fn same_tree_same_bytes_and_gzip_keeps_diff_id() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build_diff(a.path(), T);
    build_diff(b.path(), T);
    let gz = opts(None, Compression::Gzip { level: 6 });
    let (da, ba) = layer(a.path(), &gz);
    let (db, bb) = layer(b.path(), &gz);
    assert_eq!(ba, bb);
    assert_eq!(da, db);
    assert_ne!(da.digest, da.diff_id);
    let (plain, _) = layer(a.path(), &opts(None, Compression::Uncompressed));
    assert_eq!(plain.diff_id, da.diff_id);
    assert_eq!(plain.uncompressed_size, da.uncompressed_size);
    assert!(ba.starts_with(&[0x1f, 0x8b]));
    assert_eq!(da.size, ba.len() as u64);
}

#[test]
fn mtime_clamp_equals_tree_written_at_the_epoch() {
    let (late, at_epoch) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let epoch = T - 1000;
    build_diff(late.path(), T);
    build_diff(at_epoch.path(), epoch);
    let plain = |e| opts(e, Compression::Uncompressed);
    let (unclamped, _) = layer(late.path(), &plain(None));
    let (clamped, bytes) = layer(late.path(), &plain(Some(epoch)));
    let (reference, _) = layer(at_epoch.path(), &plain(None));
    assert_ne!(unclamped.diff_id, clamped.diff_id);
    assert_eq!(
        clamped.diff_id, reference.diff_id,
        "clamping only rewrites mtimes"
    );
    // Whiteouts/markers carry mtime 0; everything else carries the epoch.
    for e in read_tar(&bytes).iter().filter(|e| !e.name.contains(".wh.")) {
        assert_eq!(e.mtime, epoch as u64, "{}", e.name);
    }
    // An epoch later than every mtime changes nothing.
    let (later, _) = layer(late.path(), &plain(Some(T + 1)));
    assert_eq!(later.diff_id, unclamped.diff_id);
}

#[test]
fn owners_and_devices_are_kept() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fs::write(root.join("owned"), b"o").unwrap();
    let can_chown = uid_mapped(1000);
    if can_chown {
        std::os::unix::fs::lchown(root.join("owned"), Some(1000), Some(1001)).unwrap();
    }
    // Real device nodes need CAP_MKNOD in the initial namespace.
    let have_dev = mknod(&root.join("null"), libc::S_IFCHR, 1, 3).is_ok();
    let ents = read_tar(&layer(root, &opts(None, Compression::Uncompressed)).1);
    let owned = ents.iter().find(|e| e.name == "owned").unwrap();
    if can_chown {
        assert_eq!((owned.uid, owned.gid), (1000, 1001));
    }
    if have_dev {
        let null = ents.iter().find(|e| e.name == "null").unwrap();
        assert_eq!((null.kind, null.dev), ('c', (1, 3)));
    }
}

#[test]
fn empty_mountpoints_are_excluded_but_real_content_is_not() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fs::create_dir_all(root.join("dev")).unwrap();
    fs::create_dir_all(root.join("proc")).unwrap();
    fs::write(root.join("proc/written"), b"step wrote here").unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/hosts"), b"").unwrap();
    fs::write(root.join("etc/resolv.conf"), b"").unwrap();
    let mut o = opts(None, Compression::Uncompressed);
    o.exclude_empty_mountpoints = ["dev", "proc", "etc/hosts"].map(Into::into).to_vec();
    let ents = read_tar(&layer(root, &o).1);
    assert_eq!(
        names(&ents),
        ["etc/", "etc/resolv.conf", "proc/", "proc/written"]
    );

    // A parent created only to hold excluded mount points goes too.
    fs::remove_file(root.join("etc/resolv.conf")).unwrap();
    o.exclude_empty_mountpoints.push("etc".into());
    let ents = read_tar(&layer(root, &o).1);
    assert_eq!(names(&ents), ["proc/", "proc/written"]);
}

#[test]
fn a_real_file_named_like_a_whiteout_is_refused() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join(".wh.sneaky"), b"").unwrap();
    let err = write_layer(t.path(), Vec::new(), &LayerOptions::default()).unwrap_err();
    assert!(matches!(err, SnapshotError::ReservedName { .. }), "{err}");
}

#[test]
fn empty_diff_is_an_empty_archive() {
    let t = tempfile::tempdir().unwrap();
    let (d, bytes) = layer(t.path(), &opts(None, Compression::Uncompressed));
    assert!(read_tar(&bytes).is_empty());
    assert_eq!(d.uncompressed_size, 1024, "just the two zero end blocks");
}
