//! in-toto statements (github.com/in-toto/attestation, Statement v0.1 as BuildKit's released
//! exporters write it): a predicate about subjects, the image manifest named as a purl.

use serde_json::{Value, json};

/// The statement type BuildKit's image exporter writes.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v0.1";
/// The layer media type of an attestation blob.
pub const MEDIA_TYPE: &str = "application/vnd.in-toto+json";
/// The layer annotation naming the statement's predicate type.
pub const PREDICATE_ANNOTATION: &str = "in-toto.io/predicate-type";

/// A subject: name and sha256 hex of the manifest.
pub struct Subject {
    pub name: String,
    pub sha256: String,
}

pub fn statement(predicate_type: &str, subjects: &[Subject], predicate: Value) -> Value {
    json!({
        "_type": STATEMENT_TYPE,
        "predicateType": predicate_type,
        "subject": subjects
            .iter()
            .map(|s| json!({"name": s.name, "digest": {"sha256": s.sha256}}))
            .collect::<Vec<_>>(),
        "predicate": predicate,
    })
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `pkg:docker/NAME@TAG?platform=OS%2FARCH` for an image reference, the way BuildKit names
/// subjects and base-image materials (its RefToPURL): Docker Hub's `docker.io/library/` is
/// dropped, a digest-pinned reference gives a `digest=` qualifier (and no version unless it
/// also has a tag).
pub fn docker_purl(reference: &str, platform: Option<&str>) -> String {
    image_purl("docker", reference, platform)
}

/// [`docker_purl`] with another purl type: `oci` for an image from a local OCI layout, as
/// BuildKit names those.
pub fn image_purl(purl_type: &str, reference: &str, platform: Option<&str>) -> String {
    let (name_tag, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match name_tag[slash..].rfind(':') {
        Some(i) => (&name_tag[..slash + i], Some(&name_tag[slash + i + 1..])),
        None => (name_tag, None),
    };
    let familiar = name
        .strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name);
    let path = familiar
        .split('/')
        .map(encode)
        .collect::<Vec<_>>()
        .join("/");
    let mut out = format!("pkg:{purl_type}/{path}");
    match (digest, tag) {
        (_, Some(t)) => out.push_str(&format!("@{}", encode(t))),
        (None, None) => out.push_str("@latest"),
        (Some(_), None) => {}
    }
    let mut qualifiers = Vec::new();
    if let Some(d) = digest {
        qualifiers.push(format!("digest={}", encode(d)));
    }
    if let Some(p) = platform {
        qualifiers.push(format!("platform={}", encode(p)));
    }
    if !qualifiers.is_empty() {
        out.push('?');
        out.push_str(&qualifiers.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_of_references() {
        assert_eq!(
            docker_purl("docker.io/library/debian:bookworm", Some("linux/amd64")),
            "pkg:docker/debian@bookworm?platform=linux%2Famd64"
        );
        assert_eq!(
            docker_purl("localhost:5000/team/app:1", None),
            "pkg:docker/localhost%3A5000/team/app@1"
        );
        assert_eq!(
            docker_purl("docker.io/me/app", None),
            "pkg:docker/me/app@latest"
        );
        assert_eq!(
            docker_purl("ghcr.io/a/b@sha256:00ff", None),
            "pkg:docker/ghcr.io/a/b?digest=sha256%3A00ff"
        );
        assert_eq!(
            image_purl("oci", "oci-layout@sha256:00ff", Some("linux/amd64")),
            "pkg:oci/oci-layout?digest=sha256%3A00ff&platform=linux%2Famd64"
        );
    }

    #[test]
    fn statement_shape() {
        let s = statement(
            "https://spdx.dev/Document",
            &[Subject {
                name: "_".into(),
                sha256: "ab".into(),
            }],
            json!({"x": 1}),
        );
        assert_eq!(s["_type"], STATEMENT_TYPE);
        assert_eq!(s["subject"][0]["digest"]["sha256"], "ab");
        assert_eq!(s["predicate"]["x"], 1);
    }
}
