//! Credentials for a registry reach its token realm only over https, on the registry's own
//! host, or on loopback: a registry (or whoever rewrites its plain-HTTP answers) naming
//! `http://elsewhere/token` as its realm used to receive the user's password there as Basic
//! auth in clear text. Against a real `docker-registry` (token auth) and the test token
//! server, each on its own port; the rule itself is unit-tested on URLs (including a
//! non-loopback name such as `realm.example`) in `registry/src/auth/realm.rs`.

mod support;

use std::net::{IpAddr, UdpSocket};
use std::sync::atomic::Ordering;

use builder_registry::manifest::OCI_MANIFEST;
use builder_registry::{Client, ClientConfig, Platform, Reference, RegistryError};
use support::image;
use support::registry::{Auth, Registry};
use support::store::LayoutStore;
use support::token_server::{self, TokenServer};

fn client_with(config_dir: &std::path::Path) -> Client {
    Client::new(ClientConfig {
        docker_config_dir: Some(config_dir.to_path_buf()),
        ..ClientConfig::default()
    })
    .unwrap()
}

fn token_registry(tokens: &TokenServer) -> Registry {
    Registry::start(Auth::Token {
        realm: tokens.realm(),
        service: token_server::SERVICE.into(),
        issuer: token_server::ISSUER.into(),
        cert: tokens.cert_path.clone(),
    })
}

/// An address of this machine that is not loopback: the source address of the route to a
/// documentation address (a UDP connect sends nothing).
fn non_loopback_address() -> Option<IpAddr> {
    [
        "192.0.2.1:9",
        "198.51.100.1:9",
        "203.0.113.1:9",
        "10.255.255.1:9",
    ]
    .iter()
    .find_map(|target| {
        let s = UdpSocket::bind("0.0.0.0:0").ok()?;
        s.connect(target).ok()?;
        let ip = s.local_addr().ok()?.ip();
        (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
    })
}

#[tokio::test]
async fn a_loopback_realm_on_another_port_gets_the_credentials() {
    let tokens = TokenServer::start("bob", "hunter2");
    let reg = token_registry(&tokens);
    assert_ne!(
        tokens.port, reg.port,
        "two servers: the realm is another host"
    );
    let creds = tempfile::tempdir().unwrap();
    builder_registry::login(Some(creds.path()), &reg.host(), "bob", "hunter2").unwrap();
    let client = client_with(creds.path());
    let src = LayoutStore::new();
    let img = image::build(&src, "amd64", &[vec![("hello", b"hi\n" as &[u8])]]);
    let r: Reference = format!("{}/team/app:1", reg.host()).parse().unwrap();
    client
        .push(&r, &img.manifest, OCI_MANIFEST, &src, &|_| {})
        .await
        .unwrap();
    let pulled = client
        .pull(&r, &Platform::host(), &LayoutStore::new(), &|_| {})
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, img.manifest_digest);
    assert!(tokens.with_credentials.load(Ordering::SeqCst) > 0);
}

#[tokio::test]
async fn a_plain_http_realm_on_a_non_loopback_host_gets_no_credentials() {
    let Some(ip) = non_loopback_address() else {
        eprintln!("skipped: this machine has no non-loopback address to serve a realm on");
        return;
    };
    let tokens = TokenServer::start_on(ip, "bob", "hunter2");
    let reg = token_registry(&tokens);
    let creds = tempfile::tempdir().unwrap();
    builder_registry::login(Some(creds.path()), &reg.host(), "bob", "hunter2").unwrap();
    let client = client_with(creds.path());
    let src = LayoutStore::new();
    let img = image::build(&src, "amd64", &[vec![("hello", b"hi\n" as &[u8])]]);
    let r: Reference = format!("{}/team/app:1", reg.host()).parse().unwrap();

    // Login's check and a push: the token is asked for anonymously, grants nothing, and the
    // error says why the credentials were not used.
    for err in [
        client.verify_credentials(&reg.host()).await.unwrap_err(),
        client
            .push(&r, &img.manifest, OCI_MANIFEST, &src, &|_| {})
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(
                "only sent to a token realm on another host than the registry over https"
            ),
            "{text}"
        );
        assert!(text.contains(&tokens.realm()), "names the realm: {text}");
    }
    assert!(
        tokens.requests.load(Ordering::SeqCst) > 0,
        "the realm was asked"
    );
    assert_eq!(
        tokens.with_credentials.load(Ordering::SeqCst),
        0,
        "no request to {} carried credentials",
        tokens.realm()
    );
}
