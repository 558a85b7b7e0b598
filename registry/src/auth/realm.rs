//! Whether the registry's credentials may go to the token server (`realm`) its bearer challenge
//! names. Any registry can name any URL as its realm, so without a rule the credentials for
//! registry A go, as Basic auth, to whatever host A (or someone rewriting A's plain-HTTP
//! answers) points at, in clear text if the realm is `http://`. Docker sends them anyway;
//! builder sends them only where they are protected or already go:
//!
//! - the realm is on the registry's own host and port (what docker always did; the registry
//!   already receives these credentials on every request);
//! - the realm is `https://` (another host, but the credentials are encrypted and the
//!   certificate is checked);
//! - the realm's host is loopback (`localhost`, `127.0.0.0/8`, `::1`): the credentials never
//!   leave the machine (local registries and tests);
//! - the realm's host is listed in `BUILDER_INSECURE_REGISTRIES`: the user accepted plain HTTP
//!   to that host.
//!
//! Otherwise the token is requested anonymously and the refusal says why.

use reqwest::Url;

use crate::transport::is_loopback;

/// Why credentials are withheld from a realm; the text is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withheld(pub String);

impl std::fmt::Display for Withheld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `host:port` with the scheme's default port filled in; `None` for a URL without a host.
fn authority(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    Some(format!("{}:{port}", host.to_ascii_lowercase()))
}

/// Decides whether credentials for the registry served at `registry_base` (the endpoint URL,
/// `https://host[:port]` or `http://host[:port]`) may be sent to `realm`. `insecure` is the
/// `BUILDER_INSECURE_REGISTRIES` list (`host` or `host:port` entries).
pub fn may_send_credentials(
    registry_base: &str,
    realm: &str,
    insecure: &[String],
) -> Result<(), Withheld> {
    let realm_url = Url::parse(realm).map_err(|e| {
        Withheld(format!(
            "the token realm {realm:?} is not an absolute URL ({e})"
        ))
    })?;
    let Some(realm_authority) = authority(&realm_url) else {
        return Err(Withheld(format!("the token realm {realm:?} names no host")));
    };
    let same_host = Url::parse(registry_base)
        .ok()
        .as_ref()
        .and_then(authority)
        .is_some_and(|r| r == realm_authority);
    if same_host || realm_url.scheme() == "https" {
        return Ok(());
    }
    // `host_str` keeps IPv6 brackets, which is what `is_loopback` expects with a port.
    let host = realm_url.host_str().unwrap_or_default();
    if is_loopback(&realm_authority) || is_loopback(host) {
        return Ok(());
    }
    if insecure
        .iter()
        .any(|i| i.eq_ignore_ascii_case(host) || i.eq_ignore_ascii_case(&realm_authority))
    {
        return Ok(());
    }
    Err(Withheld(format!(
        "credentials are only sent to a token realm on another host than the registry over \
         https (or to a loopback or BUILDER_INSECURE_REGISTRIES host); {realm} is plain http on \
         {realm_authority}, so the token was requested anonymously"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(registry: &str, realm: &str) -> bool {
        may_send_credentials(registry, realm, &[]).is_ok()
    }

    #[test]
    fn same_host_https_or_loopback_realms_get_credentials() {
        // The registry's own host and port, whatever the scheme (today's behaviour).
        assert!(ok(
            "http://reg.example:5000",
            "http://reg.example:5000/token"
        ));
        assert!(ok("https://reg.example", "https://REG.example:443/token"));
        // Another host over https.
        assert!(ok(
            "https://registry-1.docker.io",
            "https://auth.docker.io/token"
        ));
        assert!(ok("http://127.0.0.1:5000", "https://auth.example/token"));
        // Another port on loopback: another host, but the credentials stay on the machine.
        assert!(ok("http://127.0.0.1:5000", "http://127.0.0.1:5001/token"));
        assert!(ok("http://127.0.0.1:5000", "http://localhost:5001/token"));
        assert!(ok("http://[::1]:5000", "http://[::1]:5001/token"));
        assert!(ok("https://reg.example", "http://127.0.0.2/token"));
    }

    #[test]
    fn plain_http_realms_on_other_hosts_do_not() {
        // A name that is not loopback, even if it resolves to 127.0.0.1 somewhere: the rule is
        // about where the request is addressed, and names can resolve anywhere.
        for (registry, realm) in [
            ("http://127.0.0.1:5000", "http://realm.example:5001/token"),
            ("https://reg.example", "http://auth.example/token"),
            ("https://reg.example", "http://reg.example/token"), // port 80, not 443
            ("http://reg.example:5000", "http://reg.example:5001/token"),
            ("http://127.0.0.1:5000", "http://192.0.2.2:5001/token"),
            (
                "http://127.0.0.1:5000",
                "http://localhost.example:5001/token",
            ),
        ] {
            let e = may_send_credentials(registry, realm, &[]).unwrap_err();
            assert!(e.0.contains("only sent to a token realm"), "{e}");
            assert!(e.0.contains(realm), "the realm is named: {e}");
        }
        for realm in ["/token", "token", "http:///token"] {
            assert!(!ok("https://reg.example", realm), "{realm}");
        }
    }

    #[test]
    fn insecure_registries_list_allows_plain_http_realms() {
        let insecure = vec!["auth.internal".to_string(), "other:5001".to_string()];
        for realm in ["http://auth.internal:5001/t", "http://other:5001/t"] {
            assert!(
                may_send_credentials("http://reg.internal:5000", realm, &insecure).is_ok(),
                "{realm}"
            );
        }
        assert!(
            may_send_credentials("http://reg.internal:5000", "http://other:5002/t", &insecure)
                .is_err()
        );
    }
}
