//! The image configuration a stage accumulates while it is converted.
//!
//! This is the solver's working model, with typed fields (ordered env, durations, sets); the
//! on-disk JSON form (docker's image config) lives in `builder_store::image` and the mapping
//! between the two is in [`crate::image_json`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::ops::LayerRef;

/// Target platform of a build: the one type the registry and the CLI use too.
pub use builder_store::Platform;

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
