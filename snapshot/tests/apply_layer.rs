//! apply_layer on hand-built tars, including hostile ones.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use builder_snapshot::{Compression, LayerOptions, SnapshotError, apply_layer, write_layer};
use common::*;

/// `outer/dest`, so anything escaping `dest` would show up in `outer`.
fn sandbox() -> (tempfile::TempDir, std::path::PathBuf) {
    let outer = tempfile::tempdir().unwrap();
    let dest = outer.path().join("dest");
    fs::create_dir(&dest).unwrap();
    (outer, dest)
}

fn only_dest_in(outer: &Path) {
    let names: Vec<_> = fs::read_dir(outer)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [os("dest")], "something was written next to dest");
}

#[test]
fn regular_layer_with_links_and_metadata() {
    let (_o, dest) = sandbox();
    let tar = TarBuilder::default()
        .dir("./", 0o755)
        .dir("bin/", 0o755)
        .file("bin/tool", 0o4755, b"#!tool")
        .hardlink("bin/tool-alias", "bin/tool")
        .symlink("bin/sh", "/bin/busybox")
        .file_with_xattrs(
            "bin/capped",
            b"c",
            &[("user.note", b"hello"), ("user.overlay.redirect", b"/evil")],
        )
        .fifo("run.fifo")
        .file("deep/implicit/parent", 0o600, b"p")
        .finish();
    let stats = apply_layer(&tar[..], &dest).unwrap();
    assert_eq!(stats.entries, 8);
    assert_eq!(stats.bytes, 6 + 1 + 1);
    assert_eq!(
        stats.skipped_xattrs, 1,
        "overlay-private xattr from the archive is dropped"
    );
    let tool = fs::symlink_metadata(dest.join("bin/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o4755);
    assert_eq!(tool.mtime(), 1000);
    assert_eq!(tool.nlink(), 2);
    assert_eq!(
        fs::symlink_metadata(dest.join("bin/tool-alias"))
            .unwrap()
            .ino(),
        tool.ino()
    );
    assert_eq!(
        fs::read_link(dest.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        getxattr(&dest.join("bin/capped"), "user.note").as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        getxattr(&dest.join("bin/capped"), "user.overlay.redirect"),
        None
    );
    assert!(
        fs::symlink_metadata(dest.join("run.fifo"))
            .unwrap()
            .file_type()
            .is_fifo_like()
    );
    assert_eq!(fs::read(dest.join("deep/implicit/parent")).unwrap(), b"p");
    assert_eq!(
        fs::symlink_metadata(dest.join("bin")).unwrap().mtime(),
        1000,
        "dir times set after children"
    );
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}
impl FifoLike for fs::FileType {
    fn is_fifo_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_fifo(self)
    }
}

#[test]
fn whiteouts_and_opaque_markers_become_overlay_format() {
    let (_o, dest) = sandbox();
    let tar = TarBuilder::default()
        .dir("etc/", 0o755)
        .file("etc/.wh.passwd", 0o644, b"")
        .file(".wh.tmp", 0o644, b"")
        .dir("var/", 0o755)
        .file("var/.wh..wh..opq", 0o644, b"")
        .file("var/new", 0o644, b"n")
        .file(".wh..wh.plnk", 0o644, b"")
        .finish();
    let stats = apply_layer(&gzip(&tar)[..], &dest).unwrap();
    assert_eq!(
        (stats.whiteouts, stats.opaque_dirs, stats.skipped_entries),
        (2, 1, 1)
    );
    assert!(is_whiteout(&dest.join("etc/passwd")));
    assert!(is_whiteout(&dest.join("tmp")));
    assert_eq!(
        getxattr(&dest.join("var"), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(fs::read(dest.join("var/new")).unwrap(), b"n");
    assert!(!dest.join(".wh..wh.plnk").exists());
}

#[test]
fn later_entries_replace_earlier_ones() {
    let (_o, dest) = sandbox();
    let tar = TarBuilder::default()
        .file("x", 0o644, b"first")
        .dir("x/", 0o700)
        .file("x/inner", 0o644, b"i")
        .file("x", 0o600, b"second")
        .finish();
    apply_layer(&tar[..], &dest).unwrap();
    assert_eq!(fs::read(dest.join("x")).unwrap(), b"second");
}

#[test]
fn hostile_names_stay_inside_dest() {
    let (outer, dest) = sandbox();
    let tar = TarBuilder::default()
        .file("../escape", 0o644, b"e")
        .file("/abs", 0o644, b"a")
        .file("a/../../../../up", 0o644, b"u")
        .symlink("root", "/")
        .file("root/etc/evil", 0o644, b"through /")
        .symlink("parent", "../..")
        .file("parent/evil2", 0o644, b"through ..")
        .symlink("victim", "/tmp")
        .file(
            "victim",
            0o644,
            b"replaced the link, not written through it",
        )
        .finish();
    apply_layer(&tar[..], &dest).unwrap();
    only_dest_in(outer.path());
    assert_eq!(fs::read(dest.join("escape")).unwrap(), b"e");
    assert_eq!(fs::read(dest.join("abs")).unwrap(), b"a");
    assert_eq!(fs::read(dest.join("up")).unwrap(), b"u");
    assert_eq!(fs::read(dest.join("etc/evil")).unwrap(), b"through /");
    assert_eq!(fs::read(dest.join("evil2")).unwrap(), b"through ..");
    assert!(fs::symlink_metadata(dest.join("victim")).unwrap().is_file());
    assert!(!Path::new("/etc/evil").exists() && !Path::new("/abs").exists());
}

#[test]
fn hardlink_to_host_file_is_refused() {
    let (outer, dest) = sandbox();
    let before = fs::metadata("/etc/passwd").unwrap().nlink();
    let tar = TarBuilder::default().hardlink("pw", "/etc/passwd").finish();
    let err = apply_layer(&tar[..], &dest).unwrap_err();
    assert!(matches!(err, SnapshotError::BadEntry { .. }), "{err}");
    let tar = TarBuilder::default()
        .file(".wh.gone", 0o644, b"")
        .hardlink("pw", "gone")
        .finish();
    let err = apply_layer(&tar[..], &dest).unwrap_err();
    assert!(matches!(err, SnapshotError::BadEntry { .. }), "{err}");
    let tar = TarBuilder::default()
        .symlink("host", "/etc")
        .hardlink("pw", "host/passwd")
        .finish();
    let err = apply_layer(&tar[..], &dest).unwrap_err();
    assert!(matches!(err, SnapshotError::BadEntry { .. }), "{err}");
    assert_eq!(fs::metadata("/etc/passwd").unwrap().nlink(), before);
    only_dest_in(outer.path());
}

#[test]
fn hardlink_with_absolute_name_means_the_layers_own_file() {
    let (outer, dest) = sandbox();
    let tar = TarBuilder::default()
        .dir("etc/", 0o755)
        .file("etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n")
        .hardlink("pw", "/etc/passwd")
        .finish();
    apply_layer(&tar[..], &dest).unwrap();
    let ino = |p: &Path| fs::symlink_metadata(p).unwrap().ino();
    assert_eq!(ino(&dest.join("pw")), ino(&dest.join("etc/passwd")));
    assert_ne!(ino(&dest.join("pw")), ino(Path::new("/etc/passwd")));
    only_dest_in(outer.path());
}

#[test]
fn bad_whiteouts_and_unsupported_compression_are_errors() {
    let (_o, dest) = sandbox();
    let tar = TarBuilder::default().file("sub/.wh..", 0o644, b"").finish();
    assert!(matches!(
        apply_layer(&tar[..], &dest),
        Err(SnapshotError::BadEntry { .. })
    ));
    let bzip2 = *b"BZh91AY&SY";
    assert!(matches!(
        apply_layer(&bzip2[..], &dest),
        Err(SnapshotError::UnsupportedCompression("bzip2"))
    ));
}

#[test]
fn ownership_is_preserved_when_ids_are_mapped() {
    if !uid_mapped(1000) {
        eprintln!("uid 1000 not mapped in this user namespace: ownership part skipped");
        return;
    }
    let (_o, dest) = sandbox();
    let tar = TarBuilder::default()
        .owned_file("owned", 1000, 1001, b"o")
        .finish();
    apply_layer(&tar[..], &dest).unwrap();
    let m = fs::symlink_metadata(dest.join("owned")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1001, 0o640));
}

#[test]
fn applied_layer_writes_back_to_the_same_entries() {
    let (_o, dest) = sandbox();
    let tar = TarBuilder::default()
        .dir("d/", 0o750)
        .file("d/.wh..wh..opq", 0o644, b"")
        .file("d/f", 0o640, b"data")
        .hardlink("d/g", "d/f")
        .symlink("l", "d/f")
        .file(".wh.old", 0o644, b"")
        .finish();
    apply_layer(&tar[..], &dest).unwrap();
    let o = LayerOptions {
        source_date_epoch: None,
        compression: Compression::Uncompressed,
        exclude_empty_mountpoints: vec![],
    };
    let mut out = Vec::new();
    write_layer(&dest, &mut out, &o).unwrap();
    let ents = read_tar(&out);
    assert_eq!(
        names(&ents),
        [".wh.old", "d/", "d/.wh..wh..opq", "d/f", "d/g", "l"]
    );
    let d = &ents[1];
    assert_eq!((d.kind, d.mode, d.mtime), ('d', 0o750, 1000));
    assert_eq!(
        (ents[3].kind, ents[3].mode, ents[3].data.as_slice()),
        ('f', 0o640, &b"data"[..])
    );
    assert_eq!((ents[4].kind, ents[4].link.as_deref()), ('h', Some("d/f")));
    assert_eq!((ents[5].kind, ents[5].link.as_deref()), ('l', Some("d/f")));
}

#[test]
fn device_nodes_are_created_or_counted_as_skipped() {
    let (_o, dest) = sandbox();
    let tar = TarBuilder::default()
        .chardev("null", 1, 3)
        .file("after", 0o644, b"a")
        .finish();
    let stats = apply_layer(&tar[..], &dest).unwrap();
    // Only real root (CAP_MKNOD in the initial namespace) may create devices.
    let probe = tempfile::tempdir().unwrap();
    if mknod(&probe.path().join("probe"), libc::S_IFCHR, 1, 3).is_ok() {
        assert_eq!(stats.skipped_devices, 0);
        let m = fs::symlink_metadata(dest.join("null")).unwrap();
        assert_eq!(m.rdev(), libc::makedev(1, 3));
    } else {
        assert_eq!(stats.skipped_devices, 1);
        assert_eq!(stats.warnings.len(), 1, "{:?}", stats.warnings);
        assert!(!dest.join("null").exists());
    }
    assert_eq!(
        fs::read(dest.join("after")).unwrap(),
        b"a",
        "a skipped device does not stop the layer"
    );
}

#[test]
fn file_capabilities_survive_apply_and_write() {
    // VFS_CAP_REVISION_2 with the effective flag, permitted = CAP_NET_BIND_SERVICE.
    let cap: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let (_o, dest) = sandbox();
    let tar = TarBuilder::default()
        .file_with_xattrs("ping", b"elf", &[("security.capability", &cap)])
        .finish();
    let stats = apply_layer(&tar[..], &dest).unwrap();
    assert_eq!(stats.skipped_xattrs, 0, "{:?}", stats.warnings);
    assert_eq!(
        getxattr(&dest.join("ping"), "security.capability").as_deref(),
        Some(&cap[..])
    );
    let o = LayerOptions {
        source_date_epoch: None,
        compression: Compression::Uncompressed,
        exclude_empty_mountpoints: vec![],
    };
    let mut out = Vec::new();
    write_layer(&dest, &mut out, &o).unwrap();
    let ents = read_tar(&out);
    assert_eq!(
        ents[0].xattrs.get("security.capability").map(Vec::as_slice),
        Some(&cap[..])
    );
}
