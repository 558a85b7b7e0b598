//! End-to-end tests against real `docker-registry` processes (Debian's
//! distribution 2.8), plus skopeo for interoperability. No mocks.

mod support;

use std::sync::Mutex;
use std::sync::mpsc;

use builder_registry::manifest::{OCI_INDEX, OCI_MANIFEST};
use builder_registry::{
    Client, ClientConfig, Platform, ProgressEvent, Reference, RegistryError, RetryPolicy,
};
use support::image::{self, TestImage};
use support::registry::{Auth, Registry};
use support::run;
use support::store::LayoutStore;
use support::token_server::{self, TokenServer};

/// Collects progress events for assertions.
#[derive(Default)]
struct Events(Mutex<Vec<ProgressEvent>>);

impl Events {
    fn push(&self, e: ProgressEvent) {
        self.0.lock().unwrap().push(e);
    }
    fn count(&self, pred: impl Fn(&ProgressEvent) -> bool) -> usize {
        self.0.lock().unwrap().iter().filter(|e| pred(e)).count()
    }
    fn uploads(&self) -> usize {
        self.count(|e| matches!(e, ProgressEvent::UploadStarted { .. }))
    }
    fn take(&self) -> Vec<ProgressEvent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A client that reads credentials only from `config_dir` (never the host's ~/.docker).
fn client_with(config_dir: &std::path::Path) -> Client {
    Client::new(ClientConfig {
        max_concurrent_downloads: 3,
        docker_config_dir: Some(config_dir.to_path_buf()),
        ..ClientConfig::default()
    })
    .unwrap()
}

fn reference(reg: &Registry, repo_tag: &str) -> Reference {
    format!("{}/{repo_tag}", reg.host()).parse().unwrap()
}

fn small_image(store: &LayoutStore, arch: &str) -> TestImage {
    image::build(
        store,
        arch,
        &[
            vec![("etc/hello", b"hello\n" as &[u8])],
            vec![("bin/tool", format!("tool for {arch}").as_bytes())],
        ],
    )
}

async fn push(
    client: &Client,
    r: &Reference,
    img: &TestImage,
    src: &LayoutStore,
    ev: &Events,
) -> builder_registry::Digest {
    client
        .push(r, &img.manifest, OCI_MANIFEST, src, &|e| ev.push(e))
        .await
        .unwrap()
}

#[tokio::test]
async fn push_then_pull_round_trip_keeps_digests() {
    let reg = Registry::start(Auth::None);
    let creds = tempfile::tempdir().unwrap();
    let client = client_with(creds.path());
    let src = LayoutStore::new();
    let img = small_image(&src, "amd64");
    let r = reference(&reg, "round/trip:v1");
    let ev = Events::default();
    let pushed = push(&client, &r, &img, &src, &ev).await;
    assert_eq!(pushed, img.manifest_digest);
    assert_eq!(
        ev.uploads(),
        3,
        "config and two layers uploaded: {:?}",
        ev.take()
    );

    // A fresh client (no shared state) into an empty store.
    let dst = LayoutStore::new();
    let fresh = client_with(creds.path());
    let pulled = fresh
        .pull(&r, &Platform::host(), &dst, &|e| ev.push(e))
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, img.manifest_digest);
    assert_eq!(pulled.manifest_bytes, img.manifest);
    assert_eq!(pulled.manifest_media_type, OCI_MANIFEST);
    assert_eq!(pulled.config_digest, img.config);
    assert_eq!(
        pulled.layers.iter().map(|l| l.digest).collect::<Vec<_>>(),
        img.layers
    );
    assert_eq!(pulled.index_digest, None);
    for d in img.layers.iter().chain([&img.config, &img.manifest_digest]) {
        assert_eq!(dst.read(d), src.read(d), "blob {d} identical");
    }
    assert!(
        std::fs::read_dir(dst.path().join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "no temp files left"
    );

    // Pulling again downloads nothing.
    ev.take();
    fresh
        .pull(&r, &Platform::host(), &dst, &|e| ev.push(e))
        .await
        .unwrap();
    assert_eq!(
        ev.count(|e| matches!(e, ProgressEvent::DownloadStarted { .. })),
        0
    );
    assert_eq!(
        ev.count(|e| matches!(e, ProgressEvent::BlobCached { .. })),
        3
    );

    // resolve() by tag and by digest agree; unknown tags are NotFound.
    let (d, mt, bytes) = fresh.resolve(&r).await.unwrap();
    assert_eq!(
        (d, mt.as_str(), bytes.as_slice()),
        (img.manifest_digest, OCI_MANIFEST, img.manifest.as_slice())
    );
    let (d2, _, _) = fresh.resolve(&r.with_digest(d)).await.unwrap();
    assert_eq!(d2, d);
    let missing = fresh
        .resolve(&reference(&reg, "round/trip:nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, RegistryError::NotFound { .. }),
        "{missing}"
    );
}

#[tokio::test]
async fn repush_uploads_nothing_and_other_repo_mounts() {
    let reg = Registry::start(Auth::None);
    let creds = tempfile::tempdir().unwrap();
    let client = client_with(creds.path());
    let src = LayoutStore::new();
    let img = small_image(&src, "amd64");
    let ev = Events::default();
    let r = reference(&reg, "app/one:1");
    push(&client, &r, &img, &src, &ev).await;
    assert_eq!(ev.uploads(), 3);
    ev.take();

    let again = push(&client, &r, &img, &src, &ev).await;
    assert_eq!(again, img.manifest_digest);
    assert_eq!(ev.uploads(), 0, "re-push uploads no blob");
    assert_eq!(
        ev.count(|e| matches!(e, ProgressEvent::BlobExists { .. })),
        3
    );
    ev.take();

    // Another repository on the same registry: blobs are mounted from app/one.
    let other = reference(&reg, "app/two:1");
    push(&client, &other, &img, &src, &ev).await;
    assert_eq!(ev.uploads(), 0, "mounted, not uploaded: {:?}", ev.take());
    assert_eq!(
        ev.count(|e| matches!(e, ProgressEvent::BlobMounted { from, .. } if from == "app/one")),
        3
    );
    let pulled = client
        .pull(&other, &Platform::host(), &LayoutStore::new(), &|_| {})
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, img.manifest_digest);
}

#[tokio::test]
async fn skopeo_interoperates_both_ways() {
    let reg = Registry::start(Auth::None);
    let creds = tempfile::tempdir().unwrap();
    let client = client_with(creds.path());

    // skopeo pushes from an OCI layout we wrote; we pull it.
    let src = LayoutStore::new();
    let img = small_image(&src, "amd64");
    src.tag("v1", &img.manifest_digest, OCI_MANIFEST);
    run(std::process::Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.path().display()),
        &format!("docker://{}/by/skopeo:v1", reg.host()),
    ]));
    let dst = LayoutStore::new();
    let pulled = client
        .pull(
            &reference(&reg, "by/skopeo:v1"),
            &Platform::host(),
            &dst,
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(pulled.config_digest, img.config);
    assert_eq!(
        pulled.layers.iter().map(|l| l.digest).collect::<Vec<_>>(),
        img.layers
    );
    // skopeo keeps an OCI manifest byte-for-byte when it needn't convert it.
    assert_eq!(pulled.manifest_digest, img.manifest_digest);

    // We push; skopeo inspects and copies it back to a layout.
    let r = reference(&reg, "by/us:v2");
    push(&client, &r, &img, &src, &Events::default()).await;
    let inspect = run(std::process::Command::new("skopeo").args([
        "--insecure-policy",
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{}", r),
    ]));
    assert_eq!(inspect.as_bytes(), img.manifest.as_slice());
    let out = tempfile::tempdir().unwrap();
    run(std::process::Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}", r),
        &format!("oci:{}:copy", out.path().display()),
    ]));
    for d in img.layers.iter().chain([&img.config]) {
        let copied = std::fs::read(out.path().join("blobs/sha256").join(d.hex())).unwrap();
        assert_eq!(copied, src.read(d));
    }
}

#[tokio::test]
async fn multi_platform_index_picks_requested_platform() {
    let reg = Registry::start(Auth::None);
    let creds = tempfile::tempdir().unwrap();
    let client = client_with(creds.path());
    let src = LayoutStore::new();
    let amd = small_image(&src, "amd64");
    let arm = small_image(&src, "arm64");
    let (index, index_digest) =
        image::index(&src, &[(&amd, "amd64", None), (&arm, "arm64", Some("v8"))]);
    let r = reference(&reg, "multi/arch:latest");
    let pushed = client
        .push(&r, &index, OCI_INDEX, &src, &|_| {})
        .await
        .unwrap();
    assert_eq!(pushed, index_digest);

    let (d, mt, _) = client.resolve(&r).await.unwrap();
    assert_eq!((d, mt.as_str()), (index_digest, OCI_INDEX));

    let dst = LayoutStore::new();
    let got = client
        .pull(&r, &"linux/arm64".parse().unwrap(), &dst, &|_| {})
        .await
        .unwrap();
    assert_eq!(got.manifest_digest, arm.manifest_digest);
    assert_eq!(got.config_digest, arm.config);
    assert_eq!(got.index_digest, Some(index_digest));
    assert!(dst.contains_all(&[index_digest, arm.manifest_digest, arm.config]));
    let got = client
        .pull(&r, &"linux/amd64".parse().unwrap(), &dst, &|_| {})
        .await
        .unwrap();
    assert_eq!(got.manifest_digest, amd.manifest_digest);

    let err = client
        .pull(&r, &"linux/s390x".parse().unwrap(), &dst, &|_| {})
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, RegistryError::PlatformNotFound { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("linux/amd64")
            // the entry's `arm64/v8`, in containerd's normalized spelling
            && msg.contains("linux/arm64")
            && msg.contains("linux/s390x"),
        "{msg}"
    );
}

#[tokio::test]
async fn htpasswd_basic_auth_and_wrong_password() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash_with_result("s3cret", 5)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("alice:{hash}\n")).unwrap();
    let reg = Registry::start(Auth::Htpasswd(htpasswd));
    let src = LayoutStore::new();
    let img = small_image(&src, "amd64");
    let r = reference(&reg, "private/img:1");

    // No credentials: a clear error naming the registry.
    let anon = tempfile::tempdir().unwrap();
    let err = client_with(anon.path())
        .push(&r, &img.manifest, OCI_MANIFEST, &src, &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains(&reg.host()), "{err}");

    let good = tempfile::tempdir().unwrap();
    builder_registry::login(Some(good.path()), &reg.host(), "alice", "s3cret").unwrap();
    let client = client_with(good.path());
    push(&client, &r, &img, &src, &Events::default()).await;
    let pulled = client
        .pull(&r, &Platform::host(), &LayoutStore::new(), &|_| {})
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, img.manifest_digest);

    let bad = tempfile::tempdir().unwrap();
    builder_registry::login(Some(bad.path()), &reg.host(), "alice", "wrong").unwrap();
    let err = client_with(bad.path())
        .pull(&r, &Platform::host(), &LayoutStore::new(), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&reg.host()) && msg.contains("wrong credentials"),
        "{msg}"
    );

    builder_registry::logout(Some(good.path()), &reg.host()).unwrap();
    let err = client_with(good.path()).resolve(&r).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Unauthorized { .. }),
        "after logout: {err}"
    );
}

#[tokio::test]
async fn bearer_token_flow() {
    let tokens = TokenServer::start("bob", "hunter2");
    let reg = Registry::start(Auth::Token {
        realm: tokens.realm(),
        service: token_server::SERVICE.into(),
        issuer: token_server::ISSUER.into(),
        cert: tokens.cert_path.clone(),
    });
    let src = LayoutStore::new();
    let img = small_image(&src, "amd64");
    let r = reference(&reg, "team/app:1");

    let good = tempfile::tempdir().unwrap();
    builder_registry::login(Some(good.path()), &reg.host(), "bob", "hunter2").unwrap();
    let client = client_with(good.path());
    client.verify_credentials(&reg.host()).await.unwrap();
    let ev = Events::default();
    push(&client, &r, &img, &src, &ev).await;
    assert_eq!(ev.uploads(), 3);
    let pulled = client
        .pull(&r, &Platform::host(), &LayoutStore::new(), &|_| {})
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, img.manifest_digest);
    let issued = tokens.issued.load(std::sync::atomic::Ordering::SeqCst);
    // Cached per scope and fetched once even by concurrent uploads: one for the
    // login check (no scope), one for push (pull,push), one for pull.
    assert_eq!(issued, 3, "tokens issued");

    // A mount needs pull on the source repository too; the token covers both.
    ev.take();
    push(&client, &reference(&reg, "team/copy:1"), &img, &src, &ev).await;
    assert_eq!(
        ev.count(|e| matches!(e, ProgressEvent::BlobMounted { .. })),
        3,
        "{:?}",
        ev.take()
    );

    let bad = tempfile::tempdir().unwrap();
    builder_registry::login(Some(bad.path()), &reg.host(), "bob", "nope").unwrap();
    let err = client_with(bad.path()).resolve(&r).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains(&reg.host()), "{err}");
    let err = client_with(bad.path())
        .verify_credentials(&reg.host())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("token server"), "{err}");

    // An identitytoken in config.json goes through the OAuth2 refresh-token POST.
    let idt = tempfile::tempdir().unwrap();
    let entry = serde_json::json!({"auths": {reg.host(): {"identitytoken": TokenServer::refresh_token_for("hunter2")}}});
    std::fs::write(idt.path().join("config.json"), entry.to_string()).unwrap();
    let (d, _, _) = client_with(idt.path()).resolve(&r).await.unwrap();
    assert_eq!(d, img.manifest_digest);

    // Anonymous gets a token without access: refused, with a clear error.
    let anon = tempfile::tempdir().unwrap();
    let err = client_with(anon.path()).resolve(&r).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
}

/// Pushes a 24 MiB layer in 1 MiB chunks and kills the registry once, after
/// 4 MiB went up; a thread starts it again on the same port and storage
/// (`rotate_secret`: so that it forgot the upload session). Returns the events.
async fn push_through_registry_restart(
    repo: &str,
    rotate_secret: bool,
) -> (Vec<ProgressEvent>, TestImage) {
    const MIB: u64 = 1024 * 1024;
    let reg = std::sync::Arc::new(Mutex::new(Registry::start(Auth::None)));
    let host = reg.lock().unwrap().host();
    let creds = tempfile::tempdir().unwrap();
    let client = Client::new(ClientConfig {
        docker_config_dir: Some(creds.path().to_path_buf()),
        chunk_size: MIB,
        retry: RetryPolicy {
            attempts: 8,
            ..RetryPolicy::default()
        },
        ..ClientConfig::default()
    })
    .unwrap();
    let src = LayoutStore::new();
    let img = image::build_big(&src, 24 * MIB as usize);
    let r: Reference = format!("{host}/{repo}:1").parse().unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let (killed_tx, killed_rx) = mpsc::channel::<()>();
    let restarter = {
        let reg = reg.clone();
        std::thread::spawn(move || {
            if rx.recv().is_ok() {
                reg.lock().unwrap().kill();
                let _ = killed_tx.send(());
                std::thread::sleep(std::time::Duration::from_millis(500));
                let mut reg = reg.lock().unwrap();
                if rotate_secret {
                    reg.restart_with_new_secret()
                } else {
                    reg.restart()
                }
            }
        })
    };
    let tx = Mutex::new(Some(tx));
    let killed_rx = Mutex::new(killed_rx);
    let ev = Events::default();
    let progress = |e: ProgressEvent| {
        if let ProgressEvent::UploadProgress { done, total, .. } = &e
            && *total > 8 * MIB
            && *done >= 4 * MIB
            && let Some(tx) = tx.lock().unwrap().take()
        {
            // Progress comes between two PATCHes: waiting here until the kill
            // has happened means no chunk is half-written when the registry dies.
            let _ = tx.send(());
            let _ = killed_rx.lock().unwrap().recv();
        }
        ev.push(e);
    };
    let pushed = client
        .push(&r, &img.manifest, OCI_MANIFEST, &src, &progress)
        .await
        .unwrap();
    drop(tx.lock().unwrap().take());
    restarter.join().unwrap();
    assert_eq!(pushed, img.manifest_digest);

    let dst = LayoutStore::new();
    let pulled = client
        .pull(&r, &Platform::host(), &dst, &|_| {})
        .await
        .unwrap();
    assert_eq!(pulled.layers[0].digest, img.layers[0]);
    assert_eq!(dst.read(&img.layers[0]), src.read(&img.layers[0]));
    (ev.take(), img)
}

fn started_uploads_of(events: &[ProgressEvent], d: &builder_registry::Digest) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, ProgressEvent::UploadStarted { digest, .. } if digest == d))
        .count()
}

#[tokio::test]
async fn interrupted_chunked_upload_resumes_the_session() {
    let (events, img) = push_through_registry_restart("big/resume", false).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ProgressEvent::Retrying { .. })),
        "the kill caused a retry"
    );
    let resumed: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            ProgressEvent::UploadResumed { from, .. } => Some(*from),
            _ => None,
        })
        .collect();
    assert!(
        resumed == [4 * 1024 * 1024],
        "resumed the registry's session after the first 4 MiB: {resumed:?} {:?}",
        events
            .iter()
            .filter(|e| !matches!(e, ProgressEvent::UploadProgress { .. }))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        started_uploads_of(&events, &img.layers[0]),
        1,
        "not started over"
    );
}

#[tokio::test]
async fn interrupted_upload_starts_over_when_the_session_is_lost() {
    let (events, img) = push_through_registry_restart("big/restart", true).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ProgressEvent::Retrying { .. })),
        "the kill caused a retry"
    );
    assert_eq!(
        started_uploads_of(&events, &img.layers[0]),
        2,
        "a fresh session after the lost one"
    );
}

#[tokio::test]
async fn interrupted_download_resumes_with_range() {
    const MIB: u64 = 1024 * 1024;
    let reg = std::sync::Arc::new(Mutex::new(Registry::start(Auth::None)));
    let host = reg.lock().unwrap().host();
    let creds = tempfile::tempdir().unwrap();
    let client = client_with(creds.path());
    let src = LayoutStore::new();
    let img = image::build_big(&src, 48 * MIB as usize);
    let r: Reference = format!("{host}/big/download:1").parse().unwrap();
    push(&client, &r, &img, &src, &Events::default()).await;

    let (tx, rx) = mpsc::channel::<()>();
    let restarter = {
        let reg = reg.clone();
        std::thread::spawn(move || {
            if rx.recv().is_ok() {
                reg.lock().unwrap().kill();
                std::thread::sleep(std::time::Duration::from_millis(300));
                reg.lock().unwrap().restart();
            }
        })
    };
    let tx = Mutex::new(Some(tx));
    let ev = Events::default();
    let progress = |e: ProgressEvent| {
        if let ProgressEvent::DownloadProgress { done, total, .. } = &e
            && *total > 8 * MIB
            && *done >= 2 * MIB
            && let Some(tx) = tx.lock().unwrap().take()
        {
            let _ = tx.send(());
            // Give the kill a moment to land while this download is still reading.
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        ev.push(e);
    };
    let dst = LayoutStore::new();
    let pulled = client
        .pull(&r, &Platform::host(), &dst, &progress)
        .await
        .unwrap();
    drop(tx.lock().unwrap().take());
    restarter.join().unwrap();
    assert_eq!(pulled.layers[0].digest, img.layers[0]);
    assert_eq!(dst.read(&img.layers[0]), src.read(&img.layers[0]));
    let resumed: Vec<u64> = ev
        .take()
        .into_iter()
        .filter_map(|e| match e {
            ProgressEvent::DownloadResumed { from, .. } => Some(from),
            _ => None,
        })
        .collect();
    assert!(
        !resumed.is_empty() && resumed.iter().all(|f| *f >= 2 * MIB),
        "resumed from: {resumed:?}"
    );
}

#[tokio::test]
async fn loopback_registry_over_tls_with_self_signed_cert() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let reg = Registry::start_with(Auth::None, Some((cert_path, key_path)));
    let creds = tempfile::tempdir().unwrap();
    let client = client_with(creds.path());
    let src = LayoutStore::new();
    let img = small_image(&src, "amd64");
    let r = reference(&reg, "tls/img:1");
    // Loopback registries are trusted like docker's insecure ones: TLS without
    // verification. The registry serves TLS only, so success means https was used.
    push(&client, &r, &img, &src, &Events::default()).await;
    let pulled = client
        .pull(&r, &Platform::host(), &LayoutStore::new(), &|_| {})
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, img.manifest_digest);
}

#[tokio::test]
async fn docker_schema2_manifest_and_manifest_list() {
    use builder_registry::manifest::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST};
    let reg = Registry::start(Auth::None);
    let creds = tempfile::tempdir().unwrap();
    let client = client_with(creds.path());
    let src = LayoutStore::new();
    // The same blobs, described with Docker's media types.
    let docker_manifest = |img: &TestImage| {
        let mut m: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
        m["mediaType"] = DOCKER_MANIFEST.into();
        m["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json".into();
        for l in m["layers"].as_array_mut().unwrap() {
            l["mediaType"] = "application/vnd.docker.image.rootfs.diff.tar.gzip".into();
        }
        let bytes = m.to_string().into_bytes();
        (src.put(&bytes), bytes)
    };
    let (amd_d, amd) = docker_manifest(&small_image(&src, "amd64"));
    let (arm_d, arm) = docker_manifest(&small_image(&src, "arm64"));
    let list = serde_json::json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "digest": amd_d.to_string(), "size": amd.len(), "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": DOCKER_MANIFEST, "digest": arm_d.to_string(), "size": arm.len(), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}
    ]})
    .to_string()
    .into_bytes();
    let list_d = src.put(&list);

    let single = reference(&reg, "docker/single:1");
    client
        .push(&single, &amd, DOCKER_MANIFEST, &src, &|_| {})
        .await
        .unwrap();
    let (d, mt, _) = client.resolve(&single).await.unwrap();
    assert_eq!((d, mt.as_str()), (amd_d, DOCKER_MANIFEST));

    let multi = reference(&reg, "docker/multi:1");
    assert_eq!(
        client
            .push(&multi, &list, DOCKER_MANIFEST_LIST, &src, &|_| {})
            .await
            .unwrap(),
        list_d
    );
    let got = client
        .pull(
            &multi,
            &"linux/arm64/v8".parse().unwrap(),
            &LayoutStore::new(),
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(
        (got.manifest_digest, got.manifest_media_type.as_str()),
        (arm_d, DOCKER_MANIFEST)
    );
    assert_eq!(got.index_digest, Some(list_d));
}

#[tokio::test]
async fn dead_registry_fails_after_the_configured_tries_with_the_url() {
    // A server that accepts and at once hangs up: every request fails as a dropped connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(conn);
        }
    });
    let creds = tempfile::tempdir().unwrap();
    let client = Client::new(ClientConfig {
        docker_config_dir: Some(creds.path().to_path_buf()),
        retry: RetryPolicy {
            attempts: 3,
            initial_delay: std::time::Duration::from_millis(10),
            max_delay: std::time::Duration::from_millis(20),
        },
        ..ClientConfig::default()
    })
    .unwrap();
    let r: Reference = format!("127.0.0.1:{port}/nobody/home:1").parse().unwrap();
    let err = client
        .pull(&r, &Platform::host(), &LayoutStore::new(), &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::GaveUp { last, attempts: 3, .. } if matches!(**last, RegistryError::Http { .. })),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("http://127.0.0.1:{port}/v2/")),
        "{err}"
    );
    // Each try pings https, then falls back to http (loopback): two connections.
    // Retries are not nested, so 3 tries make 6 connections, not 18.
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 6);
}
