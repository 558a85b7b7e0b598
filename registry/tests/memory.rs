//! Memory stays flat when pushing and pulling a big blob: the bytes stream
//! between disk and socket and are never held whole. Its own test binary so
//! no other test's allocations show up in this process's peak RSS.

mod support;

use std::io::Write;

use builder_registry::manifest::OCI_MANIFEST;
use builder_registry::{Client, ClientConfig, Platform};
use builder_store::HashingWriter;
use support::registry::{Auth, Registry};
use support::store::LayoutStore;

const MIB: u64 = 1024 * 1024;
const BLOB: u64 = 128 * MIB;

/// Peak resident set size of this process so far, from /proc.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// Writes `BLOB` pseudo-random bytes to the store one MiB at a time.
fn write_big_blob(store: &LayoutStore) -> builder_registry::Digest {
    let tmp = store.path().join("tmp/big");
    let mut w = HashingWriter::new(std::io::BufWriter::new(
        std::fs::File::create(&tmp).unwrap(),
    ));
    let mut buf = vec![0u8; MIB as usize];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..BLOB / MIB {
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        w.write_all(&buf).unwrap();
    }
    let (d, n, mut inner) = w.finish();
    inner.flush().unwrap();
    assert_eq!(n, BLOB);
    std::fs::rename(&tmp, store.blob_path(&d)).unwrap();
    d
}

#[tokio::test]
async fn big_blob_push_and_pull_keep_memory_flat() {
    let reg = Registry::start(Auth::None);
    let src = LayoutStore::new();
    let layer = write_big_blob(&src);
    let config = src
        .put(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#);
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": src.read(&config).len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": BLOB}]
    })
    .to_string();
    let creds = tempfile::tempdir().unwrap();
    let client = Client::new(ClientConfig {
        docker_config_dir: Some(creds.path().to_path_buf()),
        ..ClientConfig::default()
    })
    .unwrap();
    let r = format!("{}/mem/big:1", reg.host()).parse().unwrap();
    let before = peak_rss();
    let started = std::time::Instant::now();
    client
        .push(&r, manifest.as_bytes(), OCI_MANIFEST, &src, &|_| {})
        .await
        .unwrap();
    let pushed_in = started.elapsed();
    let dst = LayoutStore::new();
    let started = std::time::Instant::now();
    let pulled = client
        .pull(&r, &Platform::host(), &dst, &|_| {})
        .await
        .unwrap();
    let pulled_in = started.elapsed();
    assert_eq!(pulled.layers[0].digest, layer);
    let growth = peak_rss().saturating_sub(before);
    eprintln!(
        "128 MiB blob: push {pushed_in:?}, pull {pulled_in:?}, peak RSS growth {} MiB",
        growth / MIB
    );
    assert!(
        growth < 64 * MIB,
        "peak RSS grew by {} MiB for a {} MiB blob",
        growth / MIB,
        BLOB / MIB
    );
}
