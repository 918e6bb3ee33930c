//! The live layer: what this process holds in memory and loses on restart, harmlessly. Agent
//! sessions and their pushers, the report queue, the rooms cache, execs and log waiters, the
//! proxies' health, the other servers.

pub mod desired;
pub mod exec;
pub mod metrics;
pub mod proxies;
pub mod push;
pub mod replicas;
pub mod reports;
pub mod revocations;
pub mod rooms;
pub mod sessions;

/// Resolves once shutdown is signalled (or the signal's sender is gone).
pub async fn shutting_down(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
