//! RPM packages from a sqlite rpmdb (`rpmdb.sqlite`, rpm ≥ 4.16: Fedora, RHEL 9, openSUSE):
//! the `Packages` table holds one header blob per package. The older Berkeley DB and ndb
//! formats are not read.

use std::io::Write;
use std::path::Path;

use super::{Kind, Package};
use crate::AttestError;

const TAG_NAME: i32 = 1000;
const TAG_VERSION: i32 = 1001;
const TAG_RELEASE: i32 = 1002;
const TAG_EPOCH: i32 = 1003;
const TAG_LICENSE: i32 = 1014;
const TAG_ARCH: i32 = 1022;
const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_I18NSTRING: u32 = 9;

/// The database file's bytes are copied to a temporary file: sqlite opens files, not buffers.
pub(super) fn read_sqlite_db(data: &[u8], source: &Path) -> Result<Vec<Package>, AttestError> {
    let temp_err = |e| AttestError::Temp {
        path: source.to_path_buf(),
        source: e,
    };
    let mut file = tempfile::NamedTempFile::new().map_err(temp_err)?;
    file.write_all(data).map_err(temp_err)?;
    file.flush().map_err(temp_err)?;
    let rpm_err = |e| AttestError::Rpm {
        path: source.to_path_buf(),
        source: e,
    };
    let db = rusqlite::Connection::open_with_flags(
        file.path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .map_err(rpm_err)?;
    let mut stmt = db.prepare("SELECT blob FROM Packages").map_err(rpm_err)?;
    let blobs = stmt
        .query_map([], |row| row.get::<_, Vec<u8>>(0))
        .map_err(rpm_err)?;
    let mut out = Vec::new();
    for blob in blobs {
        if let Some(p) = parse_header(&blob.map_err(rpm_err)?, source) {
            out.push(p);
        }
    }
    Ok(out)
}

/// An rpm header blob: entry count and data length (big-endian u32s), the 16-byte index
/// entries (tag, type, offset, count), then the data they point into.
pub(super) fn parse_header(blob: &[u8], source: &Path) -> Option<Package> {
    let be32 = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(blob.get(at..at + 4)?.try_into().ok()?))
    };
    let entries = be32(0)? as usize;
    let data_len = be32(4)? as usize;
    let data_start = 8usize.checked_add(entries.checked_mul(16)?)?;
    let data = blob.get(data_start..data_start.checked_add(data_len)?)?;
    let (mut name, mut version, mut release, mut epoch, mut license, mut arch) =
        (None, None, None, None, None, None);
    for i in 0..entries {
        let at = 8 + i * 16;
        let tag = be32(at)? as i32;
        let kind = be32(at + 4)?;
        let offset = be32(at + 8)? as usize;
        let string = || -> Option<String> {
            if kind != TYPE_STRING && kind != TYPE_I18NSTRING {
                return None;
            }
            let rest = data.get(offset..)?;
            let end = rest.iter().position(|b| *b == 0)?;
            Some(String::from_utf8_lossy(&rest[..end]).into_owned())
        };
        match tag {
            TAG_NAME => name = string(),
            TAG_VERSION => version = string(),
            TAG_RELEASE => release = string(),
            TAG_LICENSE => license = string(),
            TAG_ARCH => arch = string(),
            TAG_EPOCH if kind == TYPE_INT32 => {
                let v = data.get(offset..offset + 4)?;
                epoch = Some(u32::from_be_bytes(v.try_into().ok()?));
            }
            _ => {}
        }
    }
    // gpg-pubkey entries are keys rpm imported, not packages.
    let name = name.filter(|n| n != "gpg-pubkey")?;
    let mut version = version?;
    if let Some(release) = release {
        version = format!("{version}-{release}");
    }
    let mut qualifiers = Vec::new();
    if let Some(arch) = arch {
        qualifiers.push(("arch".to_string(), arch));
    }
    if let Some(epoch) = epoch.filter(|e| *e != 0) {
        qualifiers.push(("epoch".to_string(), epoch.to_string()));
    }
    Some(Package {
        kind: Kind::Rpm,
        name,
        version,
        license,
        source: source.to_path_buf(),
        qualifiers,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A header blob with string entries and an epoch.
    pub fn header(strings: &[(i32, &str)], epoch: Option<u32>) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, s) in strings {
            index.push((*tag, TYPE_STRING, data.len() as u32));
            data.extend_from_slice(s.as_bytes());
            data.push(0);
        }
        if let Some(e) = epoch {
            while data.len() % 4 != 0 {
                data.push(0);
            }
            index.push((TAG_EPOCH, TYPE_INT32, data.len() as u32));
            data.extend_from_slice(&e.to_be_bytes());
        }
        let mut blob = Vec::new();
        blob.extend_from_slice(&(index.len() as u32).to_be_bytes());
        blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
        for (tag, kind, off) in index {
            blob.extend_from_slice(&tag.to_be_bytes());
            blob.extend_from_slice(&kind.to_be_bytes());
            blob.extend_from_slice(&off.to_be_bytes());
            blob.extend_from_slice(&1u32.to_be_bytes());
        }
        blob.extend_from_slice(&data);
        blob
    }

    #[test]
    fn sqlite_rpmdb_packages() {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("rpmdb.sqlite");
        let db = rusqlite::Connection::open(&db_path).unwrap();
        db.execute(
            "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)",
            [],
        )
        .unwrap();
        let bash = header(
            &[
                (TAG_NAME, "bash"),
                (TAG_VERSION, "5.2.15"),
                (TAG_RELEASE, "3.el9"),
                (TAG_LICENSE, "GPL-3.0-or-later"),
                (TAG_ARCH, "x86_64"),
            ],
            Some(1),
        );
        let key = header(&[(TAG_NAME, "gpg-pubkey"), (TAG_VERSION, "fd431d51")], None);
        for b in [&bash, &key] {
            db.execute("INSERT INTO Packages (blob) VALUES (?1)", [b])
                .unwrap();
        }
        drop(db);
        let bytes = std::fs::read(&db_path).unwrap();
        let p = read_sqlite_db(&bytes, Path::new("/var/lib/rpm/rpmdb.sqlite")).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].name.as_str(), p[0].version.as_str()),
            ("bash", "5.2.15-3.el9")
        );
        assert_eq!(p[0].license.as_deref(), Some("GPL-3.0-or-later"));
        assert_eq!(
            p[0].qualifiers,
            [
                ("arch".to_string(), "x86_64".to_string()),
                ("epoch".to_string(), "1".to_string())
            ]
        );
    }

    #[test]
    fn truncated_header_is_no_package() {
        let mut b = header(&[(TAG_NAME, "x"), (TAG_VERSION, "1")], None);
        b.truncate(b.len() - 3);
        assert!(parse_header(&b, Path::new("/db")).is_none());
    }
}
