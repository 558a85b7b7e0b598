//! Fault injection between the client and a real `docker-registry`: transient server
//! errors, permanent ones, connections cut mid-body and stalls (support/fault_proxy.rs).

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use builder_registry::manifest::OCI_MANIFEST;
use builder_registry::{
    Client, ClientConfig, Platform, ProgressEvent, Reference, RegistryError, RetryPolicy, Timeouts,
};
use support::fault_proxy::{Fault, FaultKind, FaultProxy};
use support::image::{self, TestImage};
use support::registry::{Auth, Registry};
use support::store::LayoutStore;

/// Short pauses so the tests take seconds, with as many tries as the CLI makes.
fn client(config_dir: &std::path::Path, attempts: u32, read_timeout: Duration) -> Client {
    Client::new(ClientConfig {
        docker_config_dir: Some(config_dir.to_path_buf()),
        retry: RetryPolicy {
            attempts,
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            read: read_timeout,
        },
        ..ClientConfig::default()
    })
    .unwrap()
}

fn status(code: u16) -> FaultKind {
    FaultKind::Status {
        code,
        retry_after: None,
    }
}

struct Setup {
    reg: Registry,
    proxy: FaultProxy,
    creds: tempfile::TempDir,
    src: LayoutStore,
    img: TestImage,
}

fn setup() -> Setup {
    let reg = Registry::start(Auth::None);
    let proxy = FaultProxy::start(reg.port);
    let src = LayoutStore::new();
    let img = image::build(
        &src,
        "amd64",
        &[
            vec![("etc/a", b"a\n" as &[u8])],
            vec![("etc/b", b"b\n" as &[u8])],
        ],
    );
    Setup {
        reg,
        proxy,
        creds: tempfile::tempdir().unwrap(),
        src,
        img,
    }
}

fn via_proxy(s: &Setup, repo_tag: &str) -> Reference {
    format!("{}/{repo_tag}", s.proxy.host()).parse().unwrap()
}

fn direct(s: &Setup, repo_tag: &str) -> Reference {
    format!("{}/{repo_tag}", s.reg.host()).parse().unwrap()
}

#[tokio::test]
async fn transient_server_errors_are_retried_for_push_and_pull() {
    let s = setup();
    let c = client(s.creds.path(), 4, Duration::from_secs(10));
    let r = via_proxy(&s, "flaky/img:1");
    // Two failures in a row for each kind of request, fewer than the four tries.
    s.proxy
        .arm(Fault::new(status(500), "POST", "/blobs/uploads/", 2));
    s.proxy
        .arm(Fault::new(status(503), "PUT", "/blobs/uploads/", 2));
    s.proxy
        .arm(Fault::new(status(502), "PUT", "/manifests/", 2));
    let pushed = c
        .push(&r, &s.img.manifest, OCI_MANIFEST, &s.src, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}\n{:#?}", s.proxy.log()));
    assert_eq!(pushed, s.img.manifest_digest);
    assert_eq!(s.proxy.injected("status 500"), 2, "{:#?}", s.proxy.log());
    assert_eq!(s.proxy.injected("status 503"), 2);
    assert_eq!(s.proxy.injected("status 502"), 2);

    s.proxy
        .arm(Fault::new(status(500), "GET", "/manifests/", 2));
    s.proxy.arm(Fault::new(status(503), "GET", "/blobs/", 3));
    let dst = LayoutStore::new();
    let retries = Mutex::new(0);
    let progress = |e: ProgressEvent| {
        if let ProgressEvent::Retrying { .. } = e {
            *retries.lock().unwrap() += 1;
        }
    };
    let pulled = c
        .pull(&r, &Platform::host(), &dst, &progress)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{:#?}", s.proxy.log()));
    assert_eq!(pulled.manifest_digest, s.img.manifest_digest);
    assert!(dst.contains_all(&s.img.layers) && dst.contains_all(&[s.img.config]));
    assert_eq!(dst.read(&s.img.layers[1]), s.src.read(&s.img.layers[1]));
    assert_eq!(s.proxy.injected("status 500"), 4);
    assert_eq!(s.proxy.injected("status 503"), 5);
    assert_eq!(*retries.lock().unwrap(), 3, "blob retries are reported");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let s = setup();
    let c = client(s.creds.path(), 3, Duration::from_secs(10));
    let r = via_proxy(&s, "throttled/img:1");
    c.push(&r, &s.img.manifest, OCI_MANIFEST, &s.src, &|_| {})
        .await
        .unwrap();
    s.proxy.arm(Fault::new(
        FaultKind::Status {
            code: 429,
            retry_after: Some(2),
        },
        "GET",
        "/manifests/",
        1,
    ));
    let started = Instant::now();
    c.resolve(&r).await.unwrap();
    // The backoff alone would have waited 20 ms.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.proxy.injected("status 429"), 1);
}

#[tokio::test]
async fn permanent_server_error_fails_clearly_and_records_nothing() {
    let s = setup();
    let c = client(s.creds.path(), 3, Duration::from_secs(10));
    let r = via_proxy(&s, "broken/img:1");
    c.push(&r, &s.img.manifest, OCI_MANIFEST, &s.src, &|_| {})
        .await
        .unwrap();

    // Pull: the manifest comes, one layer never does.
    s.proxy.arm(Fault::new(
        status(500),
        "GET",
        &format!("/blobs/{}", s.img.layers[1]),
        usize::MAX,
    ));
    let dst = LayoutStore::new();
    let err = c
        .pull(&r, &Platform::host(), &dst, &|_| {})
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, RegistryError::GaveUp { attempts: 3, .. }),
        "{msg}"
    );
    for part in [
        format!("download blob {} from broken/img", s.img.layers[1]),
        format!("at registry {}", s.proxy.host()),
        "failed after 3 attempts".into(),
        "unexpected status 500".into(),
    ] {
        assert!(msg.contains(&part), "{part:?} missing from: {msg}");
    }
    assert!(
        !dst.blob_path(&s.img.manifest_digest).exists(),
        "no manifest recorded for a failed pull"
    );
    assert!(!dst.blob_path(&s.img.layers[1]).exists());
    let leftovers = std::fs::read_dir(dst.path().join("tmp")).unwrap().count();
    assert_eq!(leftovers, 0, "partial downloads are cleaned up");
    s.proxy.disarm();

    // Push: a blob upload keeps failing, so the manifest (the tag) must not appear.
    let other = LayoutStore::new();
    let img2 = image::build(&other, "amd64", &[vec![("etc/c", b"c\n" as &[u8])]]);
    s.proxy.arm(Fault::new(
        status(500),
        "PUT",
        "/blobs/uploads/",
        usize::MAX,
    ));
    let r2 = via_proxy(&s, "broken/two:1");
    let err = c
        .push(&r2, &img2.manifest, OCI_MANIFEST, &other, &|_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("upload blob") && err.contains("at registry") && err.contains("500"),
        "{err}"
    );
    assert!(
        s.proxy
            .log()
            .iter()
            .all(|l| !l.starts_with("PUT /v2/broken/two/manifests")),
        "the manifest was never sent: {:#?}",
        s.proxy.log()
    );
    s.proxy.disarm();
    let fresh = client(s.creds.path(), 1, Duration::from_secs(10));
    let missing = fresh
        .resolve(&direct(&s, "broken/two:1"))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, RegistryError::NotFound { .. }),
        "{missing}"
    );
}

#[tokio::test]
async fn connection_reset_mid_blob_is_resumed() {
    const MIB: usize = 1024 * 1024;
    let s = setup();
    let src = LayoutStore::new();
    let big = image::build_big(&src, 6 * MIB);
    let c = client(s.creds.path(), 4, Duration::from_secs(10));
    let r = via_proxy(&s, "reset/img:1");
    c.push(&r, &big.manifest, OCI_MANIFEST, &src, &|_| {})
        .await
        .unwrap();
    s.proxy.arm(Fault::new(
        FaultKind::ResetMidBody,
        "GET",
        &format!("/blobs/{}", big.layers[0]),
        2,
    ));
    let resumed = Mutex::new(Vec::new());
    let progress = |e: ProgressEvent| {
        if let ProgressEvent::DownloadResumed { from, .. } = e {
            resumed.lock().unwrap().push(from);
        }
    };
    let dst = LayoutStore::new();
    c.pull(&r, &Platform::host(), &dst, &progress)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{:#?}", s.proxy.log()));
    assert_eq!(dst.read(&big.layers[0]), src.read(&big.layers[0]));
    assert_eq!(s.proxy.injected("reset"), 2);
    let resumed = resumed.into_inner().unwrap();
    // The first cut is at half the blob, the second at half of what the resumed
    // (Range) response had left to send.
    let size = src.read(&big.layers[0]).len() as u64;
    let first = size / 2;
    assert_eq!(
        resumed,
        vec![first, first + (size - first) / 2],
        "each retry continued where the cut left off"
    );
}

#[tokio::test]
async fn stalled_registry_times_out_in_bounded_time() {
    let s = setup();
    let c = client(s.creds.path(), 2, Duration::from_millis(800));
    let r = via_proxy(&s, "stall/img:1");
    s.proxy.arm(Fault::new(
        FaultKind::Stall,
        "GET",
        "/manifests/",
        usize::MAX,
    ));
    let started = Instant::now();
    let err = c
        .pull(&r, &Platform::host(), &LayoutStore::new(), &|_| {})
        .await
        .unwrap_err();
    let took = started.elapsed();
    let msg = err.to_string();
    // Two tries of 0.8 s plus a short pause; far from the default two minutes.
    assert!(took < Duration::from_secs(6), "took {took:?}: {msg}");
    assert!(took >= Duration::from_millis(1600), "took {took:?}: {msg}");
    assert_eq!(s.proxy.injected("stall"), 2, "{:#?}", s.proxy.log());
    for part in [
        format!("fetch manifest {}/stall/img:1", s.proxy.host()),
        format!("at registry {}", s.proxy.host()),
        "failed after 2 attempts".into(),
        "timed out".into(),
    ] {
        assert!(msg.contains(&part), "{part:?} missing from: {msg}");
    }
}
