//! Route (a): X [rows, cols] with a small side s ≤ `MAX_TASKS`. The Gram
//! matrix on the small side (X·Xᵀ when wide, Xᵀ·X when tall), Jacobi in
//! one workgroup gives the s×s factor M, and one GEMM applies it (M·X when
//! wide, X·M when tall). Dispatches: 3 (Gram, factor, apply).

use crate::error::Result;
use crate::gpu::{DType, GpuContext, Recorder, Tensor};
use crate::kernels::gemm::{self, Epilogue, Layout};

use super::ops;

pub(super) struct Jacobi {
    wide: bool,
    gram: Tensor,
    m: Tensor,
}

impl Jacobi {
    pub fn new(ctx: &GpuContext, rows: usize, cols: usize) -> Result<Self> {
        let s = rows.min(cols);
        Ok(Jacobi {
            wide: rows <= cols,
            gram: Tensor::empty(ctx, "trace_norm.gram", &[s, s], DType::F32)?,
            m: Tensor::empty(ctx, "trace_norm.factor", &[s, s], DType::F32)?,
        })
    }

    /// out = alpha·f(X) (+ out when `epi.beta`), f = polar factor (`tau`
    /// None) or the prox; `norm` = ‖X‖_*.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        rec: &mut Recorder,
        op: &'static str,
        x: &Tensor,
        tau: Option<f32>,
        out: &Tensor,
        epi: &Epilogue,
        norm: &Tensor,
    ) -> Result<()> {
        let gram_layout = if self.wide { Layout::NT } else { Layout::TN };
        gemm::gemm(rec, gram_layout, x, x, &self.gram, &Epilogue::default())?;
        ops::factor(rec, op, &self.gram, &self.m, tau, norm)?;
        if self.wide {
            gemm::gemm(rec, Layout::NN, &self.m, x, out, epi)
        } else {
            gemm::gemm(rec, Layout::NN, x, &self.m, out, epi)
        }
    }
}
