//! A thin reverse-mode autograd graph that schedules the kernels.
//!
//! - [`ops`]: the `Op` enum (input ids, parameter ids) and what each reads;
//! - [`builder`]: `Graph`, ops added one by one with their shapes checked;
//! - [`init`]: the weight-initialisation schemes of dense layers;
//! - [`params`]: parameters, gradients, optimiser states in flat arenas,
//!   split into buffers the adapter can bind;
//! - `analysis`: GPU-free: gradient flow, accumulate flags, lifetimes;
//! - [`plan`]: intermediates assigned to shared buffers by liveness;
//! - `buffers`: every node's state and the arenas, allocated from both;
//! - `forward` / `backward`: the passes, one `match` arm per op;
//! - `moe`: the mixture-of-experts ops' constructors and
//!   `Program::forward_value`;
//! - [`balancing`]: task split, Gram phase and finish step, DWA, uncertainty;
//! - `regularisers`: soft-sharing gradient terms and proximal steps;
//! - [`replica`]: the step split around a data-parallel gradient sum;
//! - [`program`]: the compiled graph; `step` = forward + backward +
//!   optimiser in ONE submit.
//!
//! Tests: kernels-tests/graph.rs and the analysis unit tests; bench:
//! benches/train_step.rs.

pub(crate) mod analysis;
pub(crate) mod backward;
pub mod balancing;
pub(crate) mod buffers;
pub mod builder;
pub(crate) mod forward;
pub mod init;
pub(crate) mod moe;
pub mod ops;
pub mod params;
pub mod plan;
pub mod program;
pub(crate) mod regularisers;
pub mod replica;

pub use crate::types::{reversal_lambda, Optimizer, ReversalSchedule};
pub use balancing::{GramPhase, TaskGradients};
pub use builder::Graph;
pub use ops::{Balancing, GramSpace, NodeId, Op, TaskBlock, TaskLoss, Tracking, TrunkLayer};
pub use params::{ArenaCap, Init, ParamArena, ParamBundle, ParamId, ParamLayout, SplitArena};
pub use program::{
    BuildOptions, LossReport, MemoryReport, PendingLosses, Program, StepOptions, StepReport,
    ARENA_BUFFER_ENV,
};
pub use replica::GradientTerms;
