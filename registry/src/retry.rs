//! Exponential backoff for transient failures (see `RegistryError::is_transient`).

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::error::RegistryError;

#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Total tries, including the first.
    pub attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 6 tries over about 15 s: rides out a registry restart or a dropped connection.
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

/// The longest Retry-After we wait for: a registry asking for more is treated as if it had
/// asked for this, so a misconfigured server cannot park a push for hours.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);

impl RetryPolicy {
    pub fn delay(&self, failed_attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(failed_attempt.saturating_sub(1));
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }

    /// Runs `op` until it succeeds, fails for good, or the tries run out.
    /// `on_retry` hears about each transient failure before the pause.
    pub async fn run<T, F, Fut>(
        &self,
        mut op: F,
        on_retry: &(dyn Fn(u32, &RegistryError) + Sync),
    ) -> Result<T, RegistryError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let mut attempt = 1;
        loop {
            match op(attempt).await {
                Err(e) if e.is_transient() && attempt < self.attempts => {
                    on_retry(attempt, &e);
                    tokio::time::sleep(self.pause(attempt, &e)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The backoff, or longer when the server said (Retry-After) how long it needs.
    fn pause(&self, failed_attempt: u32, e: &RegistryError) -> Duration {
        let backoff = self.delay(failed_attempt);
        e.retry_after()
            .map_or(backoff, |asked| asked.min(RETRY_AFTER_CAP).max(backoff))
    }

    /// Like `run`, but a transient failure that outlasts every try comes back as
    /// [`RegistryError::GaveUp`], naming the registry, the operation and the tries.
    pub async fn run_named<T, F, Fut>(
        &self,
        registry: &str,
        operation: &str,
        mut op: F,
        on_retry: &(dyn Fn(u32, &RegistryError) + Sync),
    ) -> Result<T, RegistryError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let tries = AtomicU32::new(0);
        let counted = |n| {
            tries.store(n, Ordering::Relaxed);
            op(n)
        };
        self.run(counted, on_retry).await.map_err(|e| {
            if e.is_transient() {
                RegistryError::GaveUp {
                    registry: registry.to_string(),
                    operation: operation.to_string(),
                    attempts: tries.load(Ordering::Relaxed),
                    last: Box::new(e),
                }
            } else {
                e
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn transient() -> RegistryError {
        RegistryError::Status {
            method: "GET".into(),
            url: "u".into(),
            status: 503,
            body: String::new(),
            retry_after: None,
        }
    }

    #[tokio::test]
    async fn retries_transient_then_gives_up() {
        let p = RetryPolicy {
            attempts: 3,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = p
            .run(
                |_| async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(transient())
                },
                &|_, _| {},
            )
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let ok = p
            .run(
                |n| async move { if n < 2 { Err(transient()) } else { Ok(n) } },
                &|_, _| {},
            )
            .await
            .unwrap();
        assert_eq!(ok, 2);
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = p
            .run(
                |_| async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(RegistryError::Unauthorized {
                        registry: "r".into(),
                        detail: "d".into(),
                    })
                },
                &|_, _| {},
            )
            .await;
        assert!(r.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "auth failures are not retried"
        );
        assert_eq!(p.delay(1), Duration::from_millis(1));
        assert_eq!(p.delay(5), Duration::from_millis(2));
    }

    #[test]
    fn retry_after_lengthens_the_pause_up_to_a_cap() {
        let p = RetryPolicy {
            attempts: 3,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(200),
        };
        let asking = |secs| RegistryError::Status {
            method: "GET".into(),
            url: "u".into(),
            status: 503,
            body: String::new(),
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(p.pause(1, &transient()), Duration::from_millis(100));
        assert_eq!(p.pause(1, &asking(3)), Duration::from_secs(3));
        assert_eq!(p.pause(1, &asking(0)), Duration::from_millis(100));
        assert_eq!(p.pause(1, &asking(100_000)), RETRY_AFTER_CAP);
    }

    #[tokio::test]
    async fn giving_up_names_registry_operation_and_tries() {
        let p = RetryPolicy {
            attempts: 2,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        };
        let r: Result<(), _> = p
            .run_named(
                "reg:5000",
                "pull manifest x",
                |_| async { Err(transient()) },
                &|_, _| {},
            )
            .await;
        let msg = r.unwrap_err().to_string();
        assert!(
            msg.starts_with("pull manifest x at registry reg:5000 failed after 2 attempts: GET u: unexpected status 503"),
            "{msg}"
        );
    }
}
