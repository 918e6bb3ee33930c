//! The live layer: what this process holds in memory and loses on restart, harmlessly. Agent
//! sessions and their pushers, the report queue, the rooms cache, execs and log waiters, the
//! proxies' health, the other servers.

pub mod desired;
pub mod exec;
pub mod proxies;
pub mod push;
pub mod replicas;
pub mod reports;
pub mod rooms;
pub mod sessions;
