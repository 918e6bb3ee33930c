//! The `berth.v1` protobuf messages and gRPC services, generated at build time.
//!
//! Every message derives serde with lowerCamelCase names, which is exactly ECS's JSON: the same
//! type is the wire format, the stored value and the user's task definition file.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

/// `berth.v1`: generated code.
pub mod v1 {
    tonic::include_proto!("berth.v1");

    /// The encoded file descriptor set, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("berth_descriptor");
}

/// `berth.agent.v1`: the agent stream (no serde: it is never a user's file).
pub mod agent {
    pub mod v1 {
        tonic::include_proto!("berth.agent.v1");
    }
}

pub mod overrides;
pub mod time;
