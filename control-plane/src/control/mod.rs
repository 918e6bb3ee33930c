//! The control layer: what runs without a request. The leader (etcd lease and fence), the
//! controller loop (wake, pace, resync) and its service passes, lost nodes, scaling, scheduled tasks.

pub mod acme;
pub mod controller;
pub mod leader;
pub mod lost;
pub mod schedules;
