//! Mapping between the solver's working [`ImageSpec`] and the stored docker image config.

use std::time::Duration;

use builder_store::Digest;
use builder_store::image::{ContainerConfig, Empty, Healthcheck, History, ImageConfig, RootFs};

use builder_graph::LayerRef;
use builder_graph::image::{HealthConfig, HistoryEntry, ImageSpec, Platform};

fn nanos(d: Option<Duration>) -> i64 {
    d.map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

fn duration(ns: i64) -> Option<Duration> {
    (ns > 0).then(|| Duration::from_nanos(ns as u64))
}

/// Reads a stored config (of a base image) into a working spec; `layers` are the image's layers
/// from its manifest.
pub fn spec_from_config(config: &ImageConfig, layers: Vec<LayerRef>) -> ImageSpec {
    let c = &config.config;
    ImageSpec {
        platform: Platform {
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            variant: config.variant.clone(),
        },
        author: config.author.clone(),
        user: c.user.clone().unwrap_or_default(),
        env: c
            .env
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect(),
        entrypoint: c.entrypoint.clone(),
        cmd: c.cmd.clone(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        exposed_ports: c.exposed_ports.keys().cloned().collect(),
        volumes: c.volumes.keys().cloned().collect(),
        labels: c.labels.clone(),
        stop_signal: c.stop_signal.clone(),
        on_build: c.on_build.clone(),
        shell: (!c.shell.is_empty()).then(|| c.shell.clone()),
        healthcheck: c.healthcheck.as_ref().map(|h| HealthConfig {
            test: h.test.clone(),
            interval: duration(h.interval),
            timeout: duration(h.timeout),
            start_period: duration(h.start_period),
            start_interval: duration(h.start_interval),
            retries: (h.retries > 0).then_some(h.retries as u32),
        }),
        args_escaped: c.args_escaped,
        history: config
            .history
            .iter()
            .map(|h| HistoryEntry {
                created: h.created.clone(),
                created_by: h.created_by.clone().unwrap_or_default(),
                author: h.author.clone(),
                comment: h.comment.clone(),
                empty_layer: h.empty_layer,
            })
            .collect(),
        base_layers: layers,
    }
}

/// Writes the final config of a built image.
pub fn config_from_spec(
    spec: &ImageSpec,
    diff_ids: Vec<Digest>,
    created: Option<String>,
) -> ImageConfig {
    let hc = spec.healthcheck.as_ref().map(|h| Healthcheck {
        test: h.test.clone(),
        interval: nanos(h.interval),
        timeout: nanos(h.timeout),
        start_period: nanos(h.start_period),
        start_interval: nanos(h.start_interval),
        retries: h.retries.map(i64::from).unwrap_or(0),
    });
    ImageConfig {
        created: created.clone(),
        author: spec.author.clone(),
        architecture: spec.platform.architecture.clone(),
        os: spec.platform.os.clone(),
        os_version: None,
        os_features: Vec::new(),
        variant: spec.platform.variant.clone(),
        config: ContainerConfig {
            user: (!spec.user.is_empty()).then(|| spec.user.clone()),
            exposed_ports: spec
                .exposed_ports
                .iter()
                .map(|p| (p.clone(), Empty {}))
                .collect(),
            env: spec.env_list(),
            entrypoint: spec.entrypoint.clone(),
            cmd: spec.cmd.clone(),
            volumes: spec.volumes.iter().map(|p| (p.clone(), Empty {})).collect(),
            working_dir: (!spec.working_dir.is_empty()).then(|| spec.working_dir.clone()),
            labels: spec.labels.clone(),
            stop_signal: spec.stop_signal.clone(),
            args_escaped: spec.args_escaped,
            healthcheck: hc,
            on_build: spec.on_build.clone(),
            shell: spec.shell.clone().unwrap_or_default(),
        },
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        history: spec
            .history
            .iter()
            .map(|h| History {
                created: h.created.clone().or_else(|| created.clone()),
                created_by: Some(h.created_by.clone()),
                author: h.author.clone(),
                comment: h.comment.clone(),
                empty_layer: h.empty_layer,
            })
            .collect(),
        inline_cache: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_docker_only_fields() {
        let mut spec = ImageSpec::scratch(Platform::host());
        spec.on_build.push("RUN echo hi".into());
        spec.shell = Some(vec!["/bin/bash".into(), "-c".into()]);
        spec.healthcheck = Some(HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: Some(Duration::from_secs(5)),
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: Some(3),
        });
        let config = config_from_spec(&spec, vec![], None);
        let json = String::from_utf8(config.to_json().unwrap()).unwrap();
        assert!(json.contains("\"Interval\":5000000000"), "{json}");
        let back = spec_from_config(&ImageConfig::from_json(json.as_bytes()).unwrap(), vec![]);
        assert_eq!(back, spec);
    }
}
