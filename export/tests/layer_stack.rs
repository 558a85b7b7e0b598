//! The flattened export of a layer stack equals the merged view of the same layers unpacked one
//! on top of the other by `builder_snapshot::apply_layer_on` (what a RUN step is given), with
//! the copy snapshotter and, where the kernel allows, overlayfs. Both follow one rule
//! (`builder_snapshot::stack`): parents resolve through the layers below, inside the root.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use builder_export::write_rootfs_dir;
use builder_snapshot::{Snapshotter, apply_layer_on, detect_snapshotter, prepare};
use common::*;

/// path → "kind mode content-or-target", symlinks never followed.
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<String, String>) {
        for entry in fs::read_dir(root.join(rel)).unwrap() {
            let r = rel.join(entry.unwrap().file_name());
            let p = root.join(&r);
            let m = fs::symlink_metadata(&p).unwrap();
            let mode = m.permissions().mode() & 0o7777;
            let what = if m.file_type().is_symlink() {
                format!("link -> {}", fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                format!("dir {mode:o}")
            } else {
                let links = if m.nlink() > 1 { " (linked)" } else { "" };
                format!(
                    "file {mode:o} {}{links}",
                    String::from_utf8_lossy(&fs::read(&p).unwrap())
                )
            };
            out.insert(r.display().to_string(), what);
            if m.is_dir() {
                walk(root, &r, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

fn stack() -> Vec<Vec<u8>> {
    use E::*;
    let below = layer_tar(&[
        Dir("esc/", 0o755),
        Dir("tmp/", 0o1777),
        Dir("keep/", 0o700),
        File("keep/a", b"a", 0o644),
        Dir("wf/", 0o755),
        File("wf/gone", b"gone", 0o644),
        File("wf/stay", b"stay", 0o644),
        Dir("wd/", 0o755),
        Dir("wd/sub/", 0o755),
        File("wd/sub/f", b"f", 0o644),
        Dir("opq/", 0o755),
        File("opq/old", b"old", 0o644),
        Dir("opq/d/", 0o755),
        File("opq/d/old2", b"old2", 0o644),
        Dir("d2f/", 0o755),
        File("d2f/inner", b"inner", 0o644),
        File("f2d", b"was a file", 0o644),
        Dir("target/", 0o750),
        File("target/t0", b"t0", 0o644),
        File("target/t1", b"t1", 0o644),
        Dir("d2l/", 0o755),
        File("d2l/old", b"old", 0o644),
        Dir("redo/", 0o755),
        File("redo/old", b"old", 0o644),
    ]);
    let middle = layer_tar(&[
        Symlink("esc", "/tmp/x"),
        Dir("wf/", 0o755),
        File("wf/.wh.gone", b"", 0o644),
        File(".wh.wd", b"", 0o644),
        Dir("opq/", 0o755),
        File("opq/.wh..wh..opq", b"", 0o644),
        File("opq/new", b"new", 0o644),
        File("d2f", b"now a file", 0o644),
        Dir("f2d/", 0o711),
        File("f2d/child", b"child", 0o644),
        Symlink("d2l", "/target"),
        Symlink("rel", "target/../target"),
    ]);
    // No parent entries: every parent is found below.
    let top = layer_tar(&[
        File("esc/pwned", b"pwned", 0o600),
        File("keep/b", b"b", 0o644),
        File("d2l/new", b"through the link", 0o644),
        File("d2l/.wh.t0", b"", 0o644),
        File("rel/r", b"relative", 0o644),
        HardLink("rel/r-link", "d2l/new"),
        // Deleted, then made again in the same layer: none of the old content comes back.
        File(".wh.redo", b"", 0o644),
        File("redo/new", b"new", 0o644),
    ]);
    vec![below, middle, top]
}

/// Unpacks `layers` one on top of the other; returns the layer dirs, topmost first.
fn unpack(layers: &[Vec<u8>], dir: &Path) -> Vec<PathBuf> {
    let mut lowers: Vec<PathBuf> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let dest = dir.join(format!("layer{i}"));
        fs::create_dir(&dest).unwrap();
        let stats = apply_layer_on(&l[..], &dest, &lowers).unwrap();
        assert_eq!(
            stats.depends_on_lowers,
            i == 2,
            "only the top layer reaches below itself (layer {i})"
        );
        lowers.insert(0, dest);
    }
    lowers
}

#[test]
fn unpacked_layer_views_equal_the_flattened_export() {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: owners in the layers need root");
        return;
    }
    let layers = stack();
    let img = build_image(&layers);
    let dest = tempfile::tempdir().unwrap();
    write_rootfs_dir(&img.store, &img.image.manifest, dest.path()).unwrap();
    let exported = tree(dest.path());

    let expect = [
        ("esc", "link -> /tmp/x"),
        ("tmp", "dir 1777"),
        ("tmp/x", "dir 755"),
        ("tmp/x/pwned", "file 600 pwned"),
        ("keep", "dir 700"),
        ("keep/a", "file 644 a"),
        ("keep/b", "file 644 b"),
        ("wf/stay", "file 644 stay"),
        ("opq/new", "file 644 new"),
        ("d2f", "file 644 now a file"),
        ("f2d", "dir 711"),
        ("f2d/child", "file 644 child"),
        ("d2l", "link -> /target"),
        ("target", "dir 750"),
        ("target/new", "file 644 through the link (linked)"),
        ("target/r-link", "file 644 through the link (linked)"),
        ("target/t1", "file 644 t1"),
        ("target/r", "file 644 relative"),
        ("redo/new", "file 644 new"),
    ];
    for (path, what) in expect {
        assert_eq!(
            exported.get(path).map(String::as_str),
            Some(what),
            "{path} in {exported:#?}"
        );
    }
    for gone in [
        "esc/pwned",
        "wf/gone",
        "wd",
        "opq/old",
        "opq/d",
        "d2f/inner",
        "target/t0",
        "d2l/new",
        "rel/r",
        "redo/old",
    ] {
        assert!(!exported.contains_key(gone), "{gone} in {exported:#?}");
    }

    let work = tempfile::tempdir().unwrap();
    let lowers = unpack(&layers, work.path());
    let mut kinds = vec![Snapshotter::Copy];
    if detect_snapshotter(work.path()) == Snapshotter::Overlay {
        kinds.push(Snapshotter::Overlay);
    }
    // The copy snapshotter copies hard-linked files apart (overlayfs keeps them linked).
    let unlinked = |t: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        t.iter()
            .map(|(k, v)| (k.clone(), v.replace(" (linked)", "")))
            .collect()
    };
    eprintln!("checked views: {kinds:?}");
    for kind in kinds {
        let snap = prepare(kind, &lowers, work.path()).unwrap();
        let (view, export) = match kind {
            Snapshotter::Copy => (unlinked(&tree(snap.rootfs())), unlinked(&exported)),
            Snapshotter::Overlay => (tree(snap.rootfs()), exported.clone()),
        };
        assert_eq!(
            view, export,
            "the {kind:?} view of the unpacked layers differs from the export"
        );
    }
}

#[test]
fn a_self_contained_layer_unpacks_alike_on_any_stack() {
    let top = layer_tar(&[E::Dir("esc/", 0o755), E::File("esc/pwned", b"pwned", 0o644)]);
    let below = layer_tar(&[E::Symlink("esc", "/tmp/x")]);
    let work = tempfile::tempdir().unwrap();
    let (alone, stacked, lower) = (
        work.path().join("alone"),
        work.path().join("stacked"),
        work.path().join("lower"),
    );
    for d in [&alone, &stacked, &lower] {
        fs::create_dir(d).unwrap();
    }
    apply_layer_on(&below[..], &lower, &[]).unwrap();
    let a = apply_layer_on(&top[..], &alone, &[]).unwrap();
    let s = apply_layer_on(&top[..], &stacked, &[lower]).unwrap();
    // Its own `esc/` replaces the lower symlink, so nothing below matters.
    assert!(!a.depends_on_lowers && !s.depends_on_lowers);
    assert_eq!(tree(&alone), tree(&stacked));
    assert!(stacked.join("esc/pwned").is_file());
}
