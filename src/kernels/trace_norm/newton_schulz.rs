//! Route (b): X [rows, cols] with both sides > `MAX_TASKS`, by GEMMs only.
//!
//! Polar factor (Newton–Schulz): X₀ = X/‖X‖_F (‖X‖²_F by the deterministic
//! reduce, applied on the GPU), X_{k+1} = (1.5·I − 0.5·G_k)·X_k with the
//! Gram G_k = X_k·X_kᵀ on the small side (X_k·(1.5·I − 0.5·X_kᵀX_k) when
//! tall). Each σ/‖X‖_F grows ×1.5 per step while small, then converges
//! quadratically to 1, so σ ≪ σ_max needs more steps (see `NS_STEPS`).
//! Dispatches: 3 + 3·steps (sum of squares 1–2 passes, scale, then Gram,
//! diagonal, apply per step).
//!
//! Prox (singular value soft-thresholding without an SVD): P = polar(X),
//! H = Pᵀ·X = V·Σ·Vᵀ (X·Pᵀ = U·Σ·Uᵀ when wide) on the small side,
//! A = H − τ·I, relu(A) = ½(I + sign(A))·A with sign(A) = polar(A) of the
//! symmetric A by the same iteration, and out = P·relu(A) (relu(A)·P).
//! σ < τ vanish exactly in exact arithmetic even where P has not converged
//! (p(σ)·σ < τ); eigenvalues of A near 0 (σ ≈ τ) leave an error ≤ |σ − τ|/2.

use crate::error::Result;
use crate::gpu::{DType, GpuContext, Recorder, Tensor};
use crate::kernels::gemm::{self, Epilogue, Layout};
use crate::kernels::{elementwise, reduce};

use super::ops;

/// The iteration's buffers for one [rows, cols] shape.
pub(super) struct Iteration {
    wide: bool,
    bufs: [Tensor; 2],
    gram: Tensor,
    sq: Tensor,
}

impl Iteration {
    pub fn new(ctx: &GpuContext, rows: usize, cols: usize) -> Result<Self> {
        let s = rows.min(cols);
        let buf = |l| Tensor::empty(ctx, l, &[rows, cols], DType::F32);
        Ok(Iteration {
            wide: rows <= cols,
            bufs: [buf("trace_norm.ns.a")?, buf("trace_norm.ns.b")?],
            gram: Tensor::empty(ctx, "trace_norm.ns.gram", &[s, s], DType::F32)?,
            sq: Tensor::empty(ctx, "trace_norm.ns.sq", &[1], DType::F32)?,
        })
    }

    /// Records `steps` Newton–Schulz steps on X; returns (the buffer
    /// holding P ≈ U·Vᵀ, a free buffer of X's shape).
    pub fn polar(
        &self,
        rec: &mut Recorder,
        op: &'static str,
        x: &Tensor,
        steps: u32,
    ) -> Result<(&Tensor, &Tensor)> {
        reduce::sum_squares(rec, x, &self.sq)?;
        ops::normalise(rec, op, x, &self.sq, &self.bufs[0])?;
        let half = Epilogue {
            alpha: -0.5,
            ..Epilogue::default()
        };
        for k in 0..steps as usize {
            let (cur, next) = (&self.bufs[k % 2], &self.bufs[(k + 1) % 2]);
            if self.wide {
                gemm::gemm(rec, Layout::NT, cur, cur, &self.gram, &half)?;
                ops::add_diagonal(rec, op, &self.gram, 1.0, 1.5)?;
                gemm::gemm(rec, Layout::NN, &self.gram, cur, next, &Epilogue::default())?;
            } else {
                gemm::gemm(rec, Layout::TN, cur, cur, &self.gram, &half)?;
                ops::add_diagonal(rec, op, &self.gram, 1.0, 1.5)?;
                gemm::gemm(rec, Layout::NN, cur, &self.gram, next, &Epilogue::default())?;
            }
        }
        let p = steps as usize % 2;
        Ok((&self.bufs[p], &self.bufs[1 - p]))
    }
}

/// Gradient and prox plans for one [rows, cols] shape.
pub(super) struct NewtonSchulz {
    wide: bool,
    x: Iteration,
    /// The prox's sign iteration on the s×s matrix A, and H/A, R.
    sign: Option<(Iteration, Tensor, Tensor)>,
}

impl NewtonSchulz {
    pub fn new(ctx: &GpuContext, rows: usize, cols: usize, prox: bool) -> Result<Self> {
        let s = rows.min(cols);
        let sign = if prox {
            let sq = |l| Tensor::empty(ctx, l, &[s, s], DType::F32);
            Some((
                Iteration::new(ctx, s, s)?,
                sq("trace_norm.ns.h")?,
                sq("trace_norm.ns.r")?,
            ))
        } else {
            None
        };
        Ok(NewtonSchulz {
            wide: rows <= cols,
            x: Iteration::new(ctx, rows, cols)?,
            sign,
        })
    }

    /// norm = ⟨P, X⟩ = Σ σ (deterministic: product, then the sum tree).
    fn norm(
        rec: &mut Recorder,
        op: &'static str,
        p: &Tensor,
        x: &Tensor,
        spare: &Tensor,
        norm: &Tensor,
    ) -> Result<()> {
        ops::product(rec, op, p, x, spare)?;
        reduce::sum(rec, spare, norm)
    }

    /// out = alpha·U·Vᵀ (+ out when `accumulate`); `norm` = ‖X‖_*.
    #[allow(clippy::too_many_arguments)]
    pub fn gradient(
        &self,
        rec: &mut Recorder,
        op: &'static str,
        x: &Tensor,
        steps: u32,
        alpha: f32,
        accumulate: bool,
        out: &Tensor,
        norm: &Tensor,
    ) -> Result<()> {
        let (p, spare) = self.x.polar(rec, op, x, steps)?;
        Self::norm(rec, op, p, x, spare, norm)?;
        if accumulate {
            elementwise::axpy(rec, alpha, p, out)
        } else {
            elementwise::scale(rec, p, alpha, out)
        }
    }

    /// out = U·max(Σ − τ, 0)·Vᵀ; `norm` = ‖X‖_* before the step.
    #[allow(clippy::too_many_arguments)]
    pub fn prox(
        &self,
        rec: &mut Recorder,
        op: &'static str,
        x: &Tensor,
        steps: u32,
        tau: f32,
        out: &Tensor,
        norm: &Tensor,
    ) -> Result<()> {
        let Some((sign, h, r)) = &self.sign else {
            unreachable!("prox plans are built with the sign iteration")
        };
        let (p, spare) = self.x.polar(rec, op, x, steps)?;
        Self::norm(rec, op, p, x, spare, norm)?;
        let plain = Epilogue::default();
        if self.wide {
            gemm::gemm(rec, Layout::NT, x, p, h, &plain)?;
        } else {
            gemm::gemm(rec, Layout::TN, p, x, h, &plain)?;
        }
        ops::add_diagonal(rec, op, h, 1.0, -tau)?;
        let (s, _) = sign.polar(rec, op, h, steps)?;
        ops::add_diagonal(rec, op, s, 0.5, 0.5)?;
        gemm::gemm(rec, Layout::NN, s, h, r, &plain)?;
        if self.wide {
            gemm::gemm(rec, Layout::NN, r, p, out, &plain)
        } else {
            gemm::gemm(rec, Layout::NN, p, r, out, &plain)
        }
    }
}
