//! `write_layer`: an overlay-format diff directory → a deterministic OCI layer tar.
//!
//! The diff is walked once to collect entry names and what their `lstat` says (not
//! contents), the names are sorted bytewise, then each entry is streamed. Memory is
//! O(number of changed paths); file contents are never held in memory.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use builder_store::{Digest, HashingWriter};
use tar::{EntryType, Header};

use crate::background_hash::BackgroundHashingWriter;
use crate::compress::{Compression, LayerEncoder, default_threads};
use crate::error::{SnapshotError, io_err};
use crate::meta::{file_xattrs, open_file_xattrs};
use crate::overlay_format::{OPAQUE_MARKER, WHITEOUT_PREFIX, is_opaque, is_whiteout};

#[derive(Debug, Clone)]
pub struct LayerOptions {
    /// Clamp every mtime to at most this (seconds since the epoch), for reproducible builds.
    pub source_date_epoch: Option<i64>,
    pub compression: Compression,
    /// Paths (relative to the diff root, e.g. `dev`, `proc`, `etc/hosts`) that the
    /// sandbox created only as mount points. They are left out of the layer when
    /// they are an empty directory or an empty regular file in the diff; if the
    /// step really wrote something there, they are kept.
    pub exclude_empty_mountpoints: Vec<PathBuf>,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            source_date_epoch: None,
            compression: Compression::GZIP_DEFAULT,
            exclude_empty_mountpoints: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerDigests {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// sha256 of the bytes written to `out`.
    pub digest: Digest,
    /// Bytes written to `out`.
    pub size: u64,
    pub uncompressed_size: u64,
}

/// What one tar entry is made from.
enum Source {
    /// A real file, dir, link, device or fifo at this path, as it was listed.
    Node(PathBuf, Stat),
    /// A whiteout device in the diff: becomes an empty `.wh.<name>` file.
    Whiteout,
    /// An opaque directory's marker: an empty `.wh..wh..opq` file.
    OpaqueMarker,
}

struct Planned {
    /// Archive name without a trailing slash; the sort key.
    name: Vec<u8>,
    source: Source,
}

/// What the tar header of a node takes from its `lstat`, kept from the listing: the diff no
/// longer changes once it is written out, and a second `lstat` by the full path at emit time
/// walked every component again (the 20,000-file COPY of BENCHMARKS.md: one of four path
/// walks per file in the layer's writer, which bounds that phase). Only these fields, not
/// the whole `Metadata`: a plan may hold a million entries.
#[derive(Clone, Copy)]
struct Stat {
    /// Type and permission bits (`st_mode`).
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    size: u64,
    nlink: u64,
    dev: u64,
    ino: u64,
    rdev: u64,
}

impl Stat {
    fn of(meta: &Metadata) -> Stat {
        Stat {
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime(),
            size: meta.len(),
            nlink: meta.nlink(),
            dev: meta.dev(),
            ino: meta.ino(),
            rdev: meta.rdev(),
        }
    }

    fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
}

/// Writes an OCI layer tar (gzip, zstd or uncompressed) of the overlay-format diff directory
/// `diff_dir` to `out`. Same input, same options → same bytes. On error, what was
/// already written to `out` is incomplete and must be discarded.
pub fn write_layer(
    diff_dir: &Path,
    out: impl Write,
    opts: &LayerOptions,
) -> Result<LayerDigests, SnapshotError> {
    let mut plan = Vec::new();
    let excluded: HashSet<&Path> = opts
        .exclude_empty_mountpoints
        .iter()
        .map(PathBuf::as_path)
        .collect();
    collect(diff_dir, Path::new(""), &excluded, &mut plan)?;
    plan.sort_by(|a, b| a.name.cmp(&b.name));

    // tar writes 512-byte headers one by one: batch them before they reach `out`.
    let compressed = BlobSide::new(BufWriter::with_capacity(256 * 1024, out), opts.compression);
    // Every core compresses; the bytes are the same for any thread count.
    let sink = LayerEncoder::new(compressed, opts.compression, default_threads())
        .map_err(SnapshotError::ArchiveWrite)?;
    // The tar's sha256 (the diff id) on another core while this thread reads the files.
    let mut builder = tar::Builder::new(BackgroundHashingWriter::new(sink));
    let mut emitter = Emitter {
        builder: &mut builder,
        hardlinks: HashMap::new(),
        epoch: opts.source_date_epoch,
        chunk: Vec::new(),
    };
    for entry in &plan {
        // Also checked while a file's data is read (ExactReader): a cancelled build stops
        // within a few MiB, not at the end of a layer that may take minutes to compress.
        if crate::cancel::cancel_requested() {
            return Err(SnapshotError::Cancelled);
        }
        emitter.emit(entry)?;
    }
    let uncompressed = builder.into_inner().map_err(SnapshotError::ArchiveWrite)?;
    let (diff_id, uncompressed_size, sink) = uncompressed.finish();
    let compressed = sink.finish().map_err(SnapshotError::ArchiveWrite)?;
    let (digest, size, buffered) = compressed.finish(diff_id);
    let mut out = buffered
        .into_inner()
        .map_err(|e| SnapshotError::ArchiveWrite(e.into_error()))?;
    out.flush().map_err(SnapshotError::ArchiveWrite)?;
    Ok(LayerDigests {
        diff_id,
        digest,
        size,
        uncompressed_size,
    })
}

/// What reaches `out`, hashed for the blob's digest unless it is the tar itself (no
/// compression): then the digest is the diff id, already computed on the same bytes. sha256 is
/// ~86% of an uncompressed layer's write (perf, 1 GB layer): hashing once instead of twice
/// took `layer_write_bench` on that layer (see [`FILE_CHUNK`]) from 1.56 to 0.94 s.
enum BlobSide<W> {
    Hashing(HashingWriter<W>),
    Counting { inner: W, len: u64 },
}

impl<W: Write> BlobSide<W> {
    fn new(inner: W, compression: Compression) -> Self {
        match compression {
            Compression::Uncompressed => BlobSide::Counting { inner, len: 0 },
            _ => BlobSide::Hashing(HashingWriter::new(inner)),
        }
    }

    /// Digest and size of what was written (`diff_id`: the tar's digest, which it is when
    /// nothing compressed it), and the inner writer.
    fn finish(self, diff_id: Digest) -> (Digest, u64, W) {
        match self {
            BlobSide::Hashing(h) => h.finish(),
            BlobSide::Counting { inner, len } => (diff_id, len, inner),
        }
    }
}

impl<W: Write> Write for BlobSide<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            BlobSide::Hashing(h) => h.write(buf),
            BlobSide::Counting { inner, len } => {
                let n = inner.write(buf)?;
                *len += n as u64;
                Ok(n)
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            BlobSide::Hashing(h) => h.flush(),
            BlobSide::Counting { inner, .. } => inner.flush(),
        }
    }
}

/// Recursively lists `dir` (relative `rel`) into `plan`.
fn collect(
    root: &Path,
    rel: &Path,
    excluded: &HashSet<&Path>,
    plan: &mut Vec<Planned>,
) -> Result<(), SnapshotError> {
    let dir = root.join(rel);
    let entries = fs::read_dir(&dir).map_err(io_err("reading directory", &dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err("reading directory", &dir))?;
        let child_rel = rel.join(entry.file_name());
        let path = entry.path();
        // Relative to the open directory (symlinks not followed): no walk of the full path.
        let meta = entry.metadata().map_err(io_err("stat", &path))?;
        if is_whiteout(&meta) {
            plan.push(Planned {
                name: whiteout_name(rel, &entry.file_name()),
                source: Source::Whiteout,
            });
            continue;
        }
        if entry
            .file_name()
            .as_bytes()
            .starts_with(WHITEOUT_PREFIX.as_bytes())
        {
            return Err(SnapshotError::ReservedName { path });
        }
        if excluded.contains(child_rel.as_path())
            && only_mountpoints(&path, &child_rel, &meta, excluded)?
        {
            continue;
        }
        plan.push(Planned {
            name: child_rel.as_os_str().as_bytes().to_vec(),
            source: Source::Node(path.clone(), Stat::of(&meta)),
        });
        if meta.is_dir() {
            if is_opaque(&path).map_err(io_err("reading xattrs of", &path))? {
                let marker = child_rel.join(OPAQUE_MARKER);
                plan.push(Planned {
                    name: marker.as_os_str().as_bytes().to_vec(),
                    source: Source::OpaqueMarker,
                });
            }
            collect(root, &child_rel, excluded, plan)?;
        }
    }
    Ok(())
}

fn whiteout_name(parent: &Path, name: &OsStr) -> Vec<u8> {
    let mut file = WHITEOUT_PREFIX.as_bytes().to_vec();
    file.extend_from_slice(name.as_bytes());
    parent
        .join(OsStr::from_bytes(&file))
        .as_os_str()
        .as_bytes()
        .to_vec()
}

/// An empty regular file, or a directory holding nothing but other excluded
/// mount points (the sandbox may create `etc` just to bind `etc/hosts` in it):
/// what bind-mount targets look like after the step.
fn only_mountpoints(
    path: &Path,
    rel: &Path,
    meta: &Metadata,
    excluded: &HashSet<&Path>,
) -> Result<bool, SnapshotError> {
    if meta.is_file() {
        return Ok(meta.len() == 0);
    }
    if !meta.is_dir() {
        return Ok(false);
    }
    for entry in fs::read_dir(path).map_err(io_err("reading directory", path))? {
        let entry = entry.map_err(io_err("reading directory", path))?;
        let child_rel = rel.join(entry.file_name());
        let child = entry.path();
        let child_meta = fs::symlink_metadata(&child).map_err(io_err("stat", &child))?;
        if !excluded.contains(child_rel.as_path())
            || !only_mountpoints(&child, &child_rel, &child_meta, excluded)?
        {
            return Ok(false);
        }
    }
    Ok(true)
}

struct Emitter<'a, W: Write> {
    builder: &'a mut tar::Builder<W>,
    /// (dev, ino) of multiply-linked files already written → their archive name.
    hardlinks: HashMap<(u64, u64), Vec<u8>>,
    epoch: Option<i64>,
    /// The buffer file data moves through (see [`FILE_CHUNK`]), grown to the largest file seen
    /// up to that size and reused, so a small file costs no large zeroing.
    chunk: Vec<u8>,
}

/// How much of a file is read and handed to the tar stream at once. `tar::Builder::append_data`
/// copies with `io::copy` through an 8 KiB buffer: a read(2), a copy through the BufWriter and
/// a trip through the hashers and the compressor per 8 KiB (128,000 reads per GB; 1,000 now).
/// Measured with `layer_write_bench` (snapshot/examples) on a 1 GB layer of ten 100 MB files,
/// half random, page cache warm, medians of 3 interleaved runs on 2 loaded cores (load ~3.5):
/// uncompressed 1.61 -> 1.56 s, as sha256 is 86% of it (perf; see [`BlobSide`] for the real
/// gain there); gzip 21-23 s either way, deflate-bound.
const FILE_CHUNK: usize = 1 << 20;

impl<W: Write> Emitter<'_, W> {
    fn emit(&mut self, entry: &Planned) -> Result<(), SnapshotError> {
        let name = OsStr::from_bytes(&entry.name);
        match &entry.source {
            // Whiteouts and markers carry no metadata of interest: fixed values
            // keep them reproducible (Docker and BuildKit also write them empty).
            Source::Whiteout | Source::OpaqueMarker => {
                let mut h = base_header(EntryType::Regular, 0o644, 0, 0, 0);
                h.set_size(0);
                self.builder
                    .append_data(&mut h, name, io::empty())
                    .map_err(SnapshotError::ArchiveWrite)
            }
            Source::Node(path, stat) => self.emit_node(name, path, stat),
        }
    }

    fn emit_node(&mut self, name: &OsStr, path: &Path, meta: &Stat) -> Result<(), SnapshotError> {
        let mtime = clamp_mtime(meta.mtime, self.epoch);
        let kind = meta.kind();
        // Another name of a file (or device) written earlier becomes a link entry.
        let earlier = self.earlier_link(meta, name);
        // A regular file's xattrs are read through the descriptor its data is read from: one
        // walk of its path instead of two.
        let file = match kind {
            libc::S_IFREG if earlier.is_none() => {
                Some(File::open(path).map_err(io_err("opening", path))?)
            }
            _ => None,
        };
        let xattrs = match &file {
            Some(f) => open_file_xattrs(f),
            None => file_xattrs(path),
        }
        .map_err(io_err("reading xattrs of", path))?;
        self.append_xattrs(path, &xattrs)?;
        let mode = meta.mode & 0o7777;
        let (uid, gid) = crate::ids::from_disk(meta.uid, meta.gid);
        let mk = |ty| base_header(ty, mode, uid, gid, mtime);
        let res = if kind == libc::S_IFDIR {
            let mut h = mk(EntryType::Directory);
            let mut dir_name = name.as_bytes().to_vec();
            dir_name.push(b'/');
            self.builder
                .append_data(&mut h, OsStr::from_bytes(&dir_name), io::empty())
        } else if kind == libc::S_IFLNK {
            let target = fs::read_link(path).map_err(io_err("reading symlink", path))?;
            self.builder
                .append_link(&mut mk(EntryType::Symlink), name, target)
        } else if let Some(first) = earlier {
            self.builder
                .append_link(&mut mk(EntryType::Link), name, OsStr::from_bytes(&first))
        } else if let Some(file) = file {
            return self.emit_file(name, path, file, meta.size, mk(EntryType::Regular));
        } else if kind == libc::S_IFCHR || kind == libc::S_IFBLK {
            let ty = if kind == libc::S_IFCHR {
                EntryType::Char
            } else {
                EntryType::Block
            };
            let mut h = mk(ty);
            let rdev = meta.rdev;
            h.set_device_major(libc::major(rdev))
                .map_err(SnapshotError::ArchiveWrite)?;
            h.set_device_minor(libc::minor(rdev))
                .map_err(SnapshotError::ArchiveWrite)?;
            self.builder.append_data(&mut h, name, io::empty())
        } else if kind == libc::S_IFIFO {
            self.builder
                .append_data(&mut mk(EntryType::Fifo), name, io::empty())
        } else {
            // Sockets cannot be carried by a layer; Docker and BuildKit drop them too.
            return Ok(());
        };
        res.map_err(SnapshotError::ArchiveWrite)
    }

    /// For a file with several links, the archive name of the first one written,
    /// remembering this one if it is the first.
    fn earlier_link(&mut self, meta: &Stat, name: &OsStr) -> Option<Vec<u8>> {
        // Directories cannot be hard links, and a symlink is written as a symlink whatever
        // its link count.
        if matches!(meta.kind(), libc::S_IFDIR | libc::S_IFLNK) || meta.nlink < 2 {
            return None;
        }
        let key = (meta.dev, meta.ino);
        if let Some(first) = self.hardlinks.get(&key) {
            return Some(first.clone());
        }
        self.hardlinks.insert(key, name.as_bytes().to_vec());
        None
    }

    fn emit_file(
        &mut self,
        name: &OsStr,
        path: &Path,
        file: File,
        size: u64,
        mut h: Header,
    ) -> Result<(), SnapshotError> {
        h.set_size(size);
        let mut reader = ExactReader {
            inner: file.take(size),
            remaining: size,
            path,
        };
        // The header (and any long-name entry) through tar, which writes no data for an empty
        // reader and no padding after none; the data and its padding to a whole block then go
        // straight to the stream in large chunks.
        self.builder
            .append_data(&mut h, name, io::empty())
            .map_err(SnapshotError::ArchiveWrite)?;
        let want = usize::try_from(size).unwrap_or(FILE_CHUNK).min(FILE_CHUNK);
        if self.chunk.len() < want {
            self.chunk.resize(want, 0);
        }
        let out = self.builder.get_mut();
        let copied = copy_chunked(&mut reader, out, &mut self.chunk).and_then(|n| {
            pad_to_block(out, n)?;
            Ok(n)
        });
        match copied {
            Ok(_) => Ok(()),
            Err(_) if crate::cancel::cancel_requested() => Err(SnapshotError::Cancelled),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(SnapshotError::FileChanged {
                path: path.to_path_buf(),
                reason: format!("shrank below {size} bytes"),
            }),
            Err(e) => Err(SnapshotError::ArchiveWrite(e)),
        }
    }

    fn append_xattrs(
        &mut self,
        path: &Path,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), SnapshotError> {
        if xattrs.is_empty() {
            return Ok(());
        }
        let mut records = Vec::with_capacity(xattrs.len());
        for (name, value) in xattrs {
            let name = std::str::from_utf8(name).map_err(|_| SnapshotError::BadEntry {
                entry: path.display().to_string(),
                reason: format!(
                    "xattr name {:?} is not UTF-8 and cannot be stored in a PAX record",
                    String::from_utf8_lossy(name)
                ),
            })?;
            records.push((format!("SCHILY.xattr.{name}"), value.as_slice()));
        }
        self.builder
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
            .map_err(SnapshotError::ArchiveWrite)
    }
}

fn clamp_mtime(mtime: i64, epoch: Option<i64>) -> u64 {
    let clamped = match epoch {
        Some(e) => mtime.min(e),
        None => mtime,
    };
    // Tar headers cannot express times before 1970 portably.
    clamped.max(0) as u64
}

fn base_header(ty: EntryType, mode: u32, uid: u32, gid: u32, mtime: u64) -> Header {
    // GNU headers: long names/links go in GNU extension entries and large ids
    // in base-256, both read by every OCI implementation. uname/gname stay empty.
    let mut h = Header::new_gnu();
    h.set_entry_type(ty);
    h.set_mode(mode);
    h.set_uid(u64::from(uid));
    h.set_gid(u64::from(gid));
    h.set_mtime(mtime);
    h.set_size(0);
    // Zero-filled rather than blank device fields: strict readers parse them
    // on every entry, as GNU tar and Go's archive/tar both write them.
    if let Some(gnu) = h.as_gnu_mut() {
        gnu.set_device_major(0);
        gnu.set_device_minor(0);
    }
    h
}

/// Copies all of `from` to `to` through `buf` (non-empty unless `from` is), one read and one
/// write per chunk; the bytes copied.
fn copy_chunked(from: &mut impl Read, to: &mut impl Write, buf: &mut [u8]) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = match from.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Zeroes after `len` bytes of entry data up to the next 512-byte tar block.
fn pad_to_block(to: &mut impl Write, len: u64) -> io::Result<()> {
    const BLOCK: u64 = 512;
    let rest = (BLOCK - len % BLOCK) % BLOCK;
    to.write_all(&[0u8; BLOCK as usize][..rest as usize])
}

/// Reads exactly the size recorded in the header; a file that shrank while
/// being archived is an error instead of a corrupt archive.
struct ExactReader<'a, R> {
    inner: R,
    remaining: u64,
    path: &'a Path,
}

impl<R: Read> Read for ExactReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One relaxed atomic load per read (tar reads in small blocks): cheap next to the read.
        if crate::cancel::cancel_requested() {
            return Err(crate::cancel::cancelled_io_error());
        }
        let n = self.inner.read(buf)?;
        if n == 0 && self.remaining > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} shrank while archiving", self.path.display()),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply_layer;

    fn layer(dir: &Path, compression: Compression) -> (LayerDigests, Vec<u8>) {
        let mut out = Vec::new();
        let opts = LayerOptions {
            compression,
            ..LayerOptions::default()
        };
        let d = write_layer(dir, &mut out, &opts).unwrap();
        (d, out)
    }

    #[test]
    fn every_compression_carries_the_same_tar_and_extracts() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("etc")).unwrap();
        fs::write(src.path().join("etc/big"), "line\n".repeat(300_000)).unwrap();
        fs::write(src.path().join("small"), b"x").unwrap();
        let (plain, plain_bytes) = layer(src.path(), Compression::Uncompressed);
        assert_eq!(plain.digest, plain.diff_id);
        for c in [Compression::GZIP_DEFAULT, Compression::ZSTD_DEFAULT] {
            let (d, bytes) = layer(src.path(), c);
            assert_eq!(d.diff_id, plain.diff_id, "{c:?}");
            assert_eq!(d.uncompressed_size, plain_bytes.len() as u64);
            assert_eq!(d.size, bytes.len() as u64);
            assert!(bytes.len() < plain_bytes.len() / 10, "{c:?} compresses");
            let dest = tempfile::tempdir().unwrap();
            apply_layer(&bytes[..], dest.path()).unwrap();
            assert_eq!(
                fs::read(dest.path().join("etc/big")).unwrap(),
                fs::read(src.path().join("etc/big")).unwrap()
            );
        }
    }
}
