//! The Gram matrix of per-task gradients (trace norm's chunked
//! `gram_partials`: 4×4 blocks of pairs per workgroup over column chunks,
//! then a fixed-order column sum; deterministic), and launchers for
//! `shaders/weighting.wgsl`: uncertainty weighting's weights and gradient,
//! and DWA's loss sums. Reference: `reference::weighting`; tests:
//! kernels-tests/weighting_gpu.rs.

use crate::error::{Error, Result};
use crate::gpu::{Bind, DType, KernelSpec, Recorder, Shader, Tensor};
use crate::kernels::check::require_f32;
use crate::kernels::reduce;
use crate::kernels::trace_norm::{gram_partials, GRAM_CHUNK};

/// `uncertainty_weights`: c_t = ½e^(−s_t) into the task-weight buffer.
pub const UNCERTAINTY_WEIGHTS: KernelSpec =
    KernelSpec::new(Shader::Weighting, "uncertainty_weights");
/// `uncertainty_grad`: ds_t = ½(1 − e^(−s_t) L_t).
pub const UNCERTAINTY_GRAD: KernelSpec = KernelSpec::new(Shader::Weighting, "uncertainty_grad");
/// `loss_accumulate`: adds the step's losses to the epoch sums (DWA).
pub const LOSS_ACCUMULATE: KernelSpec = KernelSpec::new(Shader::Weighting, "loss_accumulate");

/// Most tasks the Gram kernel takes.
pub const MAX_TASKS: usize = 64;

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    vec![UNCERTAINTY_WEIGHTS, UNCERTAINTY_GRAD, LOSS_ACCUMULATE]
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    tasks: u32,
    _pad: [u32; 3],
}

fn params(tasks: usize) -> Params {
    Params {
        tasks: tasks as u32,
        _pad: [0; 3],
    }
}

/// The Gram matrix's scratch for T tasks of n elements: chunk partials
/// [chunks, T·T] and the matrix [T, T].
pub struct GramScratch {
    /// [chunks, T·T] partial Gram matrices, one per column chunk.
    pub partials: Tensor,
    /// [T, T] row-major: ⟨g_i, g_j⟩, symmetric bit for bit.
    pub sums: Tensor,
}

impl GramScratch {
    /// Scratch for `tasks` rows of `n` elements.
    pub fn new(ctx: &crate::gpu::GpuContext, tasks: usize, n: usize) -> Result<Self> {
        let chunks = n.div_ceil(GRAM_CHUNK).max(1);
        let t2 = tasks * tasks;
        Ok(GramScratch {
            partials: Tensor::empty(ctx, "gram partials", &[chunks, t2], DType::F32)?,
            sums: Tensor::empty(ctx, "gram", &[tasks, tasks], DType::F32)?,
        })
    }
}

/// M = X·Xᵀ of the T rows of `x` [T·n] (flat, row-major), into
/// `scratch.sums` [T, T]. Every chunk's partial sums and their fixed-order
/// column sum are deterministic; M_ij and M_ji are the same bits.
pub fn gram(rec: &mut Recorder, x: &Tensor, tasks: usize, scratch: &GramScratch) -> Result<()> {
    const OP: &str = "weighting::gram";
    require_f32(OP, x)?;
    if tasks == 0 || tasks > MAX_TASKS || x.is_empty() || !x.len().is_multiple_of(tasks) {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "'{}' ({} elements) must stack 1..={MAX_TASKS} equal task rows (got {tasks})",
                x.label(),
                x.len()
            ),
        });
    }
    let n = x.len() / tasks;
    let chunks = n.div_ceil(GRAM_CHUNK);
    let t2 = tasks * tasks;
    if scratch.partials.shape() != [chunks, t2] || scratch.sums.len() != t2 {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "scratch {:?} / {:?} does not fit {tasks} tasks of {n} elements (make it with GramScratch::new)",
                scratch.partials.shape(),
                scratch.sums.shape()
            ),
        });
    }
    let max = rec.ctx().limits().max_compute_workgroups_per_dimension as usize;
    if chunks > max {
        return Err(Error::GridTooLarge {
            op: OP,
            detail: format!("{n} elements per task need {chunks} chunks (max {max})"),
        });
    }
    let rows = x.reshape(&[tasks, n])?;
    let partials = scratch.partials.reshape(&[chunks, t2])?;
    gram_partials(rec, OP, &rows, &partials)?;
    let flat = scratch.sums.reshape(&[t2])?;
    reduce::column_sums(rec, &partials, &flat)
}

fn check_vectors(op: &'static str, tensors: &[&Tensor], tasks: usize) -> Result<()> {
    for t in tensors {
        require_f32(op, t)?;
        if t.len() != tasks {
            return Err(Error::Shape {
                op,
                detail: format!(
                    "'{}' must hold one value per task ({tasks}), not {}",
                    t.label(),
                    t.len()
                ),
            });
        }
    }
    Ok(())
}

fn small_dispatch(
    rec: &mut Recorder,
    op: &'static str,
    spec: &KernelSpec,
    tasks: usize,
    binds: &[Bind],
) -> Result<()> {
    rec.dispatch(
        op,
        spec,
        &params(tasks),
        binds,
        [tasks.div_ceil(64) as u32, 1, 1],
    )
}

/// upstream_t = ½·e^(−s_t).
pub fn uncertainty_weights(rec: &mut Recorder, s: &Tensor, upstream: &Tensor) -> Result<()> {
    const OP: &str = "weighting::uncertainty_weights";
    let t = s.len();
    check_vectors(OP, &[s, upstream], t)?;
    small_dispatch(
        rec,
        OP,
        &UNCERTAINTY_WEIGHTS,
        t,
        &[Bind::read(1, s), Bind::write(3, upstream)],
    )
}

/// ds_t = ½(1 − e^(−s_t)·L_t).
pub fn uncertainty_grad(
    rec: &mut Recorder,
    s: &Tensor,
    losses: &Tensor,
    ds: &Tensor,
) -> Result<()> {
    const OP: &str = "weighting::uncertainty_grad";
    let t = s.len();
    check_vectors(OP, &[s, losses, ds], t)?;
    let binds = [Bind::read(1, s), Bind::read(2, losses), Bind::write(3, ds)];
    small_dispatch(rec, OP, &UNCERTAINTY_GRAD, t, &binds)
}

/// sums_t += L_t.
pub fn loss_accumulate(rec: &mut Recorder, losses: &Tensor, sums: &Tensor) -> Result<()> {
    const OP: &str = "weighting::loss_accumulate";
    let t = losses.len();
    check_vectors(OP, &[losses, sums], t)?;
    small_dispatch(
        rec,
        OP,
        &LOSS_ACCUMULATE,
        t,
        &[Bind::read(2, losses), Bind::write(3, sums)],
    )
}
