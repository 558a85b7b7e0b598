//! Cache mounts in the exported cache (`--cache-to …,mounts=true`, issue #22): what no other
//! builder does (moby/buildkit#1474). A CI job on a fresh runner gets its compiler and package
//! caches back with the layer cache.
//!
//! Each cache mount a build used is packed into gzip tar *chunks*, stored as blobs that travel
//! beside the layer blobs. Chunk boundaries depend on the files, not on offsets: walking the
//! directory in path order, a chunk ends after a file whose path hashes to a boundary (once it
//! holds a few MiB), or when it is large. Adding or changing a file therefore changes only its
//! own chunk; every other chunk keeps its digest, so a registry export uploads only what
//! changed (the client skips blobs the repository has).
//!
//! Importing restores a mount before the build starts, into the store's `cache-mounts/`, when
//! the local one is missing or empty (a warm local cache is never overwritten).

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use builder_graph::LayerRef;
use builder_solver::UsedCacheMount;
use builder_store::manifest::media_type;
use builder_store::{Digest, HashingWriter, Store};
use serde::{Deserialize, Serialize};

use crate::RemoteCacheError;

/// A chunk ends at a boundary file once it holds this much...
const MIN_CHUNK: u64 = 4 << 20;
/// ...and at any file once it holds this much.
const MAX_CHUNK: u64 = 64 << 20;

/// One exported cache mount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    /// Its directory's name below `cache-mounts/` (the sha256 of its identity).
    pub dir_name: String,
    /// The `id` it was mounted by (the target path unless `id=` was given), for messages.
    pub id: String,
    /// The chunks, in the order they are unpacked.
    pub chunks: Vec<LayerRef>,
}

struct Entry {
    rel: PathBuf,
    meta: fs::Metadata,
}

/// Packs each of `used` (below `store`'s `cache-mounts/`) into chunk blobs in the store. A
/// mount larger than `max_size` is left out, with a warning.
pub fn pack(
    store: &Store,
    used: &[UsedCacheMount],
    max_size: Option<u64>,
) -> Result<(Vec<MountRecord>, Vec<String>), RemoteCacheError> {
    let mut records = Vec::new();
    let mut warnings = Vec::new();
    for mount in used {
        let dir = store.cache_mounts_dir().join(&mount.dir_name);
        let shown = shown_id(&mount.id);
        // Read under a shared lock: a build writing to it (locked/private use) finishes first.
        let _lock = lock(store, &mount.dir_name, false)?;
        let mut entries = Vec::new();
        walk(&dir, Path::new(""), &mut entries)?;
        let total: u64 = entries.iter().map(|e| e.meta.len()).sum();
        if let Some(max) = max_size.filter(|m| total > *m) {
            warnings.push(format!(
                "cache mount {shown:?} ({total} bytes) is larger than mounts-max-size={max}: not exported"
            ));
            continue;
        }
        let mut chunks = Vec::new();
        let mut start = 0;
        let mut bytes = 0u64;
        for (i, e) in entries.iter().enumerate() {
            bytes += e.meta.len();
            let last = i + 1 == entries.len();
            if last || bytes >= MAX_CHUNK || (bytes >= MIN_CHUNK && is_boundary(&e.rel)) {
                chunks.push(write_chunk(store, &dir, &entries[start..=i])?);
                start = i + 1;
                bytes = 0;
            }
        }
        records.push(MountRecord {
            dir_name: mount.dir_name.clone(),
            id: mount.id.clone(),
            chunks,
        });
    }
    Ok((records, warnings))
}

/// A seeded cache's identity carries its seed after a NUL; users know it by the id before.
fn shown_id(id: &str) -> &str {
    id.split('\0').next().unwrap_or(id)
}

/// One path in 16 (those whose sha256 starts with a zero nibble): chunks of about `MIN_CHUNK`
/// plus 16 files' worth.
fn is_boundary(rel: &Path) -> bool {
    Digest::of(rel.as_os_str().as_encoded_bytes())
        .hex()
        .starts_with('0')
}

/// Every entry below `dir`, directories before their contents, in path order.
fn walk(dir: &Path, rel: &Path, out: &mut Vec<Entry>) -> Result<(), RemoteCacheError> {
    let here = dir.join(rel);
    let mut names: Vec<_> = match fs::read_dir(&here) {
        Ok(rd) => rd
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(RemoteCacheError::io("read", &here))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(RemoteCacheError::io("read", &here)(e)),
    };
    names.sort();
    for name in names {
        let child = rel.join(&name);
        let path = dir.join(&child);
        let meta = fs::symlink_metadata(&path).map_err(RemoteCacheError::io("stat", &path))?;
        let ft = meta.file_type();
        if ft.is_socket() || ft.is_fifo() || ft.is_block_device() || ft.is_char_device() {
            continue;
        }
        let is_dir = ft.is_dir();
        out.push(Entry {
            rel: child.clone(),
            meta,
        });
        if is_dir {
            walk(dir, &child, out)?;
        }
    }
    Ok(())
}

fn write_chunk(store: &Store, dir: &Path, entries: &[Entry]) -> Result<LayerRef, RemoteCacheError> {
    let writer = store.blobs().writer()?;
    let gz = flate2::GzBuilder::new().write(writer, flate2::Compression::fast());
    // The diff id (uncompressed digest) makes the chunk a LayerRef like any layer.
    let mut tar = tar::Builder::new(HashingWriter::new(gz));
    for e in entries {
        let path = dir.join(&e.rel);
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.meta.mode() & 0o7777);
        h.set_uid(u64::from(e.meta.uid()));
        h.set_gid(u64::from(e.meta.gid()));
        h.set_mtime(e.meta.mtime().max(0) as u64);
        let ft = e.meta.file_type();
        let io_err = RemoteCacheError::io("pack", &path);
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            tar.append_data(&mut h, &e.rel, io::empty())
                .map_err(io_err)?;
        } else if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            let target = fs::read_link(&path).map_err(RemoteCacheError::io("readlink", &path))?;
            tar.append_link(&mut h, &e.rel, target).map_err(io_err)?;
        } else {
            let file = fs::File::open(&path).map_err(RemoteCacheError::io("open", &path))?;
            // The size read now: a file that changed size since the walk is packed as it is.
            let len = file
                .metadata()
                .map_err(RemoteCacheError::io("stat", &path))?
                .len();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(len);
            tar.append_data(&mut h, &e.rel, file.take(len))
                .map_err(io_err)?;
        }
    }
    let hashing = tar
        .into_inner()
        .map_err(RemoteCacheError::io("finish chunk of", dir))?;
    let (diff_id, _, gz) = hashing.finish();
    let writer = gz
        .finish()
        .map_err(RemoteCacheError::io("compress chunk of", dir))?;
    let (digest, size) = writer.commit()?;
    Ok(LayerRef {
        diff_id,
        digest,
        size,
        media_type: media_type::OCI_LAYER_GZIP.into(),
    })
}

/// The mount's lock file, taken shared (reading) or exclusive (restoring), as builds take it.
fn lock(store: &Store, dir_name: &str, exclusive: bool) -> Result<fs::File, RemoteCacheError> {
    let base = store.cache_mounts_dir();
    fs::create_dir_all(&base).map_err(RemoteCacheError::io("create", &base))?;
    let path = base.join(format!("{dir_name}.lock"));
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(RemoteCacheError::io("open", &path))?;
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    // SAFETY: flock on a descriptor we own; the lock lives as long as the File.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), op) } != 0 {
        return Err(RemoteCacheError::io("lock", &path)(
            io::Error::last_os_error(),
        ));
    }
    Ok(file)
}

/// Restores `record` into the store's `cache-mounts/` unless a non-empty directory is there;
/// `fetch` brings a chunk's blob into the store. Returns whether it restored.
pub fn restore(
    store: &Store,
    record: &MountRecord,
    fetch: &dyn Fn(&LayerRef) -> Result<(), RemoteCacheError>,
) -> Result<bool, RemoteCacheError> {
    if record.dir_name.len() != 64 || !record.dir_name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RemoteCacheError::invalid(
            format!("cache mount {:?}", shown_id(&record.id)),
            "its directory name is not a sha256",
        ));
    }
    let _lock = lock(store, &record.dir_name, true)?;
    let dir = store.cache_mounts_dir().join(&record.dir_name);
    let non_empty = fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some());
    if non_empty {
        return Ok(false);
    }
    let tmp = tempfile::Builder::new()
        .prefix(".restore-")
        .tempdir_in(store.cache_mounts_dir())
        .map_err(RemoteCacheError::io(
            "create temp dir in",
            &store.cache_mounts_dir(),
        ))?;
    for chunk in &record.chunks {
        if !store.blobs().contains(&chunk.digest) {
            fetch(chunk)?;
        }
        let blob = store.blobs().open(&chunk.digest)?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
        archive.set_preserve_permissions(true);
        archive.set_preserve_mtime(true);
        archive.set_preserve_ownerships(true);
        archive.set_overwrite(true);
        archive.unpack(tmp.path()).map_err(RemoteCacheError::io(
            "unpack cache mount chunk into",
            tmp.path(),
        ))?;
    }
    let _ = fs::remove_dir(&dir);
    let kept = tmp.keep();
    fs::rename(&kept, &dir).map_err(|e| {
        let _ = fs::remove_dir_all(&kept);
        RemoteCacheError::io("rename restored cache mount to", &dir)(e)
    })?;
    Ok(true)
}

/// Chunks of every record, for the cache manifest's layers.
pub fn chunk_refs(records: &[MountRecord]) -> impl Iterator<Item = &LayerRef> {
    records.iter().flat_map(|r| r.chunks.iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn fill(store: &Store, name: &str, files: &[(&str, usize)]) {
        let dir = store.cache_mounts_dir().join(name);
        for (p, size) in files {
            let path = dir.join(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, vec![b'x'; *size]).unwrap();
        }
    }

    #[test]
    fn a_changed_file_changes_only_its_own_chunk() {
        let (_d, store) = store();
        let name = "a".repeat(64);
        let files: Vec<(String, usize)> =
            (0..200).map(|i| (format!("f/{i:03}"), 200_000)).collect();
        let refs: Vec<(&str, usize)> = files.iter().map(|(p, s)| (p.as_str(), *s)).collect();
        fill(&store, &name, &refs);
        let used = [UsedCacheMount {
            dir_name: name.clone(),
            id: "/cache".into(),
        }];
        let (before, _) = pack(&store, &used, None).unwrap();
        assert!(before[0].chunks.len() > 2, "{:?}", before[0].chunks.len());
        fs::write(
            store.cache_mounts_dir().join(&name).join("f/150"),
            b"changed",
        )
        .unwrap();
        let (after, _) = pack(&store, &used, None).unwrap();
        let changed = before[0]
            .chunks
            .iter()
            .zip(&after[0].chunks)
            .filter(|(a, b)| a.digest != b.digest)
            .count();
        assert_eq!(before[0].chunks.len(), after[0].chunks.len());
        assert_eq!(changed, 1, "one chunk differs");

        let (_, capped) = pack(&store, &used, Some(1000)).unwrap();
        assert_eq!(
            capped.len(),
            1,
            "a mount over the cap is left out with a warning"
        );
    }

    #[test]
    fn a_packed_mount_restores_into_an_empty_store_only() {
        let (_d, store) = store();
        let name = "b".repeat(64);
        fill(&store, &name, &[("x/y.txt", 10), ("z", 3)]);
        let used = [UsedCacheMount {
            dir_name: name.clone(),
            id: "/c".into(),
        }];
        let (records, _) = pack(&store, &used, None).unwrap();
        fs::remove_dir_all(store.cache_mounts_dir().join(&name)).unwrap();
        let none = |_: &LayerRef| -> Result<(), RemoteCacheError> { panic!("blobs are local") };
        assert!(restore(&store, &records[0], &none).unwrap());
        assert_eq!(
            fs::read(store.cache_mounts_dir().join(&name).join("x/y.txt")).unwrap(),
            vec![b'x'; 10]
        );
        assert!(
            !restore(&store, &records[0], &none).unwrap(),
            "a warm mount stays"
        );
    }
}
