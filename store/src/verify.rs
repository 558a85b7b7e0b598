//! Checking the store against what it claims (`builder cache verify`): every blob hashes to its
//! name, every unpacked snapshot is a directory, and every image's manifest, config and layers
//! are present and intact. Cache records belong to the solver, which checks them on top of this
//! (their layer blobs, and that each blob decompresses to the diff id the record names).
//!
//! What a killed process can leave, and why only this needs checking: blobs are written to
//! `tmp/`, fsynced and hard-linked into place, snapshots are unpacked to `snapshots/.unpack-*`
//! and renamed, step diffs are complete before they are renamed into `snapshots/`, and the image
//! index is replaced by rename. So an interruption leaves leftovers (cleaned by
//! [`crate::gc::sweep_leftovers`], not corruption) and never a half-visible object; what this
//! module finds is damage from outside (a disk error, a file edited in place).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use crate::gc::{ConfigRefs, GcError, ManifestRefs, read_entries, remove_tree};
use crate::{Digest, Store, StoreError};

/// A blob that does not hold what its name says.
#[derive(Debug, Clone)]
pub struct BadBlob {
    pub digest: Digest,
    pub reason: String,
}

/// A blob an image needs that is missing or damaged.
#[derive(Debug, Clone)]
pub struct ImageProblem {
    /// The image id (its config digest).
    pub image: Digest,
    pub names: BTreeSet<String>,
    pub blob: Digest,
    /// "manifest", "config" or "layer".
    pub role: &'static str,
    pub reason: String,
    /// The diff id of a layer, when the config says: the snapshot unpacked from it.
    pub diff_id: Option<Digest>,
}

/// What [`check_store`] found.
#[derive(Debug, Default)]
pub struct StoreCheck {
    pub blobs: usize,
    pub blob_bytes: u64,
    pub bad_blobs: Vec<BadBlob>,
    /// `snapshots/<diff id>` entries that are not directories.
    pub bad_snapshots: Vec<PathBuf>,
    pub images: usize,
    pub image_problems: Vec<ImageProblem>,
}

impl StoreCheck {
    pub fn is_clean(&self) -> bool {
        self.bad_blobs.is_empty() && self.bad_snapshots.is_empty() && self.image_problems.is_empty()
    }

    /// Why a blob is unusable: damaged (found by the check) or missing. None when it is fine.
    pub fn blob_problem(&self, store: &Store, digest: &Digest) -> Option<String> {
        if let Some(bad) = self.bad_blobs.iter().find(|b| b.digest == *digest) {
            return Some(bad.reason.clone());
        }
        (!store.blobs().contains(digest)).then(|| "missing".to_string())
    }
}

/// Re-hashes every blob, then walks every image. Read-only.
pub fn check_store(store: &Store) -> Result<StoreCheck, GcError> {
    let mut check = StoreCheck::default();
    for digest in store.blobs().list()? {
        let digest = digest?;
        check.blobs += 1;
        check.blob_bytes += store.blobs().size(&digest).unwrap_or(0);
        match store.blobs().verify(&digest) {
            Ok(()) => {}
            Err(StoreError::Corrupted { actual, .. }) => check.bad_blobs.push(BadBlob {
                digest,
                reason: format!("content hashes to {actual}"),
            }),
            Err(e) => check.bad_blobs.push(BadBlob {
                digest,
                reason: e.to_string(),
            }),
        }
    }
    for (path, name, meta) in read_entries(&store.snapshots_dir())? {
        if Digest::from_hex(&name).is_ok() && !meta.is_dir() {
            check.bad_snapshots.push(path);
        }
    }
    for entry in store.images().list()? {
        check.images += 1;
        let mut walk = ImageWalk {
            store,
            image: entry.record.config,
            names: &entry.names,
            problems: Vec::new(),
        };
        walk.blob(&check, &entry.record.config, "config", None);
        walk.manifest(&check, &entry.record.manifest, true);
        check.image_problems.extend(walk.problems);
    }
    Ok(check)
}

struct ImageWalk<'a> {
    store: &'a Store,
    image: Digest,
    names: &'a BTreeSet<String>,
    problems: Vec<ImageProblem>,
}

impl ImageWalk<'_> {
    /// Records a problem unless the blob is fine; returns whether it is.
    fn blob(
        &mut self,
        check: &StoreCheck,
        digest: &Digest,
        role: &'static str,
        diff_id: Option<Digest>,
    ) -> bool {
        let Some(reason) = check.blob_problem(self.store, digest) else {
            return true;
        };
        let duplicate = self.problems.iter().any(|p| p.blob == *digest);
        if !duplicate {
            self.problems.push(ImageProblem {
                image: self.image,
                names: self.names.clone(),
                blob: *digest,
                role,
                reason,
                diff_id,
            });
        }
        false
    }

    /// A manifest or index and what it names. An index's child manifests for platforms that
    /// were never pulled are absent by design; only the top one must exist.
    fn manifest(&mut self, check: &StoreCheck, digest: &Digest, top: bool) {
        if !top && !self.store.blobs().contains(digest) {
            return;
        }
        if !self.blob(check, digest, "manifest", None) {
            return;
        }
        let refs: ManifestRefs = match self
            .store
            .blobs()
            .read(digest)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(refs) => refs,
            Err(reason) => {
                self.problems.push(ImageProblem {
                    image: self.image,
                    names: self.names.clone(),
                    blob: *digest,
                    role: "manifest",
                    reason: format!("unreadable: {reason}"),
                    diff_id: None,
                });
                return;
            }
        };
        for child in &refs.manifests {
            self.manifest(check, &child.digest, false);
        }
        let mut diff_ids = Vec::new();
        if let Some(config) = &refs.config
            && self.blob(check, &config.digest, "config", None)
            && let Ok(bytes) = self.store.blobs().read(&config.digest)
            && let Ok(ConfigRefs {
                rootfs: Some(rootfs),
            }) = serde_json::from_slice(&bytes)
        {
            diff_ids = rootfs.diff_ids;
        }
        for (n, layer) in refs.layers.iter().enumerate() {
            self.blob(check, &layer.digest, "layer", diff_ids.get(n).copied());
        }
    }
}

/// What [`repair_store`] removed.
#[derive(Debug, Default)]
pub struct StoreRepair {
    pub blobs: Vec<Digest>,
    pub snapshots: Vec<PathBuf>,
    /// Image records dropped because blobs they need are gone: (id, names).
    pub images: Vec<(Digest, BTreeSet<String>)>,
}

/// Removes the damaged blobs and snapshots `check` found, the snapshots unpacked from damaged
/// image layers, and the records of images that can no longer be read. Call it holding
/// [`crate::gc::exclusive_lease`]. Every removed image is in the result, for the caller to report:
/// an image's data never goes silently.
pub fn repair_store(store: &Store, check: &StoreCheck) -> Result<StoreRepair, GcError> {
    let mut repair = StoreRepair::default();
    for bad in &check.bad_blobs {
        if store.blobs().delete(&bad.digest)? {
            repair.blobs.push(bad.digest);
        }
    }
    for path in &check.bad_snapshots {
        remove_tree(path)?;
        repair.snapshots.push(path.clone());
    }
    let mut broken: HashMap<Digest, BTreeSet<String>> = HashMap::new();
    for problem in &check.image_problems {
        if let Some(diff_id) = problem.diff_id {
            repair.snapshots.extend(remove_snapshot(store, &diff_id)?);
        }
        broken.insert(problem.image, problem.names.clone());
    }
    for (id, names) in broken {
        match store.images().rmi_id(&id.hex(), true) {
            Ok(_) | Err(StoreError::ImageNotFound(_)) => repair.images.push((id, names)),
            Err(e) => return Err(e.into()),
        }
    }
    repair.images.sort();
    Ok(repair)
}

/// Removes `snapshots/<diff_id>` if present; returns its path when it was.
pub fn remove_snapshot(store: &Store, diff_id: &Digest) -> Result<Option<PathBuf>, GcError> {
    let path = store.snapshots_dir().join(diff_id.hex());
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(None);
    }
    remove_tree(&path)?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn flip_byte(store: &Store, d: &Digest) {
        let path = store.blobs().path(d);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        bytes[0] ^= 0xff;
        fs::write(&path, bytes).unwrap();
    }

    #[test]
    fn finds_and_removes_damaged_blobs_and_reports_images_needing_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let layer = store.blobs().put_bytes(b"layer bytes").unwrap();
        let diff_id = Digest::of(b"diff");
        let config = serde_json::json!({"rootfs": {"type": "layers", "diff_ids": [diff_id]}});
        let config = store
            .blobs()
            .put_bytes(config.to_string().as_bytes())
            .unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "config": {"digest": config, "size": 1, "mediaType": "x"},
            "layers": [{"digest": layer, "size": 1, "mediaType": "x"}],
        });
        let manifest = store
            .blobs()
            .put_bytes(manifest.to_string().as_bytes())
            .unwrap();
        let unrelated = store.blobs().put_bytes(b"unrelated").unwrap();
        store
            .images()
            .set(
                "img:1",
                crate::ImageRecord {
                    manifest,
                    config,
                    created: String::new(),
                },
            )
            .unwrap();
        fs::create_dir_all(store.snapshots_dir().join(diff_id.hex())).unwrap();
        let clean = check_store(&store).unwrap();
        assert!(clean.is_clean(), "{clean:?}");
        assert_eq!((clean.blobs, clean.images), (4, 1));

        flip_byte(&store, &layer);
        flip_byte(&store, &unrelated);
        let check = check_store(&store).unwrap();
        let mut bad: Vec<Digest> = check.bad_blobs.iter().map(|b| b.digest).collect();
        bad.sort();
        let mut want = vec![layer, unrelated];
        want.sort();
        assert_eq!(bad, want);
        assert_eq!(check.image_problems.len(), 1);
        assert_eq!(check.image_problems[0].role, "layer");
        assert_eq!(check.image_problems[0].diff_id, Some(diff_id));

        let repair = repair_store(&store, &check).unwrap();
        assert_eq!(repair.blobs.len(), 2);
        assert_eq!(repair.images.len(), 1);
        assert!(repair.images[0].1.contains("img:1"));
        assert!(!store.snapshots_dir().join(diff_id.hex()).exists());
        assert!(store.images().get("img:1").unwrap().is_none());
        assert!(check_store(&store).unwrap().is_clean());
    }
}
