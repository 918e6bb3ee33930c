//! Task definitions: reading ECS JSON, validating, naming revisions, and the registry of
//! families and revisions in the store.

mod bounds;
mod json;
#[cfg(test)]
mod limits_tests;
mod registry;
mod validate;

pub use bounds::{bounds_problems, json_size};
pub use json::{decode, Decoded};
pub use registry::{
    delete, deregister, describe, list, register, register_json, register_json_with, register_with,
    sweep_deleted, Registered,
};
pub use validate::normalize;

pub use berth_core::taskdef::parse_reference;
