//! Image config and manifest JSON: docker field names and omission rules, and put_image.

use builder_store::image::{ContainerConfig, Empty, Healthcheck, History, ImageConfig, RootFs};
use builder_store::manifest::{Descriptor, ManifestFormat, media_type};
use builder_store::{Digest, Store, StoreError, put_image, read_config, read_manifest};
use serde_json::json;

#[test]
fn minimal_config_omits_empty_fields() {
    let cfg = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        rootfs: RootFs::default(),
        ..Default::default()
    };
    let v: serde_json::Value = serde_json::from_slice(&cfg.to_json().unwrap()).unwrap();
    assert_eq!(
        v,
        json!({"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}})
    );
}

#[test]
fn full_config_uses_docker_names_and_round_trips() {
    let layer = Digest::of(b"layer");
    let cfg = ImageConfig {
        created: Some("2024-01-01T00:00:00Z".into()),
        author: Some("me".into()),
        architecture: "arm64".into(),
        os: "linux".into(),
        variant: Some("v8".into()),
        config: ContainerConfig {
            user: Some("1000".into()),
            exposed_ports: [("80/tcp".to_string(), Empty {})].into(),
            env: vec!["PATH=/bin".into()],
            entrypoint: Some(vec!["/init".into()]),
            cmd: Some(vec!["run".into()]),
            volumes: [("/data".to_string(), Empty {})].into(),
            working_dir: Some("/app".into()),
            labels: [("a".to_string(), "b".to_string())].into(),
            stop_signal: Some("SIGTERM".into()),
            args_escaped: true,
            healthcheck: Some(Healthcheck {
                test: vec!["CMD-SHELL".into(), "true".into()],
                interval: 30_000_000_000,
                retries: 3,
                ..Default::default()
            }),
            on_build: vec!["RUN x".into()],
            shell: vec!["/bin/bash".into(), "-c".into()],
        },
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![layer],
        },
        history: vec![
            History {
                created_by: Some("ADD x /".into()),
                ..Default::default()
            },
            History {
                created_by: Some("ENV a=b".into()),
                empty_layer: true,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let bytes = cfg.to_json().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        v,
        json!({
            "created": "2024-01-01T00:00:00Z", "author": "me", "architecture": "arm64", "os": "linux", "variant": "v8",
            "config": {
                "User": "1000", "ExposedPorts": {"80/tcp": {}}, "Env": ["PATH=/bin"], "Entrypoint": ["/init"],
                "Cmd": ["run"], "Volumes": {"/data": {}}, "WorkingDir": "/app", "Labels": {"a": "b"},
                "StopSignal": "SIGTERM", "ArgsEscaped": true,
                "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 30000000000u64, "Retries": 3},
                "OnBuild": ["RUN x"], "Shell": ["/bin/bash", "-c"]
            },
            "rootfs": {"type": "layers", "diff_ids": [layer.to_string()]},
            "history": [{"created_by": "ADD x /"}, {"created_by": "ENV a=b", "empty_layer": true}]
        })
    );
    assert_eq!(ImageConfig::from_json(&bytes).unwrap(), cfg);
    // Field order follows moby's struct order (stable bytes => stable image id).
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.starts_with(
            r#"{"created":"2024-01-01T00:00:00Z","author":"me","architecture":"arm64""#
        )
    );
}

#[test]
fn parses_docker_config_with_nulls_and_legacy_fields() {
    let raw = br#"{"architecture":"amd64","os":"linux","container_config":{"Cmd":null},
        "config":{"Env":null,"Cmd":["sh"],"Labels":null,"OnBuild":null,"Entrypoint":null},
        "rootfs":{"type":"layers","diff_ids":null},"history":null,"os.features":null}"#;
    let cfg = ImageConfig::from_json(raw).unwrap();
    assert_eq!(cfg.config.cmd, Some(vec!["sh".to_string()]));
    assert_eq!(cfg.config.entrypoint, None);
    assert!(cfg.config.env.is_empty() && cfg.rootfs.diff_ids.is_empty());
}

#[test]
fn put_image_writes_config_and_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let layer = s.blobs().put_bytes(b"fake gzip layer").unwrap();
    let cfg = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![Digest::of(b"fake tar")],
        },
        ..Default::default()
    };
    let layers = vec![Descriptor::new(media_type::OCI_LAYER_GZIP, layer, 15)];
    let img = put_image(s.blobs(), &cfg, &layers, ManifestFormat::Oci).unwrap();
    assert_eq!(read_config(s.blobs(), &img.config).unwrap(), cfg);
    let m = read_manifest(s.blobs(), &img.manifest).unwrap();
    assert_eq!(m.effective_media_type(), media_type::OCI_MANIFEST);
    assert_eq!(m.config.digest, img.config);
    assert_eq!(m.config.media_type, media_type::OCI_CONFIG);
    assert_eq!(m.layers, layers);
    assert_eq!(s.blobs().size(&img.manifest).unwrap(), img.manifest_size);
    // Same input, same digests.
    assert_eq!(
        put_image(s.blobs(), &cfg, &layers, ManifestFormat::Oci).unwrap(),
        img
    );
    let docker = put_image(s.blobs(), &cfg, &layers, ManifestFormat::Docker).unwrap();
    assert_eq!(docker.config, img.config);
    assert_ne!(docker.manifest, img.manifest);

    assert!(matches!(
        put_image(s.blobs(), &cfg, &[], ManifestFormat::Oci),
        Err(StoreError::LayerCountMismatch {
            diff_ids: 1,
            layers: 0
        })
    ));
    let missing = vec![Descriptor::new(
        media_type::OCI_LAYER_GZIP,
        Digest::of(b"nope"),
        4,
    )];
    assert!(matches!(
        put_image(s.blobs(), &cfg, &missing, ManifestFormat::Oci),
        Err(StoreError::BlobNotFound(_))
    ));
}
