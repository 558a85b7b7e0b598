//! HTTP to one or more registries: endpoint discovery (`/v2/` ping, https vs
//! plain http), the auth handshake (basic, bearer token flow), and retries.
//! Callers hand over a closure that builds the request, so it can be replayed
//! after an auth challenge or a transient failure (bodies are re-opened, not buffered).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;

use crate::auth::challenge::Challenge;
use crate::auth::credentials::{self, Credential};
use crate::auth::realm::{Withheld, may_send_credentials};
use crate::auth::session::{DEFAULT_TOKEN_LIFETIME, TokenCache, scope_key};
use crate::error::RegistryError;
use crate::reference::DOCKER_HUB;
use crate::retry::RetryPolicy;

const USER_AGENT: &str = concat!("builder/", env!("CARGO_PKG_VERSION"));

/// What we learned about a registry from pinging it.
#[derive(Clone, Debug)]
struct Endpoint {
    base: String,
    /// Registries reached over TLS as "insecure" skip certificate checks, as docker does.
    lax_tls: bool,
    challenge: Option<Challenge>,
}

/// One request to build: `base` is `scheme://host` of the registry's API.
pub(crate) type MakeRequest<'a> =
    dyn Fn(&reqwest::Client, &str) -> Result<RequestBuilder, RegistryError> + Sync + 'a;

pub(crate) struct Transport {
    strict: reqwest::Client,
    lax: reqwest::Client,
    insecure: Vec<String>,
    config_dir: Option<PathBuf>,
    endpoints: Mutex<HashMap<String, Endpoint>>,
    tokens: TokenCache,
    credentials: Mutex<HashMap<String, Option<Credential>>>,
    /// Registries whose credentials were kept from their token realm, and why: an
    /// authorization failure then says so.
    withheld: Mutex<HashMap<String, Withheld>>,
    token_fetch: tokio::sync::Mutex<()>,
    pub(crate) retry: RetryPolicy,
}

/// How long to wait for a registry before counting the attempt as failed (and retrying).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect (and TLS handshake) to the registry or its token server.
    pub connect: Duration,
    /// Longest silence while waiting for a response or the next bytes of a body: a stalled
    /// registry fails here. Per read, not in total: multi-GB blobs take as long as they take.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            read: Duration::from_secs(120),
        }
    }
}

fn build_client(
    lax: bool,
    timeouts: Timeouts,
    resolve: &[(String, std::net::SocketAddr)],
) -> Result<reqwest::Client, RegistryError> {
    build_tolerating_no_ca_certificates(|| {
        resolve
            .iter()
            .fold(reqwest::Client::builder(), |b, (host, addr)| {
                b.resolve(host, *addr)
            })
            .user_agent(USER_AGENT)
            .connect_timeout(timeouts.connect)
            .read_timeout(timeouts.read)
            .tls_danger_accept_invalid_certs(lax)
    })
    .map_err(RegistryError::ClientBuild)
}

/// Builds the client `configure` describes. reqwest's platform verifier refuses to build at
/// all when the system has no CA certificates — the usual case in a scratch or busybox CI
/// image — which would also stop plain-http registries (loopback, `--insecure`) that need
/// none. There the client is built with an empty root set instead: http works, and an https
/// server fails its handshake with an unknown-issuer error, as Go's TLS stack (BuildKit) does.
/// `SSL_CERT_FILE` / `SSL_CERT_DIR` still name certificates the verifier loads.
pub fn build_tolerating_no_ca_certificates(
    configure: impl Fn() -> reqwest::ClientBuilder,
) -> Result<reqwest::Client, reqwest::Error> {
    configure().build().or_else(|first| {
        configure()
            .tls_certs_only(Vec::new())
            .build()
            .map_err(|_| first)
    })
}

/// The host the registry API is actually served from.
fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// localhost, 127.0.0.0/8 and ::1, with or without a port: docker allows plain http there.
pub fn is_loopback(registry: &str) -> bool {
    if registry.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return true;
    }
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

pub(crate) fn http_err(method: &Method, url: &str, source: reqwest::Error) -> RegistryError {
    RegistryError::Http {
        method: method.to_string(),
        url: url.to_string(),
        source,
    }
}

/// A non-success response as an error, with a bit of its body for context.
pub(crate) async fn status_err(resp: Response, method: &Method) -> RegistryError {
    let url = resp.url().to_string();
    let status = resp.status().as_u16();
    let retry_after = retry_after(&resp);
    let mut body = resp.text().await.unwrap_or_default();
    body.truncate(512);
    RegistryError::Status {
        method: method.to_string(),
        url,
        status,
        body: body.trim().to_string(),
        retry_after,
    }
}

/// Retry-After in its delta-seconds form. The HTTP-date form is rare from registries
/// and is ignored (the normal backoff applies).
fn retry_after(resp: &Response) -> Option<Duration> {
    resp.headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl Transport {
    pub(crate) fn new(
        insecure: Vec<String>,
        config_dir: Option<PathBuf>,
        timeouts: Timeouts,
        resolve: &[(String, std::net::SocketAddr)],
    ) -> Result<Transport, RegistryError> {
        Ok(Transport {
            strict: build_client(false, timeouts, resolve)?,
            lax: build_client(true, timeouts, resolve)?,
            insecure,
            config_dir: credentials::config_dir(config_dir.as_deref()),
            endpoints: Mutex::default(),
            tokens: TokenCache::default(),
            credentials: Mutex::default(),
            withheld: Mutex::default(),
            token_fetch: tokio::sync::Mutex::new(()),
            retry: RetryPolicy::default(),
        })
    }

    fn allows_plain_http(&self, registry: &str) -> bool {
        let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
        is_loopback(registry) || self.insecure.iter().any(|i| i == registry || i == host)
    }

    fn client(&self, ep: &Endpoint) -> &reqwest::Client {
        if ep.lax_tls { &self.lax } else { &self.strict }
    }

    /// The registry's endpoint, pinging `/v2/` the first time (retrying transient failures).
    async fn endpoint(&self, registry: &str) -> Result<Endpoint, RegistryError> {
        if let Some(ep) = self
            .endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(registry)
        {
            return Ok(ep.clone());
        }
        // Not retried here: every caller is inside a retry loop already.
        let ep = self.ping(registry).await?;
        self.endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(registry.to_string(), ep.clone());
        Ok(ep)
    }

    /// https first; plain http only for insecure or loopback hosts, and only
    /// when https cannot even connect (as docker falls back).
    async fn ping(&self, registry: &str) -> Result<Endpoint, RegistryError> {
        let host = api_host(registry);
        let plain_ok = self.allows_plain_http(registry);
        let https = Endpoint {
            base: format!("https://{host}"),
            lax_tls: plain_ok,
            challenge: None,
        };
        match self.ping_at(https).await {
            Err(RegistryError::Http { .. }) if plain_ok => {
                self.ping_at(Endpoint {
                    base: format!("http://{host}"),
                    lax_tls: false,
                    challenge: None,
                })
                .await
            }
            other => other,
        }
    }

    async fn ping_at(&self, mut ep: Endpoint) -> Result<Endpoint, RegistryError> {
        let url = format!("{}/v2/", ep.base);
        let resp = self
            .client(&ep)
            .get(&url)
            .send()
            .await
            .map_err(|e| http_err(&Method::GET, &url, e))?;
        match resp.status() {
            s if s.is_success() => Ok(ep),
            StatusCode::UNAUTHORIZED => {
                ep.challenge = challenge_of(&resp);
                Ok(ep)
            }
            _ => Err(status_err(resp, &Method::GET).await),
        }
    }

    /// Sends the request built by `make`, authenticating for `scopes`
    /// (`repository:<name>:<actions>`), and retrying transient failures.
    /// Returns any response that is not a 5xx/429 or an auth failure; when the
    /// tries run out, the error names `operation` (e.g. "fetch manifest x:1").
    pub(crate) async fn send(
        &self,
        registry: &str,
        operation: &str,
        scopes: &[String],
        method: &Method,
        make: &MakeRequest<'_>,
    ) -> Result<Response, RegistryError> {
        self.retry
            .run_named(
                registry,
                operation,
                |_| self.send_once(registry, scopes, method, make),
                &|_, _| {},
            )
            .await
    }

    /// Like `send` but without retries: for requests that change upload state
    /// (PATCH, closing PUT), which the caller retries as a whole instead.
    pub(crate) async fn send_unretried(
        &self,
        registry: &str,
        scopes: &[String],
        method: &Method,
        make: &MakeRequest<'_>,
    ) -> Result<Response, RegistryError> {
        self.send_once(registry, scopes, method, make).await
    }

    async fn send_once(
        &self,
        registry: &str,
        scopes: &[String],
        method: &Method,
        make: &MakeRequest<'_>,
    ) -> Result<Response, RegistryError> {
        let ep = self.endpoint(registry).await?;
        let auth = self
            .authorization(registry, &ep, ep.challenge.as_ref(), scopes, false)
            .await?;
        let resp = self.dispatch(&ep, method, make, auth.as_ref()).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return self.check_server_error(resp, method).await;
        }
        // The registry wants something else (a wider scope, or auth after all):
        // answer the challenge of this response once, with a fresh token.
        let challenge = challenge_of(&resp).or(ep.challenge.clone());
        let scopes = merged_scopes(scopes, challenge.as_ref());
        let auth = self
            .authorization(registry, &ep, challenge.as_ref(), &scopes, true)
            .await?;
        if auth.is_none() {
            return Err(self.unauthorized(
                registry,
                "the registry requires credentials and none are configured",
            ));
        }
        let resp = self.dispatch(&ep, method, make, auth.as_ref()).await?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            let detail = format!(
                "{} {} was refused ({}): wrong credentials or insufficient access",
                method,
                resp.url(),
                resp.status()
            );
            return Err(self.unauthorized(registry, &detail));
        }
        self.check_server_error(resp, method).await
    }

    /// Why the credentials for `registry` were kept from its token realm, if they were.
    pub(crate) fn withheld(&self, registry: &str) -> Option<Withheld> {
        self.withheld
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(registry)
            .cloned()
    }

    fn unauthorized(&self, registry: &str, detail: &str) -> RegistryError {
        let withheld = self
            .withheld(registry)
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        RegistryError::Unauthorized {
            registry: registry.to_string(),
            detail: format!("{detail}{withheld}"),
        }
    }

    async fn dispatch(
        &self,
        ep: &Endpoint,
        method: &Method,
        make: &MakeRequest<'_>,
        auth: Option<&HeaderValue>,
    ) -> Result<Response, RegistryError> {
        let mut req = make(self.client(ep), &ep.base)?;
        if let Some(a) = auth {
            req = req.header(AUTHORIZATION, a.clone());
        }
        let built = req.build().map_err(|e| http_err(method, &ep.base, e))?;
        let url = built.url().to_string();
        self.client(ep)
            .execute(built)
            .await
            .map_err(|e| http_err(method, &url, e))
    }

    async fn check_server_error(
        &self,
        resp: Response,
        method: &Method,
    ) -> Result<Response, RegistryError> {
        let s = resp.status();
        if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS {
            return Err(status_err(resp, method).await);
        }
        Ok(resp)
    }

    /// Credentials for `registry`, looked up once per client: a credential
    /// helper is a process spawn, too slow to repeat for every request.
    fn credential(&self, registry: &str) -> Result<Option<Credential>, RegistryError> {
        let mut cache = self.credentials.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(registry) {
            return Ok(c.clone());
        }
        let c = credentials::lookup(self.config_dir.as_deref(), registry)?;
        cache.insert(registry.to_string(), c.clone());
        Ok(c)
    }

    /// The Authorization header answering `challenge`, or None for anonymous.
    async fn authorization(
        &self,
        registry: &str,
        ep: &Endpoint,
        challenge: Option<&Challenge>,
        scopes: &[String],
        refresh: bool,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let cred = self.credential(registry)?;
        let header = match (challenge, &cred) {
            (None, _) => None,
            (Some(Challenge::Basic), Some(Credential::Basic { username, password })) => Some(
                format!("Basic {}", B64.encode(format!("{username}:{password}"))),
            ),
            (Some(Challenge::Basic), _) => None,
            (Some(Challenge::Bearer { realm, service, .. }), _) => {
                let key = scope_key(registry, scopes);
                if refresh {
                    self.tokens.forget(&key);
                }
                // One token request at a time, re-checking the cache once we
                // hold the lock: concurrent blob transfers share one token.
                let _single_flight = self.token_fetch.lock().await;
                let token = match self.tokens.get(&key) {
                    Some(t) => t,
                    None => {
                        let (t, life) = self
                            .fetch_token(
                                registry,
                                ep,
                                realm,
                                service.as_deref(),
                                scopes,
                                cred.as_ref(),
                            )
                            .await?;
                        self.tokens.put(key, t.clone(), life);
                        t
                    }
                };
                Some(format!("Bearer {token}"))
            }
        };
        header
            .map(|h| {
                HeaderValue::from_str(&h).map_err(|_| {
                    self.unauthorized(registry, "credentials contain invalid characters")
                })
            })
            .transpose()
    }

    /// The token flow: GET with basic auth (or anonymous), or the OAuth2
    /// refresh-token POST when we hold an identity token.
    async fn fetch_token(
        &self,
        registry: &str,
        ep: &Endpoint,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        cred: Option<&Credential>,
    ) -> Result<(String, Duration), RegistryError> {
        let client = self.client(ep);
        // A realm may be anywhere the registry says: credentials go only where the rule in
        // `auth::realm` allows, else the token is asked for anonymously.
        let cred = match cred.map(|c| (c, may_send_credentials(&ep.base, realm, &self.insecure))) {
            Some((c, Ok(()))) => Some(c),
            Some((_, Err(withheld))) => {
                self.withheld
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(registry.to_string(), withheld);
                None
            }
            None => None,
        };
        let req = match cred {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("refresh_token", refresh.clone()),
                ];
                form.push(("client_id", "builder".to_string()));
                form.extend(service.map(|s| ("service", s.to_string())));
                form.push(("scope", scopes.join(" ")));
                client.post(realm).form(&form)
            }
            other => {
                let mut q: Vec<(&str, &str)> =
                    service.map(|s| ("service", s)).into_iter().collect();
                q.extend(scopes.iter().map(|s| ("scope", s.as_str())));
                let req = client.get(realm).query(&q);
                match other {
                    Some(Credential::Basic { username, password }) => {
                        req.basic_auth(username, Some(password))
                    }
                    _ => req,
                }
            }
        };
        let method = if matches!(cred, Some(Credential::IdentityToken(_))) {
            Method::POST
        } else {
            Method::GET
        };
        let resp = req.send().await.map_err(|e| http_err(&method, realm, e))?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            return Err(self.unauthorized(
                registry,
                &format!(
                    "token server {realm} rejected the credentials ({})",
                    resp.status()
                ),
            ));
        }
        if !resp.status().is_success() {
            return Err(status_err(resp, &method).await);
        }
        let body: TokenResponse = resp.json().await.map_err(|e| http_err(&method, realm, e))?;
        let token = body
            .token
            .or(body.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Protocol {
                url: realm.to_string(),
                reason: "token response has neither \"token\" nor \"access_token\"".into(),
            })?;
        let life = body
            .expires_in
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        Ok((token, life))
    }
}

fn challenge_of(resp: &Response) -> Option<Challenge> {
    resp.headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(Challenge::parse)
}

/// Our scopes plus the one the registry's challenge asked for, if new.
fn merged_scopes(scopes: &[String], challenge: Option<&Challenge>) -> Vec<String> {
    let mut out = scopes.to_vec();
    if let Some(Challenge::Bearer { scope: Some(s), .. }) = challenge {
        out.extend(
            s.split(' ')
                .filter(|s| !s.is_empty() && !scopes.iter().any(|x| x == s))
                .map(String::from),
        );
    }
    out
}

pub(crate) fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

pub(crate) fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for yes in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[2001:db8::1]:5000",
        ] {
            assert!(!is_loopback(no), "{no}");
        }
        let t = Transport::new(
            vec!["my.reg".into(), "other:5000".into()],
            None,
            Timeouts::default(),
            &[],
        )
        .unwrap();
        assert!(t.allows_plain_http("my.reg:443"));
        assert!(t.allows_plain_http("other:5000"));
        assert!(!t.allows_plain_http("other:6000"));
        assert!(!t.allows_plain_http("docker.io"));
    }

    #[test]
    fn challenge_scope_is_merged_once() {
        let c = Challenge::Bearer {
            realm: "r".into(),
            service: None,
            scope: Some("repository:a:pull".into()),
        };
        assert_eq!(
            merged_scopes(&["repository:a:pull".into()], Some(&c)),
            vec!["repository:a:pull".to_string()]
        );
        assert_eq!(
            merged_scopes(&["repository:b:pull,push".into()], Some(&c)).len(),
            2
        );
    }
}
