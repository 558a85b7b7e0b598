//! Blob store behaviour: atomic writes, deduplication, verification.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use builder_store::{Digest, Store, StoreError};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("root")).unwrap();
    (dir, store)
}

#[test]
fn open_creates_layout() {
    let (_d, s) = store();
    assert!(s.root().join("blobs/sha256").is_dir());
    assert!(s.tmp_dir().is_dir());
    assert!(s.snapshots_dir().is_dir());
    assert_eq!(s.snapshots_dir(), s.root().join("snapshots"));
}

#[test]
fn put_read_roundtrip_and_metadata() {
    let (_d, s) = store();
    let d = s.blobs().put_bytes(b"hello").unwrap();
    assert_eq!(d, Digest::of(b"hello"));
    assert!(s.blobs().contains(&d));
    assert_eq!(s.blobs().size(&d).unwrap(), 5);
    assert_eq!(s.blobs().read(&d).unwrap(), b"hello");
    assert_eq!(
        s.blobs().path(&d),
        s.root().join("blobs/sha256").join(d.hex())
    );
    let mode = fs::metadata(s.blobs().path(&d))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o444, "blobs are read-only");
    // No temp file left behind.
    assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
}

#[test]
fn missing_blob_errors_name_the_digest() {
    let (_d, s) = store();
    let d = Digest::of(b"absent");
    assert!(!s.blobs().contains(&d));
    assert!(matches!(s.blobs().open(&d), Err(StoreError::BlobNotFound(x)) if x == d));
    assert!(matches!(
        s.blobs().size(&d),
        Err(StoreError::BlobNotFound(_))
    ));
    assert!(matches!(
        s.blobs().read(&d),
        Err(StoreError::BlobNotFound(_))
    ));
    assert!(!s.blobs().delete(&d).unwrap());
}

#[test]
fn writer_is_invisible_until_commit_and_drop_discards() {
    let (_d, s) = store();
    let mut w = s.blobs().writer().unwrap();
    w.write_all(b"partial").unwrap();
    w.flush().unwrap();
    assert!(w.temp_path().starts_with(s.tmp_dir()));
    assert!(!s.blobs().contains(&Digest::of(b"partial")));
    drop(w);
    assert_eq!(
        fs::read_dir(s.tmp_dir()).unwrap().count(),
        0,
        "dropped writer removes its temp file"
    );
    assert_eq!(s.blobs().list().unwrap().count(), 0);

    let mut w = s.blobs().writer().unwrap();
    w.write_all(b"ab").unwrap();
    w.write_all(b"cd").unwrap();
    assert_eq!(w.len(), 4);
    let (d, n) = w.commit().unwrap();
    assert_eq!((d, n), (Digest::of(b"abcd"), 4));
    assert_eq!(s.blobs().read(&d).unwrap(), b"abcd");
}

#[test]
fn a_prehashed_writer_stores_under_the_callers_digest_and_verify_checks_it() {
    let (_d, s) = store();
    let mut w = s.blobs().prehashed_writer().unwrap();
    w.write_all(b"layer ").unwrap();
    w.write_all(b"tar").unwrap();
    assert!(!s.blobs().contains(&Digest::of(b"layer tar")));
    let (d, n) = w.commit_as(Digest::of(b"layer tar")).unwrap();
    assert_eq!((d, n), (Digest::of(b"layer tar"), 9));
    assert_eq!(s.blobs().read(&d).unwrap(), b"layer tar");
    s.blobs().verify(&d).unwrap();
    assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);

    // A wrong claim is the caller's bug; `verify` (as `builder cache verify` runs it) finds it.
    let mut w = s.blobs().prehashed_writer().unwrap();
    w.write_all(b"other bytes").unwrap();
    let claimed = Digest::of(b"claimed");
    w.commit_as(claimed).unwrap();
    assert!(s.blobs().verify(&claimed).is_err());

    // Dropped before its commit, it leaves nothing.
    let mut w = s.blobs().prehashed_writer().unwrap();
    w.write_all(b"partial").unwrap();
    drop(w);
    assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
}

#[test]
fn commit_expecting_rejects_wrong_content() {
    let (_d, s) = store();
    let mut w = s.blobs().writer().unwrap();
    w.write_all(b"actual").unwrap();
    let err = w.commit_expecting(&Digest::of(b"claimed")).unwrap_err();
    assert!(
        matches!(err, StoreError::DigestMismatch { actual, size: 6, .. } if actual == Digest::of(b"actual"))
    );
    assert!(!s.blobs().contains(&Digest::of(b"actual")));
    assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
}

#[test]
fn existing_blob_is_never_rewritten() {
    let (_d, s) = store();
    let d = s.blobs().put_bytes(b"same").unwrap();
    let ino = |p| {
        fs::metadata(p)
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap()
    };
    let before = ino(s.blobs().path(&d));
    s.blobs().put_bytes(b"same").unwrap();
    let mut w = s.blobs().writer().unwrap();
    w.write_all(b"same").unwrap();
    w.commit().unwrap();
    assert_eq!(ino(s.blobs().path(&d)), before);
}

#[test]
fn concurrent_writers_of_the_same_blob_all_succeed() {
    let (_d, s) = store();
    let content: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let expected = Digest::of(&content);
    let content = Arc::new(content);
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (s, content, barrier) = (s.clone(), content.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut w = s.blobs().writer().unwrap();
                barrier.wait();
                for chunk in content.chunks(65_536) {
                    w.write_all(chunk).unwrap();
                }
                w.commit().unwrap()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), (expected, 2_000_000));
    }
    s.blobs().verify(&expected).unwrap();
    assert_eq!(
        s.blobs()
            .list()
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap(),
        vec![expected]
    );
    assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
}

#[test]
fn verify_and_read_detect_corruption() {
    let (_d, s) = store();
    let d = s.blobs().put_bytes(b"pristine content").unwrap();
    s.blobs().verify(&d).unwrap();
    let path = s.blobs().path(&d);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, b"tampered content").unwrap();
    let err = s.blobs().verify(&d).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupted { digest, actual } if digest == d && actual == Digest::of(b"tampered content"))
    );
    assert!(matches!(
        s.blobs().read(&d),
        Err(StoreError::Corrupted { .. })
    ));
}

#[test]
fn commit_file_rehashes_and_moves() {
    let (_d, s) = store();
    let tmp = s.tmp_dir().join("download");
    fs::write(&tmp, b"layer bytes").unwrap();
    let wrong = Digest::of(b"something else");
    assert!(matches!(
        s.blobs().commit_file(&tmp, &wrong),
        Err(StoreError::DigestMismatch { .. })
    ));
    assert!(tmp.exists(), "a rejected file is left for the caller");
    let d = Digest::of(b"layer bytes");
    s.blobs().commit_file(&tmp, &d).unwrap();
    assert!(!tmp.exists());
    assert_eq!(s.blobs().read(&d).unwrap(), b"layer bytes");
    // Committing identical content again is a no-op success.
    fs::write(&tmp, b"layer bytes").unwrap();
    s.blobs().commit_file(&tmp, &d).unwrap();
    assert!(!tmp.exists());
}

#[test]
fn list_and_delete() {
    let (_d, s) = store();
    let a = s.blobs().put_bytes(b"a").unwrap();
    let b = s.blobs().put_bytes(b"b").unwrap();
    fs::write(s.root().join("blobs/sha256/not-a-digest"), b"x").unwrap();
    let mut listed = s
        .blobs()
        .list()
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    listed.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(listed, want);
    assert!(s.blobs().delete(&a).unwrap());
    assert!(!s.blobs().contains(&a));
}

#[test]
fn torn_temp_files_are_ignored_then_cleaned_by_age() {
    let (_d, s) = store();
    fs::write(s.tmp_dir().join("blob-torn"), b"half a lay").unwrap();
    assert_eq!(s.blobs().list().unwrap().count(), 0);
    assert_eq!(
        s.clean_tmp(Duration::from_secs(3600)).unwrap(),
        0,
        "young files may be in use"
    );
    assert_eq!(s.clean_tmp(Duration::ZERO).unwrap(), 1);
    assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
}

#[test]
fn read_refuses_huge_blobs() {
    let (_d, s) = store();
    let mut w = s.blobs().writer().unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..65 {
        w.write_all(&chunk).unwrap();
    }
    let (d, _) = w.commit().unwrap();
    assert!(matches!(
        s.blobs().read(&d),
        Err(StoreError::BlobTooLarge { .. })
    ));
}
