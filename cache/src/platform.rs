//! Target platforms (`os/arch[/variant]`), the one type every crate uses: the solver's build
//! target, the registry's index selection, and the CLI's `--platform` all name the same thing,
//! so they share one parser and one idea of the host.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// A `--platform` value that is not `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {input:?}: expected os/arch[/variant], e.g. linux/amd64")]
pub struct InvalidPlatform {
    pub input: String,
}

impl Platform {
    /// The platform this process runs on, with Go's names (amd64, arm64, …) that registries
    /// use; arm64 and 32-bit arm carry the variant containerd gives them by default.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(String::from),
        }
    }

    /// Whether an index entry's platform satisfies this requested one. A missing
    /// variant on either side matches, and arm64 images usually omit their `v8`.
    pub fn matches(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return false;
        }
        match (&self.variant, &candidate.variant) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = InvalidPlatform;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(valid) {
            return Err(InvalidPlatform {
                input: s.to_string(),
            });
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let p: Platform = "linux/amd64".parse().unwrap();
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant),
            ("linux", "amd64", None)
        );
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/amd 64", ""] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn matching_tolerates_missing_variant() {
        let want: Platform = "linux/arm64".parse().unwrap();
        assert!(want.matches(&"linux/arm64/v8".parse().unwrap()));
        let want: Platform = "linux/arm/v7".parse().unwrap();
        assert!(!want.matches(&"linux/arm/v6".parse().unwrap()));
        assert!(!want.matches(&"linux/amd64".parse().unwrap()));
        assert!(Platform::host().matches(&Platform::host()));
    }
}
