//! Content-addressed blobs under `blobs/sha256/<hex>`.
//!
//! Every write goes to a temp file in the store's `tmp/` (same file system as
//! the blobs, so the final step is an atomic link), is fsynced, and is then
//! hard-linked into place. Linking instead of renaming means an existing blob
//! is never replaced, and two processes committing the same content both
//! succeed. Reads do not re-hash; call [`BlobStore::verify`] to check a blob.

use std::fs::{self, File, Permissions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::direct_write::DirectWriter;
use crate::fsutil::fsync_dir;
use crate::{Digest, Hasher, HashingReader, StoreError};

/// Largest blob [`BlobStore::read`] loads into memory. Manifests and configs
/// are kilobytes; anything near this size is a layer read by mistake.
pub const MAX_IN_MEMORY_BLOB: u64 = 64 * 1024 * 1024;

/// Blobs are immutable once committed; read-only permissions guard against
/// an accidental in-place edit by tools that open store files directly.
const BLOB_MODE: u32 = 0o444;

/// Name prefix of [`BlobWriter`] temp files in `tmp/` (see [`BlobStore::writer`]).
pub(crate) const TMP_BLOB_PREFIX: &str = "blob-";

/// Whether the temp file's path still names the inode we hold open.
fn still_named(tmp: &NamedTempFile) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (tmp.as_file().metadata(), fs::symlink_metadata(tmp.path())) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

/// Whether a blob's pages stay in the page cache as it is written.
#[derive(Clone, Copy)]
enum Cache {
    Keep,
    Bypass,
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    /// `<root>/blobs/sha256`
    dir: PathBuf,
    /// `<root>/tmp`
    tmp: PathBuf,
}

impl BlobStore {
    pub(crate) fn new(dir: PathBuf, tmp: PathBuf) -> BlobStore {
        BlobStore { dir, tmp }
    }

    /// Where the blob with digest `d` lives (whether or not it exists).
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join(d.hex())
    }

    pub fn contains(&self, d: &Digest) -> bool {
        fs::symlink_metadata(self.path(d)).is_ok_and(|m| m.is_file())
    }

    pub fn size(&self, d: &Digest) -> Result<u64, StoreError> {
        let path = self.path(d);
        fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|e| self.not_found_or(d, "stat", &path, e))
    }

    pub fn open(&self, d: &Digest) -> Result<File, StoreError> {
        let path = self.path(d);
        File::open(&path).map_err(|e| self.not_found_or(d, "open", &path, e))
    }

    /// Reads a small blob (manifest, config, index) fully and checks its digest:
    /// the hash is nearly free once the bytes are in memory, and a corrupted
    /// manifest would otherwise propagate into everything built from it.
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>, StoreError> {
        let size = self.size(d)?;
        if size > MAX_IN_MEMORY_BLOB {
            return Err(StoreError::BlobTooLarge {
                digest: *d,
                size,
                limit: MAX_IN_MEMORY_BLOB,
            });
        }
        let path = self.path(d);
        let bytes = fs::read(&path).map_err(|e| self.not_found_or(d, "read", &path, e))?;
        let actual = Digest::of(&bytes);
        if actual != *d {
            return Err(StoreError::Corrupted { digest: *d, actual });
        }
        Ok(bytes)
    }

    /// Stores `bytes`, returning their digest. A blob already present is left untouched.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let d = Digest::of(bytes);
        if self.contains(&d) {
            return Ok(d);
        }
        let mut w = self.writer()?;
        w.write_all(bytes)
            .map_err(StoreError::io("write", w.temp_path()))?;
        w.commit_expecting(&d)?;
        Ok(d)
    }

    /// A writer to a fresh temp file that hashes as it goes; nothing is
    /// visible in the store until [`BlobWriter::commit`]. Dropping the writer
    /// without committing removes the temp file.
    ///
    /// The temp file (`tmp/blob-*`) is flocked for as long as the writer lives: the kernel
    /// drops the lock when the process dies, however it dies, so
    /// [`crate::Store::remove_abandoned_tmp`] in any later process can tell a crashed writer's
    /// file (unlocked) from one a concurrent build is still writing (locked), whatever its age.
    pub fn writer(&self) -> Result<BlobWriter, StoreError> {
        // Through the page cache: what comes this way (a download, an imported layer) is
        // usually unpacked or copied by the step that asked for it right after.
        let (tmp, out) = self.temp_blob(Cache::Keep)?;
        Ok(BlobWriter {
            tmp,
            out,
            hasher: Hasher::new(),
            store: self.clone(),
        })
    }

    /// Like [`BlobStore::writer`], for a caller that hashes the very bytes it writes itself:
    /// the layer writer computes a plain tar's digest for its diff id, and that is the blob's
    /// digest. A second sha256 pass here cost ~0.6 s per GB of layer (BENCHMARKS.md, "the
    /// layer writer"). `builder cache verify` re-hashes every blob.
    ///
    /// A step's layer is written past the page cache: its files are in the step's snapshot
    /// already, and the blob is read again only by an export or a push (see `direct_write`).
    pub fn prehashed_writer(&self) -> Result<PrehashedBlobWriter, StoreError> {
        let (tmp, out) = self.temp_blob(Cache::Bypass)?;
        Ok(PrehashedBlobWriter {
            tmp,
            out,
            len: 0,
            store: self.clone(),
        })
    }

    /// A fresh, flocked temp file for a blob writer, and a handle that writes it through or
    /// past the page cache.
    fn temp_blob(&self, cache: Cache) -> Result<(NamedTempFile, DirectWriter), StoreError> {
        let tmp = loop {
            let tmp = tempfile::Builder::new()
                .prefix(TMP_BLOB_PREFIX)
                .tempfile_in(&self.tmp)
                .map_err(StoreError::io("create temp file in", &self.tmp))?;
            // Between creating the file and locking it, a sweeper may have found it unlocked
            // and removed it (or hold its lock to do so): then take another name.
            if fs2::FileExt::try_lock_exclusive(tmp.as_file()).is_ok() && still_named(&tmp) {
                break tmp;
            }
        };
        let file = tmp.reopen().map_err(StoreError::io("reopen", tmp.path()))?;
        let out = match cache {
            Cache::Keep => DirectWriter::buffered(file),
            Cache::Bypass => DirectWriter::new(file),
        };
        Ok((tmp, out))
    }

    /// Moves the file at `tmp` into the store as blob `expected`, after re-hashing
    /// it (the caller's claim about the content is not trusted) and fsyncing it.
    /// On success `tmp` no longer exists. A file on another file system is copied.
    pub fn commit_file(&self, tmp: &Path, expected: &Digest) -> Result<(), StoreError> {
        let file = File::open(tmp).map_err(StoreError::io("open", tmp))?;
        let mut reader = HashingReader::new(&file);
        io::copy(&mut reader, &mut io::sink()).map_err(StoreError::io("read", tmp))?;
        let (actual, size) = reader.finish();
        if actual != *expected {
            return Err(StoreError::DigestMismatch {
                expected: *expected,
                actual,
                size,
            });
        }
        file.sync_all().map_err(StoreError::io("fsync", tmp))?;
        fs::set_permissions(tmp, Permissions::from_mode(BLOB_MODE))
            .map_err(StoreError::io("chmod", tmp))?;
        match self.link_into_place(tmp, expected) {
            Err(StoreError::Io { source, .. }) if source.raw_os_error() == Some(libc::EXDEV) => {
                let mut w = self.writer()?;
                let mut src = File::open(tmp).map_err(StoreError::io("open", tmp))?;
                io::copy(&mut src, &mut w).map_err(StoreError::io("copy", tmp))?;
                w.commit_expecting(expected)?;
            }
            other => other?,
        }
        fs::remove_file(tmp).map_err(StoreError::io("remove", tmp))
    }

    /// Re-hashes a stored blob and fails with [`StoreError::Corrupted`] if it changed.
    pub fn verify(&self, d: &Digest) -> Result<(), StoreError> {
        let path = self.path(d);
        let mut reader = HashingReader::new(self.open(d)?);
        io::copy(&mut reader, &mut io::sink()).map_err(StoreError::io("read", &path))?;
        let (actual, _) = reader.finish();
        if actual != *d {
            return Err(StoreError::Corrupted { digest: *d, actual });
        }
        Ok(())
    }

    /// Removes a blob; returns whether it existed.
    pub fn delete(&self, d: &Digest) -> Result<bool, StoreError> {
        let path = self.path(d);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io("remove", path)(e)),
        }
    }

    /// All stored digests. Entries whose names are not 64 hex digits (stray
    /// files) are skipped rather than reported: they are not blobs.
    pub fn list(
        &self,
    ) -> Result<impl Iterator<Item = Result<Digest, StoreError>> + use<>, StoreError> {
        let dir = self.dir.clone();
        let entries = fs::read_dir(&dir).map_err(StoreError::io("list", &dir))?;
        Ok(entries.filter_map(move |entry| match entry {
            Ok(e) => e
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
                .map(Ok),
            Err(err) => Some(Err(StoreError::io("list", &dir)(err))),
        }))
    }

    /// Hard-links `src` to the blob path. EEXIST means another writer got there
    /// first with the same content (the name is the content hash): success.
    fn link_into_place(&self, src: &Path, d: &Digest) -> Result<(), StoreError> {
        let dest = self.path(d);
        match fs::hard_link(src, &dest) {
            Ok(()) => fsync_dir(&self.dir),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(StoreError::io("link blob into", dest)(e)),
        }
    }

    fn not_found_or(&self, d: &Digest, op: &'static str, path: &Path, e: io::Error) -> StoreError {
        if e.kind() == ErrorKind::NotFound {
            StoreError::BlobNotFound(*d)
        } else {
            StoreError::io(op, path)(e)
        }
    }
}

/// A blob being written. Implements [`Write`]; finish with `commit`.
pub struct BlobWriter {
    tmp: NamedTempFile,
    out: DirectWriter,
    hasher: Hasher,
    store: BlobStore,
}

impl BlobWriter {
    /// The temp file being written (for error messages).
    pub fn temp_path(&self) -> &Path {
        self.tmp.path()
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// Makes the content durable and visible under its digest.
    pub fn commit(self) -> Result<(Digest, u64), StoreError> {
        self.finish(None)
    }

    /// Like `commit`, but fails (and discards the data) unless the content
    /// hashes to `expected`: used when the digest is known up front, e.g. a
    /// registry download.
    pub fn commit_expecting(self, expected: &Digest) -> Result<(Digest, u64), StoreError> {
        self.finish(Some(expected))
    }

    fn finish(self, expected: Option<&Digest>) -> Result<(Digest, u64), StoreError> {
        let BlobWriter {
            tmp,
            out,
            hasher,
            store,
        } = self;
        let size = hasher.len();
        let digest = hasher.finish();
        if let Some(expected) = expected.filter(|e| **e != digest) {
            return Err(StoreError::DigestMismatch {
                expected: *expected,
                actual: digest,
                size,
            });
        }
        publish(&store, tmp, out, digest)?;
        Ok((digest, size))
    }
}

/// Flushes, fsyncs and links the temp file into place as blob `digest` (kept as it is when
/// the store has it already).
fn publish(
    store: &BlobStore,
    tmp: NamedTempFile,
    out: DirectWriter,
    digest: Digest,
) -> Result<(), StoreError> {
    let file = out.finish().map_err(StoreError::io("write", tmp.path()))?;
    if store.contains(&digest) {
        return Ok(());
    }
    file.sync_all()
        .map_err(StoreError::io("fsync", tmp.path()))?;
    fs::set_permissions(tmp.path(), Permissions::from_mode(BLOB_MODE))
        .map_err(StoreError::io("chmod", tmp.path()))?;
    store.link_into_place(tmp.path(), &digest)?;
    // `tmp` is dropped here, unlinking the temp name; the blob keeps the inode.
    Ok(())
}

/// A blob being written by a caller that hashes it (see [`BlobStore::prehashed_writer`]).
/// Implements [`Write`]; finish with `commit_as`.
pub struct PrehashedBlobWriter {
    tmp: NamedTempFile,
    out: DirectWriter,
    len: u64,
    store: BlobStore,
}

impl PrehashedBlobWriter {
    /// Makes the content durable and visible as blob `digest`, the sha256 the caller computed
    /// of exactly the bytes it wrote.
    pub fn commit_as(self, digest: Digest) -> Result<(Digest, u64), StoreError> {
        let PrehashedBlobWriter {
            tmp,
            out,
            len,
            store,
        } = self;
        publish(&store, tmp, out, digest)?;
        Ok((digest, len))
    }
}

impl Write for PrehashedBlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
