//! broker

pub mod wire;
