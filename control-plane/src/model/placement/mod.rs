//! Placement: the one way tasks come into being (`apply`) and the reads a decision is made
//! from (`view`).

pub mod apply;
pub mod view;
