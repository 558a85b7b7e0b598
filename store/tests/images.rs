//! Image index: names, ids, rmi semantics and concurrent updates.

use std::collections::BTreeSet;
use std::process::Command;

use builder_store::{Digest, ImageRecord, Store, StoreError};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn record(seed: &str) -> ImageRecord {
    ImageRecord {
        manifest: Digest::of(format!("manifest {seed}").as_bytes()),
        config: Digest::of(format!("config {seed}").as_bytes()),
        created: "2024-01-02T03:04:05Z".to_string(),
    }
}

#[test]
fn set_get_list_and_retag() {
    let (_d, s) = store();
    let idx = s.images();
    assert_eq!(idx.get("docker.io/library/app:1").unwrap(), None);
    assert_eq!(
        idx.set("docker.io/library/app:1", record("a")).unwrap(),
        None
    );
    idx.set("docker.io/library/app:latest", record("a"))
        .unwrap();
    assert_eq!(
        idx.get("docker.io/library/app:1").unwrap(),
        Some(record("a"))
    );
    let list = idx.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0].names,
        BTreeSet::from([
            "docker.io/library/app:1".to_string(),
            "docker.io/library/app:latest".to_string()
        ])
    );
    // Moving a name to another image leaves the old image with its other name.
    assert_eq!(
        idx.set("docker.io/library/app:latest", record("b"))
            .unwrap(),
        Some(record("a"))
    );
    assert_eq!(
        idx.get("docker.io/library/app:latest").unwrap(),
        Some(record("b"))
    );
    let a = idx.get_by_id(&record("a").config).unwrap().unwrap();
    assert_eq!(
        a.names,
        BTreeSet::from(["docker.io/library/app:1".to_string()])
    );
    // Persisted: a fresh handle on the same root sees it.
    let again = Store::open(s.root()).unwrap();
    assert_eq!(again.images().list().unwrap(), idx.list().unwrap());
}

#[test]
fn remove_only_untags() {
    let (_d, s) = store();
    let idx = s.images();
    idx.set("x:1", record("a")).unwrap();
    assert_eq!(idx.remove("x:1").unwrap(), Some(record("a")));
    assert_eq!(idx.remove("x:1").unwrap(), None);
    assert_eq!(idx.get("x:1").unwrap(), None);
    let dangling = idx.get_by_id(&record("a").config).unwrap().unwrap();
    assert!(dangling.names.is_empty());
}

#[test]
fn rmi_by_name_deletes_record_with_last_name() {
    let (_d, s) = store();
    let idx = s.images();
    idx.set("x:1", record("a")).unwrap();
    idx.set("x:2", record("a")).unwrap();
    let r = idx.rmi_name("x:1").unwrap();
    assert_eq!((r.untagged, r.deleted), (vec!["x:1".to_string()], None));
    let r = idx.rmi_name("x:2").unwrap();
    assert_eq!(
        (r.untagged, r.deleted),
        (vec!["x:2".to_string()], Some(record("a").config))
    );
    assert!(idx.list().unwrap().is_empty());
    assert!(matches!(idx.rmi_name("x:2"), Err(StoreError::ImageNotFound(n)) if n == "x:2"));
}

#[test]
fn rmi_by_id_needs_force_for_multiple_names() {
    let (_d, s) = store();
    let idx = s.images();
    let id = record("a").config;
    idx.set("x:1", record("a")).unwrap();
    idx.set("y:1", record("a")).unwrap();
    assert!(matches!(
        idx.rmi_id(&id.short(), false),
        Err(StoreError::ImageInUse { .. })
    ));
    let r = idx.rmi_id(&id.short(), true).unwrap();
    assert_eq!(r.untagged, vec!["x:1".to_string(), "y:1".to_string()]);
    assert_eq!(r.deleted, Some(id));
    assert!(idx.list().unwrap().is_empty());
    // A dangling image goes without force.
    idx.add_untagged(record("b")).unwrap();
    let r = idx.rmi_id(&record("b").config.to_string(), false).unwrap();
    assert_eq!((r.untagged.len(), r.deleted), (0, Some(record("b").config)));
}

#[test]
fn id_prefix_lookup() {
    let (_d, s) = store();
    let idx = s.images();
    // Find two seeds whose ids share a first hex digit but differ later.
    let a = record("a");
    let b = (0..)
        .map(|i| record(&format!("b{i}")))
        .find(|r| r.config.hex()[..1] == a.config.hex()[..1])
        .unwrap();
    idx.set("a:1", a.clone()).unwrap();
    idx.set("b:1", b.clone()).unwrap();
    idx.set("a:2", a.clone()).unwrap();
    let first = &a.config.hex()[..1];
    assert!(matches!(
        idx.find_by_id_prefix(first),
        Err(StoreError::AmbiguousId { count: 2, .. })
    ));
    assert_eq!(
        idx.find_by_id_prefix(&a.config.short()).unwrap(),
        Some(a.config)
    );
    assert_eq!(
        idx.find_by_id_prefix(&a.config.short().to_uppercase())
            .unwrap(),
        Some(a.config)
    );
    assert_eq!(
        idx.find_by_id_prefix(&format!("sha256:{}", &b.config.hex()[..20]))
            .unwrap(),
        Some(b.config)
    );
    let absent = (0..16)
        .map(|i| format!("{i:x}"))
        .find(|p| {
            !a.config.hex().starts_with(p.as_str()) && !b.config.hex().starts_with(p.as_str())
        })
        .unwrap();
    assert_eq!(idx.find_by_id_prefix(&absent).unwrap(), None);
    assert!(matches!(
        idx.find_by_id_prefix("xyz"),
        Err(StoreError::InvalidIdPrefix(_))
    ));
    assert!(matches!(
        idx.find_by_id_prefix(""),
        Err(StoreError::InvalidIdPrefix(_))
    ));
}

#[test]
fn concurrent_threads_never_lose_names() {
    let (_d, s) = store();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            // Separate Store handles: each opens its own lock file description,
            // so flock really arbitrates between them.
            let s = Store::open(s.root()).unwrap();
            std::thread::spawn(move || {
                for i in 0..25 {
                    s.images()
                        .set(&format!("t{t}:{i}"), record(&format!("{t}-{i}")))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(s.images().list().unwrap().len(), 100);
}

/// Child mode of `concurrent_processes_never_lose_names`: adds names in a loop.
#[test]
fn index_writer_child() {
    let (Ok(root), Ok(tag)) = (
        std::env::var("BUILDER_TEST_ROOT"),
        std::env::var("BUILDER_TEST_TAG"),
    ) else {
        return;
    };
    let s = Store::open(std::path::Path::new(&root)).unwrap();
    for i in 0..25 {
        s.images()
            .set(&format!("{tag}:{i}"), record(&format!("{tag}-{i}")))
            .unwrap();
    }
}

#[test]
fn concurrent_processes_never_lose_names() {
    let (_d, s) = store();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..3)
        .map(|p| {
            Command::new(&exe)
                .args(["--exact", "index_writer_child", "--test-threads=1"])
                .env("BUILDER_TEST_ROOT", s.root())
                .env("BUILDER_TEST_TAG", format!("p{p}"))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(s.images().list().unwrap().len(), 75);
}

#[test]
fn refused_rmi_leaves_index_file_untouched() {
    let (_d, s) = store();
    let idx = s.images();
    idx.set("x:1", record("a")).unwrap();
    idx.set("y:1", record("a")).unwrap();
    let path = s.root().join("images.json");
    let before = std::fs::metadata(&path).unwrap().modified().unwrap();
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
    assert!(idx.rmi_id(&record("a").config.short(), false).is_err());
    assert!(idx.rmi_name("nope:1").is_err());
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&after),
        ino,
        "not replaced"
    );
    assert_eq!(after.modified().unwrap(), before);
}

/// A rebuild tags the image its name already has: the file is left as it is (no rewrite, no
/// fsyncs), and a real change still replaces it.
#[test]
fn setting_a_name_to_the_image_it_has_leaves_the_file_alone() {
    use std::os::unix::fs::MetadataExt;
    let (_d, s) = store();
    let idx = s.images();
    idx.set("x:1", record("a")).unwrap();
    let path = s.root().join("images.json");
    let ino = std::fs::metadata(&path).unwrap().ino();
    assert_eq!(idx.set("x:1", record("a")).unwrap(), Some(record("a")));
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), ino, "rewritten");
    idx.set("x:1", record("b")).unwrap();
    assert_ne!(
        std::fs::metadata(&path).unwrap().ino(),
        ino,
        "not rewritten"
    );
    assert_eq!(idx.get("x:1").unwrap(), Some(record("b")));
}
