//! Bounded polling: every wait in the tests ends, by success or by a panic that says what never
//! happened. Sync predicates (state the test can read directly) are polled every 10 ms, async ones
//! (an HTTP scrape, a connect) every 20 ms.

use std::future::Future;
use std::time::{Duration, Instant};

use super::WAIT;

const STEP: Duration = Duration::from_millis(10);
const ASYNC_STEP: Duration = Duration::from_millis(20);

/// Polls `cond` until it holds or `limit` has passed; whether it held. For callers that report the
/// outcome themselves.
pub async fn poll_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(STEP).await;
    }
}

/// Polls `cond` until it holds; panics, naming `what`, after `limit`.
pub async fn wait_until_within(what: &str, limit: Duration, cond: impl FnMut() -> bool) {
    assert!(
        poll_until(limit, cond).await,
        "timed out after {limit:?} waiting until {what}"
    );
}

/// Polls `cond` until it holds; panics, naming `what`, after [`WAIT`].
pub async fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    wait_until_within(what, WAIT, cond).await;
}

/// Polls `f` until it gives a value or `limit` has passed; the value, if it came.
pub async fn poll_for<T, F: Future<Output = Option<T>>>(
    limit: Duration,
    mut f: impl FnMut() -> F,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(ASYNC_STEP).await;
    }
}

/// Polls `f` until it gives a value, and returns it; panics, naming `what`, after `limit`.
pub async fn wait_for<T, F: Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    f: impl FnMut() -> F,
) -> T {
    poll_for(limit, f)
        .await
        .unwrap_or_else(|| panic!("timed out after {limit:?} waiting until {what}"))
}

/// [`poll_until`] with an async predicate.
pub async fn poll_until_async<F: Future<Output = bool>>(
    limit: Duration,
    mut cond: impl FnMut() -> F,
) -> bool {
    poll_for(limit, || {
        let held = cond();
        async move { held.await.then_some(()) }
    })
    .await
    .is_some()
}

/// [`wait_until_within`] with an async predicate.
pub async fn wait_until_async<F: Future<Output = bool>>(
    what: &str,
    limit: Duration,
    cond: impl FnMut() -> F,
) {
    assert!(
        poll_until_async(limit, cond).await,
        "timed out after {limit:?} waiting until {what}"
    );
}

/// [`wait_until_within`] for a test without a runtime: blocks the thread between polls.
pub fn wait_until_blocking(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        std::thread::sleep(STEP);
    }
}
