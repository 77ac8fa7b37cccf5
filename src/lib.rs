//! manytask: a GPU compute engine for multi-task learning, with
//! hand-written WGSL kernels launched through wgpu (Vulkan, Metal, DX12,
//! GL).
//!
//! Layers, each using only those below it:
//! - [`kernels`]: one launcher module per shader family;
//! - [`gpu`]: context, tensors and their pool, pipeline cache, recorder.
//!
//! Beside them, with no GPU code: [`reference`](mod@reference) (CPU oracles),
//! [`weighting`] (the host T×T task-balancing solvers) and [`util`].
//! [`conformance`] pairs kernels with references for the tests and
//! `manytask validate`; [`bench`](mod@bench) measures kernels against the
//! adapter's roofline; [`cli`] is the binary's verbs, and [`config`] the
//! TOML run configs `train --config` and `eval` read.

#![warn(missing_docs)]

pub mod arch;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod data;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod kernels;
pub mod reference;
pub mod types;
pub mod util;
pub mod weighting;

pub use error::{Error, Result};
pub use gpu::{BackendChoice, DType, GpuContext, Recorder, Tensor};
// The wgpu this crate is built against, for callers that touch raw handles.
pub use wgpu;
