//! CPU references, one module per kernel family with the kernels' names.
//! Plain loops, no GPU code: the oracle for tests and `manytask validate`.

pub mod activation;
pub mod block;
pub mod cross_stitch;
pub mod dense;
pub mod elementwise;
pub mod fused_mlp;
pub mod gemm;
pub mod layer_stitch;
pub mod loss;
pub mod moe;
pub mod nonfinite;
pub mod optim;
pub mod reduce;
pub mod soft_sharing;
pub mod subspace;
pub mod task_gemm;
pub mod trace_norm;
pub mod weighting;
