//! Docker-compatible credential sources: `config.json` (`auths` entries with a
//! base64 `auth` or an `identitytoken`), `credHelpers` / `credsStore` helpers
//! (`docker-credential-<name> get|store|erase`), and `login`/`logout` writing them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use crate::error::RegistryError;
use crate::reference::DOCKER_HUB;

/// The key docker uses for Docker Hub in `auths` and with helpers.
const HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";
/// A helper reports an identity token by returning this as the user name.
const TOKEN_USER: &str = "<token>";

#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`), exchanged at the token endpoint.
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    // Never print secrets, even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credential::IdentityToken(_) => write!(f, "IdentityToken(***)"),
        }
    }
}

/// `$DOCKER_CONFIG`, else `~/.docker`, unless the caller named a directory.
pub fn config_dir(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker"))
}

/// The name a registry host is stored under in config.json and helpers.
pub fn auth_key(registry: &str) -> String {
    match registry {
        DOCKER_HUB | "index.docker.io" | "registry-1.docker.io" => HUB_AUTH_KEY.to_string(),
        other => other.to_string(),
    }
}

/// Credentials for `registry`, or None for anonymous access.
pub fn lookup(
    config_dir: Option<&Path>,
    registry: &str,
) -> Result<Option<Credential>, RegistryError> {
    let Some(dir) = config_dir else {
        return Ok(None);
    };
    let path = dir.join("config.json");
    let Some(config) = read_config(&path)? else {
        return Ok(None);
    };
    let key = auth_key(registry);
    if let Some(helper) = helper_for(&config, &key) {
        return helper_get(&format!("docker-credential-{helper}"), &helper, &key);
    }
    let auths = config.get("auths").and_then(Value::as_object);
    let entry = auths.and_then(|a| {
        a.iter()
            .find(|(k, _)| normalize_key(k) == normalize_key(&key))
            .map(|(_, v)| v)
    });
    entry
        .map(|e| parse_auth_entry(e, &path))
        .transpose()
        .map(Option::flatten)
}

/// Stores credentials the way docker does: in the configured helper if there
/// is one, else base64 in `auths`. Other fields of config.json are kept.
pub fn login(
    config_dir: Option<&Path>,
    registry: &str,
    user: &str,
    password: &str,
) -> Result<(), RegistryError> {
    let dir = require_dir(config_dir)?;
    let path = dir.join("config.json");
    let mut config = read_config(&path)?.unwrap_or_else(|| json!({}));
    let key = auth_key(registry);
    if let Some(helper) = helper_for(&config, &key) {
        let input = json!({"ServerURL": key, "Username": user, "Secret": password}).to_string();
        return run_helper(
            &format!("docker-credential-{helper}"),
            &helper,
            "store",
            &input,
        )
        .map(|_| ());
    }
    let auths = object_field(&mut config, "auths", &path)?;
    let encoded = B64.encode(format!("{user}:{password}"));
    auths.insert(key, json!({ "auth": encoded }));
    write_config(&dir, &path, &config)
}

/// Removes stored credentials for `registry`; not an error if there were none.
pub fn logout(config_dir: Option<&Path>, registry: &str) -> Result<(), RegistryError> {
    let dir = require_dir(config_dir)?;
    let path = dir.join("config.json");
    let Some(mut config) = read_config(&path)? else {
        return Ok(());
    };
    let key = auth_key(registry);
    if let Some(helper) = helper_for(&config, &key) {
        run_helper(
            &format!("docker-credential-{helper}"),
            &helper,
            "erase",
            &key,
        )?;
    }
    if let Some(auths) = config.get_mut("auths").and_then(Value::as_object_mut) {
        auths.retain(|k, _| normalize_key(k) != normalize_key(&key));
    }
    write_config(&dir, &path, &config)
}

fn require_dir(explicit: Option<&Path>) -> Result<PathBuf, RegistryError> {
    config_dir(explicit).ok_or_else(|| RegistryError::Credentials {
        path: PathBuf::from("~/.docker/config.json"),
        reason: "neither DOCKER_CONFIG nor HOME is set".into(),
    })
}

fn read_config(path: &Path) -> Result<Option<Value>, RegistryError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| RegistryError::Credentials {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RegistryError::io(path, e)),
    }
}

/// Writes atomically (temp file + rename) with mode 0600: it holds secrets.
fn write_config(dir: &Path, path: &Path, config: &Value) -> Result<(), RegistryError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| RegistryError::io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| RegistryError::io(dir, e))?;
    let text = serde_json::to_vec_pretty(config).map_err(|e| RegistryError::Credentials {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    tmp.write_all(&text)
        .map_err(|e| RegistryError::io(tmp.path(), e))?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600))
        .map_err(|e| RegistryError::io(tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| RegistryError::io(path, e.error))?;
    Ok(())
}

fn object_field<'a>(
    config: &'a mut Value,
    field: &str,
    path: &Path,
) -> Result<&'a mut Map<String, Value>, RegistryError> {
    let bad = || RegistryError::Credentials {
        path: path.to_path_buf(),
        reason: format!("{field:?} is not an object"),
    };
    let obj = config.as_object_mut().ok_or_else(bad)?;
    obj.entry(field)
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(bad)
}

/// `credHelpers[key]` wins over the global `credsStore`, as in docker.
fn helper_for(config: &Value, key: &str) -> Option<String> {
    let per_host = config
        .get("credHelpers")
        .and_then(|h| h.get(key))
        .and_then(Value::as_str);
    let global = config.get("credsStore").and_then(Value::as_str);
    per_host
        .or(global)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// `https://host/v1/` and `host` name the same registry in `auths`.
fn normalize_key(k: &str) -> &str {
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    k.split('/').next().unwrap_or(k)
}

fn parse_auth_entry(entry: &Value, path: &Path) -> Result<Option<Credential>, RegistryError> {
    let bad = |reason: &str| RegistryError::Credentials {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if let Some(tok) = entry
        .get("identitytoken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        return Ok(Some(Credential::IdentityToken(tok.to_string())));
    }
    if let Some(auth) = entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        let decoded = B64
            .decode(auth.trim())
            .map_err(|_| bad("an \"auth\" value is not base64"))?;
        let text = String::from_utf8(decoded).map_err(|_| bad("an \"auth\" value is not UTF-8"))?;
        let (u, p) = text
            .split_once(':')
            .ok_or_else(|| bad("an \"auth\" value is not user:password"))?;
        return Ok(Some(Credential::Basic {
            username: u.to_string(),
            password: p.to_string(),
        }));
    }
    let user = entry.get("username").and_then(Value::as_str);
    let pass = entry.get("password").and_then(Value::as_str);
    Ok(user.zip(pass).map(|(u, p)| Credential::Basic {
        username: u.into(),
        password: p.into(),
    }))
}

/// Runs `<program> get` with the server URL on stdin; "not found" means anonymous.
pub(crate) fn helper_get(
    program: &str,
    helper: &str,
    key: &str,
) -> Result<Option<Credential>, RegistryError> {
    let out = match run_helper(program, helper, "get", key) {
        Ok(out) => out,
        Err(RegistryError::CredentialHelper { reason, .. })
            if reason.contains("credentials not found") =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let v: Value = serde_json::from_slice(&out).map_err(|e| RegistryError::CredentialHelper {
        helper: helper.to_string(),
        reason: format!("unparsable output of get: {e}"),
    })?;
    let user = v
        .get("Username")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let secret = v.get("Secret").and_then(Value::as_str).unwrap_or_default();
    Ok(match (user, secret) {
        (_, "") => None,
        (TOKEN_USER, s) => Some(Credential::IdentityToken(s.to_string())),
        (u, s) => Some(Credential::Basic {
            username: u.to_string(),
            password: s.to_string(),
        }),
    })
}

fn run_helper(
    program: &str,
    helper: &str,
    verb: &str,
    input: &str,
) -> Result<Vec<u8>, RegistryError> {
    let fail = |reason: String| RegistryError::CredentialHelper {
        helper: helper.to_string(),
        reason,
    };
    let mut child = Command::new(program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| fail(format!("writing to {verb}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("waiting for {verb}: {e}")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(if out.stdout.is_empty() {
            &out.stderr
        } else {
            &out.stdout
        });
        return Err(fail(format!("{verb} failed: {}", msg.trim())));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, v: Value) {
        std::fs::write(dir.join("config.json"), v.to_string()).unwrap();
    }

    #[test]
    fn login_lookup_logout_round_trip_keeps_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            json!({"auths": {"other.io": {"auth": B64.encode("o:p")}}, "psFormat": "x"}),
        );
        login(Some(dir.path()), "reg.io:5000", "alice", "s3:cret").unwrap();
        login(Some(dir.path()), "index.docker.io", "bob", "pw").unwrap();
        let cred = lookup(Some(dir.path()), "reg.io:5000").unwrap();
        assert_eq!(
            cred,
            Some(Credential::Basic {
                username: "alice".into(),
                password: "s3:cret".into()
            })
        );
        let raw: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert!(
            raw["auths"][HUB_AUTH_KEY]["auth"].is_string(),
            "hub stored under its legacy key: {raw}"
        );
        assert_eq!(raw["psFormat"], "x");
        assert_eq!(
            lookup(Some(dir.path()), DOCKER_HUB).unwrap(),
            Some(Credential::Basic {
                username: "bob".into(),
                password: "pw".into()
            })
        );
        logout(Some(dir.path()), "reg.io:5000").unwrap();
        assert_eq!(lookup(Some(dir.path()), "reg.io:5000").unwrap(), None);
        assert!(lookup(Some(dir.path()), "other.io").unwrap().is_some());
    }

    #[test]
    fn identity_token_and_url_keys() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            json!({"auths": {"https://reg.io/v1/": {"auth": "", "identitytoken": "refresh"}, "bad.io": {"auth": "!!"}}}),
        );
        assert_eq!(
            lookup(Some(dir.path()), "reg.io").unwrap(),
            Some(Credential::IdentityToken("refresh".into()))
        );
        let err = lookup(Some(dir.path()), "bad.io").unwrap_err().to_string();
        assert!(
            err.contains("config.json") && err.contains("base64"),
            "{err}"
        );
        assert_eq!(lookup(Some(dir.path()), "none.io").unwrap(), None);
        assert_eq!(lookup(None, "none.io").unwrap(), None);
    }

    #[test]
    fn credential_helper_protocol() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("docker-credential-fake");
        // Answers get for two hosts, reports not-found for the rest.
        std::fs::write(
            &script,
            "#!/bin/sh\nread host\ncase \"$1:$host\" in\n\
             get:reg.io) echo '{\"ServerURL\":\"reg.io\",\"Username\":\"u\",\"Secret\":\"p\"}';;\n\
             get:tok.io) echo '{\"ServerURL\":\"tok.io\",\"Username\":\"<token>\",\"Secret\":\"t\"}';;\n\
             *) echo 'credentials not found in native keychain'; exit 1;;\nesac\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let prog = script.to_str().unwrap();
        assert_eq!(
            helper_get(prog, "fake", "reg.io").unwrap(),
            Some(Credential::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert_eq!(
            helper_get(prog, "fake", "tok.io").unwrap(),
            Some(Credential::IdentityToken("t".into()))
        );
        assert_eq!(helper_get(prog, "fake", "x.io").unwrap(), None);
        let err = helper_get("/nonexistent/docker-credential-nope", "nope", "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("docker-credential-nope"), "{err}");
        // A configured but missing helper is an error, not silent anonymity.
        write(
            dir.path(),
            json!({"credHelpers": {"x.io": "definitely-missing-helper"}}),
        );
        assert!(lookup(Some(dir.path()), "x.io").is_err());
    }
}
