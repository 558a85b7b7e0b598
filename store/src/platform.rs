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
#[error(
    "invalid platform {input:?}: expected os/arch[/variant] (e.g. linux/amd64), or an architecture or OS alone"
)]
pub struct InvalidPlatform {
    pub input: String,
}

impl Platform {
    /// The platform this process runs on, with Go's names (amd64, arm64, …) that registries
    /// use, in containerd's normalized form (arm64 without `v8`, 32-bit arm with `v7`).
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform::normalized("linux", architecture, None)
    }

    /// `os/arch/variant` spelled as containerd's `platforms.Normalize` spells it, so that
    /// `aarch64`, `arm64` and `arm64/v8` are one platform, and `armhf` is `arm/v7`.
    pub fn normalized(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let os = os.to_ascii_lowercase();
        let os = match os.as_str() {
            "macos" => "darwin".to_string(),
            _ => os,
        };
        let (architecture, variant) = normalize_arch(
            &architecture.to_ascii_lowercase(),
            variant.map(str::to_ascii_lowercase),
        );
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// This platform in its normalized form (an index entry or image config may spell
    /// `arm64/v8` or `aarch64`).
    pub fn normalize(&self) -> Platform {
        Platform::normalized(&self.os, &self.architecture, self.variant.as_deref())
    }

    /// Whether an index entry's platform satisfies this requested one, both normalized.
    /// A missing variant on either side matches (an `arm` image often names none).
    pub fn matches(&self, candidate: &Platform) -> bool {
        let (want, have) = (self.normalize(), candidate.normalize());
        if want.os != have.os || want.architecture != have.architecture {
            return false;
        }
        match (&want.variant, &have.variant) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

/// containerd's architecture aliases and default variants (`platforms.normalizeArch`).
fn normalize_arch(arch: &str, variant: Option<String>) -> (String, Option<String>) {
    let v = variant.as_deref().unwrap_or("");
    let (arch, variant): (&str, Option<String>) = match arch {
        "i386" | "386" => ("386", variant),
        "x86_64" | "x86-64" | "amd64" => ("amd64", variant.filter(|v| v != "v1")),
        "aarch64" | "arm64" => (
            "arm64",
            match v {
                "" | "8" | "v8" | "v8.0" => None,
                "9" | "9.0" | "v9.0" => Some("v9".into()),
                _ => variant,
            },
        ),
        "armhf" => ("arm", Some("v7".into())),
        "armel" => ("arm", Some("v6".into())),
        "arm" => (
            "arm",
            match v {
                "" | "7" => Some("v7".into()),
                "5" | "6" | "8" => Some(format!("v{v}")),
                _ => variant,
            },
        ),
        other => (other, variant),
    };
    (arch.to_string(), variant.filter(|v| !v.is_empty()))
}

/// Operating systems Go knows: a one-word `--platform` naming one of these is that OS on the
/// host's architecture; any other word is an architecture on linux.
const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
];

/// Architectures Go knows (after normalization), for a one-word `--platform`.
const KNOWN_ARCH: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64",
    "ppc64le", "riscv64", "s390x", "sparc64", "wasm",
];

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
    /// `os/arch[/variant]`, `arch` alone (on linux) or `os` alone (on the host's
    /// architecture), normalized as docker and containerd do.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidPlatform {
            input: s.to_string(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        };
        if !(1..=3).contains(&parts.len()) || !parts.iter().all(valid) {
            return Err(invalid());
        }
        if let [word] = parts[..] {
            let word = word.to_ascii_lowercase();
            let os = Platform::normalized(&word, "amd64", None).os;
            if KNOWN_OS.contains(&os.as_str()) {
                let host = Platform::host();
                return Ok(Platform { os, ..host });
            }
            let p = Platform::normalized("linux", &word, None);
            if KNOWN_ARCH.contains(&p.architecture.as_str()) {
                return Ok(p);
            }
            return Err(invalid());
        }
        Ok(Platform::normalized(
            parts[0],
            parts[1],
            parts.get(2).copied(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        s.parse::<Platform>().unwrap().to_string()
    }

    #[test]
    fn parse_and_display() {
        let x: Platform = "linux/amd64".parse().unwrap();
        assert_eq!(
            (x.os.as_str(), x.architecture.as_str(), x.variant),
            ("linux", "amd64", None)
        );
        assert_eq!(p("linux/amd64/v2"), "linux/amd64/v2");
        assert_eq!(p("Linux/AMD64"), "linux/amd64");
        for bad in [
            "linux/",
            "/amd64",
            "a/b/c/d",
            "linux/amd 64",
            "",
            "nonsense",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    /// The aliases containerd's `platforms.Parse` + `Normalize` accept, as docker prints them.
    #[test]
    fn normalized_as_containerd() {
        for (given, want) in [
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/arm64", "linux/arm64"),
            ("linux/aarch64", "linux/arm64"),
            ("arm64", "linux/arm64"),
            ("aarch64", "linux/arm64"),
            ("linux/arm64/v9.0", "linux/arm64/v9"),
            ("linux/arm", "linux/arm/v7"),
            ("arm", "linux/arm/v7"),
            ("linux/arm/7", "linux/arm/v7"),
            ("linux/arm/v6", "linux/arm/v6"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/x86_64", "linux/amd64"),
            ("x86-64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/i386", "linux/386"),
            ("386", "linux/386"),
            ("macos/arm64", "darwin/arm64"),
        ] {
            assert_eq!(p(given), want, "{given}");
        }
        let host = Platform::host();
        assert_eq!(p("linux"), host.to_string());
    }

    #[test]
    fn matching_tolerates_missing_variant() {
        let want: Platform = "linux/arm64".parse().unwrap();
        let v8 = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        };
        assert!(want.matches(&v8), "an index entry spelling arm64/v8");
        let want: Platform = "linux/arm/v7".parse().unwrap();
        assert!(!want.matches(&"linux/arm/v6".parse().unwrap()));
        assert!(!want.matches(&"linux/amd64".parse().unwrap()));
        assert!(Platform::host().matches(&Platform::host()));
    }
}
