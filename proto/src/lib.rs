//! The `berth.v1` protobuf messages and (with the default `grpc` feature) gRPC services,
//! generated at build time.
//!
//! Every message derives serde with lowerCamelCase names, which is exactly ECS's JSON: the same
//! type is the wire format, the stored value and the user's task definition file.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

/// `berth.v1`: generated code.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/berth.v1.rs"));

    /// The encoded file descriptor set, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/berth_descriptor.bin"));

    /// Says whether a key is there, never what it is.
    impl std::fmt::Debug for TlsCertificate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TlsCertificate")
                .field("arn", &self.arn)
                .field("chain_pem", &format_args!("{} bytes", self.chain_pem.len()))
                .field("key_pem", &format_args!("<redacted>"))
                .finish()
        }
    }
}

/// `berth.agent.v1`: the agent stream (no serde: it is never a user's file).
pub mod agent {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/berth.agent.v1.rs"));
    }
}

pub mod overrides;
pub mod time;
