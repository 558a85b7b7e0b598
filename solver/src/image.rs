//! The image configuration a stage accumulates while it is converted.
//!
//! This is the solver's working model, with typed fields (ordered env, durations, sets); the
//! on-disk JSON form (docker's image config) lives in `builder_cache::image` and the mapping
//! between the two is in [`crate::image_json`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::graph::LayerRef;

/// Target platform of a build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the machine we run on, in OCI/Go naming.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        let variant = (architecture == "arm64").then(|| "v8".to_string());
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant,
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Option<Platform> {
        let mut parts = s.split('/');
        let os = parts.next().filter(|p| !p.is_empty())?;
        let architecture = parts.next().filter(|p| !p.is_empty())?;
        let variant = parts.next().map(str::to_string);
        if parts.next().is_some() {
            return None;
        }
        Some(Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant,
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", cmd]`, as docker stores it.
    pub test: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub created: Option<String>,
    pub created_by: String,
    pub author: Option<String>,
    pub comment: Option<String>,
    pub empty_layer: bool,
}

/// Everything docker records in an image config, as a stage sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSpec {
    pub platform: Platform,
    pub author: Option<String>,
    pub user: String,
    /// Environment in insertion order; setting an existing key replaces it in place.
    pub env: Vec<(String, String)>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: String,
    pub exposed_ports: BTreeSet<String>,
    pub volumes: BTreeSet<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub on_build: Vec<String>,
    pub shell: Option<Vec<String>>,
    pub healthcheck: Option<HealthConfig>,
    pub args_escaped: bool,
    pub history: Vec<HistoryEntry>,
    /// The base image's layers (new layers are only known after execution).
    pub base_layers: Vec<LayerRef>,
}

/// docker's PATH for images that set none (what `FROM scratch` gets).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ImageSpec {
    /// The config of `FROM scratch`: BuildKit gives it the default PATH and `WorkingDir` `/`.
    pub fn scratch(platform: Platform) -> ImageSpec {
        ImageSpec {
            platform,
            author: None,
            user: String::new(),
            env: vec![("PATH".into(), DEFAULT_PATH.into())],
            entrypoint: None,
            cmd: None,
            working_dir: "/".into(),
            exposed_ports: BTreeSet::new(),
            volumes: BTreeSet::new(),
            labels: BTreeMap::new(),
            stop_signal: None,
            on_build: Vec::new(),
            shell: None,
            healthcheck: None,
            args_escaped: false,
            history: Vec::new(),
            base_layers: Vec::new(),
        }
    }

    pub fn env_get(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn env_set(&mut self, key: &str, value: &str) {
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.env.push((key.to_string(), value.to_string())),
        }
    }

    /// The shell used for shell-form commands (`SHELL`, default `/bin/sh -c`).
    pub fn shell_or_default(&self) -> Vec<String> {
        self.shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    /// `K=V` list as docker passes it to processes.
    pub fn env_list(&self) -> Vec<String> {
        self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_parse_and_display() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux").is_none());
        assert!(Platform::parse("a/b/c/d").is_none());
    }

    #[test]
    fn env_set_replaces_in_place() {
        let mut s = ImageSpec::scratch(Platform::host());
        s.env_set("A", "1");
        s.env_set("PATH", "/bin");
        assert_eq!(
            s.env_list(),
            vec!["PATH=/bin".to_string(), "A=1".to_string()]
        );
    }
}
