//! `apply_layer`: an OCI layer tar (gzip or zstd sniffed) → an overlay-format directory.
//!
//! Whiteout files become whiteout devices, opaque markers become the opaque
//! xattr, and every path is confined to `dest` (see [`crate::safe_path`]).
//! Parents resolve through the layers below as [`crate::stack`] describes, so the
//! overlay of the unpacked layers shows what the flattened exports show.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tar::EntryType;

use crate::error::SnapshotError;
use crate::meta::{remove_any, set_mode, set_owner};
use crate::overlay_format::{
    AUFS_META_PREFIX, OPAQUE_MARKER, WHITEOUT_PREFIX, is_overlay_private_xattr, is_whiteout,
    make_whiteout, set_opaque,
};
use crate::safe_path::{LayerView, clean_components};
use crate::sys;

/// At most this many warning texts are kept; the counters keep counting.
const MAX_WARNINGS: usize = 32;

/// What `apply_layer` did, including what it had to leave out.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    /// Tar entries processed (including whiteouts and markers).
    pub entries: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
    pub whiteouts: u64,
    pub opaque_dirs: u64,
    /// Xattrs the filesystem refused, or overlayfs-private ones that were dropped.
    pub skipped_xattrs: u64,
    /// Device nodes that could not be created (e.g. in a user namespace).
    pub skipped_devices: u64,
    /// Entries of types we cannot represent (and aufs metadata).
    pub skipped_entries: u64,
    /// Human-readable descriptions of the first skipped items.
    pub warnings: Vec<String>,
    /// Some entry's parent was not in the layer itself and was looked up in the layers below
    /// (a symlink followed there, or a directory created with their metadata): the unpacked
    /// directory is then only right on top of that same stack.
    pub depends_on_lowers: bool,
}

impl ApplyStats {
    fn warn(&mut self, msg: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(msg);
        }
    }
}

/// Extracts a (possibly gzip- or zstd-compressed) OCI layer tar into `dest` in overlay format,
/// as the bottom layer of a stack (nothing below it).
pub fn apply_layer(layer: impl Read, dest: &Path) -> Result<ApplyStats, SnapshotError> {
    apply_layer_on(layer, dest, &[])
}

/// Extracts a layer into `dest` in overlay format for use on top of `lowers` (the unpacked
/// layers below it, topmost first): entry parents resolve in the merged filesystem of those
/// layers and what this layer wrote, so an overlay of `dest` over `lowers` shows what applying
/// the layer to that filesystem (containerd's applier, and the flattened exports) gives.
/// [`ApplyStats::depends_on_lowers`] says whether the result is specific to `lowers`.
pub fn apply_layer_on(
    layer: impl Read,
    dest: &Path,
    lowers: &[PathBuf],
) -> Result<ApplyStats, SnapshotError> {
    let reader = decompressed(layer)?;
    let mut archive = tar::Archive::new(reader);
    let mut applier = Applier {
        dest,
        lowers,
        stats: ApplyStats::default(),
        dir_times: Vec::new(),
    };
    for entry in archive.entries().map_err(SnapshotError::ArchiveRead)? {
        let mut entry = entry.map_err(SnapshotError::ArchiveRead)?;
        applier.apply(&mut entry)?;
    }
    applier.finish()
}

/// The diff id of a (possibly compressed) layer: the sha256 of its uncompressed tar. What
/// `builder cache verify` compares with the diff id recorded for a layer blob.
pub fn layer_diff_id(layer: impl Read) -> Result<builder_store::Digest, SnapshotError> {
    let mut reader = builder_store::HashingReader::new(decompressed(layer)?);
    std::io::copy(&mut reader, &mut std::io::sink()).map_err(SnapshotError::ArchiveRead)?;
    Ok(reader.finish().0)
}

/// A layer blob's tar stream, decompressed by its magic: for readers of layer content that do
/// not unpack it (the SBOM scanner).
pub fn layer_tar<'a>(layer: impl Read + 'a) -> Result<impl Read + 'a, SnapshotError> {
    decompressed(layer)
}

/// A zstd frame's first four bytes (RFC 8878).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Sniffs the compression from the first bytes (media types lie, magic does not).
pub(crate) fn decompressed<'a>(layer: impl Read + 'a) -> Result<Box<dyn Read + 'a>, SnapshotError> {
    let mut input = BufReader::with_capacity(64 * 1024, layer);
    let head = input.fill_buf().map_err(SnapshotError::ArchiveRead)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Box::new(flate2::bufread::MultiGzDecoder::new(input)));
    }
    if head.starts_with(&ZSTD_MAGIC) {
        let decoder =
            zstd::stream::read::Decoder::with_buffer(input).map_err(SnapshotError::ArchiveRead)?;
        return Ok(Box::new(decoder));
    }
    if head.starts_with(b"BZh") {
        return Err(SnapshotError::UnsupportedCompression("bzip2"));
    }
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(SnapshotError::UnsupportedCompression("xz"));
    }
    Ok(Box::new(input))
}

/// Header fields, with PAX records taking precedence (they carry large ids,
/// sub-second times and xattrs).
struct EntryMeta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: (i64, i64),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Applier<'a> {
    dest: &'a Path,
    lowers: &'a [PathBuf],
    stats: ApplyStats,
    /// Directory times are set last: creating children changes them.
    dir_times: Vec<(PathBuf, (i64, i64))>,
}

impl Applier<'_> {
    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), SnapshotError> {
        let raw = entry.path_bytes().into_owned();
        let label = String::from_utf8_lossy(&raw).into_owned();
        let ty = entry.header().entry_type();
        if matches!(
            ty,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            // Metadata records for other entries, not entries themselves.
            return Ok(());
        }
        self.stats.entries += 1;
        let meta = entry_meta(entry, &label)?;
        let comps = clean_components(&raw);
        let Some((name, parent_comps)) = comps.split_last() else {
            return self.apply_root(ty, &meta, &label);
        };
        let name_bytes = name.as_bytes();
        let parent = self.resolve_dir(parent_comps, true).map_err(entry_io(
            &label,
            "resolving parent of",
            self.dest.join(parent_comps.iter().collect::<PathBuf>()),
        ))?;
        if name_bytes == OPAQUE_MARKER.as_bytes() {
            set_opaque(&parent).map_err(entry_io(&label, "marking opaque", &parent))?;
            self.stats.opaque_dirs += 1;
            return Ok(());
        }
        if name_bytes.starts_with(AUFS_META_PREFIX.as_bytes()) {
            self.stats.skipped_entries += 1;
            return Ok(());
        }
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            return self.whiteout(&parent, hidden, &label);
        }
        let path = parent.join(name);
        if !self.create(entry, ty, &path, &label)? {
            return Ok(());
        }
        self.set_metadata(&path, ty, &meta, &label)
    }

    /// The directory `comps` in `dest`, resolved on the stack (see [`LayerView`]).
    fn resolve_dir(&mut self, comps: &[std::ffi::OsString], create: bool) -> io::Result<PathBuf> {
        let mut view = LayerView {
            dest: self.dest,
            lowers: self.lowers,
            depends_on_lowers: false,
        };
        let (dir, created) = view.resolve_dir(comps, create)?;
        self.stats.depends_on_lowers |= view.depends_on_lowers;
        self.dir_times.extend(created);
        Ok(dir)
    }

    /// A `./` entry: the metadata of the layer root itself.
    fn apply_root(
        &mut self,
        ty: EntryType,
        meta: &EntryMeta,
        label: &str,
    ) -> Result<(), SnapshotError> {
        if ty != EntryType::Directory {
            return Err(bad(label, "the archive root must be a directory"));
        }
        let root = self.dest.to_path_buf();
        self.set_metadata(&root, ty, meta, label)
    }

    fn whiteout(&mut self, parent: &Path, hidden: &[u8], label: &str) -> Result<(), SnapshotError> {
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(bad(label, "whiteout names no file"));
        }
        let target = parent.join(OsStr::from_bytes(hidden));
        remove_any(&target).map_err(entry_io(label, "removing", &target))?;
        make_whiteout(&target).map_err(entry_io(label, "creating whiteout", &target))?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    /// Creates the node at `path`; returns false when nothing was created whose
    /// metadata should then be set (hard links, skipped entries).
    fn create<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        ty: EntryType,
        path: &Path,
        label: &str,
    ) -> Result<bool, SnapshotError> {
        let io = |op| entry_io(label, op, path);
        match ty {
            EntryType::Directory => match fs::symlink_metadata(path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    // This layer already replaced (or deleted) what the lowers have here: the
                    // new directory must not merge with a lower one, as in a plain extraction
                    // where that directory was removed first.
                    remove_any(path).map_err(io("replacing"))?;
                    fs::create_dir(path).map_err(io("creating directory"))?;
                    set_opaque(path).map_err(io("marking opaque"))?;
                }
                Err(_) => fs::create_dir(path).map_err(io("creating directory"))?,
            },
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                remove_any(path).map_err(io("replacing"))?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(path)
                    .map_err(io("creating"))?;
                self.stats.bytes += io::copy(entry, &mut file).map_err(io("writing"))?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad(label, "symlink without a target"))?;
                remove_any(path).map_err(io("replacing"))?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), path)
                    .map_err(io("creating symlink"))?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad(label, "hard link without a target"))?;
                self.hard_link(&target, path, label)?;
                return Ok(false);
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                return self.device(entry, ty, path, label);
            }
            other => {
                self.stats.skipped_entries += 1;
                self.stats
                    .warn(format!("{label}: skipped unsupported entry type {other:?}"));
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Hard links may only point at entries already inside `dest`; the target
    /// name is confined exactly like entry names.
    fn hard_link(&mut self, target: &[u8], path: &Path, label: &str) -> Result<(), SnapshotError> {
        let comps = clean_components(target);
        let Some((name, parents)) = comps.split_last() else {
            return Err(bad(label, "hard link to the archive root"));
        };
        let tparent = self.resolve_dir(parents, false).map_err(|e| {
            bad(
                label,
                &format!(
                    "hard link target {:?} is not inside the layer: {e}",
                    String::from_utf8_lossy(target)
                ),
            )
        })?;
        let tpath = tparent.join(name);
        let tmeta = fs::symlink_metadata(&tpath).map_err(|e| {
            bad(
                label,
                &format!(
                    "hard link target {:?} is not inside the layer: {e}",
                    String::from_utf8_lossy(target)
                ),
            )
        })?;
        if tmeta.is_dir() {
            return Err(bad(label, "hard link to a directory"));
        }
        if is_whiteout(&tmeta) {
            return Err(bad(label, "hard link to a deleted file"));
        }
        if fs::symlink_metadata(path)
            .is_ok_and(|m| m.dev() == tmeta.dev() && m.ino() == tmeta.ino())
        {
            return Ok(());
        }
        remove_any(path).map_err(entry_io(label, "replacing", path))?;
        fs::hard_link(&tpath, path).map_err(entry_io(label, "hard-linking", path))
    }

    fn device<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        ty: EntryType,
        path: &Path,
        label: &str,
    ) -> Result<bool, SnapshotError> {
        let h = entry.header();
        let major = h.device_major().ok().flatten().unwrap_or(0);
        let minor = h.device_minor().ok().flatten().unwrap_or(0);
        let kind = match ty {
            EntryType::Char => libc::S_IFCHR,
            EntryType::Block => libc::S_IFBLK,
            _ => libc::S_IFIFO,
        };
        remove_any(path).map_err(entry_io(label, "replacing", path))?;
        match sys::mknod(path, kind | 0o600, major, minor) {
            Ok(()) => Ok(true),
            // Without CAP_MKNOD (user namespaces) device nodes cannot exist;
            // runtimes bind-mount /dev anyway, so the layer stays usable.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) && kind != libc::S_IFIFO => {
                self.stats.skipped_devices += 1;
                self.stats
                    .warn(format!("{label}: device {major}:{minor} not created: {e}"));
                Ok(false)
            }
            Err(e) => Err(entry_io(label, "creating device", path)(e)),
        }
    }

    fn set_metadata(
        &mut self,
        path: &Path,
        ty: EntryType,
        meta: &EntryMeta,
        label: &str,
    ) -> Result<(), SnapshotError> {
        let (uid, gid) = crate::ids::to_disk(meta.uid, meta.gid);
        set_owner(path, uid, gid).map_err(entry_io(label, "chown", path))?;
        let is_symlink = ty == EntryType::Symlink;
        set_mode(path, is_symlink, meta.mode).map_err(entry_io(label, "chmod", path))?;
        for (name, value) in &meta.xattrs {
            let shown = String::from_utf8_lossy(name);
            if is_overlay_private_xattr(name) {
                self.stats.skipped_xattrs += 1;
                self.stats
                    .warn(format!("{label}: dropped overlayfs-private xattr {shown}"));
            } else if let Err(e) = sys::set_xattr(path, name, value) {
                self.stats.skipped_xattrs += 1;
                self.stats
                    .warn(format!("{label}: xattr {shown} not set: {e}"));
            }
        }
        if ty == EntryType::Directory {
            self.dir_times.push((path.to_path_buf(), meta.mtime));
            return Ok(());
        }
        sys::set_times(path, meta.mtime.0, meta.mtime.1).map_err(entry_io(
            label,
            "setting times of",
            path,
        ))
    }

    fn finish(self) -> Result<ApplyStats, SnapshotError> {
        // Deepest (latest) first, so setting a child's time cannot disturb a parent's.
        for (path, (sec, nsec)) in self.dir_times.iter().rev() {
            sys::set_times(path, *sec, *nsec)
                .map_err(crate::error::io_err("setting times of", path))?;
        }
        Ok(self.stats)
    }
}

fn entry_meta<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    label: &str,
) -> Result<EntryMeta, SnapshotError> {
    let h = entry.header();
    let num =
        |r: io::Result<u64>, what: &str| r.map_err(|e| bad(label, &format!("bad {what}: {e}")));
    let mut uid = num(h.uid(), "uid")?;
    let mut gid = num(h.gid(), "gid")?;
    let mode = h
        .mode()
        .map_err(|e| bad(label, &format!("bad mode: {e}")))?;
    let mut mtime = (num(h.mtime(), "mtime")? as i64, 0i64);
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(SnapshotError::ArchiveRead)? {
        for ext in exts {
            let ext = ext.map_err(SnapshotError::ArchiveRead)?;
            let key = ext.key_bytes();
            let value = ext.value_bytes();
            match key {
                b"uid" => uid = parse_u64(value).ok_or_else(|| bad(label, "bad PAX uid"))?,
                b"gid" => gid = parse_u64(value).ok_or_else(|| bad(label, "bad PAX gid"))?,
                b"mtime" => {
                    mtime = parse_pax_time(value).ok_or_else(|| bad(label, "bad PAX mtime"))?
                }
                _ => {
                    if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                        xattrs.push((name.to_vec(), value.to_vec()));
                    }
                }
            }
        }
    }
    let id = |v: u64, what: &str| {
        u32::try_from(v).map_err(|_| bad(label, &format!("{what} {v} out of range")))
    };
    Ok(EntryMeta {
        uid: id(uid, "uid")?,
        gid: id(gid, "gid")?,
        mode,
        mtime,
        xattrs,
    })
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// PAX times are decimal seconds with an optional fraction, possibly negative.
fn parse_pax_time(v: &[u8]) -> Option<(i64, i64)> {
    let s = std::str::from_utf8(v).ok()?;
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = whole.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let mut nsec: i64 = digits.parse().ok()?;
    // "-1.5" means 1.5 s before the epoch: -2 s + 0.5 s.
    let (sec, nsec) = if whole.starts_with('-') && nsec > 0 {
        nsec = 1_000_000_000 - nsec;
        (sec - 1, nsec)
    } else {
        (sec, nsec)
    };
    Some((sec, nsec))
}

fn bad(label: &str, reason: &str) -> SnapshotError {
    SnapshotError::BadEntry {
        entry: label.to_string(),
        reason: reason.to_string(),
    }
}

fn entry_io(
    label: &str,
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> SnapshotError {
    let entry = label.to_string();
    let path = path.into();
    move |source| SnapshotError::EntryIo {
        entry,
        op,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_pax_time;

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time(b"12"), Some((12, 0)));
        assert_eq!(parse_pax_time(b"12.5"), Some((12, 500_000_000)));
        assert_eq!(parse_pax_time(b"-1.5"), Some((-2, 500_000_000)));
        assert_eq!(parse_pax_time(b"1.x"), None);
    }
}
