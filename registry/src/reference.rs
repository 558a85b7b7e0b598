//! Image references with docker's normalization rules:
//! `busybox` means `docker.io/library/busybox:latest`, the first path component
//! is a registry host only if it looks like one (has a `.` or `:`, or is `localhost`).

use std::fmt;
use std::str::FromStr;

use builder_store::Digest;

use crate::error::RegistryError;

/// The registry docker means when a reference names none.
pub const DOCKER_HUB: &str = "docker.io";
const LEGACY_HUB: &str = "index.docker.io";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    /// `latest` when the input named neither tag nor digest.
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Short form as docker prints it: `busybox:latest`, `user/app:1`, `localhost:5000/a/b:t`.
    pub fn familiar(&self) -> String {
        let mut name = if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            format!("{}/{}", self.registry, self.repository)
        };
        self.push_suffix(&mut name);
        name
    }

    /// What to put after `/manifests/`: the digest when known (immutable), else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The same repository with a different digest and no tag.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    fn push_suffix(&self, out: &mut String) {
        if let Some(t) = &self.tag {
            out.push(':');
            out.push_str(t);
        }
        if let Some(d) = &self.digest {
            out.push('@');
            out.push_str(&d.to_string());
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = format!("{}/{}", self.registry, self.repository);
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl FromStr for Reference {
    type Err = RegistryError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason: &str| RegistryError::InvalidReference {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(fail("empty reference"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((name, d)) => (
                name,
                Some(d.parse::<Digest>().map_err(|e| fail(&e.to_string()))?),
            ),
            None => (input, None),
        };
        let (name, tag) = split_tag(rest);
        if let Some(t) = tag {
            validate_tag(t).map_err(|r| fail(&r))?;
        }
        let (registry, repository) = split_registry(name).map_err(|r| fail(&r))?;
        validate_repository(&repository).map_err(|r| fail(&r))?;
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

/// The tag is after the last `:` that follows the last `/` (a `:` before it is a port).
fn split_tag(s: &str) -> (&str, Option<&str>) {
    let last_slash = s.rfind('/').map_or(0, |i| i + 1);
    match s[last_slash..].rfind(':') {
        Some(i) => (&s[..last_slash + i], Some(&s[last_slash + i + 1..])),
        None => (s, None),
    }
}

fn split_registry(name: &str) -> Result<(String, String), String> {
    let (registry, repo) = match name.split_once('/') {
        Some((first, rest)) if looks_like_host(first) => (first.to_string(), rest.to_string()),
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    if registry.is_empty()
        || registry
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || ".-:[]".contains(c)))
    {
        return Err(format!("invalid registry host {registry:?}"));
    }
    let registry = if registry == LEGACY_HUB {
        DOCKER_HUB.to_string()
    } else {
        registry
    };
    // Official images live under library/ on the Hub.
    let repo = if registry == DOCKER_HUB && !repo.contains('/') {
        format!("library/{repo}")
    } else {
        repo
    };
    Ok((registry, repo))
}

fn looks_like_host(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
        // Docker treats an uppercase first component as a host too, since repositories cannot have one.
        || component.chars().any(|c| c.is_ascii_uppercase())
}

fn validate_repository(repo: &str) -> Result<(), String> {
    if repo.is_empty() {
        return Err("empty repository name".into());
    }
    if repo.len() > MAX_NAME_LEN {
        return Err(format!(
            "repository name longer than {MAX_NAME_LEN} characters"
        ));
    }
    if repo.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("repository name must be lowercase".into());
    }
    repo.split('/').try_for_each(validate_component)
}

/// A path component: lowercase alphanumerics joined by single `.`, one or two `_`, or any run of `-`.
fn validate_component(c: &str) -> Result<(), String> {
    let bad = || Err(format!("invalid repository path component {c:?}"));
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return bad();
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return bad();
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    let first_ok = chars.next().is_some_and(word);
    if !first_ok || tag.len() > MAX_TAG_LEN || !chars.all(|c| word(c) || c == '.' || c == '-') {
        return Err(format!("invalid tag {tag:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalization_table() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
            ),
            ("user/app", "docker.io/user/app:latest", "user/app:latest"),
            (
                "docker.io/library/alpine:3",
                "docker.io/library/alpine:3",
                "alpine:3",
            ),
            (
                "index.docker.io/alpine",
                "docker.io/library/alpine:latest",
                "alpine:latest",
            ),
            (
                "localhost:5000/a/b:t",
                "localhost:5000/a/b:t",
                "localhost:5000/a/b:t",
            ),
            ("localhost/a", "localhost/a:latest", "localhost/a:latest"),
            (
                "quay.io/org/my-app_x.y__z",
                "quay.io/org/my-app_x.y__z:latest",
                "quay.io/org/my-app_x.y__z:latest",
            ),
            ("[::1]:5000/a:v1", "[::1]:5000/a:v1", "[::1]:5000/a:v1"),
        ];
        for (input, full, short) in cases {
            let r: Reference = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), *full, "{input}");
            assert_eq!(r.familiar(), *short, "{input}");
            assert_eq!(
                r.to_string().parse::<Reference>().unwrap(),
                r,
                "round trip {input}"
            );
        }
    }

    #[test]
    fn digests_and_tags() {
        let r: Reference = format!("reg.io/x@{D}").parse().unwrap();
        assert_eq!(r.registry, "reg.io");
        assert_eq!(r.repository, "x");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.unwrap().to_string(), D);
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.to_string(), format!("reg.io/x@{D}"));
        let both: Reference = format!("reg.io:443/x:v2@{D}").parse().unwrap();
        assert_eq!(both.registry, "reg.io:443");
        assert_eq!(both.tag.as_deref(), Some("v2"));
        assert_eq!(both.manifest_ref(), D, "digest wins over tag");
    }

    #[test]
    fn rejects_invalid() {
        for bad in [
            "",
            "Busybox",
            "docker.io/Library/busybox",
            "reg.io/a//b",
            "reg.io/-a",
            "a:",
            "a:-tag",
            "a@sha256:abc",
            "a@md5:abc",
            "reg.io/a...b",
            "reg.io/",
            "a b",
        ] {
            assert!(
                bad.parse::<Reference>().is_err(),
                "{bad:?} should be rejected"
            );
        }
        let err = "docker.io/Upper/x"
            .parse::<Reference>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("lowercase"), "{err}");
    }
}
