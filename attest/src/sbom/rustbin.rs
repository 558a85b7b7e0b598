//! Rust binaries built with cargo-auditable: the `.dep-v0` ELF section holds the dependency
//! tree as zlib-compressed JSON (`{"packages": [{"name", "version", "source", "kind"?,
//! "root"?}]}`).

use std::io::Read;
use std::path::Path;

use object::{Object, ObjectSection};
use serde::Deserialize;

use super::{Kind, Package};

/// cargo-auditable caps its own data far below this; it bounds a corrupt section.
const MAX_JSON: u64 = 8 << 20;

#[derive(Deserialize)]
struct Audit {
    packages: Vec<AuditPackage>,
}

#[derive(Deserialize)]
struct AuditPackage {
    name: String,
    version: String,
    #[serde(default)]
    kind: Option<String>,
}

/// The packages of a `.dep-v0` section's bytes; build-time dependencies (`kind: build`) are
/// left out, as they are not in the binary.
pub fn parse_dep_v0(section: &[u8], source: &Path) -> Result<Vec<Package>, String> {
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(section)
        .take(MAX_JSON)
        .read_to_end(&mut json)
        .map_err(|e| format!("decompressing: {e}"))?;
    let audit: Audit = serde_json::from_slice(&json).map_err(|e| format!("decoding: {e}"))?;
    Ok(audit
        .packages
        .into_iter()
        .filter(|p| p.kind.as_deref() != Some("build"))
        .map(|p| Package {
            kind: Kind::Cargo,
            name: p.name,
            version: p.version,
            license: None,
            source: source.to_path_buf(),
            qualifiers: Vec::new(),
        })
        .collect())
}

pub(super) fn scan_elf(data: &[u8], source: &Path) -> Result<Vec<Package>, String> {
    let file = object::File::parse(data).map_err(|e| e.to_string())?;
    let Some(section) = file.section_by_name(".dep-v0") else {
        return Ok(Vec::new());
    };
    let bytes = section.data().map_err(|e| e.to_string())?;
    parse_dep_v0(bytes, source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn runtime_dependencies_of_the_audit_data() {
        let json = br#"{"packages":[{"name":"app","version":"0.1.0","source":"local","dependencies":[1],"root":true},{"name":"serde","version":"1.0.200","source":"crates.io"},{"name":"cc","version":"1.0.0","source":"crates.io","kind":"build"}]}"#;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(json).unwrap();
        let p = parse_dep_v0(&z.finish().unwrap(), Path::new("/usr/local/bin/app")).unwrap();
        let names: Vec<_> = p
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(names, [("app", "0.1.0"), ("serde", "1.0.200")]);
    }

    #[test]
    fn not_zlib_is_an_error() {
        assert!(parse_dep_v0(b"plain", Path::new("/x")).is_err());
    }
}
