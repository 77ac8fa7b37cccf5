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
//!   docs/math.md §7), [`mmoe_synthetic`] (MMoE's two regressions of
//!   set correlation), [`multi_mnist`] (two overlaid digits, two
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
pub mod mmoe_synthetic;
pub mod multi_mnist;
pub mod safetensors;
pub mod standardize;
pub mod synthetic;

pub use batch::{Batch, Batcher, Batches, LastBatch};
pub use dataset::{
    Dataset, Order, Split, SplitFractions, SplitIndices, TargetScale, Targets, TaskData, TaskSchema,
};
pub use standardize::{target_scale_of, FeatureStats};

/// Whether a name read from a file (a CSV header, a tensor name) is plain
/// enough for an error message to show: 1 to 64 ASCII letters, digits,
/// `_`, `.` or `-`. Anything else might be arbitrary file content, which
/// errors never echo.
pub(crate) fn plain_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}
