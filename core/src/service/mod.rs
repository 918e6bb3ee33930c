//! Services, checked purely: deployment strategies (rolling, shifted traffic, hooks) and load
//! balancers against their task definition. Creating and updating the records is the control
//! plane's (`model::services`).

pub mod connect;
pub mod connect_routes;
mod load_balancer;
mod strategy;

pub use load_balancer::check_load_balancers;
pub use strategy::{check_strategy, keep_unset_shift_settings};
