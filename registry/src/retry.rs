//! Exponential backoff for transient failures (see `RegistryError::is_transient`).

use std::future::Future;
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
                    tokio::time::sleep(self.delay(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
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
}
