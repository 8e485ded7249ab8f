//! Every task this crate spawns goes through here, so tests can check that none outlives
//! its purpose ([`alive`]); tasks of the crates underneath (hyper's connections, sqlx's
//! pools) are theirs and not counted.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

static ALIVE: AtomicUsize = AtomicUsize::new(0);

/// Counts a task while it is alive (until it ends or is dropped with its runtime).
struct Alive;

impl Alive {
    fn new() -> Self {
        ALIVE.fetch_add(1, Ordering::SeqCst);
        Alive
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        ALIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How many tasks this crate spawned are alive now, in the whole process.
#[cfg_attr(not(feature = "test-util"), allow(dead_code))]
pub(crate) fn alive() -> usize {
    ALIVE.load(Ordering::SeqCst)
}

/// `tokio::spawn`, counted.
pub(crate) fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let alive = Alive::new();
    tokio::spawn(async move {
        let _alive = alive;
        fut.await
    })
}

/// `spawn_blocking` on `handle`, counted.
pub(crate) fn spawn_blocking<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    work: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    let alive = Alive::new();
    handle.spawn_blocking(move || {
        let _alive = alive;
        work()
    })
}

/// Runs blocking work (file I/O) on tokio's blocking threads when a multi-threaded
/// runtime is there, inline otherwise; counted while it runs.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread => {
            spawn_blocking(&handle, work).await.ok()
        }
        _ => Some(work()),
    }
}
