//! Python distributions: `*.dist-info/METADATA` (core metadata, email-header format).

use std::path::Path;

use super::{Kind, Package};

pub(super) fn parse_metadata(data: &[u8], source: &Path) -> Option<Package> {
    let text = String::from_utf8_lossy(data);
    let (mut name, mut version, mut license, mut expression) = (None, None, None, None);
    for line in text.lines() {
        // The headers end at the first blank line; the description follows.
        if line.is_empty() {
            break;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k {
            "Name" => name = Some(v.to_string()),
            "Version" => version = Some(v.to_string()),
            // Metadata 2.4's SPDX expression wins over the free-form License field.
            "License-Expression" => expression = Some(v.to_string()),
            "License" if !v.is_empty() && v != "UNKNOWN" => license = Some(v.to_string()),
            _ => {}
        }
    }
    Some(Package {
        kind: Kind::Python,
        name: name?,
        version: version?,
        license: expression.or(license),
        source: source.to_path_buf(),
        qualifiers: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_version_license_expression() {
        let m = b"Metadata-Version: 2.4\nName: Requests\nVersion: 2.31.0\nLicense: Apache 2.0\nLicense-Expression: Apache-2.0\n\nLicense: not a header\n";
        let p = parse_metadata(
            m,
            Path::new("/venv/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA"),
        )
        .unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_str()),
            ("Requests", "2.31.0")
        );
        assert_eq!(p.license.as_deref(), Some("Apache-2.0"));
    }
}
