//! The shared types at the bottom of the crate: GPU-free descriptions that
//! the CPU references, kernels, graph, architectures, data and config all
//! use (activation, GEMM layout, loss kind, optimiser hyper-parameters,
//! element type, regularisers, task and model specs). Nothing here imports
//! another module of the crate except `types` itself.

mod activation;
mod dtype;
mod init;
mod layout;
mod loss;
mod model;
mod optim;
mod regulariser;
mod reversal;
mod task;
mod trace_norm;

pub use activation::Activation;
pub use dtype::DType;
pub use init::WeightInit;
pub use layout::Layout;
pub use loss::{LossKind, Reduction};
pub use model::{Experts, ModelSpec, Sharing, StitchOptions, MAX_DSELECT_EXPERTS, MAX_SELECTORS};
pub use optim::{AdamW, Optimizer, Sgd};
pub use regulariser::Regulariser;
pub use reversal::{reversal_lambda, ReversalSchedule};
pub use task::{TaskKind, TaskSpec};
pub use trace_norm::{TaskStack, TraceNormVariant, Unfolding};
