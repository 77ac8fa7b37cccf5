//! Small helpers with no GPU code.

pub mod eigen;
pub mod fs;
pub mod rng;
