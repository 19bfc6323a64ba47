//! Bounded waits: each polls a condition until it holds or a deadline passes, and then
//! fails naming what it waited for. No test waits on a bare loop or a sleep.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a wait lasts unless a test says otherwise: a passing run needs a fraction of
/// it, a loaded 2-core CI machine several times what a developer's does.
pub const PATIENCE: Duration = Duration::from_secs(60);
/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(10);

/// Waits until `done` holds; panics with `what` once `limit` has passed.
pub async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `check` (which may call the emulators) gives a value, and returns it;
/// panics with `what` once `limit` has passed.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match try_wait_for(limit, check).await {
        Some(value) => value,
        None => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// [`wait_for`] that gives `None` once `limit` has passed instead of panicking, so the test
/// can keep what it saw (a screenshot, a log) before it fails.
pub async fn try_wait_for<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_for`] with a condition that gives no value.
pub async fn wait_until_async<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, limit, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
}
