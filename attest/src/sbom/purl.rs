//! Package URLs (github.com/package-url/purl-spec): `pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS`.

use super::{Distro, Kind, Package};

/// Percent-encodes all but purl's unreserved characters (`:` in a deb epoch becomes `%3A`).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Each `/`-separated segment encoded on its own.
fn encode_path(s: &str) -> String {
    s.split('/').map(encode).collect::<Vec<_>>().join("/")
}

pub(super) fn package_url(p: &Package, distro: Option<&Distro>) -> String {
    let mut qualifiers = p.qualifiers.clone();
    let name = match p.kind {
        Kind::Deb | Kind::Apk | Kind::Rpm => {
            let ns = distro.map(|d| d.id.as_str()).filter(|id| !id.is_empty());
            if let Some(d) = distro.filter(|d| !d.id.is_empty()) {
                let v = d
                    .version_id
                    .as_deref()
                    .map(|v| format!("{}-{v}", d.id))
                    .unwrap_or_else(|| d.id.clone());
                qualifiers.push(("distro".into(), v));
            }
            let fallback = match p.kind {
                Kind::Deb => "debian",
                Kind::Apk => "alpine",
                _ => "redhat",
            };
            format!("{}/{}", encode(ns.unwrap_or(fallback)), encode(&p.name))
        }
        // PEP 503 normalization: the purl-spec's pypi rule.
        Kind::Python => encode(&p.name.to_lowercase().replace('_', "-")),
        Kind::Npm => match p.name.split_once('/') {
            Some((scope, name)) => format!("{}/{}", encode(scope), encode(name)),
            None => encode(&p.name),
        },
        Kind::Go => encode_path(&p.name),
        Kind::Cargo => encode(&p.name),
    };
    qualifiers.sort();
    let mut out = format!("pkg:{}/{name}@{}", p.kind.purl_type(), encode(&p.version));
    for (i, (k, v)) in qualifiers.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(&format!("{}={}", encode(k), encode(v)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn pkg(kind: Kind, name: &str, version: &str, q: &[(&str, &str)]) -> Package {
        Package {
            kind,
            name: name.into(),
            version: version.into(),
            license: None,
            source: PathBuf::from("/x"),
            qualifiers: q
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn deb_with_epoch_and_distro() {
        let d = Distro {
            id: "debian".into(),
            version_id: Some("12".into()),
        };
        assert_eq!(
            pkg(Kind::Deb, "perl", "1:5.36.0-7", &[("arch", "amd64")]).purl(Some(&d)),
            "pkg:deb/debian/perl@1%3A5.36.0-7?arch=amd64&distro=debian-12"
        );
    }

    #[test]
    fn ecosystems() {
        assert_eq!(
            pkg(Kind::Npm, "@types/node", "20.1.0", &[]).purl(None),
            "pkg:npm/%40types/node@20.1.0"
        );
        assert_eq!(
            pkg(Kind::Go, "golang.org/x/text", "v0.14.0", &[]).purl(None),
            "pkg:golang/golang.org/x/text@v0.14.0"
        );
        assert_eq!(
            pkg(Kind::Python, "Typing_Extensions", "4.9.0", &[]).purl(None),
            "pkg:pypi/typing-extensions@4.9.0"
        );
        assert_eq!(
            pkg(Kind::Cargo, "serde", "1.0.0", &[]).purl(None),
            "pkg:cargo/serde@1.0.0"
        );
    }
}
