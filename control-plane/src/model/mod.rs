//! The model layer: one module per resource, each owning its keys, its checks and its reads
//! and writes through `State`; and `placement`, the single applier every task is created by.

pub mod account_settings;
pub mod arn_upgrade;
pub mod auth;
pub mod capacity;
pub mod certificates;
pub mod clusters;
pub mod discovery;
pub mod ecs_extras;
pub mod elb;
pub mod endpoints;
pub mod nodes;
pub mod placement;
pub mod scaling;
pub mod schedules;
pub mod secrets;
pub mod services;
pub mod stacks;
pub mod taskdef;
pub mod tasks;
pub mod tasksets;
