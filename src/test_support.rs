//! Helpers the unit tests share for futures that must, or must not,
//! complete.

use std::future::Future;
use std::time::Duration;

/// Asserts that `fut` does not complete: for a future held by something
/// the test keeps (a permit, a request it never answers), so the timeout
/// is certain, not a guess about timing.
pub async fn never_completes<T>(fut: impl Future<Output = T>, why: &str) {
    let waited = tokio::time::timeout(Duration::from_millis(300), fut).await;
    assert!(waited.is_err(), "{why}");
}

/// Awaits `fut`, which nothing holds, failing the test if it takes more
/// than a generous 10 s (a hang would otherwise stall the whole run).
pub async fn completes<T>(fut: impl Future<Output = T>, what: &str) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: did not complete within 10 s"))
}
