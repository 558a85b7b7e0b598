//! A minimal token server (docker's token auth spec) for `auth: token`
//! registries: checks basic credentials, signs an ES256 JWT whose `x5c` header
//! carries a self-signed certificate that the registry trusts as its root bundle.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

pub const SERVICE: &str = "test-registry";
pub const ISSUER: &str = "test-issuer";

pub struct TokenServer {
    pub port: u16,
    pub cert_path: PathBuf,
    /// Token requests answered with a token (any access).
    pub issued: Arc<AtomicUsize>,
    /// Token requests that carried credentials (an Authorization header or a refresh token).
    pub with_credentials: Arc<AtomicUsize>,
    /// Token requests of any kind.
    pub requests: Arc<AtomicUsize>,
    /// The host the realm URL names: `127.0.0.1`, or a name the client resolves to it.
    realm_host: String,
    stop: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl TokenServer {
    /// Grants every requested action to `user:password`, and nothing to anyone else.
    pub fn start(user: &str, password: &str) -> TokenServer {
        TokenServer::start_named("127.0.0.1", user, password)
    }

    /// [`start`](Self::start), with a realm URL that names `realm_host` instead of the
    /// address: a test points that name at [`addr`](Self::addr) (`ClientConfig::resolve`), so
    /// the realm is "another, non-loopback host" to the client while all traffic stays on
    /// loopback.
    pub fn start_named(realm_host: &str, user: &str, password: &str) -> TokenServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = rcgen::KeyPair::generate().expect("key pair");
        let cert = rcgen::CertificateParams::new(vec!["token-signer".to_string()])
            .expect("cert params")
            .self_signed(&key)
            .expect("self-signed cert");
        let cert_path = dir.path().join("root.pem");
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        let rng = SystemRandom::new();
        let signer =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.serialize_der(), &rng)
                .expect("ring key");
        let x5c = STANDARD.encode(cert.der());
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let issued = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let expected = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        let (issued2, stop2) = (issued.clone(), stop.clone());
        let with_credentials = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (with_credentials2, requests2) = (with_credentials.clone(), requests.clone());
        let refresh = Self::refresh_token_for(password);
        std::thread::spawn(move || {
            let ctx = Ctx {
                refresh_token: refresh,
                signer,
                rng,
                x5c,
                expected,
                with_credentials: with_credentials2,
                requests: requests2,
            };
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        if ctx.handle(stream) {
                            issued2.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        });
        TokenServer {
            port,
            cert_path,
            issued,
            with_credentials,
            requests,
            realm_host: realm_host.to_string(),
            stop,
            _dir: dir,
        }
    }

    /// The identity token this server accepts in the refresh-token grant.
    pub fn refresh_token_for(password: &str) -> String {
        format!("refresh-{password}")
    }

    pub fn realm(&self) -> String {
        format!("http://{}:{}/token", self.realm_host, self.port)
    }

    /// Where the server listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct Ctx {
    signer: EcdsaKeyPair,
    rng: SystemRandom,
    x5c: String,
    expected: String,
    refresh_token: String,
    with_credentials: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl Ctx {
    /// Serves one request; true when a token was issued.
    fn handle(&self, stream: std::net::TcpStream) -> bool {
        let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
        let mut request_line = String::new();
        let _ = reader.read_line(&mut request_line);
        let mut authorization = None;
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("authorization")
            {
                authorization = Some(v.trim().to_string());
            } else if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                content_length = v.trim().parse().unwrap_or(0);
            }
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        if authorization.is_some() || request_line.starts_with("POST ") {
            self.with_credentials.fetch_add(1, Ordering::SeqCst);
        }
        if request_line.starts_with("POST ") {
            let mut body = vec![0u8; content_length];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            return self.handle_refresh(stream, &String::from_utf8_lossy(&body));
        }
        let target = request_line.split_whitespace().nth(1).unwrap_or("");
        let query = target.split_once('?').map_or("", |(_, q)| q);
        let scopes: Vec<String> = query
            .split('&')
            .filter_map(|kv| kv.strip_prefix("scope="))
            .map(percent_decode)
            .collect();
        let (status, body, issued) = match authorization {
            Some(a) if a == self.expected => (200, self.token_body(&scopes), true),
            Some(_) => (401, r#"{"details":"bad credentials"}"#.to_string(), false),
            // Anonymous: a valid token that grants nothing, as public token servers do.
            None => (200, self.token_body(&[]), true),
        };
        let mut out = stream;
        let _ = write!(
            out,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        issued
    }

    /// The OAuth2 form POST docker uses with an identity (refresh) token.
    fn handle_refresh(&self, mut out: std::net::TcpStream, form: &str) -> bool {
        let field = |name: &str| {
            form.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| percent_decode(v))
        };
        let valid = field("grant_type").as_deref() == Some("refresh_token")
            && field("refresh_token").as_deref() == Some(self.refresh_token.as_str());
        let (status, body) = if valid {
            let scopes: Vec<String> = field("scope")
                .unwrap_or_default()
                .split(' ')
                .map(String::from)
                .collect();
            (200, self.token_body(&scopes))
        } else {
            (401, r#"{"error":"invalid_grant"}"#.to_string())
        };
        let _ = write!(
            out,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        valid
    }

    fn token_body(&self, scopes: &[String]) -> String {
        let access: Vec<_> = scopes
            .iter()
            .filter_map(|s| {
                let mut parts = s.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": "tester", "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
            "jti": format!("{now}-{}", scopes.len()), "access": access
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .signer
            .sign(&self.rng, signing_input.as_bytes())
            .expect("sign");
        let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
        // Alternate the field name so both spellings of the spec get exercised.
        if scopes.len().is_multiple_of(2) {
            serde_json::json!({"token": jwt, "expires_in": 300}).to_string()
        } else {
            serde_json::json!({"access_token": jwt, "expires_in": 300}).to_string()
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
