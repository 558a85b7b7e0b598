//! An SPDX 2.3 JSON document (spdx.github.io/spdx-spec/v2.3) of an image's packages: the image
//! itself as the described package, which CONTAINS each package found.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::sbom::{Inventory, Package};

/// The in-toto predicate type BuildKit gives SPDX documents.
pub const PREDICATE_TYPE: &str = "https://spdx.dev/Document";

/// What the document says about itself.
pub struct DocumentInfo<'a> {
    /// The image's name (its first tag), or a placeholder when it has none.
    pub name: &'a str,
    /// RFC 3339 creation time (SOURCE_DATE_EPOCH when set, for reproducible documents).
    pub created: &'a str,
    /// `Tool: NAME-VERSION` creator.
    pub tool: &'a str,
}

/// SPDX license list identifiers commonly declared by packages. A declared license made only
/// of these (with AND, OR, WITH, `+` and parentheses) is kept as an SPDX expression; any other
/// text becomes a `LicenseRef-` with the text as its extracted info, which is how SPDX carries
/// licenses outside its list without making the document invalid.
const KNOWN_LICENSES: &[&str] = &[
    "0BSD",
    "AFL-2.1",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-1.1",
    "Apache-2.0",
    "Artistic-1.0",
    "Artistic-2.0",
    "BSD-1-Clause",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSD-4-Clause",
    "BSL-1.0",
    "CC-BY-4.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "CDDL-1.0",
    "EPL-1.0",
    "EPL-2.0",
    "GPL-1.0-only",
    "GPL-1.0-or-later",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "ISC",
    "LGPL-2.0-only",
    "LGPL-2.0-or-later",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "MIT",
    "MIT-0",
    "MPL-1.1",
    "MPL-2.0",
    "OpenSSL",
    "PSF-2.0",
    "Python-2.0",
    "Ruby",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "Unlicense",
    "Vim",
    "W3C",
    "WTFPL",
    "X11",
    "Zlib",
    "zlib-acknowledgement",
];

/// The SPDX form of a declared license, and the extracted-licensing entry a `LicenseRef-`
/// needs.
fn license_expression(raw: &str) -> (String, Option<(String, String)>) {
    let spaced = raw.replace('(', " ( ").replace(')', " ) ");
    let mut out = Vec::new();
    let mut known = true;
    for token in spaced.split_whitespace() {
        match token {
            "(" | ")" | "AND" | "OR" => out.push(token.to_string()),
            _ => {
                let (id, plus) = match token.strip_suffix('+') {
                    Some(id) => (id, "+"),
                    None => (token, ""),
                };
                match KNOWN_LICENSES.iter().find(|k| k.eq_ignore_ascii_case(id)) {
                    Some(k) => out.push(format!("{k}{plus}")),
                    None => {
                        known = false;
                        break;
                    }
                }
            }
        }
    }
    if known && !out.is_empty() {
        return (out.join(" ").replace("( ", "(").replace(" )", ")"), None);
    }
    let id: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let id = format!("LicenseRef-{}", id.trim_matches('-'));
    (id.clone(), Some((id, raw.to_string())))
}

/// An SPDXID element: letters, digits, `.` and `-` only.
fn spdx_id(prefix: &str, parts: &[&str]) -> String {
    let mut id = prefix.to_string();
    for p in parts {
        id.push('-');
        id.extend(p.chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        }));
    }
    id
}

fn package_json(
    index: usize,
    p: &Package,
    inv: &Inventory,
    extracted: &mut BTreeMap<String, String>,
) -> Value {
    let declared = match &p.license {
        Some(raw) => {
            let (expr, extra) = license_expression(raw);
            if let Some((id, text)) = extra {
                extracted.insert(id, text);
            }
            expr
        }
        None => "NOASSERTION".to_string(),
    };
    json!({
        "SPDXID": spdx_id("SPDXRef-Package", &[p.kind.purl_type(), &index.to_string(), &p.name]),
        "name": p.name,
        "versionInfo": p.version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": declared,
        "copyrightText": "NOASSERTION",
        "sourceInfo": format!("acquired package info from {}: {}", p.kind.found_in(), p.source.display()),
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": p.purl(inv.distro.as_ref()),
        }],
    })
}

/// The document, serialized by the caller (it is also a predicate inside a statement).
pub fn document(inv: &Inventory, info: &DocumentInfo<'_>) -> Value {
    let root_id = "SPDXRef-DocumentRoot-Image";
    let mut extracted = BTreeMap::new();
    let mut packages = vec![json!({
        "SPDXID": root_id,
        "name": info.name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": root_id,
    })];
    for (i, p) in inv.packages.iter().enumerate() {
        let pj = package_json(i, p, inv, &mut extracted);
        relationships.push(json!({
            "spdxElementId": root_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": pj["SPDXID"],
        }));
        packages.push(pj);
    }
    // The namespace must be unique per document: the content's digest makes it so, and the
    // same image scanned twice gets the same one.
    let seed = serde_json::to_vec(&(&packages, info.name, info.created)).unwrap_or_default();
    let namespace = format!(
        "https://spdx.org/spdxdocs/builder/{}",
        builder_store::Digest::of(&seed).hex()
    );
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": info.name,
        "documentNamespace": namespace,
        "creationInfo": {
            "created": info.created,
            "creators": [format!("Tool: {}", info.tool)],
        },
        "packages": packages,
        "relationships": relationships,
    });
    if !extracted.is_empty() {
        doc["hasExtractedLicensingInfos"] = extracted
            .into_iter()
            .map(|(id, text)| json!({"licenseId": id, "extractedText": text, "name": text}))
            .collect();
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::{Distro, Kind};
    use std::path::PathBuf;

    #[test]
    fn licenses_known_kept_others_extracted() {
        assert_eq!(license_expression("mit"), ("MIT".into(), None));
        assert_eq!(
            license_expression("(MIT OR Apache-2.0) AND GPL-2.0-or-later+"),
            ("(MIT OR Apache-2.0) AND GPL-2.0-or-later+".into(), None)
        );
        let (id, extra) = license_expression("BSD License");
        assert_eq!(id, "LicenseRef-BSD-License");
        assert_eq!(extra, Some((id.clone(), "BSD License".into())));
    }

    #[test]
    fn document_describes_the_image_containing_each_package() {
        let inv = Inventory {
            packages: vec![Package {
                kind: Kind::Deb,
                name: "libc6".into(),
                version: "2.36-9".into(),
                license: Some("Custom thing".into()),
                source: PathBuf::from("/var/lib/dpkg/status"),
                qualifiers: vec![("arch".into(), "amd64".into())],
            }],
            distro: Some(Distro {
                id: "debian".into(),
                version_id: Some("12".into()),
            }),
            warnings: Vec::new(),
        };
        let doc = document(
            &inv,
            &DocumentInfo {
                name: "app:1",
                created: "2024-01-01T00:00:00Z",
                tool: "builder-0.1.0",
            },
        );
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        assert_eq!(doc["packages"][1]["versionInfo"], "2.36-9");
        assert_eq!(
            doc["packages"][1]["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12"
        );
        assert_eq!(
            doc["packages"][1]["licenseDeclared"],
            "LicenseRef-Custom-thing"
        );
        assert_eq!(
            doc["hasExtractedLicensingInfos"][0]["extractedText"],
            "Custom thing"
        );
        assert_eq!(doc["relationships"][1]["relationshipType"], "CONTAINS");
        assert_eq!(
            doc["relationships"][1]["relatedSpdxElement"],
            doc["packages"][1]["SPDXID"]
        );
        assert!(
            doc["packages"][1]["sourceInfo"]
                .as_str()
                .unwrap()
                .ends_with("/var/lib/dpkg/status")
        );
    }
}
