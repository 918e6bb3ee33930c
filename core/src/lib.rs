//! Berth's pure core: what the control plane decides, with no IO. No tokio, no store, no
//! tonic (the proto messages come without their gRPC services), so the compiler holds the
//! purity the planner's and scheduler's contracts promise.

pub mod arn;
pub mod capacity;
pub mod discovery;
pub mod error;
pub mod ids;
pub mod keys;
pub mod lb;
pub mod limits;
pub mod plan;
pub mod powers;
pub mod schedule;
pub mod scheduler;
pub mod service;
pub mod status;
pub mod taskdef;
pub mod tls;

pub use berth_proto::time;
