//! A persistent stat cache for build-context files: (path, size, mtime, ctime, inode) → content
//! digest. A rebuild re-hashes only files whose metadata changed, so checking a large unchanged
//! context costs a `stat` per file rather than a read.
//!
//! Stored per context directory as `<root>/context-cache/<sha256(context path)>.bin`, rewritten
//! atomically after a build. Files modified within the last two seconds are not recorded: their
//! timestamps may not yet tell two versions apart (git's "racy" problem), so they are hashed
//! again next time. A save drops the records of files that a walk of their directory no longer
//! found (deleted or renamed), so the file tracks the context rather than its history.
//!
//! The file is a flat binary list rather than JSON: a no-op rebuild of a 20,000-file context
//! spent ~100 ms parsing 4 MB of JSON, more than all its `stat` calls. Layout: the magic
//! `BSTATC1\n`, then per entry (little-endian) size u64, mtime ns i128, ctime ns i128, inode u64,
//! sha256 [u8; 32], path length u32, path bytes. A file that does not parse is ignored whole.
//! Records are written in the order a walk visits their paths and read in place, so loading
//! costs one pass over the bytes and a walk's lookups move through them front to back.

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::hash::{BuildHasherDefault, Hasher as _};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use builder_store::{Digest, Hasher};
use rustc_hash::FxHasher;

/// Seconds a file's mtime must lie in the past before its digest is remembered.
const RACY_SECONDS: i64 = 2;

/// Identifies the file format; a different one (older or newer) is ignored, not misread.
const MAGIC: &[u8; 8] = b"BSTATC1\n";

/// Bytes of a record before its path: size, mtime, ctime, inode, sha256, path length.
const HEADER: usize = 8 + 16 + 16 + 8 + 32 + 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

#[derive(Clone, Debug)]
struct Entry {
    stamp: Stamp,
    digest: Digest,
}

/// Host paths as bytes: hashing a `PathBuf` goes component by component, which showed up in
/// profiles of no-op rebuilds; bytes hash in one pass.
type Key = Vec<u8>;

fn key(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

/// A fast hash of a path's bytes (FxHash: not collision-resistant, and need not be, since a
/// lookup compares the stored path too).
fn path_hash(path: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(path);
    h.finish()
}

/// A map whose keys are already hashes.
type ByHash = HashMap<u64, u32, BuildHasherDefault<FxHasher>>;

/// Appends one entry in the file layout (see the module docs).
fn encode(out: &mut Vec<u8>, path: &[u8], e: &Entry) {
    out.extend_from_slice(&e.stamp.size.to_le_bytes());
    out.extend_from_slice(&e.stamp.mtime_ns.to_le_bytes());
    out.extend_from_slice(&e.stamp.ctime_ns.to_le_bytes());
    out.extend_from_slice(&e.stamp.ino.to_le_bytes());
    out.extend_from_slice(e.digest.as_bytes());
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(path);
}

/// The record at `at` in the file layout: its path, its entry, and where the next one starts;
/// None if the bytes there are not a whole record.
fn record_at(bytes: &[u8], at: usize) -> Option<(&[u8], Entry, usize)> {
    let head = bytes.get(at..at.checked_add(HEADER)?)?;
    let (size, head) = head.split_at(8);
    let (mtime, head) = head.split_at(16);
    let (ctime, head) = head.split_at(16);
    let (ino, head) = head.split_at(8);
    let (digest, len) = head.split_at(32);
    let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
    let path_start = at + HEADER;
    let end = path_start.checked_add(len)?;
    let path = bytes.get(path_start..end)?;
    let entry = Entry {
        stamp: Stamp {
            size: u64::from_le_bytes(size.try_into().ok()?),
            mtime_ns: i128::from_le_bytes(mtime.try_into().ok()?),
            ctime_ns: i128::from_le_bytes(ctime.try_into().ok()?),
            ino: u64::from_le_bytes(ino.try_into().ok()?),
        },
        digest: Digest::from_bytes(digest.try_into().ok()?),
    };
    Some((path, entry, end))
}

/// The records of a cache file, looked up in place: loading only checks the bytes and notes
/// where each record starts, rather than decoding them into one allocation per entry (that
/// decoding was most of the 7-9 ms a no-op rebuild of a 20,000-file context spent loading its
/// cache).
///
/// A walk looks files up in the order the file stores them (see [`walk_order`]), so a lookup
/// first tries the records just after the previous hit: a no-op rebuild then compares one path
/// per file and never hashes one. The lookups were 3.7% of such a rebuild's CPU samples on the
/// 20,000-file context, and 0.3% with the cursor (perf, 10 runs each), besides the map no
/// longer built at load.
/// The map is built on the first lookup the cursor cannot answer (a file added, an older file
/// in byte order, several COPYs of parts of the context).
#[derive(Default)]
struct Stored {
    bytes: Bytes,
    /// record number → its offset in `bytes` (records are numbered in file order).
    offsets: Vec<u32>,
    /// record number → whether this build looked its path up (see [`StatCache::walked`]).
    seen: Vec<AtomicBool>,
    /// The record number after the last one looked up.
    cursor: AtomicUsize,
    /// path hash → number of that path's record, built when first needed.
    index: OnceLock<ByHash>,
}

/// A cache file's bytes: mapped when loaded from the store, owned when made in memory.
///
/// Mapped, with its pages populated by the `mmap` call itself: reading the 2.5 MB file of the
/// 20,000-file context into a fresh buffer (~600 page faults and a copy) took a fresh process
/// 2.7–3.9 ms of a ~60 ms no-op rebuild, mapping it 0.55–0.84 ms (timed in the process, 12
/// runs each, interleaved).
enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Default for Bytes {
    fn default() -> Self {
        Bytes::Owned(Vec::new())
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(map) => map,
            Bytes::Owned(bytes) => bytes,
        }
    }
}

impl Bytes {
    /// Maps `file`; None if it cannot be opened or mapped (an empty file cannot be mapped).
    fn map(file: &Path) -> Option<Bytes> {
        let file = fs::File::open(file).ok()?;
        // SAFETY: the mapping is read-only and private. The store replaces this file only by
        // renaming a new one over it (`save`), which leaves the mapped inode intact; nothing
        // writes it in place, and the store directory is its owner's alone. Truncating it by
        // hand during a build is the one way to make a read fault (SIGBUS).
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.ok()?;
        Some(Bytes::Mapped(map))
    }
}

/// Records past the cursor a lookup compares before it asks the map: files the walk does not
/// look up (not regular files, or outside the COPY's sources) sit between the ones it does.
const LOOKAHEAD: usize = 4;

impl Stored {
    /// Checks a cache file's bytes; None if anything is off (truncated, foreign, corrupt).
    fn parse(bytes: Bytes) -> Option<Stored> {
        bytes.strip_prefix(MAGIC.as_slice())?;
        // Records are at least HEADER bytes: a bound on their number, so this never regrows.
        let mut offsets = Vec::with_capacity(bytes.len() / HEADER);
        let mut at = MAGIC.len();
        while at < bytes.len() {
            // A partial record at the end means a torn or foreign file: trust none of it.
            let (_, _, next) = record_at(&bytes, at)?;
            offsets.push(u32::try_from(at).ok()?);
            at = next;
        }
        u32::try_from(offsets.len()).ok()?;
        let seen = offsets.iter().map(|_| AtomicBool::new(false)).collect();
        Some(Stored {
            bytes,
            offsets,
            seen,
            cursor: AtomicUsize::new(0),
            index: OnceLock::new(),
        })
    }

    /// The path of record `number` (the file was checked when it was loaded).
    fn path_of(&self, number: usize) -> Option<&[u8]> {
        let at = *self.offsets.get(number)? as usize;
        record_at(&self.bytes, at).map(|(path, _, _)| path)
    }

    fn index(&self) -> &ByHash {
        self.index.get_or_init(|| {
            let mut index = ByHash::default();
            index.reserve(self.offsets.len());
            for number in 0..self.offsets.len() {
                if let Some(path) = self.path_of(number) {
                    // On a hash collision the first record wins; the other file is only
                    // hashed again.
                    index.entry(path_hash(path)).or_insert(number as u32);
                }
            }
            index
        })
    }

    /// The number of the record for `path`, if there is one.
    fn find(&self, path: &[u8]) -> Option<usize> {
        let from = self.cursor.load(Ordering::Relaxed);
        let near = (from..self.offsets.len().min(from + LOOKAHEAD))
            .find(|&n| self.path_of(n) == Some(path));
        let number = match near {
            Some(n) => n,
            None => {
                let n = *self.index().get(&path_hash(path))? as usize;
                (self.path_of(n) == Some(path)).then_some(n)?
            }
        };
        // Lookups come from one thread in walk order; another thread moving the cursor only
        // sends the next lookup to the map.
        self.cursor.store(number + 1, Ordering::Relaxed);
        Some(number)
    }

    fn get(&self, path: &[u8]) -> Option<Entry> {
        let number = self.find(path)?;
        let (_, entry, _) = record_at(&self.bytes, *self.offsets.get(number)? as usize)?;
        self.seen[number].store(true, Ordering::Relaxed);
        Some(entry)
    }

    /// Every record, in file order: (whether this build looked it up, path, entry).
    fn records(&self) -> impl Iterator<Item = (bool, &[u8], Entry)> {
        self.offsets
            .iter()
            .zip(&self.seen)
            .filter_map(|(&at, seen)| {
                let (path, entry, _) = record_at(&self.bytes, at as usize)?;
                Some((seen.load(Ordering::Relaxed), path, entry))
            })
    }
}

/// The order a walk visits paths in: depth first, each directory's names sorted by their bytes.
/// That is byte order with `/` below every other byte (`a/x` before `a-b`), which is also how
/// `Path` compares, component by component; records are saved in it.
fn walk_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let rank = |c: u8| if c == b'/' { 0 } else { u16::from(c) + 1 };
    match a.iter().zip(b).find(|(x, y)| x != y) {
        Some((&x, &y)) => rank(x).cmp(&rank(y)),
        None => a.len().cmp(&b.len()),
    }
}

pub struct StatCache {
    file: Option<PathBuf>,
    /// What the cache file held when the build started.
    stored: Stored,
    /// Digests computed during this build (they supersede stored records of the same path).
    learned: Mutex<HashMap<Key, Entry>>,
    /// Directories whose every file this build looked up (see [`StatCache::walked`]).
    walked: Mutex<Vec<Key>>,
}

impl StatCache {
    /// A cache that remembers nothing (no store, or tests).
    pub fn disabled() -> StatCache {
        StatCache {
            file: None,
            stored: Stored::default(),
            learned: Mutex::new(HashMap::new()),
            walked: Mutex::new(Vec::new()),
        }
    }

    /// Loads the cache for `context` under `dir`; a missing or unreadable file starts empty.
    pub fn load(dir: &Path, context: &Path) -> StatCache {
        let name = Digest::of(context.as_os_str().as_encoded_bytes()).hex();
        let file = dir.join(format!("{name}.bin"));
        let stored = Bytes::map(&file)
            .and_then(Stored::parse)
            .unwrap_or_default();
        StatCache {
            file: Some(file),
            stored,
            learned: Mutex::new(HashMap::new()),
            walked: Mutex::new(Vec::new()),
        }
    }

    /// The remembered digest of a file, if its metadata is unchanged since it was hashed.
    pub fn cached_digest(&self, path: &Path, meta: &Metadata) -> Option<Digest> {
        let stamp = Stamp::of(meta);
        let fresh = |e: Entry| (e.stamp == stamp).then_some(e.digest);
        // The stored records answer a no-op rebuild without taking a lock.
        if let Some(digest) = self.stored.get(key(path)).and_then(fresh) {
            return Some(digest);
        }
        let learned = self.learned.lock().ok()?;
        learned.get(key(path)).cloned().and_then(fresh)
    }

    /// The sha256 of a regular file's content, from the cache when its metadata is unchanged.
    /// The walk asks the two halves apart (see `source_tree::file_digests`); the tests use both.
    #[cfg(test)]
    fn file_digest(&self, path: &Path, meta: &Metadata) -> io::Result<Digest> {
        match self.cached_digest(path, meta) {
            Some(digest) => Ok(digest),
            None => self.hash_and_learn(path, meta),
        }
    }

    /// Hashes a file that [`cached_digest`](Self::cached_digest) did not answer for, and
    /// remembers its digest. Looking it up again would move the lookup cursor back.
    pub fn hash_and_learn(&self, path: &Path, meta: &Metadata) -> io::Result<Digest> {
        let stamp = Stamp::of(meta);
        let digest = hash_file(path)?;
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let settled =
            now_ns - stamp.mtime_ns.max(stamp.ctime_ns) > i128::from(RACY_SECONDS) * 1_000_000_000;
        if settled
            && self.file.is_some()
            && let Ok(mut learned) = self.learned.lock()
        {
            learned.insert(key(path).to_vec(), Entry { stamp, digest });
        }
        Ok(digest)
    }

    /// Says that every regular file below `dir` (a host path) that is still there and not
    /// .dockerignored was looked up during this build. When the cache is saved, records below
    /// `dir` that were not looked up are dropped: files deleted or renamed since, which would
    /// otherwise stay in the file (and be loaded by every build) for ever.
    pub fn walked(&self, dir: &Path) {
        if let Ok(mut walked) = self.walked.lock() {
            walked.push(key(dir).to_vec());
        }
    }

    /// Writes the cache back if it learned anything. Failure only costs speed next time.
    pub fn save(&self) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let Ok(learned) = self.learned.lock() else {
            return Ok(());
        };
        if learned.is_empty() {
            return Ok(());
        }
        let walked = self.walked.lock().map(|w| w.clone()).unwrap_or_default();
        let below_walked = |path: &[u8]| {
            walked.iter().any(|dir| {
                path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
            })
        };
        let mut records: Vec<(&[u8], Entry)> = self
            .stored
            .records()
            .filter(|(seen, path, _)| {
                !learned.contains_key(*path) && (*seen || !below_walked(path))
            })
            .map(|(_, path, e)| (path, e))
            .chain(learned.iter().map(|(path, e)| (path.as_slice(), e.clone())))
            .collect();
        // In the order a walk looks them up in: the lookups of a no-op rebuild then read the
        // file front to back, each at the cursor (see `Stored`).
        records.sort_unstable_by(|a, b| walk_order(a.0, b.0));
        let mut bytes = Vec::with_capacity(self.stored.bytes.len() + learned.len() * 128);
        bytes.extend_from_slice(MAGIC);
        for (path, e) in &records {
            encode(&mut bytes, path, e);
        }
        let dir = file.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        io::Write::write_all(&mut tmp, &bytes)?;
        tmp.persist(file).map_err(|e| e.error)?;
        // The JSON file earlier versions kept is dead weight now.
        let _ = fs::remove_file(file.with_extension("json"));
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
            // A cancelled build stops hashing a large context file within one block.
            if builder_snapshot::cancel::cancel_requested() {
                return Err(builder_snapshot::cancel::cancelled_io_error());
            }
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

    fn backdate(file: &Path) {
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(file)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    /// A stamp for records made up by the tests.
    const SETTLED: Stamp = Stamp {
        size: 1,
        mtime_ns: 1,
        ctime_ns: 2,
        ino: 3,
    };

    fn learn(cache: &StatCache, path: &Path, stamp: Stamp, digest: Digest) {
        cache
            .learned
            .lock()
            .unwrap()
            .insert(key(path).to_vec(), Entry { stamp, digest });
    }

    #[test]
    fn unchanged_files_are_not_reread_and_changes_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "one").unwrap();
        // Backdate the file so its digest may be remembered.
        backdate(&file);
        let cache_dir = dir.path().join("cache");
        let cache = StatCache::load(&cache_dir, dir.path());
        let meta = fs::metadata(&file).unwrap();
        assert_eq!(cache.file_digest(&file, &meta).unwrap(), Digest::of(b"one"));
        // ctime is "now", so the entry is racy and not yet remembered.
        assert!(cache.learned.lock().unwrap().is_empty());

        // An entry with a settled stamp is served without reading the file.
        learn(&cache, &file, Stamp::of(&meta), Digest::of(b"cached"));
        assert_eq!(
            cache.file_digest(&file, &meta).unwrap(),
            Digest::of(b"cached")
        );
        cache.save().unwrap();
        let reloaded = StatCache::load(&cache_dir, dir.path());
        assert!(reloaded.learned.lock().unwrap().is_empty());
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

    /// Saving keeps what the file held, with what this build learned in place of stale records.
    #[test]
    fn saving_merges_learned_digests_into_the_stored_ones() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = |n: u64| Stamp {
            size: n,
            mtime_ns: 1,
            ctime_ns: 2,
            ino: 3,
        };
        let (a, b, c) = (
            Path::new("/ctx/a"),
            Path::new("/ctx/b"),
            Path::new("/ctx/c"),
        );
        let first = StatCache::load(dir.path(), Path::new("/ctx"));
        learn(&first, a, stamp(1), Digest::of(b"a1"));
        learn(&first, c, stamp(3), Digest::of(b"c"));
        first.save().unwrap();

        let second = StatCache::load(dir.path(), Path::new("/ctx"));
        learn(&second, a, stamp(10), Digest::of(b"a2"));
        learn(&second, b, stamp(2), Digest::of(b"b"));
        second.save().unwrap();

        let third = StatCache::load(dir.path(), Path::new("/ctx"));
        let mut records: Vec<_> = third
            .stored
            .records()
            .map(|(_, p, e)| (p.to_vec(), e.stamp.size, e.digest))
            .collect();
        records.sort();
        assert_eq!(
            records,
            [
                (b"/ctx/a".to_vec(), 10, Digest::of(b"a2")),
                (b"/ctx/b".to_vec(), 2, Digest::of(b"b")),
                (b"/ctx/c".to_vec(), 3, Digest::of(b"c")),
            ]
        );
        // Nothing learned: the file is left as it is.
        let before = fs::read(third.file.as_ref().unwrap()).unwrap();
        third.save().unwrap();
        assert_eq!(fs::read(third.file.as_ref().unwrap()).unwrap(), before);
    }

    /// Records below a walked directory that the walk did not look up (deleted files) are
    /// dropped on save; records elsewhere, and those it looked up, are kept.
    #[test]
    fn saving_after_a_walk_drops_files_the_walk_did_not_see() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = SETTLED;
        let first = StatCache::load(dir.path(), Path::new("/ctx"));
        for p in [
            "/ctx/src/kept",
            "/ctx/src/deleted",
            "/ctx/src-other/f",
            "/ctx/docs/f",
        ] {
            learn(&first, Path::new(p), stamp, Digest::of(p.as_bytes()));
        }
        first.save().unwrap();

        let second = StatCache::load(dir.path(), Path::new("/ctx"));
        let kept = second.stored.get(b"/ctx/src/kept").unwrap();
        assert_eq!(kept.digest, Digest::of(b"/ctx/src/kept"));
        second.walked(Path::new("/ctx/src"));
        learn(
            &second,
            Path::new("/ctx/src/new"),
            stamp,
            Digest::of(b"new"),
        );
        second.save().unwrap();

        let third = StatCache::load(dir.path(), Path::new("/ctx"));
        let mut paths: Vec<_> = third.stored.records().map(|(_, p, _)| p.to_vec()).collect();
        paths.sort();
        let expected: Vec<&[u8]> = vec![
            b"/ctx/docs/f",
            b"/ctx/src-other/f",
            b"/ctx/src/kept",
            b"/ctx/src/new",
        ];
        assert_eq!(paths, expected);
    }

    #[test]
    fn the_file_round_trips_and_a_torn_one_is_ignored() {
        let stamp = |n: u64| Stamp {
            size: n,
            mtime_ns: -(n as i128) * 1_000_000_007,
            ctime_ns: n as i128 * 3,
            ino: n + 1,
        };
        let mut bytes = MAGIC.to_vec();
        for n in 0..50u64 {
            let e = Entry {
                stamp: stamp(n),
                digest: Digest::of(&n.to_le_bytes()),
            };
            encode(&mut bytes, format!("/ctx/dir {n}/f\n{n}").as_bytes(), &e);
        }
        let stored = Stored::parse(Bytes::Owned(bytes.clone())).unwrap();
        assert_eq!(stored.records().count(), 50);
        let e = stored.get(b"/ctx/dir 7/f\n7").unwrap();
        assert_eq!(
            (e.stamp, e.digest),
            (stamp(7), Digest::of(&7u64.to_le_bytes()))
        );
        assert!(stored.get(b"/ctx/dir 7/f").is_none());
        assert!(Stored::parse(Bytes::Owned(bytes[..bytes.len() - 1].to_vec())).is_none());
        assert!(Stored::parse(Bytes::Owned(b"[]".to_vec())).is_none());
        assert_eq!(
            Stored::parse(Bytes::Owned(MAGIC.to_vec())).map(|s| s.records().count()),
            Some(0)
        );
    }

    /// Saved records come back in walk order, which lookups in that order answer from the
    /// cursor alone; lookups out of order, or of paths the file lacks, go through the map.
    #[test]
    fn lookups_in_walk_order_follow_the_cursor_and_others_use_the_map() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = SETTLED;
        // The walk visits `a/x` before `a-b` and `a.c` (the names sort in directory `/ctx`).
        let walk = ["/ctx/a/x", "/ctx/a/y/z", "/ctx/a-b", "/ctx/a.c", "/ctx/b"];
        let first = StatCache::load(dir.path(), Path::new("/ctx"));
        for p in walk.iter().rev() {
            learn(&first, Path::new(p), stamp, Digest::of(p.as_bytes()));
        }
        first.save().unwrap();

        let second = StatCache::load(dir.path(), Path::new("/ctx"));
        let saved: Vec<_> = second
            .stored
            .records()
            .map(|(_, p, _)| p.to_vec())
            .collect();
        assert_eq!(saved, walk.map(|p| p.as_bytes().to_vec()));
        for p in walk {
            assert_eq!(
                second.stored.get(p.as_bytes()).unwrap().digest,
                Digest::of(p.as_bytes())
            );
        }
        assert!(second.stored.index.get().is_none(), "the map was built");

        // Backwards: each lookup misses the cursor, and the map answers.
        for p in walk.iter().rev() {
            assert_eq!(
                second.stored.get(p.as_bytes()).unwrap().digest,
                Digest::of(p.as_bytes())
            );
        }
        assert!(second.stored.index.get().is_some());
        assert!(second.stored.get(b"/ctx/a").is_none());
        assert!(second.stored.get(b"/ctx/a/x/").is_none());
    }

    #[test]
    fn walk_order_puts_a_directory_s_contents_right_after_it() {
        let mut paths = vec!["a-b", "a/x", "a", "a.c", "ab", "a/x/y", "a/w", "b"];
        paths.sort_by(|x, y| walk_order(x.as_bytes(), y.as_bytes()));
        assert_eq!(paths, ["a", "a/w", "a/x", "a/x/y", "a-b", "a.c", "ab", "b"]);
        let mut by_path = paths.clone();
        by_path.sort_by(|x, y| Path::new(x).cmp(Path::new(y)));
        assert_eq!(by_path, paths);
    }
}
