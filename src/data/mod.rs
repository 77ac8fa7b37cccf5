//! Datasets the engine generates or reads. No GPU code: batches are host
//! vectors the caller writes into a program's inputs.
//!
//! - [`synthetic`]: GradNorm's multi-task regression benchmark
//!   (../shared/MATH.md §7), generated deterministically from a seed.

pub mod synthetic;
