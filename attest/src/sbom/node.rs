//! Node packages: `node_modules/NAME/package.json` and `node_modules/@SCOPE/NAME/package.json`
//! (a package.json deeper inside a package describes no installed package).

use std::path::Path;

use super::{Kind, Package};

pub(super) fn is_package_json(path: &[u8]) -> bool {
    let parts: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
    let n = parts.len();
    if n < 3 || parts[n - 1] != b"package.json" {
        return false;
    }
    let direct = parts[n - 3] == b"node_modules" && !parts[n - 2].starts_with(b"@");
    let scoped = n >= 4 && parts[n - 4] == b"node_modules" && parts[n - 3].starts_with(b"@");
    direct || scoped
}

pub(super) fn parse_package_json(
    data: &[u8],
    source: &Path,
) -> Result<Option<Package>, serde_json::Error> {
    let json: serde_json::Value = serde_json::from_slice(data)?;
    let (Some(name), Some(version)) = (json["name"].as_str(), json["version"].as_str()) else {
        return Ok(None);
    };
    // `"license": "MIT"`, or the older `{"type": "MIT"}` / `"licenses": [{"type": ...}]`.
    let license = json["license"]
        .as_str()
        .or_else(|| json["license"]["type"].as_str())
        .map(str::to_string)
        .or_else(|| {
            let all: Vec<&str> = json["licenses"]
                .as_array()?
                .iter()
                .filter_map(|l| l["type"].as_str())
                .collect();
            (!all.is_empty()).then(|| all.join(" OR "))
        });
    Ok(Some(Package {
        kind: Kind::Npm,
        name: name.to_string(),
        version: version.to_string(),
        license,
        source: source.to_path_buf(),
        qualifiers: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_package_json_files_count() {
        assert!(is_package_json(b"/app/node_modules/left-pad/package.json"));
        assert!(is_package_json(
            b"/app/node_modules/@types/node/package.json"
        ));
        assert!(is_package_json(
            b"/app/node_modules/a/node_modules/b/package.json"
        ));
        assert!(!is_package_json(
            b"/app/node_modules/left-pad/lib/package.json"
        ));
        assert!(!is_package_json(b"/app/package.json"));
        assert!(!is_package_json(b"/app/node_modules/@types/package.json"));
    }

    #[test]
    fn license_forms() {
        let p = parse_package_json(
            br#"{"name":"@a/b","version":"1.0.0","license":{"type":"ISC"}}"#,
            Path::new("/x"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.license.as_deref(), Some("ISC"));
        let p = parse_package_json(
            br#"{"name":"c","version":"2.0.0","licenses":[{"type":"MIT"},{"type":"Apache-2.0"}]}"#,
            Path::new("/x"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.license.as_deref(), Some("MIT OR Apache-2.0"));
    }
}
