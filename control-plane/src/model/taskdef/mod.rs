//! Task definitions: the registry of families and revisions in the store. Reading ECS JSON,
//! validating and the bounds are pure (`berth_core::taskdef`).

mod registry;

pub use berth_core::taskdef::{bounds_problems, decode, json_size, normalize, Decoded};
pub use registry::{
    delete, deregister, describe, list, register, register_json, register_json_with, register_with,
    sweep_deleted, Registered,
};

pub use berth_core::taskdef::{parse_reference, unmodeled};
