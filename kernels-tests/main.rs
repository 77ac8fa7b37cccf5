//! Kernel conformance and engine tests: one binary (one wgpu link), one
//! module per kernel family or engine part. Every GPU test runs on every
//! adapter found (lavapipe Vulkan and llvmpipe GL here).

mod adversarial;
mod arch;
mod arena;
mod balancing;
mod bench_compare;
mod block;
mod checkpoint;
mod cli;
mod cli_output;
mod common;
mod config;
mod context;
mod cross_stitch;
mod data;
mod dense;
mod elementwise;
mod examples;
mod f16;
mod fused_mlp;
mod gemm;
mod gpu_check;
mod graph;
mod hostile;
mod layers;
mod loop_limit;
mod loss;
mod nonfinite;
mod optim;
mod outputs;
mod pool;
mod profile;
mod pytorch_conventions;
mod recorder;
mod reduce;
mod shader_validation;
mod soft_sharing;
mod task_gemm;
mod tensor;
mod trace_norm;
mod train;
mod validate;
mod weighting;
mod weighting_gpu;
