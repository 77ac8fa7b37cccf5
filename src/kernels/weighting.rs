//! Launchers for `shaders/weighting.wgsl`: the Gram matrix of per-task
//! gradients (deterministic: per-chunk trees, then a fixed-order column
//! sum), uncertainty weighting's weights and gradient, and DWA's loss
//! sums. Reference: `reference::weighting`; tests:
//! kernels-tests/weighting_gpu.rs.

use crate::error::{Error, Result};
use crate::gpu::{Bind, DType, KernelSpec, Recorder, Shader, Tensor};
use crate::kernels::check::require_f32;
use crate::kernels::reduce;

/// `gram_partials`: chunk partials of every pair's dot product.
pub const GRAM: KernelSpec = KernelSpec::new(Shader::Weighting, "gram_partials");
/// `uncertainty_weights`: c_t = ½e^(−s_t) into the task-weight buffer.
pub const UNCERTAINTY_WEIGHTS: KernelSpec =
    KernelSpec::new(Shader::Weighting, "uncertainty_weights");
/// `uncertainty_grad`: ds_t = ½(1 − e^(−s_t) L_t).
pub const UNCERTAINTY_GRAD: KernelSpec = KernelSpec::new(Shader::Weighting, "uncertainty_grad");
/// `loss_accumulate`: adds the step's losses to the epoch sums (DWA).
pub const LOSS_ACCUMULATE: KernelSpec = KernelSpec::new(Shader::Weighting, "loss_accumulate");

/// Most tasks the Gram kernel takes (pairs on grid y).
pub const MAX_TASKS: usize = 64;
/// Elements of a task row one Gram workgroup sums.
const CHUNK: usize = 256 * 16;

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    vec![GRAM, UNCERTAINTY_WEIGHTS, UNCERTAINTY_GRAD, LOSS_ACCUMULATE]
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    tasks: u32,
    n: u32,
    ld: u32,
    chunk: u32,
    pairs: u32,
    _pad: [u32; 3],
}

fn params(tasks: usize) -> Params {
    Params {
        tasks: tasks as u32,
        n: 0,
        ld: 0,
        chunk: 0,
        pairs: 0,
        _pad: [0; 3],
    }
}

/// Pairs (i ≤ j) of T tasks, in the kernel's order.
pub fn pairs(tasks: usize) -> usize {
    tasks * (tasks + 1) / 2
}

/// The Gram matrix's scratch for T tasks of n elements: chunk partials
/// [chunks, pairs] and the pair sums [pairs].
pub struct GramScratch {
    /// [chunks, pairs] partial dot products.
    pub partials: Tensor,
    /// [pairs] dot products ⟨g_i, g_j⟩, i ≤ j.
    pub sums: Tensor,
}

impl GramScratch {
    /// Scratch for `tasks` rows of `n` elements.
    pub fn new(ctx: &crate::gpu::GpuContext, tasks: usize, n: usize) -> Result<Self> {
        let chunks = n.div_ceil(CHUNK).max(1);
        Ok(GramScratch {
            partials: Tensor::empty(ctx, "gram partials", &[chunks, pairs(tasks)], DType::F32)?,
            sums: Tensor::empty(ctx, "gram", &[pairs(tasks)], DType::F32)?,
        })
    }
}

/// M_ij = x_i·x_j for i ≤ j (upper triangle, row by row, into
/// `scratch.sums`; `gram_matrix` expands it) of the T rows of `x` [T, n].
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
    let chunks = n.div_ceil(CHUNK);
    let np = pairs(tasks);
    if scratch.partials.shape() != [chunks, np] || scratch.sums.len() != np {
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
    let p = Params {
        n: n as u32,
        ld: n as u32,
        chunk: CHUNK as u32,
        pairs: np as u32,
        ..params(tasks)
    };
    let binds = [Bind::read(1, x), Bind::write(3, &scratch.partials)];
    rec.dispatch(OP, &GRAM, &p, &binds, [chunks as u32, np as u32, 1])?;
    reduce::column_sums(rec, &scratch.partials, &scratch.sums)
}

/// The full symmetric T×T matrix from the upper-triangle pair sums.
pub fn gram_matrix(tasks: usize, pair_sums: &[f32]) -> Vec<f32> {
    let mut m = vec![0f32; tasks * tasks];
    let mut k = 0;
    for i in 0..tasks {
        for j in i..tasks {
            m[i * tasks + j] = pair_sums[k];
            m[j * tasks + i] = pair_sums[k];
            k += 1;
        }
    }
    m
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
