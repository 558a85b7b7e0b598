//! `apply_layer_on` follows the symlinks of the layers below when it resolves entry parents;
//! hostile ones (absolute, `..` chains, loops, into whiteouts) still land inside the layer
//! directory being written, never next to it or in the lower layers.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use builder_snapshot::apply_layer_on;
use common::*;

/// `outer/{lower,dest}`; anything escaping would show up in `outer` or change `lower`.
fn stack() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let outer = tempfile::tempdir().unwrap();
    let (lower, dest) = (outer.path().join("lower"), outer.path().join("dest"));
    fs::create_dir(&lower).unwrap();
    fs::create_dir(&dest).unwrap();
    symlink("/etc", lower.join("abs")).unwrap();
    symlink("../../../../../../etc", lower.join("up")).unwrap();
    symlink(outer.path(), lower.join("outer")).unwrap();
    symlink("loop", lower.join("loop")).unwrap();
    fs::create_dir(lower.join("d")).unwrap();
    symlink("../../..", lower.join("d/back")).unwrap();
    (outer, lower, dest)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn entries_through_escaping_lower_symlinks_stay_in_the_layer() {
    let (outer, lower, dest) = stack();
    let lower_before = tree(&lower);
    let tar = TarBuilder::default()
        .file("abs/passwd", 0o644, b"a")
        .file("up/shadow", 0o644, b"b")
        .file("outer/dest-sibling", 0o644, b"c")
        .file("d/back/root-file", 0o644, b"d")
        .symlink("abs/link", "/etc/passwd")
        .file("abs/.wh.group", 0o644, b"")
        .finish();
    let stats = apply_layer_on(&tar[..], &dest, std::slice::from_ref(&lower)).unwrap();
    assert!(stats.depends_on_lowers);
    assert_eq!(
        names(outer.path()),
        ["dest", "lower"],
        "written next to dest"
    );
    assert_eq!(tree(&lower), lower_before, "a lower layer changed");
    assert_eq!(fs::read(dest.join("etc/passwd")).unwrap(), b"a");
    assert_eq!(fs::read(dest.join("etc/shadow")).unwrap(), b"b");
    assert_eq!(fs::read(dest.join("root-file")).unwrap(), b"d");
    // An absolute lower target is the layer root's own path inside the image: never the host's.
    let abs = outer.path().strip_prefix("/").unwrap();
    assert_eq!(fs::read(dest.join(abs).join("dest-sibling")).unwrap(), b"c");
    assert_eq!(
        fs::read_link(dest.join("etc/link")).unwrap(),
        Path::new("/etc/passwd")
    );
}

#[test]
fn lower_symlink_loops_and_files_fail_the_layer_cleanly() {
    for (name, why) in [("loop/x", "loop"), ("d/back/abs/../loop/y", "loop")] {
        let (outer, lower, dest) = stack();
        let tar = TarBuilder::default().file(name, 0o644, b"x").finish();
        let err = apply_layer_on(&tar[..], &dest, std::slice::from_ref(&lower));
        assert!(err.is_err(), "{name}: {why} was accepted");
        assert_eq!(names(outer.path()), ["dest", "lower"]);
    }
    let (_outer, lower, dest) = stack();
    fs::write(lower.join("file"), b"f").unwrap();
    let tar = TarBuilder::default().file("file/x", 0o644, b"x").finish();
    assert!(apply_layer_on(&tar[..], &dest, std::slice::from_ref(&lower)).is_err());
}

#[test]
fn hard_links_through_lower_symlinks_must_still_name_this_layer() {
    let (_outer, lower, dest) = stack();
    fs::create_dir(lower.join("etc")).unwrap();
    fs::write(lower.join("etc/lower-only"), b"secret").unwrap();
    let ok = TarBuilder::default()
        .file("abs/mine", 0o644, b"m")
        .hardlink("abs/mine-link", "up/mine")
        .finish();
    apply_layer_on(&ok[..], &dest, std::slice::from_ref(&lower)).unwrap();
    assert_eq!(fs::read(dest.join("etc/mine-link")).unwrap(), b"m");
    let bad = TarBuilder::default()
        .hardlink("stolen", "abs/lower-only")
        .finish();
    let dest2 = dest.with_file_name("dest2");
    fs::create_dir(&dest2).unwrap();
    assert!(
        apply_layer_on(&bad[..], &dest2, std::slice::from_ref(&lower)).is_err(),
        "a hard link into a lower layer was accepted"
    );
}
