//! The transport layer: every way a request comes in. Each handler decodes, makes one model
//! call, and encodes; none decides anything itself.

pub mod console;
pub mod ecs;
pub mod elbv2;
pub mod grpc;
pub mod http;
pub mod json;
pub mod servicediscovery;
pub mod sigv4;
