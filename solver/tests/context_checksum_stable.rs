//! The context checksum is part of every COPY's cache key, so the bytes it hashes must not
//! change when the code that walks the context does: these digests were computed by the
//! version that held relative paths as strings, and a store built by it must keep its cache.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use builder_frontend::dockerignore::IgnoreMatcher;
use builder_solver::SourceTree;

fn write(root: &Path, rel: &str, content: &str, mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// UTF-8 names whose byte order and component order differ (`a-b` sorts before `a/b` as bytes,
/// after it by components), nested directories, an exclusion with an exception, a symlink,
/// non-ASCII UTF-8, a wildcard selection and a file named directly.
#[test]
fn checksums_of_utf8_names_are_those_earlier_versions_stored() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ctx");
    write(&root, "a/b", "ab", 0o644);
    write(&root, "a-b", "a-b", 0o600);
    write(&root, "a/c/d.txt", "deep", 0o755);
    write(&root, "a/c/skip.log", "log", 0o644);
    write(&root, "a/c/keep.log", "keep", 0o644);
    write(&root, "a/été", "utf-8", 0o644);
    write(&root, "a.b", "dot", 0o644);
    symlink("c/d.txt", root.join("a/link")).unwrap();
    for d in ["a", "a/c"] {
        fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let ignore = IgnoreMatcher::parse("**/*.log\n!**/keep.log\n").unwrap();
    let tree = SourceTree::new(&root, Some(&ignore));
    let hex = |patterns: &[&str]| {
        let p: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        tree.checksum(&p).unwrap().hex()
    };
    assert_eq!(
        hex(&["."]),
        "8604142f0dee0ba78574cafc1ed817d9179a97259117d689e308f24f56deb96f"
    );
    assert_eq!(
        hex(&["a*", "a/c/d.txt"]),
        "0eb0f098dfa6c721ed72168f8280f7ab5db74b277b7fe75f717395d9df45917c"
    );
}
