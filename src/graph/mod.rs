//! A thin reverse-mode autograd graph that schedules the kernels.
//!
//! - [`tape`]: `Graph`, ops as a plain enum holding input ids, shapes
//!   checked as ops are added;
//! - [`params`]: parameters, gradients and optimiser states in flat
//!   arenas (one optimiser dispatch, one checkpoint read);
//! - [`plan`]: intermediates assigned to buffers by liveness;
//! - [`program`]: the built graph; `step` = forward + backward (reverse
//!   node order, one `match` arm per op) + optimiser in ONE submit.
//!
//! Tests: kernels-tests/graph.rs; bench: benches/train_step.rs.

pub mod params;
pub mod plan;
pub mod program;
pub mod tape;

pub use crate::types::{reversal_lambda, Optimizer, ReversalSchedule};
pub use params::{Init, ParamArena, ParamId, ParamLayout};
pub use program::{LossReport, MemoryReport, PendingLosses, Program, StepOptions, StepReport};
pub use tape::{Balancing, GramSpace, Graph, NodeId, Op, TaskBlock, TaskLoss, TrunkLayer};
