//! apply → prepare → modify rootfs → finish → write_layer, with both snapshotters.
//! Needs real root, or root in a user namespace with its own mount namespace
//! (`unshare --user --map-root-user --mount`) for the overlay half.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use builder_snapshot::{
    Compression, LayerOptions, Snapshotter, apply_layer, detect_snapshotter, prepare, write_layer,
};
use common::*;

const EPOCH: i64 = 1_700_000_000;

/// The layer of the step in `modify`, as overlayfs's upper dir produces it.
const EXPECTED_ENTRIES: [&str; 12] = [
    ".wh.delete-me",
    "cache/",
    "cache/.wh..wh..opq",
    "cache/z",
    "etc/",
    "etc/passwd", // chmod to the same mode: overlayfs copies it up anyway
    "etc/shadow",
    "hardlinked",
    "keep/",
    "keep/k",
    "keep/untouched", // linked to: copied up
    "new.txt",
];

fn layer_opts() -> LayerOptions {
    LayerOptions {
        source_date_epoch: Some(EPOCH),
        compression: Compression::Gzip { level: 6 },
        exclude_empty_mountpoints: vec!["dev".into(), "proc".into()],
    }
}

/// Two lower layers: the base, and one that deletes and overrides parts of it.
fn lowers(root: &Path) -> Vec<PathBuf> {
    let base = root.join("layer-base");
    let top = root.join("layer-top");
    for d in [&base, &top] {
        fs::create_dir(d).unwrap();
    }
    let tar = TarBuilder::default()
        .dir("etc/", 0o755)
        .file("etc/passwd", 0o644, b"root:x:0:0\n")
        .file("etc/shadow", 0o600, b"secret")
        .file("delete-me", 0o644, b"d")
        .dir("cache/", 0o755)
        .file("cache/a", 0o644, b"a")
        .file("cache/b", 0o644, b"b")
        .dir("keep/", 0o755)
        .file("keep/k", 0o644, b"old")
        .file("keep/untouched", 0o644, b"u")
        .dir("reset/", 0o755)
        .file("reset/hidden", 0o644, b"h")
        .file("masked", 0o644, b"m")
        .finish();
    apply_layer(&tar[..], &base).unwrap();
    let tar = TarBuilder::default()
        .file(".wh.masked", 0o644, b"")
        .dir("reset/", 0o755)
        .file("reset/.wh..wh..opq", 0o644, b"")
        .file("reset/visible", 0o644, b"v")
        .file("etc/passwd", 0o644, b"root:x:0:0\nuser:x:1:1\n")
        .finish();
    apply_layer(&tar[..], &top).unwrap();
    vec![top, base]
}

/// What a RUN step might do.
fn modify(rootfs: &Path) {
    fs::write(rootfs.join("new.txt"), b"new").unwrap();
    fs::write(rootfs.join("keep/k"), b"new contents").unwrap();
    fs::remove_file(rootfs.join("delete-me")).unwrap();
    fs::remove_dir_all(rootfs.join("cache")).unwrap();
    fs::create_dir(rootfs.join("cache")).unwrap();
    fs::write(rootfs.join("cache/z"), b"z").unwrap();
    fs::set_permissions(rootfs.join("etc/shadow"), fs::Permissions::from_mode(0o640)).unwrap();
    // metadata-only operations that change nothing visible still copy up in overlayfs
    fs::set_permissions(rootfs.join("etc/passwd"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::hard_link(rootfs.join("keep/untouched"), rootfs.join("hardlinked")).unwrap();
    // what the sandbox creates as mount points
    fs::create_dir(rootfs.join("dev")).unwrap();
    fs::create_dir(rootfs.join("proc")).unwrap();
}

fn round_trip(kind: Snapshotter) -> (Vec<u8>, std::collections::BTreeMap<String, String>) {
    let t = tempfile::tempdir().unwrap();
    let lowers = lowers(t.path());
    let work = t.path().join("work");
    fs::create_dir(&work).unwrap();
    let snap = prepare(kind, &lowers, &work).unwrap();
    assert_eq!(snap.kind(), kind);
    let merged_before = tree(snap.rootfs());
    modify(snap.rootfs());
    let diff = snap.finish().unwrap();
    let mut bytes = Vec::new();
    write_layer(&diff, &mut bytes, &layer_opts()).unwrap();
    fs::remove_dir_all(&diff).unwrap();
    // Scratch dirs are removed in the background; a build waits for that before it ends.
    builder_snapshot::wait_for_removals();
    assert!(
        fs::read_dir(&work).unwrap().next().is_none(),
        "finish left files in the work root"
    );
    (bytes, merged_before)
}

fn decode(gz: &[u8]) -> Vec<Ent> {
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut plain).unwrap();
    read_tar(&plain)
}

fn require_overlay() {
    let scratch = tempfile::tempdir().unwrap();
    assert_eq!(
        detect_snapshotter(scratch.path()),
        Snapshotter::Overlay,
        "overlay with userxattr must mount here (run as root, or under `unshare --user --map-root-user --mount`)"
    );
}

#[test]
fn overlay_round_trip_gives_exactly_the_expected_entries() {
    require_overlay();
    let (bytes, merged) = round_trip(Snapshotter::Overlay);
    // The merged view applied whiteouts and the opaque dir of the top layer.
    assert!(!merged.contains_key("masked"));
    assert!(!merged.contains_key("reset/hidden"));
    assert_eq!(merged["reset/visible"], "file:v 644 0:0");
    assert_eq!(
        merged["etc/passwd"],
        "file:root:x:0:0\nuser:x:1:1\n 644 0:0"
    );
    let ents = decode(&bytes);
    assert_eq!(names(&ents), EXPECTED_ENTRIES);
    let by = |n: &str| ents.iter().find(|e| e.name == n).unwrap();
    assert_eq!(by("etc/shadow").mode, 0o640);
    assert_eq!(by("etc/shadow").data, b"secret");
    assert_eq!(by("keep/k").data, b"new contents");
    assert_eq!(by("new.txt").data, b"new");
    // the first name in byte order carries the content
    assert_eq!(by("hardlinked").kind, 'f');
    assert_eq!(by("keep/untouched").kind, 'h');
    assert_eq!(by("keep/untouched").link.as_deref(), Some("hardlinked"));
    assert!(ents.iter().all(|e| e.mtime <= EPOCH as u64));
}

#[test]
fn copy_round_trip_gives_the_same_layer_bytes_as_overlay() {
    require_overlay();
    let (overlay_bytes, overlay_merged) = round_trip(Snapshotter::Overlay);
    let (copy_bytes, copy_merged) = round_trip(Snapshotter::Copy);
    assert_eq!(
        copy_merged, overlay_merged,
        "both snapshotters show the same rootfs"
    );
    assert_eq!(names(&decode(&copy_bytes)), names(&decode(&overlay_bytes)));
    assert_eq!(decode(&copy_bytes), decode(&overlay_bytes));
    assert_eq!(copy_bytes, overlay_bytes);
}

#[test]
fn copy_snapshotter_alone_produces_the_expected_diff() {
    // Runs even where overlay is unavailable: the fallback must stand on its own.
    let (bytes, merged) = round_trip(Snapshotter::Copy);
    assert!(!merged.contains_key("masked") && !merged.contains_key("reset/hidden"));
    assert_eq!(names(&decode(&bytes)), EXPECTED_ENTRIES);
}

#[test]
fn copy_diff_notices_a_same_size_rewrite_with_restored_mtime() {
    let t = tempfile::tempdir().unwrap();
    let lower = t.path().join("lower");
    fs::create_dir(&lower).unwrap();
    apply_layer(
        &TarBuilder::default().file("f", 0o644, b"aaaa").finish()[..],
        &lower,
    )
    .unwrap();
    let snap = prepare(Snapshotter::Copy, std::slice::from_ref(&lower), t.path()).unwrap();
    let f = snap.rootfs().join("f");
    fs::write(&f, b"bbbb").unwrap();
    set_mtime(&f, 1000); // same size, same whole-second mtime as the lower
    let diff = snap.finish().unwrap();
    assert_eq!(fs::read(diff.join("f")).unwrap(), b"bbbb");
}

#[test]
fn from_scratch_works_with_both_snapshotters() {
    for kind in [Snapshotter::Overlay, Snapshotter::Copy] {
        if kind == Snapshotter::Overlay {
            require_overlay();
        }
        let t = tempfile::tempdir().unwrap();
        let snap = prepare(kind, &[], t.path()).unwrap();
        assert!(fs::read_dir(snap.rootfs()).unwrap().next().is_none());
        fs::write(snap.rootfs().join("hello"), b"hi").unwrap();
        let diff = snap.finish().unwrap();
        let mut out = Vec::new();
        let o = LayerOptions {
            compression: Compression::Uncompressed,
            ..layer_opts()
        };
        write_layer(&diff, &mut out, &o).unwrap();
        assert_eq!(names(&read_tar(&out)), ["hello"], "{kind:?}");
    }
}

#[test]
fn dropping_without_finish_cleans_up() {
    for kind in [Snapshotter::Overlay, Snapshotter::Copy] {
        if kind == Snapshotter::Overlay {
            require_overlay();
        }
        let t = tempfile::tempdir().unwrap();
        let lowers = lowers(t.path());
        let work = t.path().join("work");
        fs::create_dir(&work).unwrap();
        let snap = prepare(kind, &lowers, &work).unwrap();
        fs::write(snap.rootfs().join("scribble"), b"x").unwrap();
        let rootfs = snap.rootfs().to_path_buf();
        let mounts_before = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert_eq!(
            mounts_before.contains(rootfs.to_str().unwrap()),
            kind == Snapshotter::Overlay
        );
        drop(snap);
        builder_snapshot::wait_for_removals();
        assert!(
            !fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .contains(rootfs.to_str().unwrap())
        );
        assert!(
            fs::read_dir(&work).unwrap().next().is_none(),
            "{kind:?} left files behind"
        );
        // the lowers are untouched
        assert!(!lowers[0].join("scribble").exists() && !lowers[1].join("scribble").exists());
    }
}

#[test]
fn missing_lower_is_an_error_and_leaves_nothing_behind() {
    let t = tempfile::tempdir().unwrap();
    let err = prepare(Snapshotter::Copy, &[t.path().join("nope")], t.path())
        .err()
        .unwrap();
    assert!(err.to_string().contains("nope"), "{err}");
    assert!(fs::read_dir(t.path()).unwrap().next().is_none());
}

#[test]
fn overlay_upper_keeps_ownership_of_copied_up_files() {
    require_overlay();
    if !uid_mapped(1000) {
        eprintln!("uid 1000 not mapped: skipped");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let lower = t.path().join("lower");
    fs::create_dir(&lower).unwrap();
    apply_layer(
        &TarBuilder::default()
            .owned_file("o", 1000, 1000, b"1")
            .finish()[..],
        &lower,
    )
    .unwrap();
    let snap = prepare(Snapshotter::Overlay, std::slice::from_ref(&lower), t.path()).unwrap();
    fs::write(snap.rootfs().join("o"), b"2").unwrap();
    let diff = snap.finish().unwrap();
    let m = fs::symlink_metadata(diff.join("o")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1000, 1000));
}

#[test]
fn deep_layer_stacks_beyond_the_mount_option_limit_still_mount() {
    require_overlay();
    let t = tempfile::tempdir().unwrap();
    let long =
        "a-rather-long-directory-name-as-a-content-store-would-use-for-layers-0123456789abcdef";
    // As many layers as docker allows in an image (127), plus one, below a long store path: the
    // links standing in for the layers must be short too (~50 bytes each would not fit).
    const LAYERS: usize = 128;
    let work = t.path().join(format!("{long}/{long}/work"));
    fs::create_dir_all(&work).unwrap();
    let mut lowers = Vec::new();
    for i in 0..LAYERS {
        // one with characters the mount option parser would split on
        let dir = match i {
            7 => t.path().join(format!("odd,name:with={i:02}")),
            _ => t.path().join(format!("{long}-{i:03}")),
        };
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join(format!("from-{i:03}")), i.to_string()).unwrap();
        lowers.push(dir);
    }
    lowers.reverse(); // top-first
    let snap = prepare(Snapshotter::Overlay, &lowers, &work).unwrap();
    for i in 0..LAYERS {
        assert_eq!(
            fs::read_to_string(snap.rootfs().join(format!("from-{i:03}"))).unwrap(),
            i.to_string()
        );
    }
    fs::write(snap.rootfs().join("top"), b"t").unwrap();
    let diff = snap.finish().unwrap();
    assert_eq!(fs::read_dir(&diff).unwrap().count(), 1);
}

#[test]
fn detection_falls_back_to_copy_where_overlay_cannot_be_the_upper() {
    require_overlay();
    // overlayfs refuses an upper dir that itself lives on overlayfs (as in
    // many container roots): a scratch dir inside a merged view must get Copy.
    let t = tempfile::tempdir().unwrap();
    let lower = t.path().join("lower");
    fs::create_dir(&lower).unwrap();
    let snap = prepare(Snapshotter::Overlay, std::slice::from_ref(&lower), t.path()).unwrap();
    let scratch = snap.rootfs().join("scratch");
    fs::create_dir(&scratch).unwrap();
    assert_eq!(detect_snapshotter(&scratch), Snapshotter::Copy);
    // and the failed probe cleaned up after itself, leaving only its answer for the next process
    let left: Vec<_> = fs::read_dir(&scratch)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["snapshotter.v1"]);
    assert!(
        fs::read_to_string(scratch.join("snapshotter.v1"))
            .unwrap()
            .starts_with("copy ")
    );
    // the copy fallback then works there
    let inner = prepare(Snapshotter::Copy, &[], &scratch).unwrap();
    fs::write(inner.rootfs().join("x"), b"x").unwrap();
    let diff = inner.finish().unwrap();
    assert_eq!(fs::read(diff.join("x")).unwrap(), b"x");
}

#[test]
fn a_layer_path_with_option_separators_still_mounts() {
    require_overlay();
    let t = tempfile::tempdir().unwrap();
    let lower = t.path().join("sha256:abc,def");
    fs::create_dir(&lower).unwrap();
    fs::write(lower.join("f"), b"f").unwrap();
    let snap = prepare(Snapshotter::Overlay, &[lower], t.path()).unwrap();
    assert_eq!(fs::read(snap.rootfs().join("f")).unwrap(), b"f");
}
