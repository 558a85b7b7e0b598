//! A persistent stat cache for build-context files: (path, size, mtime, ctime, inode) → content
//! digest. A rebuild re-hashes only files whose metadata changed, so checking a large unchanged
//! context costs a `stat` per file rather than a read.
//!
//! Stored per context directory as `<root>/context-cache/<sha256(context path)>.json`, rewritten
//! atomically after a build. Files modified within the last two seconds are not recorded: their
//! timestamps may not yet tell two versions apart (git's "racy" problem), so they are hashed
//! again next time.

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use builder_cache::{Digest, Hasher};
use serde::{Deserialize, Serialize};

/// Seconds a file's mtime must lie in the past before its digest is remembered.
const RACY_SECONDS: i64 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

impl Stamp {
    fn of(meta: &Metadata) -> Stamp {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Stamp {
            size: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    stamp: Stamp,
    digest: Digest,
}

pub struct StatCache {
    file: Option<PathBuf>,
    entries: Mutex<HashMap<PathBuf, Entry>>,
    changed: Mutex<bool>,
}

impl StatCache {
    /// A cache that remembers nothing (no store, or tests).
    pub fn disabled() -> StatCache {
        StatCache {
            file: None,
            entries: Mutex::new(HashMap::new()),
            changed: Mutex::new(false),
        }
    }

    /// Loads the cache for `context` under `dir`; a missing or unreadable file starts empty.
    pub fn load(dir: &Path, context: &Path) -> StatCache {
        let name = Digest::of(context.as_os_str().as_encoded_bytes()).hex();
        let file = dir.join(format!("{name}.json"));
        let entries: HashMap<PathBuf, Entry> = fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<(PathBuf, Entry)>>(&b).ok())
            .map(|v| v.into_iter().collect())
            .unwrap_or_default();
        StatCache {
            file: Some(file),
            entries: Mutex::new(entries),
            changed: Mutex::new(false),
        }
    }

    /// The sha256 of a regular file's content, from the cache when its metadata is unchanged.
    pub fn file_digest(&self, path: &Path, meta: &Metadata) -> io::Result<Digest> {
        let stamp = Stamp::of(meta);
        if let Ok(entries) = self.entries.lock()
            && let Some(e) = entries.get(path)
            && e.stamp == stamp
        {
            return Ok(e.digest);
        }
        let digest = hash_file(path)?;
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let settled =
            now_ns - stamp.mtime_ns.max(stamp.ctime_ns) > i128::from(RACY_SECONDS) * 1_000_000_000;
        if settled && self.file.is_some() {
            if let Ok(mut entries) = self.entries.lock() {
                entries.insert(path.to_path_buf(), Entry { stamp, digest });
            }
            if let Ok(mut changed) = self.changed.lock() {
                *changed = true;
            }
        }
        Ok(digest)
    }

    /// Writes the cache back if it learned anything. Failure only costs speed next time.
    pub fn save(&self) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if !self.changed.lock().map(|c| *c).unwrap_or(false) {
            return Ok(());
        }
        let entries: Vec<(PathBuf, Entry)> = match self.entries.lock() {
            Ok(e) => e.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => return Ok(()),
        };
        let dir = file.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(&mut tmp, &entries).map_err(io::Error::other)?;
        tmp.persist(file).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Bytes per read when hashing: large enough that syscalls cost little next to SHA-256.
const READ_BLOCK: usize = 1 << 20;

thread_local! {
    /// One read buffer per hashing thread, reused across files: a fresh 1 MiB buffer per file
    /// would cost an mmap and its page faults for every small file of a large context.
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The sha256 of a file's content.
pub fn hash_file(path: &Path) -> io::Result<Digest> {
    let mut f = fs::File::open(path)?;
    READ_BUF.with_borrow_mut(|buf| {
        buf.resize(READ_BLOCK, 0);
        let mut h = Hasher::new();
        loop {
            let n = f.read(buf)?;
            if n == 0 {
                return Ok(h.finish());
            }
            h.update(&buf[..n]);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_files_are_not_reread_and_changes_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "one").unwrap();
        // Backdate the file so its digest may be remembered.
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let cache_dir = dir.path().join("cache");
        let cache = StatCache::load(&cache_dir, dir.path());
        let meta = fs::metadata(&file).unwrap();
        assert_eq!(cache.file_digest(&file, &meta).unwrap(), Digest::of(b"one"));
        // ctime is "now", so the entry is racy and not yet remembered.
        assert!(cache.entries.lock().unwrap().is_empty());

        // An entry with a settled stamp is served without reading the file.
        let stamp = Stamp::of(&meta);
        cache.entries.lock().unwrap().insert(
            file.clone(),
            Entry {
                stamp,
                digest: Digest::of(b"cached"),
            },
        );
        assert_eq!(
            cache.file_digest(&file, &meta).unwrap(),
            Digest::of(b"cached")
        );
        *cache.changed.lock().unwrap() = true;
        cache.save().unwrap();
        let reloaded = StatCache::load(&cache_dir, dir.path());
        assert_eq!(
            reloaded.file_digest(&file, &meta).unwrap(),
            Digest::of(b"cached")
        );

        // A content change moves mtime/size/ctime, so the file is hashed again.
        fs::write(&file, "two!").unwrap();
        let meta = fs::metadata(&file).unwrap();
        assert_eq!(
            reloaded.file_digest(&file, &meta).unwrap(),
            Digest::of(b"two!")
        );
    }
}
