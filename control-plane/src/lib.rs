//! Berth's control plane: the gRPC API, the store, and (in later layers) the scheduler,
//! controllers and node sessions. `server::spawn` starts all of it.

pub mod api;
pub mod arn;
pub mod arn_upgrade;
pub mod auth;
pub mod clusters;
pub mod console;
pub mod controller;
pub mod ecs_api;
pub mod ecs_extras;
pub mod elb;
pub mod elb_api;
pub mod endpoints;
pub mod error;
pub mod foreground;
pub mod http;
pub mod leader;
pub mod limits;
pub mod metrics;
pub mod nodes;
pub mod replicas;
pub mod reports;
pub mod scaling;
pub mod scheduler;
pub mod server;
pub mod services;
pub mod stacks;
pub mod state;
pub mod status;
pub mod store;
pub mod task_events;
pub mod task_overrides;
pub mod task_placement;
pub mod task_powers;
pub mod taskdef;
pub mod tasks;
pub use berth_proto::time;

pub use auth::trust::TrustConfig;
pub use limits::Limits;
pub use server::{spawn, Config, ControlPlane};
