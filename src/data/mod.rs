//! Datasets the engine generates or reads. No GPU code: batches are host
//! vectors the caller writes into a program's inputs.
//!
//! - [`dataset`]: the in-memory [`Dataset`] every source produces, with
//!   validation, deterministic splits and per-epoch orders;
//! - [`batch`]: batches in a model's input layout, the last one padded
//!   with masked-out rows or dropped;
//! - readers: [`safetensors`] (also a writer), [`csv`], [`idx`] (the MNIST
//!   family, gzipped or not);
//! - builders: [`synthetic`] (GradNorm's regression benchmark,
//!   ../shared/MATH.md §7), [`multi_mnist`] (two overlaid digits, two
//!   tasks), [`fashion_mnist`] (class + coarse group, from the Debian
//!   package `dataset-fashion-mnist`).
//!
//! - [`standardize`]: per-feature mean/std from the training split,
//!   applied to every split.
//!
//! Every reader validates its input and returns `Error::Data` naming the
//! file and the tensor, line, column or key at fault.

pub mod batch;
pub mod csv;
pub mod dataset;
pub mod fashion_mnist;
pub mod idx;
pub mod multi_mnist;
pub mod safetensors;
pub mod standardize;
pub mod synthetic;

pub use batch::{Batch, Batcher, Batches, LastBatch};
pub use dataset::{
    Dataset, Order, Split, SplitFractions, SplitIndices, Targets, TaskData, TaskSchema,
};
pub use standardize::FeatureStats;
