//! Alpine packages: `/lib/apk/db/installed` (one `K:value` line per field, blank-line separated).

use std::path::Path;

use super::{Kind, Package};

pub(super) fn parse_installed(data: &[u8], source: &Path) -> Vec<Package> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let mut fields: Vec<(char, String)> = Vec::new();
    let mut flush = |fields: &mut Vec<(char, String)>| {
        let get = |k: char| fields.iter().find(|(c, _)| *c == k).map(|(_, v)| v.clone());
        if let (Some(name), Some(version)) = (get('P'), get('V')) {
            let mut qualifiers = Vec::new();
            if let Some(arch) = get('A') {
                qualifiers.push(("arch".to_string(), arch));
            }
            out.push(Package {
                kind: Kind::Apk,
                name,
                version,
                license: get('L').filter(|l| !l.is_empty()),
                source: source.to_path_buf(),
                qualifiers,
            });
        }
        fields.clear();
    };
    for line in text.lines() {
        if line.is_empty() {
            flush(&mut fields);
            continue;
        }
        let mut chars = line.chars();
        if let (Some(key), Some(':')) = (chars.next(), chars.next()) {
            fields.push((key, chars.as_str().to_string()));
        }
    }
    flush(&mut fields);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_version_license_arch() {
        let db = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\nT:the musl c library\n\nP:busybox\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\n";
        let p = parse_installed(db.as_bytes(), Path::new("/lib/apk/db/installed"));
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].name.as_str(), p[0].version.as_str()),
            ("musl", "1.2.4-r2")
        );
        assert_eq!(p[0].license.as_deref(), Some("MIT"));
        assert_eq!(p[1].license.as_deref(), Some("GPL-2.0-only"));
    }
}
