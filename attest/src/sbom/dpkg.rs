//! Debian packages: `/var/lib/dpkg/status` and distroless's `/var/lib/dpkg/status.d/*`.

use std::path::Path;

use super::{Kind, Package};

/// The fields of each deb822 paragraph (continuation lines folded in, keys as written).
pub(super) fn paragraphs(data: &[u8]) -> Vec<Vec<(String, String)>> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            current.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn field<'a>(p: &'a [(String, String)], key: &str) -> Option<&'a str> {
    p.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// Installed packages of a status file. `need_status`: the main status file also lists
/// removed and half-configured packages, which only `Status: ... installed` excludes;
/// status.d files carry no Status field and list what is installed.
pub(super) fn parse_status(data: &[u8], source: &Path, need_status: bool) -> Vec<Package> {
    let mut out = Vec::new();
    for p in paragraphs(data) {
        let (Some(name), Some(version)) = (field(&p, "Package"), field(&p, "Version")) else {
            continue;
        };
        if need_status || field(&p, "Status").is_some() {
            let installed = field(&p, "Status")
                .is_some_and(|s| s.split_whitespace().last() == Some("installed"));
            if !installed {
                continue;
            }
        }
        let mut qualifiers = Vec::new();
        if let Some(arch) = field(&p, "Architecture") {
            qualifiers.push(("arch".to_string(), arch.to_string()));
        }
        out.push(Package {
            kind: Kind::Deb,
            name: name.to_string(),
            version: version.to_string(),
            // dpkg records no license; a package's copyright file is free-form text.
            license: None,
            source: source.to_path_buf(),
            qualifiers,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: libc6\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n multi-line\n .\n more\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n\nPackage: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\n";

    #[test]
    fn installed_packages_only_with_arch() {
        let p = parse_status(STATUS.as_bytes(), Path::new("/var/lib/dpkg/status"), true);
        let names: Vec<_> = p
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            names,
            [("libc6", "2.36-9+deb12u4"), ("tzdata", "2024a-0+deb12u1")]
        );
        assert_eq!(p[0].qualifiers, [("arch".into(), "amd64".into())]);
        assert_eq!(p[0].source, Path::new("/var/lib/dpkg/status"));
    }

    #[test]
    fn status_d_paragraphs_need_no_status() {
        let p = parse_status(
            b"Package: base-files\nVersion: 12.4\nArchitecture: amd64\n",
            Path::new("/var/lib/dpkg/status.d/base"),
            false,
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "base-files");
    }
}
