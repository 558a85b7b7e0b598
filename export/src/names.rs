//! The parts of a normalized reference (`docker.io/library/app:1`) that the
//! archive formats need: docker's "familiar" short form and the tag.

use crate::ExportError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageName {
    /// The full normalized reference, e.g. `docker.io/library/app:1`.
    pub full: String,
    /// The repository in familiar form: `app`, `user/app`, `ghcr.io/o/app`.
    pub familiar_repo: String,
    /// The tag, absent for digest references.
    pub tag: Option<String>,
}

impl ImageName {
    pub fn parse(full: &str) -> Result<ImageName, ExportError> {
        let invalid = || ExportError::InvalidName(full.to_string());
        let (name, has_digest) = match full.split_once('@') {
            Some((n, _)) => (n, true),
            None => (full, false),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (
                &name[..last_slash + i],
                Some(name[last_slash + i + 1..].to_string()),
            ),
            None => (name, None),
        };
        if repo.is_empty() || tag.as_deref() == Some("") || (tag.is_none() && !has_digest) {
            return Err(invalid());
        }
        Ok(ImageName {
            full: full.to_string(),
            familiar_repo: familiar(repo),
            tag,
        })
    }

    /// `app:1` as docker prints it in `RepoTags`; `None` for untagged references.
    pub fn familiar_tagged(&self) -> Option<String> {
        self.tag
            .as_ref()
            .map(|t| format!("{}:{t}", self.familiar_repo))
    }
}

fn familiar(repo: &str) -> String {
    if let Some(rest) = repo
        .strip_prefix("docker.io/library/")
        .filter(|r| !r.contains('/'))
    {
        return rest.to_string();
    }
    repo.strip_prefix("docker.io/").unwrap_or(repo).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn familiar_forms() {
        let n = ImageName::parse("docker.io/library/app:1").unwrap();
        assert_eq!(
            (n.familiar_repo.as_str(), n.tag.as_deref()),
            ("app", Some("1"))
        );
        assert_eq!(n.familiar_tagged().as_deref(), Some("app:1"));
        let n = ImageName::parse("docker.io/user/app:latest").unwrap();
        assert_eq!(n.familiar_tagged().as_deref(), Some("user/app:latest"));
        let n = ImageName::parse("localhost:5000/a/b:v2").unwrap();
        assert_eq!(
            n.familiar_tagged().as_deref(),
            Some("localhost:5000/a/b:v2")
        );
        let d = format!("ghcr.io/o/app@{}", builder_store::Digest::of(b"x"));
        let n = ImageName::parse(&d).unwrap();
        assert_eq!((n.familiar_repo.as_str(), n.tag), ("ghcr.io/o/app", None));
        assert!(ImageName::parse("localhost:5000/app").is_err());
        assert!(ImageName::parse("app:").is_err());
    }
}
