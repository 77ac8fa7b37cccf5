//! Small helpers with no GPU code.

pub mod rng;
