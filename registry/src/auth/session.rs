//! Bearer tokens cached per (registry, scope set) until shortly before they expire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Docker's default when a token response has no `expires_in`.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Tokens this close to expiry are treated as expired, so a request in flight doesn't fail.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

/// Scopes in any order name the same token.
pub fn scope_key(registry: &str, scopes: &[String]) -> String {
    let mut s = scopes.to_vec();
    s.sort();
    s.dedup();
    format!("{registry} {}", s.join(" "))
}

impl TokenCache {
    pub fn get(&self, key: &str) -> Option<String> {
        let map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|(_, exp)| Instant::now() + EXPIRY_MARGIN < *exp)
            .map(|(t, _)| t.clone())
    }

    pub fn put(&self, key: String, token: String, lifetime: Duration) {
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(key, (token, Instant::now() + lifetime));
    }

    pub fn forget(&self, key: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_by_scope_set_and_expires() {
        let c = TokenCache::default();
        let k = scope_key("r", &["b".into(), "a".into()]);
        assert_eq!(k, scope_key("r", &["a".into(), "b".into(), "a".into()]));
        c.put(k.clone(), "t".into(), Duration::from_secs(60));
        assert_eq!(c.get(&k).as_deref(), Some("t"));
        c.put(k.clone(), "short".into(), Duration::from_secs(1));
        assert_eq!(
            c.get(&k),
            None,
            "tokens inside the expiry margin are not used"
        );
        c.put(k.clone(), "t".into(), Duration::from_secs(60));
        c.forget(&k);
        assert_eq!(c.get(&k), None);
    }
}
