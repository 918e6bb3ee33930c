//! Berth's control plane, in layers; a module imports only from its own layer and the ones
//! below it (`tests/layers.rs` holds this). Top to bottom:

/// What runs by itself: the leader, the controller loop and its service passes, lost nodes,
/// scaling, hooks.
pub mod control;
/// Which work goes first: requests before background scans (read by the stores).
pub mod foreground;
/// This process's live state: agent sessions, pushers, the report queue, the rooms cache,
/// the proxies' health, the other servers.
pub mod live;
/// The resources, one module each, and `placement`, the single applier.
pub mod model;
/// Wiring: configuration in, every part spawned; imported by nothing.
pub mod server;
/// `State::update`: reads become compares, retried on conflict, fenced; the errors.
pub mod state;
/// The `Store` trait and its stores.
pub mod store;
/// The ways in: gRPC (with the agent and endpoint streams), the JSON API, the ECS and ELBv2
/// wire APIs, the console, the HTTP listener. Each decodes, makes one model call, encodes.
pub mod transport;

pub use berth_proto::time;

pub use berth_core::limits::Limits;
pub use model::auth::trust::TrustConfig;
pub use server::{spawn, Config, ControlPlane};
