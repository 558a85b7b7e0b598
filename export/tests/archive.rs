//! Image archives and OCI layouts, checked with skopeo and umoci.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;

use builder_export::{
    ArchiveFormat, ExportError, write_archive, write_archive_reporting, write_oci_dir,
};
use builder_store::Digest;
use common::*;
use serde_json::Value;

fn archive_bytes(img: &TestImage, names: &[&str], format: ArchiveFormat) -> Vec<u8> {
    let images: Vec<(String, Digest)> = names
        .iter()
        .map(|n| (n.to_string(), img.image.manifest))
        .collect();
    write_archive(&img.store, &images, format, Vec::new()).unwrap()
}

/// Entry name → content of a tar.
fn tar_contents(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in tar::Archive::new(bytes).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(name, data);
    }
    out
}

fn write_tmp(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn docker_archive_files_are_exactly_as_docker_writes_them() {
    let img = standard_image();
    let bytes = archive_bytes(
        &img,
        &[NAME, "docker.io/library/app:latest"],
        ArchiveFormat::DockerArchive,
    );
    let files = tar_contents(&bytes);
    let (l1, l2) = (img.layers[0].0, img.layers[1].0);
    let cfg = img.image.config;
    let blob = |d: Digest| format!("blobs/sha256/{}", d.hex());

    let mut names: Vec<String> = vec![
        "blobs/".into(),
        "blobs/sha256/".into(),
        "index.json".into(),
        "manifest.json".into(),
    ];
    names.extend(["oci-layout".into(), "repositories".into()]);
    names.extend([l1, l2, cfg, img.image.manifest].map(blob));
    names.sort();
    assert_eq!(files.keys().cloned().collect::<Vec<_>>(), names);

    assert_eq!(
        String::from_utf8(files["manifest.json"].clone()).unwrap(),
        format!(
            r#"[{{"Config":"{}","RepoTags":["app:1","app:latest"],"Layers":["{}","{}"]}}]"#,
            blob(cfg),
            blob(l1),
            blob(l2)
        )
    );
    assert_eq!(
        String::from_utf8(files["repositories"].clone()).unwrap(),
        format!(r#"{{"app":{{"1":"{0}","latest":"{0}"}}}}"#, l2.hex())
    );
    assert_eq!(files["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["manifests"][0]["digest"],
        img.image.manifest.to_string()
    );
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"],
        NAME
    );
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "1"
    );
    assert_eq!(
        index["manifests"][1]["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    // Blobs are copied verbatim.
    assert_eq!(Digest::of(&files[&blob(l2)]), l2);
}

#[test]
fn untagged_image_has_null_repotags_and_no_repositories() {
    let img = standard_image();
    let files = tar_contents(&archive_bytes(&img, &[""], ArchiveFormat::DockerArchive));
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest[0]["RepoTags"], Value::Null);
    assert!(!files.contains_key("repositories"));
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert!(index["manifests"][0].get("annotations").is_none());
}

#[test]
fn output_is_deterministic() {
    let img = standard_image();
    let a = archive_bytes(&img, &[NAME], ArchiveFormat::DockerArchive);
    let b = archive_bytes(&img, &[NAME], ArchiveFormat::DockerArchive);
    assert_eq!(Digest::of(&a), Digest::of(&b));
    for e in tar::Archive::new(a.as_slice()).entries().unwrap() {
        let h = e.unwrap().header().clone();
        assert_eq!(
            (h.mtime().unwrap(), h.uid().unwrap(), h.gid().unwrap()),
            (0, 0, 0)
        );
    }
}

#[test]
fn progress_reports_each_blob_up_to_its_size() {
    // A layer of ~3 MiB that gzip cannot shrink, so its blob spans several progress steps.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let noise: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let img = build_image(&[layer_tar(&[E::File("noise", &noise, 0o644)])]);
    let events = std::sync::Mutex::new(Vec::new());
    let report = |d: &Digest, done: u64, total: u64| events.lock().unwrap().push((*d, done, total));
    let images = [(NAME.to_string(), img.image.manifest)];
    let bytes = write_archive_reporting(
        &img.store,
        &images,
        ArchiveFormat::OciLayout,
        Vec::new(),
        Some(&report),
    )
    .unwrap();
    assert_eq!(
        bytes,
        write_archive(&img.store, &images, ArchiveFormat::OciLayout, Vec::new()).unwrap()
    );
    let events = events.into_inner().unwrap();
    let files = tar_contents(&bytes);
    let blobs: Vec<&String> = files
        .keys()
        .filter(|k| k.starts_with("blobs/sha256/") && k.len() > "blobs/sha256/".len())
        .collect();
    assert_eq!(blobs.len(), 3, "layer, config, manifest: {blobs:?}");
    for name in blobs {
        let d: Digest = format!("sha256:{}", &name["blobs/sha256/".len()..])
            .parse()
            .unwrap();
        let size = files[name].len() as u64;
        let mine: Vec<u64> = events.iter().filter(|e| e.0 == d).map(|e| e.1).collect();
        assert!(events.iter().filter(|e| e.0 == d).all(|e| e.2 == size));
        assert_eq!(mine.first(), Some(&0), "{name}");
        assert_eq!(mine.last(), Some(&size), "{name}");
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{name}: {mine:?}");
        if size > 2 << 20 {
            assert!(mine.len() >= 4, "a 3 MiB blob reports as it goes: {mine:?}");
        }
    }
}

#[test]
fn skopeo_reads_docker_archive() {
    let img = standard_image();
    let tmp = tempfile::tempdir().unwrap();
    let path = write_tmp(
        tmp.path(),
        "img.tar",
        &archive_bytes(&img, &[NAME], ArchiveFormat::DockerArchive),
    );
    let v: Value = serde_json::from_str(&run(
        "skopeo",
        &["inspect", &format!("docker-archive:{path}")],
    ))
    .unwrap();
    // docker-archive sources describe layers by their uncompressed digests.
    let diff_ids: Vec<String> = img
        .layers
        .iter()
        .map(|(_, diff)| diff.to_string())
        .collect();
    assert_eq!(v["Layers"], serde_json::json!(diff_ids));
    assert_eq!(v["Architecture"], "amd64");
    assert_eq!(v["Created"], "2023-11-14T22:13:20Z");
    // The same tarball is also a valid OCI archive.
    let v: Value =
        serde_json::from_str(&run("skopeo", &["inspect", &format!("oci-archive:{path}")])).unwrap();
    assert_eq!(v["Digest"], img.image.manifest.to_string());
    let blobs: Vec<String> = img
        .layers
        .iter()
        .map(|(blob, _)| blob.to_string())
        .collect();
    assert_eq!(v["Layers"], serde_json::json!(blobs));
}

#[test]
fn skopeo_reads_oci_archive() {
    let img = standard_image();
    let tmp = tempfile::tempdir().unwrap();
    let bytes = archive_bytes(&img, &[NAME], ArchiveFormat::OciLayout);
    let files = tar_contents(&bytes);
    assert!(!files.contains_key("manifest.json") && !files.contains_key("repositories"));
    let path = write_tmp(tmp.path(), "img.tar", &bytes);
    for reference in [
        format!("oci-archive:{path}"),
        format!("oci-archive:{path}:1"),
    ] {
        let v: Value = serde_json::from_str(&run("skopeo", &["inspect", &reference])).unwrap();
        assert_eq!(v["Digest"], img.image.manifest.to_string());
        let blobs: Vec<String> = img
            .layers
            .iter()
            .map(|(blob, _)| blob.to_string())
            .collect();
        assert_eq!(v["Layers"], serde_json::json!(blobs));
    }
}

#[test]
fn skopeo_copies_docker_archive_to_oci_and_umoci_unpacks_it() {
    let img = standard_image();
    let tmp = tempfile::tempdir().unwrap();
    let path = write_tmp(
        tmp.path(),
        "img.tar",
        &archive_bytes(&img, &[NAME], ArchiveFormat::DockerArchive),
    );
    let oci = tmp.path().join("oci");
    run(
        "skopeo",
        &[
            "copy",
            &format!("docker-archive:{path}"),
            &format!("oci:{}:copied", oci.display()),
        ],
    );
    let bundle = tmp.path().join("bundle");
    run(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:copied", oci.display()),
            bundle.to_str().unwrap(),
        ],
    );
    assert_standard_rootfs(&bundle.join("rootfs"));
}

#[test]
fn umoci_unpacks_our_oci_dir() {
    let img = standard_image();
    let tmp = tempfile::tempdir().unwrap();
    let oci = tmp.path().join("layout");
    write_oci_dir(&img.store, &[(NAME.to_string(), img.image.manifest)], &oci).unwrap();
    let bundle = tmp.path().join("bundle");
    run(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:1", oci.display()),
            bundle.to_str().unwrap(),
        ],
    );
    assert_standard_rootfs(&bundle.join("rootfs"));
}

#[test]
fn oci_dir_keeps_other_tags_and_replaces_same_tag() {
    let img = standard_image();
    let tmp = tempfile::tempdir().unwrap();
    let oci = tmp.path().join("layout");
    let m = img.image.manifest;
    write_oci_dir(&img.store, &[(NAME.to_string(), m)], &oci).unwrap();
    write_oci_dir(
        &img.store,
        &[("docker.io/library/app:2".to_string(), m)],
        &oci,
    )
    .unwrap();
    write_oci_dir(&img.store, &[(NAME.to_string(), m)], &oci).unwrap();
    let index: Value = serde_json::from_str(&read(&oci.join("index.json"))).unwrap();
    let tags: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(tags, ["2", "1"]);
    run("skopeo", &["inspect", &format!("oci:{}:2", oci.display())]);
}

#[test]
fn corrupted_blob_fails_the_export() {
    let img = standard_image();
    let path = img.store.blobs().path(&img.layers[0].0);
    let len = fs::metadata(&path).unwrap().len() as usize;
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&path, vec![0u8; len]).unwrap();
    let images = [(NAME.to_string(), img.image.manifest)];
    let err = write_archive(&img.store, &images, ArchiveFormat::OciLayout, Vec::new()).unwrap_err();
    assert!(
        matches!(err, ExportError::BlobChanged { digest, .. } if digest == img.layers[0].0),
        "{err}"
    );
}

#[test]
fn missing_layer_is_reported_before_writing() {
    let img = standard_image();
    img.store.blobs().delete(&img.layers[1].0).unwrap();
    let mut out = Vec::new();
    let images = [(NAME.to_string(), img.image.manifest)];
    let err =
        write_archive(&img.store, &images, ArchiveFormat::DockerArchive, &mut out).unwrap_err();
    assert!(
        err.to_string().contains(&img.layers[1].0.to_string()),
        "{err}"
    );
    assert!(out.is_empty());
    let bad = [("not a ref".to_string(), img.image.manifest)];
    assert!(matches!(
        write_archive(&img.store, &bad, ArchiveFormat::OciLayout, Vec::new()),
        Err(ExportError::InvalidName(_))
    ));
}

#[test]
fn docker_schema2_images_export_too() {
    let l1 = layer_tar(&[E::File("f", b"docker", 0o644)]);
    let img = build_image_as(&[l1], builder_store::manifest::ManifestFormat::Docker);
    let tmp = tempfile::tempdir().unwrap();
    let path = write_tmp(
        tmp.path(),
        "img.tar",
        &archive_bytes(&img, &[NAME], ArchiveFormat::DockerArchive),
    );
    let v: Value = serde_json::from_str(&run(
        "skopeo",
        &["inspect", &format!("docker-archive:{path}")],
    ))
    .unwrap();
    assert_eq!(
        v["Layers"],
        serde_json::json!([img.layers[0].1.to_string()])
    );
    let v: Value =
        serde_json::from_str(&run("skopeo", &["inspect", &format!("oci-archive:{path}")])).unwrap();
    assert_eq!(v["Digest"], img.image.manifest.to_string());
    let index: Value = serde_json::from_slice(
        &tar_contents(&archive_bytes(&img, &[NAME], ArchiveFormat::OciLayout))["index.json"],
    )
    .unwrap();
    assert_eq!(
        index["manifests"][0]["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
}

/// An index over the standard image (amd64) and an arm64 twin sharing its layers.
fn multi_platform(img: &TestImage) -> Digest {
    use builder_store::manifest::{Descriptor, Index, ManifestFormat, Platform, media_type};
    let blobs = img.store.blobs();
    let amd64 = builder_store::read_manifest(blobs, &img.image.manifest).unwrap();
    let mut config = builder_store::read_config(blobs, &img.image.config).unwrap();
    config.architecture = "arm64".into();
    let arm64 =
        builder_store::put_image(blobs, &config, &amd64.layers, ManifestFormat::Oci).unwrap();
    let platform = |arch: &str| Platform {
        architecture: arch.into(),
        os: "linux".into(),
        os_version: None,
        os_features: vec![],
        variant: None,
    };
    let mut d1 = Descriptor::new(
        media_type::OCI_MANIFEST,
        img.image.manifest,
        img.image.manifest_size,
    );
    d1.platform = Some(platform("amd64"));
    let mut d2 = Descriptor::new(
        media_type::OCI_MANIFEST,
        arm64.manifest,
        arm64.manifest_size,
    );
    d2.platform = Some(platform("arm64"));
    let index = Index {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.into()),
        manifests: vec![d1, d2],
        annotations: Default::default(),
    };
    blobs
        .put_bytes(&serde_json::to_vec(&index).unwrap())
        .unwrap()
}

#[test]
fn multi_platform_index_exports_as_oci_layout_only() {
    let img = standard_image();
    let index = multi_platform(&img);
    let images = [(NAME.to_string(), index)];
    let bytes = write_archive(&img.store, &images, ArchiveFormat::OciLayout, Vec::new()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = write_tmp(tmp.path(), "multi.tar", &bytes);
    let raw: Value = serde_json::from_str(&run(
        "skopeo",
        &["inspect", "--raw", &format!("oci-archive:{path}:1")],
    ))
    .unwrap();
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 2);
    let v: Value = serde_json::from_str(&run(
        "skopeo",
        &[
            "--override-arch",
            "arm64",
            "inspect",
            &format!("oci-archive:{path}:1"),
        ],
    ))
    .unwrap();
    assert_eq!(v["Architecture"], "arm64");
    let oci = tmp.path().join("copy");
    run(
        "skopeo",
        &[
            "copy",
            "--all",
            &format!("oci-archive:{path}:1"),
            &format!("oci:{}:1", oci.display()),
        ],
    );

    let err = write_archive(
        &img.store,
        &images,
        ArchiveFormat::DockerArchive,
        Vec::new(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ExportError::UnsupportedManifest { digest, .. } if digest == index),
        "{err}"
    );
}
