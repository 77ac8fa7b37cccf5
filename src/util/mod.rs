//! Small helpers with no GPU code.

pub mod fs;
pub mod rng;
