//! Go binaries: the build info the Go linker embeds (what `go version -m` prints), found by
//! its 32-byte header `\xff Go buildinf:` at a 16-byte aligned address, normally at the start
//! of the `.go.buildinfo` section. Two forms:
//! - Go ≥ 1.18 (flag bit 2): the version and the module info follow the header inline, each
//!   a uvarint length and the bytes;
//! - older: two pointers after the header, each to a Go string header (data pointer, length),
//!   resolved through the binary's segments.

use std::path::Path;

use object::{Object, ObjectSection, ObjectSegment};

use super::{Kind, Package};

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const FLAG_BIG_ENDIAN: u8 = 1;
const FLAG_INLINE: u8 = 2;

/// Reads `len` bytes at virtual address `addr` of the binary.
pub type ReadAt<'a> = dyn Fn(u64, u64) -> Option<Vec<u8>> + 'a;

/// The Go version and the module info (sentinels stripped) of a build info blob starting at
/// its magic; `read_at` resolves the pointers of the old form.
pub fn parse_build_info(blob: &[u8], read_at: &ReadAt<'_>) -> Option<(String, String)> {
    if blob.len() < HEADER_LEN || !blob.starts_with(MAGIC) {
        return None;
    }
    let ptr_size = blob[14] as usize;
    let flags = blob[15];
    let (version, modinfo) = if flags & FLAG_INLINE != 0 {
        let mut rest = &blob[HEADER_LEN..];
        let version = read_varint_string(&mut rest)?;
        let modinfo = read_varint_string(&mut rest)?;
        (version, modinfo)
    } else {
        if ptr_size != 4 && ptr_size != 8 {
            return None;
        }
        let big = flags & FLAG_BIG_ENDIAN != 0;
        let word = |b: &[u8]| -> u64 {
            let mut v = 0u64;
            for i in 0..ptr_size {
                let byte = if big { b[i] } else { b[ptr_size - 1 - i] };
                v = (v << 8) | u64::from(byte);
            }
            v
        };
        let go_string = |addr: u64| -> Option<Vec<u8>> {
            let header = read_at(addr, 2 * ptr_size as u64)?;
            let data = word(header.get(..ptr_size)?);
            let len = word(header.get(ptr_size..2 * ptr_size)?);
            // Module info of real binaries is kilobytes; this bounds a corrupt length.
            if len > 16 << 20 {
                return None;
            }
            read_at(data, len)
        };
        let version = go_string(word(&blob[16..16 + ptr_size]))?;
        let modinfo = go_string(word(&blob[16 + ptr_size..16 + 2 * ptr_size]))?;
        (version, modinfo)
    };
    let modinfo = strip_sentinels(&modinfo);
    Some((
        String::from_utf8_lossy(&version).into_owned(),
        String::from_utf8_lossy(modinfo).into_owned(),
    ))
}

fn read_varint_string(rest: &mut &[u8]) -> Option<Vec<u8>> {
    let mut len: u64 = 0;
    let mut shift = 0;
    loop {
        let (&b, tail) = rest.split_first()?;
        *rest = tail;
        len |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    let len = usize::try_from(len).ok()?;
    let bytes = rest.get(..len)?.to_vec();
    *rest = &rest[len..];
    Some(bytes)
}

/// The module info is framed by 16-byte sentinels (cmd/go's `infoStart`/`infoEnd`).
fn strip_sentinels(m: &[u8]) -> &[u8] {
    if m.len() >= 33 && m[m.len() - 17] == b'\n' {
        &m[16..m.len() - 16]
    } else {
        &[]
    }
}

/// The packages of module info text: the main module, its dependencies (with `=>`
/// replacements applied) and the standard library at the Go version.
pub(super) fn modules(go_version: &str, modinfo: &str, source: &Path) -> Vec<Package> {
    let mut out: Vec<Package> = Vec::new();
    let pkg = |name: &str, version: &str| Package {
        kind: Kind::Go,
        name: name.to_string(),
        version: version.to_string(),
        license: None,
        source: source.to_path_buf(),
        qualifiers: Vec::new(),
    };
    for line in modinfo.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["mod", path, version, ..] | ["dep", path, version, ..] => out.push(pkg(path, version)),
            ["=>", path, version, ..] => {
                if let Some(last) = out.last_mut() {
                    *last = pkg(path, version);
                }
            }
            _ => {}
        }
    }
    if !go_version.is_empty() {
        out.push(pkg("stdlib", go_version));
    }
    out
}

/// The Go packages of an ELF binary (none if it is not a Go binary).
pub(super) fn scan_elf(data: &[u8], source: &Path) -> Result<Vec<Package>, object::Error> {
    let file = object::File::parse(data)?;
    let read_at = |addr: u64, len: u64| -> Option<Vec<u8>> {
        file.segments()
            .find_map(|s| s.data_range(addr, len).ok().flatten())
            .map(<[u8]>::to_vec)
    };
    let mut found = None;
    if let Some(section) = file.section_by_name(".go.buildinfo") {
        found = find_aligned(section.data()?, section.address());
    }
    if found.is_none() {
        // Binaries without section headers: Go's reader searches the data segments.
        for segment in file.segments() {
            if let Some(f) = find_aligned(segment.data()?, segment.address()) {
                found = Some(f);
                break;
            }
        }
    }
    let Some(blob) = found else {
        return Ok(Vec::new());
    };
    Ok(match parse_build_info(blob, &read_at) {
        Some((version, modinfo)) => modules(&version, &modinfo, source),
        None => Vec::new(),
    })
}

/// The bytes from the first magic at a 16-byte aligned address.
fn find_aligned(data: &[u8], address: u64) -> Option<&[u8]> {
    let skew = ((16 - (address % 16)) % 16) as usize;
    let mut at = skew;
    while at + HEADER_LEN <= data.len() {
        if data[at..].starts_with(MAGIC) {
            return Some(&data[at..]);
        }
        at += 16;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODINFO: &str = "path\texample.com/hello\nmod\texample.com/hello\t(devel)\t\ndep\tgolang.org/x/text\tv0.14.0\th1:abc=\ndep\tgithub.com/old/dep\tv1.0.0\th1:x=\n=>\tgithub.com/new/dep\tv1.2.0\th1:y=\nbuild\tGOOS=linux\n";

    fn framed(modinfo: &str) -> Vec<u8> {
        let mut m = vec![0x30u8; 16];
        m.extend_from_slice(modinfo.as_bytes());
        m.extend_from_slice(&[0x31u8; 16]);
        m
    }

    fn varint(mut n: usize, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    fn names(p: &[Package]) -> Vec<(String, String)> {
        p.iter()
            .map(|p| (p.name.clone(), p.version.clone()))
            .collect()
    }

    fn expected() -> Vec<(String, String)> {
        [
            ("example.com/hello", "(devel)"),
            ("golang.org/x/text", "v0.14.0"),
            ("github.com/new/dep", "v1.2.0"),
            ("stdlib", "go1.22.1"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    #[test]
    fn inline_form_of_go_1_18_and_later() {
        let mut blob = MAGIC.to_vec();
        blob.push(8);
        blob.push(FLAG_INLINE);
        blob.resize(HEADER_LEN, 0);
        let version = b"go1.22.1";
        varint(version.len(), &mut blob);
        blob.extend_from_slice(version);
        let m = framed(MODINFO);
        varint(m.len(), &mut blob);
        blob.extend_from_slice(&m);
        let none = |_: u64, _: u64| None;
        let (v, info) = parse_build_info(&blob, &none).unwrap();
        assert_eq!(v, "go1.22.1");
        assert_eq!(
            names(&modules(&v, &info, Path::new("/app/hello"))),
            expected()
        );
    }

    /// The pointer form, little- and big-endian, 4- and 8-byte pointers, over a fake address
    /// space: strings headers at 0x1000 and 0x1100, their data at 0x2000 and 0x3000.
    #[test]
    fn pointer_form_of_older_go() {
        for (ptr_size, big) in [(8usize, false), (4, true), (4, false), (8, true)] {
            let word = |v: u64| -> Vec<u8> {
                let b = v.to_le_bytes()[..ptr_size].to_vec();
                if big {
                    b.into_iter().rev().collect()
                } else {
                    b
                }
            };
            let version = b"go1.16.15".to_vec();
            let m = framed(MODINFO);
            let space: Vec<(u64, Vec<u8>)> = vec![
                (0x1000, [word(0x2000), word(version.len() as u64)].concat()),
                (0x1100, [word(0x3000), word(m.len() as u64)].concat()),
                (0x2000, version.clone()),
                (0x3000, m.clone()),
            ];
            let read_at = |addr: u64, len: u64| -> Option<Vec<u8>> {
                let (start, bytes) = space
                    .iter()
                    .find(|(s, b)| addr >= *s && addr < s + b.len() as u64)?;
                let off = (addr - start) as usize;
                bytes.get(off..off + len as usize).map(<[u8]>::to_vec)
            };
            let mut blob = MAGIC.to_vec();
            blob.push(ptr_size as u8);
            blob.push(if big { FLAG_BIG_ENDIAN } else { 0 });
            blob.extend(word(0x1000));
            blob.extend(word(0x1100));
            blob.resize(HEADER_LEN, 0);
            let (v, info) = parse_build_info(&blob, &read_at).unwrap();
            assert_eq!(v, "go1.16.15", "{ptr_size} {big}");
            let mut want = expected();
            want[3].1 = "go1.16.15".into();
            assert_eq!(names(&modules(&v, &info, Path::new("/x"))), want);
        }
    }

    #[test]
    fn unframed_modinfo_is_empty_and_garbage_is_none() {
        assert_eq!(strip_sentinels(b"short"), b"");
        let none = |_: u64, _: u64| None;
        assert!(parse_build_info(b"\xff Go buildinf:\x08\x02", &none).is_none());
        let mut blob = MAGIC.to_vec();
        blob.extend_from_slice(&[8, FLAG_INLINE]);
        blob.resize(HEADER_LEN, 0);
        blob.push(200); // a length past the end
        assert!(parse_build_info(&blob, &none).is_none());
    }

    #[test]
    fn magic_is_found_only_at_aligned_addresses() {
        let mut data = vec![0u8; 64];
        data.extend_from_slice(MAGIC);
        data.resize(128, 0);
        assert!(find_aligned(&data, 0x400000).is_some());
        assert!(find_aligned(&data, 0x400008).is_none());
    }
}
