//! The walk over an image's layer tars, bottom to top, as its file system stacks them.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tar::EntryType;

use super::{Distro, Inventory, Package, apk, dpkg, gobin, node, os_release, python, rpm, rustbin};
use crate::AttestError;

/// One layer blob (gzip, zstd or plain tar) and a name for messages (its digest).
pub struct LayerInput<R> {
    pub name: String,
    pub reader: R,
}

/// Package databases and metadata files are read whole up to this size; larger ones are
/// reported, not read (a dpkg status of a large distro is a few MiB).
const MAX_METADATA: u64 = 256 << 20;
/// Executables larger than this are not scanned for build info (they are held in memory).
const MAX_BINARY: u64 = 1 << 30;
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// What a file at a path contributes once no later layer hides it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum Found {
    Packages(Vec<Package>),
    OsRelease(Distro),
}

/// The kinds of file a scanner reads, known by path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    DpkgStatus,
    DpkgStatusD,
    Apk,
    Rpm,
    Python,
    Npm,
    OsRelease,
}

fn classify(path: &[u8]) -> Option<Known> {
    let p = path;
    match p {
        b"/var/lib/dpkg/status" => return Some(Known::DpkgStatus),
        b"/lib/apk/db/installed" => return Some(Known::Apk),
        b"/var/lib/rpm/rpmdb.sqlite" | b"/usr/lib/sysimage/rpm/rpmdb.sqlite" => {
            return Some(Known::Rpm);
        }
        b"/etc/os-release" | b"/usr/lib/os-release" => return Some(Known::OsRelease),
        _ => {}
    }
    if let Some(name) = p.strip_prefix(b"/var/lib/dpkg/status.d/") {
        // distroless keeps one status paragraph per file, beside `<name>.md5sums`.
        if !name.contains(&b'/') && !name.ends_with(b".md5sums") && !name.is_empty() {
            return Some(Known::DpkgStatusD);
        }
    }
    if p.ends_with(b"/METADATA") {
        let parent = &p[..p.len() - b"/METADATA".len()];
        if parent.ends_with(b".dist-info") {
            return Some(Known::Python);
        }
    }
    if node::is_package_json(p) {
        return Some(Known::Npm);
    }
    None
}

/// The version of [`LayerScan`]'s stored form and of what the scanners find: a stored scan of
/// another version is scanned again. Bump it when a scanner learns something new.
pub const LAYER_SCAN_FORMAT: &str = concat!("1-", env!("CARGO_PKG_VERSION"));

/// One layer's contribution, which depends on the layer's content alone: what it deletes and
/// what it puts. Kept by the layer's diff id, it spares the next build the layer's read.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct LayerScan {
    /// Whiteouts (`.wh.NAME`): the path and everything below it, from earlier layers.
    #[serde(with = "super::path_bytes::vec")]
    removed: Vec<PathBuf>,
    /// Opaque markers: everything below the directory, from earlier layers.
    #[serde(with = "super::path_bytes::vec")]
    opaque: Vec<PathBuf>,
    /// Every non-directory entry, in tar order, and what it contributes.
    entries: Vec<Entry>,
    /// Files that looked like a package source but could not be read as one.
    warnings: Vec<String>,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Entry {
    #[serde(with = "super::path_bytes")]
    path: PathBuf,
    found: Option<Found>,
}

impl LayerScan {
    /// The stored form (JSON), for [`LayerScan::from_bytes`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, AttestError> {
        Ok(serde_json::to_vec(self)?)
    }

    /// A stored scan; None when it does not parse (a torn or foreign file is scanned again).
    pub fn from_bytes(bytes: &[u8]) -> Option<LayerScan> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Scans the layers of one image, bottom first.
pub fn scan_layers<R: Read>(
    layers: impl IntoIterator<Item = LayerInput<R>>,
) -> Result<Inventory, AttestError> {
    let mut scans = Vec::new();
    for layer in layers {
        scans.push(scan_layer(&layer.name, layer.reader)?);
    }
    Ok(merge_layers(&scans))
}

/// The image's packages from its layers' scans, bottom first: each layer's entries replace or
/// hide what the layers below put at their paths.
pub fn merge_layers<'a>(scans: impl IntoIterator<Item = &'a LayerScan>) -> Inventory {
    let mut fs: BTreeMap<PathBuf, Found> = BTreeMap::new();
    let mut warnings = Vec::new();
    for scan in scans {
        warnings.extend(scan.warnings.iter().cloned());
        for dir in &scan.opaque {
            remove_below(&mut fs, dir);
        }
        for path in &scan.removed {
            fs.remove(path);
            remove_below(&mut fs, path);
        }
        for entry in &scan.entries {
            // A file (or symlink) replaces whatever was at its path, a directory included.
            remove_below(&mut fs, &entry.path);
            match &entry.found {
                Some(found) => {
                    fs.insert(entry.path.clone(), found.clone());
                }
                None => {
                    fs.remove(&entry.path);
                }
            }
        }
    }
    inventory(fs, warnings)
}

fn inventory(fs: BTreeMap<PathBuf, Found>, warnings: Vec<String>) -> Inventory {
    let mut inventory = Inventory {
        warnings,
        ..Inventory::default()
    };
    // /etc/os-release wins over /usr/lib/os-release (os-release(5)).
    for path in ["/etc/os-release", "/usr/lib/os-release"] {
        if inventory.distro.is_none()
            && let Some(Found::OsRelease(d)) = fs.get(Path::new(path))
        {
            inventory.distro = Some(d.clone());
        }
    }
    for found in fs.into_values() {
        if let Found::Packages(p) = found {
            inventory.packages.extend(p);
        }
    }
    inventory.packages.sort();
    inventory.packages.dedup();
    inventory
}

/// The packages of a directory tree (the build context, for `scan-context`), read as an image
/// root: symbolic links are not followed, and `excluded` (the .dockerignore rules, given the
/// path relative to `root`) leaves files out as the build leaves them out.
pub fn scan_dir(root: &Path, excluded: &dyn Fn(&Path) -> bool) -> Result<Inventory, AttestError> {
    let mut fs = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut stack = vec![PathBuf::new()];
    let io = |path: &Path| {
        let layer = root.join(path).display().to_string();
        move |source| AttestError::Layer { layer, source }
    };
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in std::fs::read_dir(&dir).map_err(io(&rel))? {
            let entry = entry.map_err(io(&rel))?;
            let rel_path = rel.join(entry.file_name());
            if excluded(&rel_path) {
                continue;
            }
            let meta = entry.metadata().map_err(io(&rel_path))?;
            if meta.is_dir() {
                stack.push(rel_path);
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let path = Path::new("/").join(&rel_path);
            use std::os::unix::fs::PermissionsExt as _;
            let file = std::fs::File::open(root.join(&rel_path)).map_err(io(&rel_path))?;
            let found = scan_file(
                &path,
                meta.len(),
                meta.permissions().mode(),
                file,
                &mut warnings,
            )
            .map_err(io(&rel_path))?;
            if let Some(found) = found {
                fs.insert(path, found);
            }
        }
    }
    Ok(inventory(fs, warnings))
}

fn remove_below(fs: &mut BTreeMap<PathBuf, Found>, dir: &Path) {
    let below: Vec<PathBuf> = fs
        .range::<Path, _>((std::ops::Bound::Excluded(dir), std::ops::Bound::Unbounded))
        .map(|(k, _)| k)
        .take_while(|k| k.starts_with(dir))
        .filter(|k| k.as_path() != dir)
        .cloned()
        .collect();
    for k in below {
        fs.remove(&k);
    }
}

/// `./a/b/`, `a/b` and `/a/b` all name `/a/b`.
fn clean_path(raw: &[u8]) -> Option<PathBuf> {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len() + 1);
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            // A layer never climbs out of the root; such an entry is ignored, as unpacking
            // confines it.
            b".." => return None,
            name => {
                out.push(b'/');
                out.extend_from_slice(name);
            }
        }
    }
    if out.is_empty() {
        return None;
    }
    Some(PathBuf::from(OsStr::from_bytes(&out)))
}

/// Scans one layer blob (gzip, zstd or plain tar); `name` (its digest) is for messages.
pub fn scan_layer<R: Read>(name: &str, reader: R) -> Result<LayerScan, AttestError> {
    let io = |source| AttestError::Layer {
        layer: name.to_string(),
        source,
    };
    let tar_stream =
        builder_snapshot::layer_tar(reader).map_err(|source| AttestError::LayerFormat {
            layer: name.to_string(),
            source,
        })?;
    let mut archive = tar::Archive::new(tar_stream);
    let mut scan = LayerScan::default();
    // Packages by path within this layer, for hard links to them.
    let mut here: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let raw = entry.path_bytes().into_owned();
        let Some(path) = clean_path(&raw) else {
            continue;
        };
        let file_name = path.file_name().map(|n| n.as_bytes()).unwrap_or_default();
        let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        if file_name == b".wh..wh..opq" {
            scan.opaque.push(parent);
            continue;
        }
        if file_name.starts_with(b".wh..wh.") {
            continue; // aufs bookkeeping, never a file
        }
        if let Some(hidden) = file_name.strip_prefix(b".wh.") {
            scan.removed.push(parent.join(OsStr::from_bytes(hidden)));
            continue;
        }
        let kind = entry.header().entry_type();
        match kind {
            EntryType::Directory => continue,
            EntryType::Link => {
                let target = entry.link_name_bytes().and_then(|t| clean_path(&t));
                let found = target
                    .and_then(|t| here.get(&t).copied())
                    .and_then(|i| scan.entries[i].found.clone())
                    .map(|f| relocate(f, &path));
                if found.is_some() {
                    here.insert(path.clone(), scan.entries.len());
                }
                scan.entries.push(Entry { path, found });
                continue;
            }
            EntryType::Regular | EntryType::Continuous => {}
            _ => {
                scan.entries.push(Entry { path, found: None });
                continue;
            }
        }
        let size = entry.header().size().map_err(io)?;
        let mode = entry.header().mode().unwrap_or(0);
        let found = scan_file(&path, size, mode, &mut entry, &mut scan.warnings).map_err(io)?;
        if found.is_some() {
            here.insert(path.clone(), scan.entries.len());
        }
        scan.entries.push(Entry { path, found });
    }
    Ok(scan)
}

/// What one regular file (at `path` in the image) contributes: a package database or metadata
/// file read by its scanner, an executable ELF file searched for build info.
fn scan_file(
    path: &Path,
    size: u64,
    mode: u32,
    mut reader: impl Read,
    warnings: &mut Vec<String>,
) -> std::io::Result<Option<Found>> {
    Ok(match classify(path.as_os_str().as_bytes()) {
        Some(known) if size > MAX_METADATA => {
            warnings.push(format!(
                "{}: {size} bytes, larger than the {MAX_METADATA} read for a {known:?} file; not scanned",
                path.display()
            ));
            None
        }
        Some(known) => {
            let mut data = Vec::with_capacity(size as usize);
            reader.read_to_end(&mut data)?;
            scan_known(known, path, &data, warnings)
        }
        None if mode & 0o111 != 0 && (64..=MAX_BINARY).contains(&size) => {
            let mut head = [0u8; 4];
            reader.read_exact(&mut head)?;
            if &head == ELF_MAGIC {
                let mut data = Vec::with_capacity(size as usize);
                data.extend_from_slice(&head);
                reader.read_to_end(&mut data)?;
                scan_binary(path, &data, warnings)
            } else {
                None
            }
        }
        None => None,
    })
}

/// A hard link's packages, with the link named as the file that gave them.
fn relocate(found: Found, path: &Path) -> Found {
    match found {
        Found::Packages(mut p) => {
            for pkg in &mut p {
                pkg.source = path.to_path_buf();
            }
            Found::Packages(p)
        }
        other => other,
    }
}

fn scan_known(known: Known, path: &Path, data: &[u8], warnings: &mut Vec<String>) -> Option<Found> {
    let packages = match known {
        Known::OsRelease => return Some(Found::OsRelease(os_release::parse(data))),
        Known::DpkgStatus => dpkg::parse_status(data, path, true),
        Known::DpkgStatusD => dpkg::parse_status(data, path, false),
        Known::Apk => apk::parse_installed(data, path),
        Known::Python => python::parse_metadata(data, path).into_iter().collect(),
        Known::Npm => match node::parse_package_json(data, path) {
            Ok(p) => p.into_iter().collect(),
            Err(e) => {
                warnings.push(format!("{}: {e}", path.display()));
                Vec::new()
            }
        },
        Known::Rpm => match rpm::read_sqlite_db(data, path) {
            Ok(p) => p,
            Err(e) => {
                warnings.push(e.to_string());
                Vec::new()
            }
        },
    };
    Some(Found::Packages(packages))
}

fn scan_binary(path: &Path, data: &[u8], warnings: &mut Vec<String>) -> Option<Found> {
    let mut packages = Vec::new();
    match gobin::scan_elf(data, path) {
        Ok(p) => packages.extend(p),
        Err(e) => warnings.push(format!("{}: Go build info: {e}", path.display())),
    }
    match rustbin::scan_elf(data, path) {
        Ok(p) => packages.extend(p),
        Err(e) => warnings.push(format!("{}: cargo-auditable data: {e}", path.display())),
    }
    (!packages.is_empty()).then_some(Found::Packages(packages))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data, mode) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(*mode);
            h.set_entry_type(EntryType::Regular);
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    const STATUS: &[u8] = b"Package: a\nStatus: install ok installed\nVersion: 1\n\nPackage: b\nStatus: install ok installed\nVersion: 2\n";
    const STATUS2: &[u8] = b"Package: a\nStatus: install ok installed\nVersion: 1\n";
    const METADATA: &[u8] = b"Name: six\nVersion: 1.16.0\n";

    fn scan(layers: Vec<Vec<u8>>) -> Inventory {
        scan_layers(layers.into_iter().enumerate().map(|(i, l)| LayerInput {
            name: format!("layer{i}"),
            reader: std::io::Cursor::new(l),
        }))
        .unwrap()
    }

    fn names(inv: &Inventory) -> Vec<&str> {
        inv.packages.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn later_layers_replace_and_whiteouts_hide() {
        let base = layer(&[
            ("var/lib/dpkg/status", STATUS, 0o644),
            (
                "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
                METADATA,
                0o644,
            ),
            ("etc/os-release", b"ID=debian\nVERSION_ID=12\n", 0o644),
        ]);
        let mut all = names(&scan(vec![base.clone()]))
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>();
        all.sort();
        assert_eq!(all, ["a", "b", "six"]);
        // The status rewritten by a later layer, the dist-info deleted by a whiteout.
        let upper = layer(&[
            ("var/lib/dpkg/status", STATUS2, 0o644),
            (
                "usr/lib/python3/dist-packages/.wh.six-1.16.0.dist-info",
                b"",
                0o644,
            ),
        ]);
        let inv = scan(vec![base.clone(), upper]);
        assert_eq!(names(&inv), ["a"]);
        assert_eq!(inv.distro.as_ref().unwrap().id, "debian");
        // An opaque directory hides everything below it from earlier layers.
        let opaque = layer(&[("var/lib/dpkg/.wh..wh..opq", b"", 0o644)]);
        assert_eq!(names(&scan(vec![base, opaque])), ["six"]);
    }

    #[test]
    fn executable_non_elf_files_are_skipped_and_gzip_is_read() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(
            &mut gz,
            &layer(&[
                ("bin/script", &[b'#'; 100], 0o755),
                (
                    "app/node_modules/left-pad/package.json",
                    br#"{"name":"left-pad","version":"1.3.0","license":"WTFPL"}"#,
                    0o644,
                ),
            ]),
        )
        .unwrap();
        let inv = scan(vec![gz.finish().unwrap()]);
        assert_eq!(names(&inv), ["left-pad"]);
        assert_eq!(
            inv.packages[0].source,
            Path::new("/app/node_modules/left-pad/package.json")
        );
    }
}
