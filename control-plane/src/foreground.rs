//! Requests go before background work. While the controllers, report batches and pushers keep
//! both cores busy (a fleet converging), a request's thread would get a fair share like any of
//! them, so a call that needs 5 ms of CPU took 50-150 ms. The thread that runs a request's
//! store work is raised by `BOOST` nice levels for that request (Linux weighs a thread 10 levels
//! up about nine times as heavily), then put back. Requests are a small part of the work, so the
//! background loses little; without the privilege to raise a thread (`CAP_SYS_NICE`, or an
//! `RLIMIT_NICE` that allows it) requests run at the usual priority.
//!
//! The store asks `is_request` too: its committer lets a request's commit in before the
//! background's next one (see `LogStore`).

use std::sync::atomic::{AtomicBool, Ordering};

/// How many nice levels a request's thread is raised.
const BOOST: i32 = 10;

/// Runs `f` on a blocking thread, raised for as long as it runs.
pub async fn blocking<T, F>(f: F) -> Result<T, tokio::task::JoinError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let _raised = Raised::enter();
        let _request = InRequest::enter();
        f()
    })
    .await
}

thread_local! {
    static IN_REQUEST: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is running a request's work now (inside `blocking`).
pub fn is_request() -> bool {
    IN_REQUEST.with(|r| r.get())
}

/// Marks this thread as running a request until dropped.
struct InRequest;

impl InRequest {
    fn enter() -> Self {
        IN_REQUEST.with(|r| r.set(true));
        InRequest
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        IN_REQUEST.with(|r| r.set(false));
    }
}

/// This thread, raised until dropped.
struct Raised {
    /// The nice level to go back to; None when the thread could not be raised.
    was: Option<i32>,
}

/// Set once raising was refused, so requests stop asking.
static REFUSED: AtomicBool = AtomicBool::new(false);

impl Raised {
    fn enter() -> Self {
        if REFUSED.load(Ordering::Relaxed) {
            return Raised { was: None };
        }
        let me = Some(rustix::thread::gettid());
        let Ok(was) = rustix::process::getpriority_process(me) else {
            return Raised { was: None };
        };
        match rustix::process::setpriority_process(me, (was - BOOST).max(-20)) {
            Ok(()) => Raised { was: Some(was) },
            Err(e) => {
                if !REFUSED.swap(true, Ordering::Relaxed) {
                    tracing::info!(error = %e, "requests run at the usual priority: raising a thread was refused");
                }
                Raised { was: None }
            }
        }
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        if let Some(was) = self.was {
            let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), was);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_thread_is_put_back_to_its_priority() {
        let (inside, after) = blocking(|| {
            let me = Some(rustix::thread::gettid());
            let before = rustix::process::getpriority_process(me).unwrap();
            let inside = {
                let _raised = Raised::enter();
                rustix::process::getpriority_process(me).unwrap()
            };
            let after = rustix::process::getpriority_process(me).unwrap();
            assert_eq!(after, before, "dropping the guard restores the level");
            (inside, after)
        })
        .await
        .unwrap();
        // Raised where the privilege allows it; never lowered.
        assert!(inside <= after);
        if !REFUSED.load(Ordering::Relaxed) {
            assert_eq!(inside, (after - BOOST).max(-20));
        }
    }

    #[tokio::test]
    async fn only_work_inside_blocking_counts_as_a_request() {
        assert!(!is_request());
        assert!(blocking(is_request).await.unwrap());
        // The same pool thread, reused for background work, is no longer marked.
        let background = tokio::task::spawn_blocking(is_request).await.unwrap();
        assert!(!background);
    }
}
