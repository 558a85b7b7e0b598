//! A build context that arrives as a tar archive — on stdin (`builder build - < ctx.tar.gz`)
//! or downloaded (`builder build https://host/ctx.tar.gz`) — unpacked into a directory.
//!
//! What the archive may do is what a context directory can hold: files, directories,
//! symlinks (their targets are data, not followed) and hard links, with their modes and
//! times. Owners are dropped (COPY sets its own, as with a directory context). Nothing is
//! written outside the destination: `..` entries and writes through a symlinked parent are
//! refused by name, and so are device nodes, which no context directory needs.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TarballError {
    #[error("reading the context archive: {0}")]
    Read(#[source] std::io::Error),
    #[error("the context archive is not a tar archive")]
    NotATar,
    #[error("context archive entry {path:?}: {reason}")]
    Entry { path: String, reason: String },
    #[error("unpacking context archive entry {path:?} into {dest}: {source}")]
    Unpack {
        path: String,
        dest: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

const GZIP: &[u8] = &[0x1f, 0x8b, 0x08];
const BZIP2: &[u8] = b"BZh";
const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];
const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// BuildKit's test for a remote context (and docker's for stdin): compressed by a known
/// method, or a tar header. Anything else is taken as a Dockerfile.
pub fn is_archive(head: &[u8]) -> bool {
    if [GZIP, BZIP2, XZ, ZSTD].iter().any(|m| head.starts_with(m)) {
        return true;
    }
    // A tar header: 512 bytes whose checksum field matches the sum of the header's bytes
    // (with the field itself counted as spaces), and a ustar or old-style header.
    if head.len() < 512 {
        return false;
    }
    let header = &head[..512];
    let field = &header[148..156];
    let text: String = field
        .iter()
        .take_while(|b| **b != 0 && **b != b' ')
        .map(|b| *b as char)
        .collect();
    let Ok(recorded) = u32::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let sum: u32 = header
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    sum == recorded
}

/// xz through lzma-rs (pure Rust, as the bzip2 backend), whose decoder writes to a sink rather
/// than being read from: it runs on a thread of its own, feeding a pipe the tar reader reads.
struct XzReader {
    pipe: std::io::PipeReader,
    decoder: Option<std::thread::JoinHandle<Result<(), String>>>,
}

fn xz_reader(input: impl BufRead + Send + 'static) -> std::io::Result<XzReader> {
    let (pipe, writer) = std::io::pipe()?;
    let decoder = std::thread::spawn(move || {
        let mut input = input;
        let mut writer = std::io::BufWriter::new(writer);
        lzma_rs::xz_decompress(&mut input, &mut writer).map_err(|e| e.to_string())?;
        std::io::Write::flush(&mut writer).map_err(|e| e.to_string())
    });
    Ok(XzReader {
        pipe,
        decoder: Some(decoder),
    })
}

impl Read for XzReader {
    /// At the end of the pipe, the decoder's verdict: a corrupt stream is an error, not a
    /// short archive.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.pipe.read(buf)?;
        if n == 0
            && let Some(decoder) = self.decoder.take()
        {
            let verdict = decoder
                .join()
                .unwrap_or_else(|_| Err("the xz decoder panicked".into()));
            verdict.map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("xz: {e}"))
            })?;
        }
        Ok(n)
    }
}

/// Unpacks the (possibly compressed) tar `input` into the existing, empty directory `dest`.
pub fn unpack_context(input: impl Read + Send + 'static, dest: &Path) -> Result<(), TarballError> {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let head = input.fill_buf().map_err(TarballError::Read)?.to_vec();
    let reader: Box<dyn Read> = if head.starts_with(GZIP) {
        Box::new(flate2::bufread::MultiGzDecoder::new(input))
    } else if head.starts_with(ZSTD) {
        Box::new(zstd::stream::read::Decoder::with_buffer(input).map_err(TarballError::Read)?)
    } else if head.starts_with(BZIP2) {
        // bzip2 with its pure-Rust backend (libbz2-rs-sys): no C library to link.
        Box::new(bzip2::bufread::MultiBzDecoder::new(input))
    } else if head.starts_with(XZ) {
        Box::new(xz_reader(input).map_err(TarballError::Read)?)
    } else {
        Box::new(input)
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(false);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    // Directory times are set after their contents, or writing a child would bump them.
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    for (index, entry) in archive.entries().map_err(TarballError::Read)?.enumerate() {
        let mut entry = entry.map_err(|e| match index {
            0 => TarballError::NotATar,
            _ => TarballError::Read(e),
        })?;
        let path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&path).into_owned();
        let kind = entry.header().entry_type();
        if kind.is_block_special() || kind.is_character_special() {
            return Err(TarballError::Entry {
                path: shown,
                reason: "device nodes are not allowed in a build context".into(),
            });
        }
        if Path::new(std::ffi::OsStr::from_bytes(&path))
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(TarballError::Entry {
                path: shown,
                reason: "the path leaves the context (`..`)".into(),
            });
        }
        let unpacked = entry
            .unpack_in(dest)
            .map_err(|source| TarballError::Unpack {
                path: shown.clone(),
                dest: dest.to_path_buf(),
                source,
            })?;
        if !unpacked {
            return Err(TarballError::Entry {
                path: shown,
                reason: "the path leaves the context".into(),
            });
        }
        if kind.is_dir()
            && let Ok(mtime) = entry.header().mtime()
        {
            dir_times.push((dest.join(std::ffi::OsStr::from_bytes(&path)), mtime));
        }
    }
    for (dir, mtime) in dir_times.iter().rev() {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(*mtime);
        if let Ok(f) = fs::File::open(dir) {
            let _ = f.set_modified(time);
        }
    }
    Ok(())
}
