//! Credentials for a registry reach its token realm only over https, on the registry's own
//! host, or on loopback: a registry (or whoever rewrites its plain-HTTP answers) naming
//! `http://elsewhere/token` as its realm used to receive the user's password there as Basic
//! auth in clear text. Against a real `docker-registry` (token auth) and the test token
//! server, each on its own port; the rule itself is unit-tested on URLs (including a
//! non-loopback name such as `realm.example`) in `registry/src/auth/realm.rs`.

mod support;

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
    // The realm names a host that is not loopback; the client is told where that name is
    // (as curl's --resolve), so nothing leaves this machine's loopback.
    let tokens = TokenServer::start_named("realm.builder-test.invalid", "bob", "hunter2");
    let reg = token_registry(&tokens);
    let creds = tempfile::tempdir().unwrap();
    builder_registry::login(Some(creds.path()), &reg.host(), "bob", "hunter2").unwrap();
    let client = Client::new(ClientConfig {
        docker_config_dir: Some(creds.path().to_path_buf()),
        resolve: vec![("realm.builder-test.invalid".into(), tokens.addr())],
        ..ClientConfig::default()
    })
    .unwrap();
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
