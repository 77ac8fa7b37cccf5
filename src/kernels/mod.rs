//! Kernel launchers, one module per shader family. A launcher checks its
//! arguments, picks the cached pipeline and records dispatches on a
//! `Recorder`; it never submits.

pub mod autotune;
pub mod block;
pub mod check;
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
pub mod roofline;
pub mod soft_sharing;
pub mod subspace;
pub mod task_gemm;
pub mod trace_norm;
pub mod weighting;

use crate::gpu::KernelSpec;

/// Every (shader, entry point, override constants) the launchers can build.
pub fn all_specs() -> Vec<KernelSpec> {
    let mut all = elementwise::specs();
    all.extend(block::specs());
    all.extend(cross_stitch::specs());
    all.extend(fused_mlp::specs());
    all.extend(gemm::specs());
    all.extend(layer_stitch::specs());
    all.extend(loss::specs());
    all.extend(moe::specs());
    all.extend(nonfinite::specs());
    all.extend(optim::specs());
    all.extend(reduce::specs());
    all.extend(roofline::specs());
    all.extend(soft_sharing::specs());
    all.extend(trace_norm::specs());
    all.extend(weighting::specs());
    all
}
