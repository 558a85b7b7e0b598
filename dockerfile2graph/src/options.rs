//! What a build asks of conversion: target, platform, build args, entitlements.

use std::collections::BTreeMap;

use builder_graph::NetworkMode;
use builder_graph::image::Platform;

use crate::BuildContext;

#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    /// Platform of the image being built (`--platform`; default: host).
    pub platform: Option<Platform>,
    /// `--label` values, applied to the target stage's config.
    pub labels: BTreeMap<String, String>,
    pub file_name: String,
    /// `build --network`: the network of RUN steps that do not choose one (`RUN --network=default`).
    pub network: NetworkMode,
    /// `build --add-host`: extra /etc/hosts entries of every RUN step.
    pub extra_hosts: Vec<builder_graph::ExtraHost>,
    /// `build --build-context NAME=VALUE`, by name.
    pub build_contexts: BTreeMap<String, BuildContext>,
    /// `build --shm-size`: bytes of /dev/shm in RUN steps (None: docker's 64 MiB).
    pub shm_size: Option<u64>,
    /// `build --ulimit`: resource limits of RUN steps.
    pub ulimits: Vec<builder_graph::Ulimit>,
    /// `build --allow`: what `RUN --security=insecure` and `RUN --network=host` need.
    pub entitlements: Entitlements,
}

/// BuildKit's entitlements, granted with `build --allow NAME`. Not part of any cache key: they
/// only decide whether a step that asks for the privilege may run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entitlements {
    /// `network.host`: `RUN --network=host`.
    pub network_host: bool,
    /// `security.insecure`: `RUN --security=insecure`.
    pub security_insecure: bool,
}

impl Entitlements {
    /// Adds one `--allow` value; unknown names are refused, as buildx does.
    pub fn allow(&mut self, name: &str) -> Result<(), String> {
        match name {
            "network.host" => self.network_host = true,
            "security.insecure" => self.security_insecure = true,
            other => {
                return Err(format!(
                    "--allow {other:?}: unknown entitlement (builder knows network.host and security.insecure)"
                ));
            }
        }
        Ok(())
    }
}
