//! End to end: a step's layer is stored as a plain tar and compressed only when an image or a
//! cache export takes it, as BuildKit makes a blob only when an exporter asks. A multi-stage
//! build's compile stage is never compressed; what leaves the store (the image, a cache
//! export, inline records) is in the build's compression.

mod common;

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::Path;

use common::{Env, step_status};
use serde_json::Value;

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// A two-stage build: `build` makes a large compressible file, the image copies it and adds
/// one of its own. No RUN step, so it needs no sandbox.
fn two_stage(env: &Env) -> std::path::PathBuf {
    let big = "a line the build stage writes, and writes again\n".repeat(40_000);
    env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch AS build\nCOPY big.txt /out/big.txt\n\
                 FROM scratch\nCOPY --from=build /out/big.txt /big.txt\nCOPY small.txt /small.txt\n",
            ),
            ("big.txt", &big),
            ("small.txt", "hello\n"),
        ],
    )
}

fn sha256(bytes: &[u8]) -> String {
    builder_store::Digest::of(bytes).to_string()
}

/// The diff ids (sha256 of the tar) of every gzip blob in a store or layout's `blobs/sha256`.
fn gzip_blob_diff_ids(blobs: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    for entry in fs::read_dir(blobs).unwrap() {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut tar = Vec::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut tar)
                .unwrap();
            out.insert(sha256(&tar));
        }
    }
    out
}

fn records(env: &Env) -> Vec<Value> {
    serde_json::from_str(&env.ok(&["cache", "ls", "--format", "json"])).unwrap()
}

fn record_layer<'a>(records: &'a [Value], step: &str) -> &'a Value {
    &records
        .iter()
        .find(|r| r["Description"].as_str().unwrap().contains(step))
        .unwrap_or_else(|| panic!("no record for {step}: {records:?}"))["Layer"]
}

#[test]
fn a_compile_stage_layer_is_never_compressed_and_the_image_is_gzip() {
    let env = Env::new();
    let ctx = two_stage(&env);
    env.build_ok(&ctx, &["-t", "two:1"]);

    let image = env.inspect("two:1");
    let layers = image["Manifest"]["layers"].as_array().unwrap().clone();
    assert_eq!(layers.len(), 2);
    for l in &layers {
        assert_eq!(l["mediaType"], GZIP, "{l}");
    }

    let records = records(&env);
    let build_stage = record_layer(&records, "COPY big.txt /out/big.txt");
    assert_eq!(build_stage["mediaType"], TAR, "steps store plain tars");
    // A plain tar's digest is its diff id.
    assert_eq!(build_stage["digest"], build_stage["diffID"]);
    let compressed = gzip_blob_diff_ids(&env.root().join("blobs/sha256"));
    let diff_ids = image["rootfs"]["diff_ids"].as_array().unwrap();
    for d in diff_ids {
        assert!(compressed.contains(d.as_str().unwrap()), "image layer {d}");
    }
    assert!(
        !compressed.contains(build_stage["diffID"].as_str().unwrap()),
        "the compile stage's layer was compressed though no image holds it"
    );
}

#[test]
fn a_cache_export_ships_gzip_layers_that_serve_a_fresh_store() {
    let env = Env::new();
    let ctx = two_stage(&env);
    let dest = env.path("cache");
    let to = format!("type=local,dest={},mode=max", dest.display());
    env.build_ok(&ctx, &["-t", "two:1", "--cache-to", &to]);

    // Every layer of the cache manifest, the compile stage's too, is a gzip blob.
    let index: Value = serde_json::from_slice(&fs::read(dest.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| {
        dest.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest: Value = serde_json::from_slice(
        &fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{manifest}");
    for l in layers {
        assert_eq!(l["mediaType"], GZIP, "{l}");
        let bytes = fs::read(blob(l["digest"].as_str().unwrap())).unwrap();
        assert_eq!(sha256(&bytes), l["digest"]);
    }
    let build_stage = record_layer(&records(&env), "COPY big.txt /out/big.txt").clone();
    assert!(
        gzip_blob_diff_ids(&dest.join("blobs/sha256"))
            .contains(build_stage["diffID"].as_str().unwrap())
    );

    // A fresh store builds the same image from it without running a step.
    let fresh = Env::new();
    let ctx = two_stage(&fresh);
    let from = format!("type=local,src={}", dest.display());
    let log = fresh.build_ok(&ctx, &["-t", "two:1", "--cache-from", &from]);
    for step in [
        "COPY --from=build /out/big.txt /big.txt",
        "COPY small.txt /small.txt",
    ] {
        assert_eq!(step_status(&log, step), "CACHED", "{log}");
    }
    assert_eq!(
        fresh.inspect("two:1")["Manifest"]["layers"],
        env.inspect("two:1")["Manifest"]["layers"]
    );
}

#[test]
fn inline_records_name_the_image_s_own_compressed_layers() {
    let env = Env::new();
    let ctx = two_stage(&env);
    env.build_ok(&ctx, &["-t", "two:inline", "--cache-to", "type=inline"]);
    let image = env.inspect("two:inline");
    let layers: HashSet<&str> = image["Manifest"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    let records = image["builder.cache.v1"]["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "the image's two steps: {records:?}");
    for r in records {
        assert_eq!(r["layer"]["media_type"], GZIP, "{r}");
        assert!(
            layers.contains(r["layer"]["digest"].as_str().unwrap()),
            "{r}"
        );
    }
}
