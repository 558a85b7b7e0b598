//! Destinations for an image layout: a tar stream or a directory. The layout
//! code decides *what* to write; a sink decides *how*.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use builder_store::{BlobStore, Digest, HashingReader};

use crate::ExportError;

pub(crate) trait LayoutSink {
    fn add_dir(&mut self, path: &str) -> Result<(), ExportError>;
    fn add_bytes(&mut self, path: &str, bytes: &[u8]) -> Result<(), ExportError>;
    /// Copies blob `d` to `path`, streaming from disk and checking its digest.
    fn add_blob(&mut self, path: &str, blobs: &BlobStore, d: &Digest) -> Result<(), ExportError>;
}

/// Reports bytes of a blob copied so far: `(digest, done, total)`.
pub type BlobProgress<'a> = &'a dyn Fn(&Digest, u64, u64);

/// Report at most every this many bytes per blob (and always at the end).
const PROGRESS_STEP: u64 = 1 << 20;

/// A reader that tells `report` how far it got.
struct Reporting<'a, R> {
    inner: R,
    digest: &'a Digest,
    done: u64,
    reported: u64,
    total: u64,
    report: BlobProgress<'a>,
}

impl<R: Read> Read for Reporting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.done - self.reported >= PROGRESS_STEP
            || (self.done == self.total && self.reported != self.total)
        {
            self.reported = self.done;
            (self.report)(self.digest, self.done, self.total);
        }
        Ok(n)
    }
}

/// Copies `reader` (`size` bytes) to `out`, reporting progress, then fails if what was read
/// does not hash to `d`: a blob corrupted on disk must not be exported silently.
fn copy_verified(
    d: &Digest,
    reader: File,
    size: u64,
    progress: Option<BlobProgress<'_>>,
    out: &mut impl FnMut(&mut dyn Read) -> io::Result<()>,
) -> Result<(), ExportError> {
    let mut hashing = HashingReader::new(reader);
    let copied = match progress {
        Some(report) => {
            report(d, 0, size);
            out(&mut Reporting {
                inner: &mut hashing,
                digest: d,
                done: 0,
                reported: 0,
                total: size,
                report,
            })
        }
        None => out(&mut hashing),
    };
    copied.map_err(ExportError::io("copy blob", d.to_string()))?;
    let (actual, _) = hashing.finish();
    if actual != *d {
        return Err(ExportError::BlobChanged { digest: *d, actual });
    }
    Ok(())
}

/// Tar output with fixed metadata (mtime 0, root owner, 0644/0755) so the
/// same images always produce the same bytes.
pub(crate) struct TarSink<'p, W: Write> {
    builder: tar::Builder<W>,
    progress: Option<BlobProgress<'p>>,
}

impl<'p, W: Write> TarSink<'p, W> {
    pub fn new(out: W, progress: Option<BlobProgress<'p>>) -> TarSink<'p, W> {
        TarSink {
            builder: tar::Builder::new(out),
            progress,
        }
    }

    pub fn finish(self) -> Result<W, ExportError> {
        self.builder
            .into_inner()
            .map_err(ExportError::io("finish tar", "<output>"))
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    }
}

impl<W: Write> LayoutSink for TarSink<'_, W> {
    fn add_dir(&mut self, path: &str) -> Result<(), ExportError> {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        // Directory names end in '/', as docker save (Go's archive/tar) writes
        // them; the tar crate's path setter strips it, so set the bytes directly.
        let name = format!("{path}/");
        let field = &mut h.as_old_mut().name;
        if name.len() < field.len() {
            field[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            return self
                .builder
                .append(&h, io::empty())
                .map_err(ExportError::io("write tar entry", path));
        }
        self.builder
            .append_data(&mut h, path, io::empty())
            .map_err(ExportError::io("write tar entry", path))
    }

    fn add_bytes(&mut self, path: &str, bytes: &[u8]) -> Result<(), ExportError> {
        let mut h = Self::header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
        self.builder
            .append_data(&mut h, path, bytes)
            .map_err(ExportError::io("write tar entry", path))
    }

    fn add_blob(&mut self, path: &str, blobs: &BlobStore, d: &Digest) -> Result<(), ExportError> {
        let file = blobs.open(d)?;
        let size = file
            .metadata()
            .map_err(ExportError::io("stat", blobs.path(d)))?
            .len();
        let mut h = Self::header(tar::EntryType::Regular, 0o644, size);
        let builder = &mut self.builder;
        // The tar crate copies exactly `size` bytes; blobs are immutable, so the size cannot change underneath.
        copy_verified(d, file, size, self.progress, &mut |r| {
            builder.append_data(&mut h, path, r)
        })
    }
}

/// A directory (an OCI layout on disk). Blobs already present are kept:
/// their names are their content.
pub(crate) struct DirSink {
    root: PathBuf,
}

impl DirSink {
    pub fn new(root: &Path) -> DirSink {
        DirSink {
            root: root.to_path_buf(),
        }
    }

    /// Writes via a sibling temp file and rename so a crash never leaves a
    /// truncated file under a final name.
    fn write_with(
        &self,
        path: &str,
        fill: impl FnOnce(&mut File) -> Result<(), ExportError>,
    ) -> Result<(), ExportError> {
        let dest = self.root.join(path);
        let tmp = dest.with_file_name(format!(
            ".{}.tmp",
            dest.file_name().and_then(|n| n.to_str()).unwrap_or("file")
        ));
        let mut file = File::create(&tmp).map_err(ExportError::io("create", &tmp))?;
        fill(&mut file)?;
        file.sync_all().map_err(ExportError::io("fsync", &tmp))?;
        fs::rename(&tmp, &dest).map_err(ExportError::io("rename into place", &dest))
    }
}

impl LayoutSink for DirSink {
    fn add_dir(&mut self, path: &str) -> Result<(), ExportError> {
        let dir = self.root.join(path);
        fs::create_dir_all(&dir).map_err(ExportError::io("create directory", dir))
    }

    fn add_bytes(&mut self, path: &str, bytes: &[u8]) -> Result<(), ExportError> {
        self.write_with(path, |f| {
            f.write_all(bytes).map_err(ExportError::io("write", path))
        })
    }

    fn add_blob(&mut self, path: &str, blobs: &BlobStore, d: &Digest) -> Result<(), ExportError> {
        let dest = self.root.join(path);
        let size = blobs.size(d)?;
        if fs::metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == size) {
            return Ok(());
        }
        let src = blobs.open(d)?;
        self.write_with(path, |f| {
            copy_verified(d, src, size, None, &mut |r| io::copy(r, f).map(drop))
        })
    }
}
