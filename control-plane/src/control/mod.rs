//! The control layer: what runs without a request. The leader (etcd lease and fence), the
//! controller loop (wake, pace, resync) and its service passes, lost nodes, scaling.

pub mod acme;
pub mod controller;
pub mod leader;
pub mod lost;
