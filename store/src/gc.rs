//! Garbage collection of the store: what images keep alive, which cache records a prune
//! selects, and the sweep that deletes every blob and snapshot nothing references any more.
//!
//! Cache records belong to the solver, so this module sees them only as [`CacheItem`]s; the
//! caller deletes the records [`select`] picks and then calls [`sweep`] with the roots that
//! remain (the surviving records' layers plus the images' blobs from [`image_roots`]).
//!
//! Concurrency: a prune holds an exclusive flock on `<root>/gc.lock` ([`exclusive_lease`]) and
//! every build holds a shared one ([`build_lease`]), so a sweep never deletes a blob that a running
//! build has written but not yet recorded.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use fs2::FileExt;

use crate::{Digest, ImageEntry, Store, StoreError};

/// Entries in `tmp/`, `work/` and `snapshots/.unpack-*` younger than this may belong to a live
/// writer that does not hold a lease (e.g. a pull), so a sweep leaves them alone.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

/// Entries of `work/` that builds share and keep on purpose (the solver's read-only layer of
/// sandbox mount points, `mountpoints-v<N>`, and the snapshotter probe's remembered answer,
/// `snapshotter.v<N>`): not leftovers, however old.
const WORK_KEEP_PREFIXES: [&str; 2] = ["mountpoints-", "snapshotter."];

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("image manifest {digest}: {source}")]
    Manifest {
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: refusing to delete across a mount point")]
    MountPoint { path: PathBuf },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> GcError {
    let path = path.to_path_buf();
    move |source| GcError::Io { op, path, source }
}

/// A held flock on `<root>/gc.lock`; dropping it releases the lock.
#[derive(Debug)]
pub struct Lease {
    _file: File,
}

fn open_gc_lock(root: &Path) -> Result<File, GcError> {
    fs::create_dir_all(root).map_err(io_err("create directory", root))?;
    let path = crate::gc_lock_file(root);
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err("open", &path))
}

/// The shared lock a build holds from start to finish: many builds run together, a prune waits.
pub fn build_lease(root: &Path) -> Result<Lease, GcError> {
    let file = open_gc_lock(root)?;
    file.lock_shared()
        .map_err(io_err("flock (shared)", &crate::gc_lock_file(root)))?;
    Ok(Lease { _file: file })
}

/// The exclusive lock a prune holds: it waits for running builds and keeps new ones out.
pub fn exclusive_lease(root: &Path) -> Result<Lease, GcError> {
    let file = open_gc_lock(root)?;
    file.lock_exclusive()
        .map_err(io_err("flock (exclusive)", &crate::gc_lock_file(root)))?;
    Ok(Lease { _file: file })
}

/// Like [`exclusive_lease`] but never waits: None while any build holds its lease.
pub fn try_exclusive_lease(root: &Path) -> Result<Option<Lease>, GcError> {
    let file = open_gc_lock(root)?;
    match file.try_lock_exclusive() {
        Ok(()) => Ok(Some(Lease { _file: file })),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(io_err("flock (exclusive)", &crate::gc_lock_file(root))(e)),
    }
}

/// What must survive a sweep: blobs by digest, unpacked layers by diff_id.
#[derive(Debug, Default, Clone)]
pub struct Roots {
    pub blobs: HashSet<Digest>,
    pub diff_ids: HashSet<Digest>,
}

impl Roots {
    /// Keeps a layer: its blob and its unpacked snapshot.
    pub fn add_layer(&mut self, blob: Digest, diff_id: Digest) {
        self.blobs.insert(blob);
        self.diff_ids.insert(diff_id);
    }

    pub fn extend(&mut self, other: &Roots) {
        self.blobs.extend(other.blobs.iter().copied());
        self.diff_ids.extend(other.diff_ids.iter().copied());
    }
}

/// Everything the images `keep` accepts reference: manifest (and, for an index, its child
/// manifests that are stored), config, layer blobs, and the configs' diff_ids.
pub fn image_roots(store: &Store, keep: impl Fn(&ImageEntry) -> bool) -> Result<Roots, GcError> {
    let mut roots = Roots::default();
    for entry in store.images().list()? {
        if keep(&entry) {
            add_manifest(store, &entry.record.manifest, &mut roots)?;
            // The record's config is the image id; keep it even if the manifest were unreadable.
            roots.blobs.insert(entry.record.config);
        }
    }
    Ok(roots)
}

/// The parts of a manifest or index that name other blobs. Read loosely (serde ignores the rest)
/// so OCI and Docker flavours, and indexes, all parse.
#[derive(serde::Deserialize)]
pub(crate) struct ManifestRefs {
    #[serde(default)]
    pub(crate) config: Option<DescriptorRef>,
    #[serde(default)]
    pub(crate) layers: Vec<DescriptorRef>,
    #[serde(default)]
    pub(crate) manifests: Vec<DescriptorRef>,
}

#[derive(serde::Deserialize)]
pub(crate) struct DescriptorRef {
    pub(crate) digest: Digest,
}

#[derive(serde::Deserialize)]
pub(crate) struct ConfigRefs {
    #[serde(default)]
    pub(crate) rootfs: Option<RootfsRefs>,
}

#[derive(serde::Deserialize)]
pub(crate) struct RootfsRefs {
    #[serde(default)]
    pub(crate) diff_ids: Vec<Digest>,
}

fn add_manifest(store: &Store, digest: &Digest, roots: &mut Roots) -> Result<(), GcError> {
    if !roots.blobs.insert(*digest) || !store.blobs().contains(digest) {
        // Already walked, or an index child for another platform that was never pulled.
        return Ok(());
    }
    let bytes = store.blobs().read(digest)?;
    let refs: ManifestRefs =
        serde_json::from_slice(&bytes).map_err(|source| GcError::Manifest {
            digest: *digest,
            source,
        })?;
    for child in &refs.manifests {
        add_manifest(store, &child.digest, roots)?;
    }
    roots.blobs.extend(refs.layers.iter().map(|l| l.digest));
    if let Some(config) = refs.config {
        roots.blobs.insert(config.digest);
        if store.blobs().contains(&config.digest) {
            let bytes = store.blobs().read(&config.digest)?;
            // A config we cannot parse still keeps its blobs; only its diff_ids are unknown.
            if let Ok(ConfigRefs {
                rootfs: Some(rootfs),
            }) = serde_json::from_slice(&bytes)
            {
                roots.diff_ids.extend(rootfs.diff_ids);
            }
        }
    }
    Ok(())
}

/// A cache record (or cache mount) as GC sees it.
#[derive(Debug, Clone)]
pub struct CacheItem {
    /// The layer blob the record points at. None: bytes of its own (a cache mount's directory),
    /// or none at all (a step that added no layer, size 0).
    pub blob: Option<Digest>,
    pub size: u64,
    pub last_used: SystemTime,
    /// Whether a named image references the record's layer: such records are not reclaimable.
    pub in_use: bool,
}

/// How stale a cache record's last-use time may be: a hit on a record used less than this long
/// ago does not write the time again (each write appended a page to the cache index's WAL on
/// every rebuild). `until` allows for it, so a prune never removes a record used within the
/// duration it was given; it may keep one up to this much longer.
pub const LAST_USE_GRANULARITY: Duration = Duration::from_secs(60);

/// Which records a prune removes.
#[derive(Debug, Clone, Default)]
pub struct PrunePolicy {
    /// Also remove records that named images use (their blobs stay while the images do).
    pub all: bool,
    /// Only records not used for at least this long (`--filter until=24h`).
    pub until: Option<Duration>,
    /// Stop once the cache's storage is at most this many bytes (`--keep-storage`).
    pub keep_storage: Option<u64>,
}

/// Bytes the items occupy, counting a layer blob shared by several records once.
pub fn storage(items: &[&CacheItem]) -> u64 {
    let mut seen = HashSet::new();
    items
        .iter()
        .filter(|i| i.blob.is_none_or(|b| seen.insert(b)))
        .map(|i| i.size)
        .sum()
}

/// Indices of the items `policy` removes. Candidates are taken least recently used first; with
/// `keep_storage`, removal stops as soon as the remaining records fit.
pub fn select(items: &[CacheItem], policy: &PrunePolicy, now: SystemTime) -> Vec<usize> {
    let old_enough = |i: &CacheItem| match policy.until {
        Some(min_age) => now
            .duration_since(i.last_used)
            .is_ok_and(|age| age >= min_age + LAST_USE_GRANULARITY),
        None => true,
    };
    let mut candidates: Vec<usize> = (0..items.len())
        .filter(|&n| (policy.all || !items[n].in_use) && old_enough(&items[n]))
        .collect();
    candidates.sort_by_key(|&n| items[n].last_used);
    let Some(limit) = policy.keep_storage else {
        return candidates;
    };
    // Records per blob, so removing one record frees its blob only with the last of them.
    let mut users: HashMap<Option<Digest>, usize> = HashMap::new();
    for i in items {
        *users.entry(i.blob).or_default() += 1;
    }
    let all: Vec<&CacheItem> = items.iter().collect();
    let mut remaining = storage(&all);
    let mut removed = Vec::new();
    for n in candidates {
        if remaining <= limit {
            break;
        }
        let item = &items[n];
        let count = users.entry(item.blob).or_default();
        *count -= 1;
        // A shared blob is freed by its last record; an item without a blob frees its own bytes.
        if item.blob.is_none() || *count == 0 {
            remaining = remaining.saturating_sub(item.size);
        }
        removed.push(n);
    }
    removed.sort_unstable();
    removed
}

/// Nameless images (built without `-t`, or untagged) that `policy`'s `until` filter selects,
/// judged by when their manifest was stored. With `keep_storage` none are: that bound is about
/// the cache, and an image is not cache.
pub fn dangling_images(
    store: &Store,
    policy: &PrunePolicy,
    now: SystemTime,
) -> Result<Vec<ImageEntry>, GcError> {
    if policy.keep_storage.is_some() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in store.images().list()? {
        if !entry.names.is_empty() {
            continue;
        }
        let stored_at = fs::metadata(store.blobs().path(&entry.record.manifest))
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let old_enough = policy
            .until
            .is_none_or(|min_age| now.duration_since(stored_at).is_ok_and(|a| a >= min_age));
        if old_enough {
            out.push(entry);
        }
    }
    Ok(out)
}

/// Drops nameless image records; an image that gained a name meanwhile stays.
pub fn remove_dangling(store: &Store, images: &[ImageEntry]) -> Result<Vec<Digest>, GcError> {
    let mut removed = Vec::new();
    for image in images {
        let current = store.images().get_by_id(&image.record.config)?;
        if current.is_some_and(|c| c.names.is_empty()) {
            store.images().rmi_id(&image.record.config.hex(), false)?;
            removed.push(image.record.config);
        }
    }
    Ok(removed)
}

/// A `RUN --mount=type=cache` directory: `<root>/cache-mounts/<sha256 of its id>`, locked by
/// builds through the sibling `<name>.lock`.
#[derive(Debug, Clone)]
pub struct CacheMount {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    /// The directory's mtime: the last time a build added or removed a top-level entry.
    pub last_used: SystemTime,
}

/// Every cache mount directory with its size.
pub fn cache_mounts(store: &Store) -> Result<Vec<CacheMount>, GcError> {
    let dir = store.cache_mounts_dir();
    let mut out = Vec::new();
    for (path, name, meta) in read_entries(&dir)? {
        if !meta.is_dir() || Digest::from_hex(&name).is_err() {
            continue;
        }
        out.push(CacheMount {
            size: tree_size(&path)?,
            last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            name,
            path,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Deletes a cache mount unless a build holds its lock; returns whether it was deleted.
pub fn remove_cache_mount(mount: &CacheMount) -> Result<bool, GcError> {
    let lock_path = mount.path.with_extension("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err("open", &lock_path))?;
    match lock.try_lock_exclusive() {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
        Err(e) => return Err(io_err("flock", &lock_path)(e)),
    }
    remove_tree(&mount.path)?;
    Ok(true)
}

/// Bytes of the regular files in a tree (what deleting it frees, roughly).
fn tree_size(path: &Path) -> Result<u64, GcError> {
    let mut total = 0;
    for (child, _, meta) in read_entries(path)? {
        total += if meta.is_dir() {
            tree_size(&child)?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// What a sweep deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub blobs: usize,
    pub blob_bytes: u64,
    pub snapshots: usize,
    pub snapshot_bytes: u64,
    /// Stale entries of `tmp/`, `work/` and unfinished unpacks in `snapshots/`.
    pub stale: usize,
    pub stale_bytes: u64,
}

impl SweepReport {
    pub fn total_bytes(&self) -> u64 {
        self.blob_bytes + self.snapshot_bytes + self.stale_bytes
    }
}

/// Deletes every blob not in `roots.blobs`, every unpacked layer not in `roots.diff_ids`, and
/// leftovers older than [`STALE_AFTER`] (see [`sweep_leftovers`]). Call it holding
/// [`exclusive_lease`].
pub fn sweep(store: &Store, roots: &Roots, now: SystemTime) -> Result<SweepReport, GcError> {
    let mut report = SweepReport::default();
    sweep_blobs(store, roots, &mut report)?;
    sweep_snapshots(store, roots, &mut report)?;
    sweep_per_layer_files(&store.layer_scans_dir(), roots, &mut report)?;
    sweep_per_layer_files(&store.layer_variants_dir(), roots, &mut report)?;
    let cutoff = now
        .checked_sub(STALE_AFTER)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    sweep_leftovers(store, cutoff, &mut report)?;
    Ok(report)
}

/// Deletes what interrupted writers leave behind, if last modified before `cutoff`: entries of
/// `tmp/` (blobs being written), of `work/` (snapshots of running steps; the shared mount-point
/// layer stays), of `locks/` (step locks of a killed build) and unfinished unpacks in
/// `snapshots/` (anything not named by a diff id). Counted as stale in `report`. With a cutoff
/// of now, call it only holding [`exclusive_lease`]: every writer of these holds a build lease.
pub fn sweep_leftovers(
    store: &Store,
    cutoff: SystemTime,
    report: &mut SweepReport,
) -> Result<(), GcError> {
    let root = store.root();
    sweep_stale_dir(&crate::work_dir(root), &WORK_KEEP_PREFIXES, cutoff, report)?;
    sweep_stale_dir(&store.tmp_dir(), &[], cutoff, report)?;
    sweep_stale_dir(&crate::locks_dir(root), &[], cutoff, report)?;
    for (path, name, meta) in read_entries(&store.snapshots_dir())? {
        if Digest::from_hex(&name).is_err() && is_stale(&meta, cutoff) {
            report.stale_bytes += remove_tree(&path)?;
            report.stale += 1;
        }
    }
    Ok(())
}

fn sweep_blobs(store: &Store, roots: &Roots, report: &mut SweepReport) -> Result<(), GcError> {
    for digest in store.blobs().list()? {
        let digest = digest?;
        if roots.blobs.contains(&digest) {
            continue;
        }
        let size = store.blobs().size(&digest).unwrap_or(0);
        if store.blobs().delete(&digest)? {
            report.blobs += 1;
            report.blob_bytes += size;
        }
    }
    Ok(())
}

fn sweep_snapshots(store: &Store, roots: &Roots, report: &mut SweepReport) -> Result<(), GcError> {
    for (path, name, _) in read_entries(&store.snapshots_dir())? {
        // Names that are not diff ids are unfinished unpacks: see `sweep_leftovers`.
        if let Ok(diff_id) = Digest::from_hex(&name)
            && !roots.diff_ids.contains(&diff_id)
        {
            report.snapshot_bytes += remove_tree(&path)?;
            report.snapshots += 1;
        }
    }
    Ok(())
}

/// Files kept per layer (SBOM scans, compressed variants) go with their layer (a variant's
/// blob, held by no image or record, went in the blob sweep); a temp file left by a killed
/// writer goes once it is stale.
fn sweep_per_layer_files(
    dir: &Path,
    roots: &Roots,
    report: &mut SweepReport,
) -> Result<(), GcError> {
    for (path, name, meta) in read_entries(dir)? {
        let gone = match crate::fsutil::per_layer_file_diff_id(&name) {
            Some(diff_id) => !roots.diff_ids.contains(&diff_id),
            None => is_stale(&meta, SystemTime::now() - STALE_AFTER),
        };
        if gone {
            report.stale_bytes += remove_tree(&path)?;
            report.stale += 1;
        }
    }
    Ok(())
}

/// Removes entries of `dir` last modified before `cutoff`, except those named with one of
/// `keep_prefixes`.
fn sweep_stale_dir(
    dir: &Path,
    keep_prefixes: &[&str],
    cutoff: SystemTime,
    report: &mut SweepReport,
) -> Result<(), GcError> {
    for (path, name, meta) in read_entries(dir)? {
        if keep_prefixes.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        if is_stale(&meta, cutoff) {
            report.stale_bytes += remove_tree(&path)?;
            report.stale += 1;
        }
    }
    Ok(())
}

fn is_stale(meta: &fs::Metadata, cutoff: SystemTime) -> bool {
    meta.modified().is_ok_and(|m| m <= cutoff)
}

/// `(path, file name, lstat)` of each entry; a missing directory has none.
pub(crate) fn read_entries(dir: &Path) -> Result<Vec<(PathBuf, String, fs::Metadata)>, GcError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", dir))?;
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue; // removed meanwhile
        };
        out.push((path, entry.file_name().to_string_lossy().into_owned(), meta));
    }
    Ok(out)
}

/// Deletes a file or directory tree and returns the bytes it held. Directories are made
/// writable first (layers may contain read-only ones), and a directory on another device is
/// refused: it would be a mount (an overlay left by a crashed build) that we must not empty.
pub fn remove_tree(path: &Path) -> Result<u64, GcError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err("stat", path)(e)),
    };
    if !meta.is_dir() {
        fs::remove_file(path).map_err(io_err("remove", path))?;
        return Ok(meta.len());
    }
    remove_dir_tree(path, meta.dev())
}

fn remove_dir_tree(dir: &Path, dev: u64) -> Result<u64, GcError> {
    let meta = fs::symlink_metadata(dir).map_err(io_err("stat", dir))?;
    if meta.dev() != dev {
        return Err(GcError::MountPoint {
            path: dir.to_path_buf(),
        });
    }
    if meta.permissions().mode() & 0o700 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err("chmod", dir))?;
    }
    let mut bytes = 0;
    for (path, _, child) in read_entries(dir)? {
        if child.is_dir() {
            bytes += remove_dir_tree(&path, dev)?;
        } else {
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
            bytes += child.len();
        }
    }
    fs::remove_dir(dir).map_err(io_err("remove", dir))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(blob: u8, size: u64, age_secs: u64, in_use: bool, now: SystemTime) -> CacheItem {
        CacheItem {
            blob: Some(Digest::of(&[blob])),
            size,
            last_used: now - Duration::from_secs(age_secs),
            in_use,
        }
    }

    #[test]
    fn select_respects_all_until_and_lru_keep_storage() {
        let now = SystemTime::now();
        let items = vec![
            item(1, 100, 10, false, now),
            item(2, 200, 7200, false, now),
            item(3, 300, 3600 * 48, true, now),
            item(4, 400, 3600 * 30, false, now),
        ];
        let default = PrunePolicy::default();
        assert_eq!(select(&items, &default, now), vec![3, 1, 0]);
        let all = PrunePolicy {
            all: true,
            ..default.clone()
        };
        assert_eq!(select(&items, &all, now), vec![2, 3, 1, 0]);
        let until = PrunePolicy {
            all: true,
            until: Some(Duration::from_secs(24 * 3600)),
            ..default.clone()
        };
        assert_eq!(select(&items, &until, now), vec![2, 3]);
        // A record whose time says 90 s is not taken by `until=1m`: it may have been used
        // since without its time being written (see LAST_USE_GRANULARITY).
        let minute = PrunePolicy {
            all: true,
            until: Some(Duration::from_secs(60)),
            ..default.clone()
        };
        let recent = vec![item(1, 100, 90, false, now), item(2, 100, 150, false, now)];
        assert_eq!(select(&recent, &minute, now), vec![1]);
        // 1000 bytes in all; keeping 350 removes the least recently used (48h, then 30h old)
        // until at most 350 remain.
        let keep = PrunePolicy {
            all: true,
            keep_storage: Some(350),
            ..default.clone()
        };
        assert_eq!(select(&items, &keep, now), vec![2, 3]);
        let keep_all = PrunePolicy {
            keep_storage: Some(10_000),
            ..default
        };
        assert!(select(&items, &keep_all, now).is_empty());
    }

    #[test]
    fn shared_blobs_count_once() {
        let now = SystemTime::now();
        let a = item(1, 100, 0, false, now);
        let b = item(1, 100, 0, false, now);
        let c = item(2, 50, 0, false, now);
        assert_eq!(storage(&[&a, &b, &c]), 150);
        // Removing one of two records of a blob frees nothing; LRU goes on to the second.
        let items = vec![
            item(1, 100, 30, false, now),
            item(1, 100, 20, false, now),
            item(2, 50, 10, false, now),
        ];
        let keep = PrunePolicy {
            keep_storage: Some(60),
            ..PrunePolicy::default()
        };
        assert_eq!(select(&items, &keep, now), vec![0, 1]);
    }

    #[test]
    fn remove_tree_handles_read_only_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("t");
        fs::create_dir_all(top.join("ro/sub")).unwrap();
        fs::write(top.join("ro/sub/f"), b"12345").unwrap();
        fs::set_permissions(top.join("ro"), fs::Permissions::from_mode(0o500)).unwrap();
        assert_eq!(remove_tree(&top).unwrap(), 5);
        assert!(!top.exists());
        assert_eq!(remove_tree(&top).unwrap(), 0);
    }

    #[test]
    fn leases_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let a = build_lease(dir.path()).unwrap();
        let b = build_lease(dir.path()).unwrap();
        assert!(try_exclusive_lease(dir.path()).unwrap().is_none());
        drop((a, b));
        let gc = try_exclusive_lease(dir.path()).unwrap();
        assert!(gc.is_some());
    }
}
