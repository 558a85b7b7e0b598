//! The registry client: configuration, shared state, and manifest fetching.
//! Pull and push live in their own modules as further `impl Client` blocks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use builder_store::Digest;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use crate::error::RegistryError;
use crate::manifest::{self, MANIFEST_ACCEPT, MANIFEST_SIZE_LIMIT};
use crate::progress::ProgressEvent;
use crate::reference::Reference;
use crate::retry::RetryPolicy;
use crate::transport::{Timeouts, Transport, pull_scope, status_err};

/// Default size of one PATCH when pushing big blobs: bounds what a failed request wastes.
pub const DEFAULT_CHUNK_SIZE: u64 = 16 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Hosts (`host` or `host:port`) that may be reached over plain http or
    /// unverified TLS. Loopback hosts always may, as with docker.
    pub insecure: Vec<String>,
    /// Layers downloaded (and uploaded) at once. 0 is treated as 1.
    pub max_concurrent_downloads: usize,
    /// Where `config.json` lives; None means `$DOCKER_CONFIG` or `~/.docker`.
    pub docker_config_dir: Option<PathBuf>,
    /// Blobs up to this size are uploaded in one PUT; bigger ones in PATCH chunks of this size.
    pub chunk_size: u64,
    pub retry: RetryPolicy,
    pub timeouts: Timeouts,
    /// Fixed addresses for host names, as curl's `--resolve`: the name still decides TLS, the
    /// credential rules and what is shown, but no DNS is asked.
    pub resolve: Vec<(String, std::net::SocketAddr)>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            insecure: Vec::new(),
            max_concurrent_downloads: 3,
            docker_config_dir: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
            resolve: Vec::new(),
        }
    }
}

/// Progress callback; `Sync` so pull/push futures can run on any runtime thread.
pub type Progress<'a> = &'a (dyn Fn(ProgressEvent) + Sync);

/// What `pull` fetched. Every blob named here is committed to the sink.
#[derive(Clone, Debug)]
pub struct PulledImage {
    /// The platform manifest (never the index).
    pub manifest_digest: Digest,
    pub manifest_bytes: Vec<u8>,
    pub manifest_media_type: String,
    /// The index the platform manifest was picked from, when the reference named one.
    pub index_digest: Option<Digest>,
    pub config_digest: Digest,
    pub layers: Vec<crate::manifest::Descriptor>,
}

/// A fetched manifest document, verified against its digest.
#[derive(Clone, Debug)]
pub(crate) struct FetchedManifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// A registry client. Why not the `oci-client` crate: its blob upload takes
/// in-memory bytes or a one-shot stream (no retry, since a stream can't be
/// replayed), downloads don't resume with Range, it has no retry/backoff, and
/// credentials must be passed in explicitly (no config.json, credsStore or
/// credHelpers). Those are the hard parts here, so this is a small v2 client on reqwest.
///
/// Cross-repository mounts: the client records, per registry, the repository
/// each blob was last pulled from or pushed to (in memory, for its lifetime),
/// and `record_blob_origin` lets the caller add what its store remembers.
/// A push of a blob the registry lacks tries a mount from that repository first.
pub struct Client {
    pub(crate) transport: Transport,
    pub(crate) cfg: ClientConfig,
    origins: Mutex<HashMap<(String, Digest), String>>,
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Client, RegistryError> {
        let mut transport = Transport::new(
            cfg.insecure.clone(),
            cfg.docker_config_dir.clone(),
            cfg.timeouts,
            &cfg.resolve,
        )?;
        transport.retry = cfg.retry;
        Ok(Client {
            transport,
            cfg,
            origins: Mutex::default(),
        })
    }

    /// Tells the client that `digest` exists in `repository` on `registry`,
    /// so a push to another repository there can mount it instead of uploading.
    pub fn record_blob_origin(&self, registry: &str, repository: &str, digest: Digest) {
        let mut map = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        map.insert((registry.to_string(), digest), repository.to_string());
    }

    pub(crate) fn blob_origin(&self, registry: &str, digest: &Digest) -> Option<String> {
        let map = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(registry.to_string(), *digest)).cloned()
    }

    pub(crate) fn concurrency(&self) -> usize {
        self.cfg.max_concurrent_downloads.max(1)
    }

    /// The digest, media type and bytes of the manifest `r` names (an index
    /// stays an index). For `--pull` freshness checks: compare the digest.
    pub async fn resolve(&self, r: &Reference) -> Result<(Digest, String, Vec<u8>), RegistryError> {
        let m = self
            .fetch_manifest(r, &r.manifest_ref(), r.digest.as_ref())
            .await?;
        Ok((m.digest, m.media_type, m.bytes))
    }

    /// Checks that the configured credentials for `registry` are accepted
    /// (what `docker login` does before saving them): an authenticated `/v2/`.
    pub async fn verify_credentials(&self, registry: &str) -> Result<(), RegistryError> {
        let make = |c: &reqwest::Client, base: &str| Ok(c.get(format!("{base}/v2/")));
        let resp = self
            .transport
            .send(registry, "check credentials", &[], &Method::GET, &make)
            .await?;
        if !resp.status().is_success() {
            return Err(status_err(resp, &Method::GET).await);
        }
        // An anonymous token passes `/v2/` on many registries: that proves nothing about
        // credentials the realm rule kept back, so login must not report success.
        if let Some(withheld) = self.transport.withheld(registry) {
            return Err(RegistryError::Unauthorized {
                registry: registry.to_string(),
                detail: format!("the credentials could not be checked: {withheld}"),
            });
        }
        Ok(())
    }

    /// GETs a manifest by tag or digest and verifies it: against `expected`
    /// when fetching by digest, else against the server's Docker-Content-Digest.
    pub(crate) async fn fetch_manifest(
        &self,
        r: &Reference,
        reference: &str,
        expected: Option<&Digest>,
    ) -> Result<FetchedManifest, RegistryError> {
        let path = format!("/v2/{}/manifests/{reference}", r.repository);
        let make = |c: &reqwest::Client, base: &str| {
            Ok(c.get(format!("{base}{path}"))
                .header(ACCEPT, MANIFEST_ACCEPT))
        };
        let scopes = [pull_scope(&r.repository)];
        let shown = format!("{}/{}:{reference}", r.registry, r.repository);
        let operation = format!("fetch manifest {shown}");
        let resp = self
            .transport
            .send(&r.registry, &operation, &scopes, &Method::GET, &make)
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                what: "manifest",
                reference: shown,
            });
        }
        if !resp.status().is_success() {
            return Err(status_err(resp, &Method::GET).await);
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MANIFEST_SIZE_LIMIT)
        {
            return Err(RegistryError::ManifestTooLarge {
                reference: shown,
                limit: MANIFEST_SIZE_LIMIT,
            });
        }
        let header_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let url = resp.url().to_string();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| crate::transport::http_err(&Method::GET, &url, e))?
            .to_vec();
        let digest = Digest::of(&bytes);
        if let Some(want) = expected
            .or(header_digest.as_ref())
            .filter(|w| **w != digest)
        {
            return Err(RegistryError::DigestMismatch {
                what: format!("manifest {shown}"),
                expected: *want,
                actual: digest,
            });
        }
        let media_type = header_type
            .filter(|t| manifest::ManifestKind::of(t).is_some())
            .or_else(|| manifest::sniff_media_type(&bytes))
            .unwrap_or_default();
        Ok(FetchedManifest {
            digest,
            media_type,
            bytes,
        })
    }
}
