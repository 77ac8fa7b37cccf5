//! manytask: a GPU compute engine for multi-task learning, with
//! hand-written WGSL kernels launched through wgpu (Vulkan, Metal, DX12,
//! GL).
//!
//! Layers, each using only those below it:
//! - `cli` (the binary's verbs: flags, printing, progress, plots; behind
//!   the default cargo feature `cli`, so a library user compiles no clap,
//!   indicatif or plotters);
//! - [`train`]: the training loop as a library ([`train::Trainer`]):
//!   batches, learning-rate schedules, evaluation and metrics, early
//!   stopping, checkpoints, and the events observers see;
//! - [`arch`] (model builders) and [`weighting`] (task balancing);
//! - [`graph`]: ops, autograd and the compiled `Program`;
//! - [`kernels`]: one launcher module per shader family;
//! - [`gpu`]: context, tensors and their pool, pipeline cache, recorder.
//!
//! At the bottom, GPU-free: [`types`] and [`error`]. Beside the stack, with
//! no GPU code: [`reference`](mod@reference) (CPU oracles), [`data`]
//! (readers, batching), [`config`] (the TOML run configs `train --config`
//! and `eval` read) and [`util`]. [`checkpoint`] saves and loads a
//! program's parameters and optimiser state. [`conformance`] pairs kernels
//! with references for the tests and `manytask validate`;
//! [`bench`](mod@bench) measures kernels against the adapter's roofline.
//! [`prelude`] gathers what an embedding application needs.
//!
//! The library quickstart (a model trained and evaluated in a few lines)
//! is in [`train`]'s docs.

#![warn(missing_docs)]

pub mod arch;
pub mod bench;
pub mod checkpoint;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod conformance;
pub mod data;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod kernels;
pub mod prelude;
pub mod reference;
pub mod train;
pub mod types;
pub mod util;
pub mod weighting;

pub use error::{Error, Result};
pub use gpu::{BackendChoice, DType, GpuContext, Recorder, Tensor};
// The wgpu this crate is built against, for callers that touch raw handles.
pub use wgpu;
