//! Route (a): X [rows, cols] with a small side s ≤ `MAX_TASKS`. The Gram
//! matrix on the small side (X·Xᵀ when wide, Xᵀ·X when tall), Jacobi in
//! one workgroup gives the s×s factor M, and one GEMM applies it (M·X when
//! wide, X·M when tall).
//!
//! The Gram of a wide X takes one of two kernels (`GramKernel::for_matrix`
//! picks by the measured crossover, and the chunked one past
//! `LP_LOOP_LIMIT` columns, where the GEMM is wrong on CPU adapters):
//! - `Gemm` (NT): s×s outputs, so one or a few workgroups walk the whole
//!   K = cols loop (no split-K). 3 dispatches (Gram, factor, apply).
//! - `Chunked`: `gram_partials` splits the columns into chunks of
//!   `GRAM_CHUNK`; a workgroup sums one 4×4 block of pairs over one chunk
//!   (lanes across the columns, vec4 reads when rows are vec4-aligned,
//!   one reduction in workgroup memory in lane order), and
//!   `reduce::column_sums` adds the chunks in a fixed order (split-K,
//!   deterministic, no atomics). The partials hold both triangles, so the
//!   column sum writes the full s×s G the factor rotates in place: no
//!   expansion pass and no packed-triangle input for the factor.
//!   4 dispatches (partials, column sum, factor, apply).
//!
//! Not `weighting::gram` (a 256-lane workgroup and tree per pair and
//! chunk, packed triangle): measured on lavapipe, LAF gradient [8, 512K]
//! 282 ms and [64, 64K] 1.07 s against 176 ms and 0.20 s by the GEMM
//! (every pair's workgroup rereads both rows; the trees cost barriers).
//! Tried and dropped, Gram alone at [8, 512K] and [64, 64K] against
//! 21 ms and 134 ms for this kernel: one lane per pair walking its chunk
//! alone (76 ms, 326 ms: gathers from two rows a lane), 8×8 blocks with 64
//! accumulators a lane (93 ms, 452 ms: they spill).
//!
//! A tall X [r, s] keeps the TN GEMM: its Gram is over strided columns,
//! which `gram_partials` (contiguous rows) does not read. With r >
//! `LP_LOOP_LIMIT` that GEMM is wrong on lavapipe / llvmpipe too (K = r):
//! not fixed here.

use crate::error::Result;
use crate::gpu::{DType, GpuContext, Recorder, Tensor};
use crate::kernels::gemm::{self, Epilogue, Layout};
use crate::kernels::reduce;

use super::{ops, GramKernel};

pub(super) struct Jacobi {
    wide: bool,
    /// Which kernel forms the Gram (always `Gemm` when tall).
    kernel: GramKernel,
    /// The chunked Gram's partials [chunks, s·s], for a wide X whose
    /// chunks fit one grid axis (allocated even when the rule picks the
    /// GEMM, so a forced `GramKernel` needs no context; X's size / 4096·s).
    partials: Option<Tensor>,
    gram: Tensor,
    m: Tensor,
}

impl Jacobi {
    pub fn new(ctx: &GpuContext, rows: usize, cols: usize) -> Result<Self> {
        let s = rows.min(cols);
        let wide = rows <= cols;
        let chunks = cols.div_ceil(ops::GRAM_CHUNK);
        let max_grid = ctx.limits().max_compute_workgroups_per_dimension as usize;
        let partials = if wide && chunks <= max_grid {
            let shape = [chunks, s * s];
            Some(Tensor::empty(
                ctx,
                "trace_norm.gram_partials",
                &shape,
                DType::F32,
            )?)
        } else {
            None
        };
        let mut j = Jacobi {
            wide,
            kernel: GramKernel::Gemm,
            partials,
            gram: Tensor::empty(ctx, "trace_norm.gram", &[s, s], DType::F32)?,
            m: Tensor::empty(ctx, "trace_norm.factor", &[s, s], DType::F32)?,
        };
        j.set_kernel(GramKernel::for_matrix(rows, cols));
        Ok(j)
    }

    /// Uses `kernel` for the Gram where it applies (`Chunked` needs a wide
    /// X; elsewhere the GEMM stays).
    pub fn set_kernel(&mut self, kernel: GramKernel) {
        self.kernel = match kernel {
            GramKernel::Chunked if self.partials.is_some() => GramKernel::Chunked,
            _ => GramKernel::Gemm,
        };
    }

    /// The kernel that forms the Gram.
    pub fn kernel(&self) -> GramKernel {
        self.kernel
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
        match (self.kernel, &self.partials) {
            (GramKernel::Chunked, Some(partials)) => {
                let s = self.gram.shape()[0];
                ops::gram_partials(rec, op, x, partials)?;
                reduce::column_sums(rec, partials, &self.gram.reshape(&[s * s])?)?;
            }
            _ => {
                let layout = if self.wide { Layout::NT } else { Layout::TN };
                gemm::gemm(rec, layout, x, x, &self.gram, &Epilogue::default())?;
            }
        }
        ops::factor(rec, op, &self.gram, &self.m, tau, norm)?;
        if self.wide {
            gemm::gemm(rec, Layout::NN, &self.m, x, out, epi)
        } else {
            gemm::gemm(rec, Layout::NN, x, &self.m, out, epi)
        }
    }
}
