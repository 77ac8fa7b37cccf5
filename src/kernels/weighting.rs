//! The Gram matrix of per-task gradients (trace norm's chunked
//! `gram_partials`: 4×4 blocks of pairs per workgroup over column chunks,
//! then a fixed-order column sum; deterministic), and launchers for
//! `shaders/weighting.wgsl`: uncertainty weighting's weights and gradient,
//! DWA's loss sums,
//! the loss rules of GLS, STCH and FAMO, GradDrop's sign dropout, and the
//! per-parameter state of ExcessMTL (Adagrad sums) and MoCo (tracked
//! gradients). Reference: `reference::weighting`; tests:
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
/// `loss_rule`: the loss kernel's weights from this step's losses.
pub const LOSS_RULE: KernelSpec = KernelSpec::new(Shader::Weighting, "loss_rule");
/// `graddrop`: GradDrop's combined gradient of the heads' input.
pub const GRADDROP: KernelSpec = KernelSpec::new(Shader::Weighting, "graddrop");
/// `row_partials`: per-task chunk sums of x² or of Adagrad-scaled x².
pub const ROW_PARTIALS: KernelSpec = KernelSpec::new(Shader::Weighting, "row_partials");
/// `moco_update`: MoCo's tracked gradients move toward the scaled ones.
pub const MOCO_UPDATE: KernelSpec = KernelSpec::new(Shader::Weighting, "moco_update");
/// `combine_rows`: Σ_t c_t·y_t.
pub const COMBINE_ROWS: KernelSpec = KernelSpec::new(Shader::Weighting, "combine_rows");

/// Elements of a task row one `row_partials` workgroup sums.
const CHUNK: usize = 256 * 16;

/// Most tasks the Gram kernel takes.
pub const MAX_TASKS: usize = 64;

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    vec![
        UNCERTAINTY_WEIGHTS,
        UNCERTAINTY_GRAD,
        LOSS_ACCUMULATE,
        LOSS_RULE,
        GRADDROP,
        ROW_PARTIALS,
        MOCO_UPDATE,
        COMBINE_ROWS,
    ]
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    tasks: u32,
    n: u32,
    ld: u32,
    chunk: u32,
    pairs: u32,
    mode: u32,
    seed: u32,
    scalar: f32,
}

fn params(tasks: usize) -> Params {
    Params {
        tasks: tasks as u32,
        n: 0,
        ld: 0,
        chunk: 0,
        pairs: 0,
        mode: 0,
        seed: 0,
        scalar: 0.0,
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

/// How `loss_rule` turns this step's losses L into the loss kernel's
/// weights c (docs/math.md §5). Written to the GPU as
/// `[mode, μ, u_0..u_{T−1}, v_0..v_{T−1}]` by [`LossRule::encode`].
#[derive(Clone, Debug, PartialEq)]
pub enum LossRule {
    /// GLS: the gradient of `(Π_t L_t)^{1/T}`, `c_t = (Π L)^{1/T}/(T·L_t)`.
    GeometricMean,
    /// The gradient of `Σ_t log(L_t + 1e-20)`: `c_t = 1/(L_t + 1e-20)`.
    Log,
    /// STCH: the gradient of `T·μ·log Σ_t exp(log(L_t/n_t + 1e-20)/μ)`.
    SmoothMax {
        /// Smoothing μ > 0.
        mu: f32,
        /// The nadir point n_t > 0 the losses are divided by.
        nadir: Vec<f32>,
    },
    /// FAMO: `c_t = (z_t/D_t) / Σ_s z_s/D_s`, `D_t = L_t − m_t + 1e-8`.
    Famo {
        /// z = softmax of FAMO's logits.
        z: Vec<f32>,
        /// The losses' lower bounds m_t.
        min_losses: Vec<f32>,
    },
}

impl LossRule {
    /// The kernel's parameter vector for `tasks` tasks (2 + 2T floats).
    pub fn encode(&self, tasks: usize) -> Result<Vec<f32>> {
        let mut out = vec![0f32; 2 + 2 * tasks];
        let (mode, mu, u, v): (f32, f32, &[f32], &[f32]) = match self {
            LossRule::GeometricMean => (0.0, 0.0, &[], &[]),
            LossRule::Log => (1.0, 0.0, &[], &[]),
            LossRule::SmoothMax { mu, nadir } => (2.0, *mu, nadir, &[]),
            LossRule::Famo { z, min_losses } => (3.0, 0.0, z, min_losses),
        };
        let wrong = |what: &str, len: usize| Error::Shape {
            op: "weighting::LossRule",
            detail: format!("{len} {what} for {tasks} tasks"),
        };
        match self {
            LossRule::SmoothMax { .. } if u.len() != tasks => {
                return Err(wrong("nadir values", u.len()))
            }
            LossRule::Famo { .. } if u.len() != tasks => {
                return Err(wrong("FAMO weights", u.len()))
            }
            LossRule::Famo { .. } if v.len() != tasks => {
                return Err(wrong("minimum losses", v.len()))
            }
            _ => {}
        }
        out[0] = mode;
        out[1] = mu;
        out[2..2 + u.len()].copy_from_slice(u);
        out[2 + tasks..2 + tasks + v.len()].copy_from_slice(v);
        Ok(out)
    }
}

/// upstream = the rule's weights of `losses`; `rule` holds
/// [`LossRule::encode`]'s vector.
pub fn loss_rule(
    rec: &mut Recorder,
    rule: &Tensor,
    losses: &Tensor,
    upstream: &Tensor,
) -> Result<()> {
    const OP: &str = "weighting::loss_rule";
    let t = losses.len();
    if t == 0 || t > MAX_TASKS {
        return Err(Error::Shape {
            op: OP,
            detail: format!("{t} tasks: the loss rules take 1..={MAX_TASKS}"),
        });
    }
    check_vectors(OP, &[losses, upstream], t)?;
    check_vectors(OP, &[rule], 2 + 2 * t)?;
    let binds = [
        Bind::read(1, rule),
        Bind::read(2, losses),
        Bind::write(3, upstream),
    ];
    small_dispatch(rec, OP, &LOSS_RULE, t, &binds)
}

/// GradDrop (Chen et al. 2020) on the heads' input: `per_task` [T, rows,
/// width] are the tasks' gradients of H [rows, width]; `out` [rows,
/// width] gets their sign-dropped sum. `seed` picks this step's uniform
/// draws (one per feature); `leak` ∈ [0, 1] keeps that share of every
/// dropped gradient.
pub fn graddrop(
    rec: &mut Recorder,
    per_task: &Tensor,
    h: &Tensor,
    out: &Tensor,
    seed: u32,
    leak: f32,
) -> Result<()> {
    const OP: &str = "weighting::graddrop";
    for t in [per_task, h, out] {
        require_f32(OP, t)?;
    }
    let &[rows, width] = h.shape() else {
        return Err(Error::Shape {
            op: OP,
            detail: format!("H '{}' is {:?}, not a matrix", h.label(), h.shape()),
        });
    };
    let tasks = per_task.shape().first().copied().unwrap_or(0);
    if per_task.shape() != [tasks, rows, width] || tasks == 0 || tasks > MAX_TASKS {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "per-task gradients {:?} must be [1..={MAX_TASKS}, {rows}, {width}] for H {:?}",
                per_task.shape(),
                h.shape()
            ),
        });
    }
    if out.shape() != h.shape() {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "output {:?} must have H's shape {:?}",
                out.shape(),
                h.shape()
            ),
        });
    }
    if !(0.0..=1.0).contains(&leak) {
        return Err(Error::InvalidInput {
            op: OP,
            detail: format!("leak {leak} must lie in [0, 1]"),
        });
    }
    let p = Params {
        n: rows as u32,
        ld: width as u32,
        seed,
        scalar: leak,
        ..params(tasks)
    };
    let binds = [
        Bind::read(1, per_task),
        Bind::read(2, h),
        Bind::write(3, out),
    ];
    rec.dispatch_1d(OP, &GRADDROP, &p, &binds, width as u64, 64)
}

/// What [`row_sums`] adds up per task row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowSum {
    /// `Σ_k x_k²`.
    Squares,
    /// ExcessMTL: `s_k += x_k²` (the Adagrad sums in `state`, updated in
    /// place), then `Σ_k x_k²/√(s_k + 1e-7)`.
    AdagradScaled,
}

/// Scratch of [`row_sums`] for T rows of n elements: chunk partials
/// \[chunks, T\] and the sums \[T\].
pub struct RowSumScratch {
    /// [chunks, T] partial sums.
    pub partials: Tensor,
    /// \[T\] one sum per row.
    pub sums: Tensor,
}

impl RowSumScratch {
    /// Scratch for `tasks` rows of `n` elements.
    pub fn new(ctx: &crate::gpu::GpuContext, tasks: usize, n: usize) -> Result<Self> {
        let chunks = n.div_ceil(CHUNK).max(1);
        Ok(RowSumScratch {
            partials: Tensor::empty(ctx, "row partials", &[chunks, tasks], DType::F32)?,
            sums: Tensor::empty(ctx, "row sums", &[tasks], DType::F32)?,
        })
    }
}

/// One sum per task row of `x` [T, n] into `scratch.sums` (per-chunk
/// trees, then a fixed-order column sum). `state` [T, n] is bound in
/// both modes and written only by [`RowSum::AdagradScaled`].
pub fn row_sums(
    rec: &mut Recorder,
    x: &Tensor,
    state: &Tensor,
    tasks: usize,
    sum: RowSum,
    scratch: &RowSumScratch,
) -> Result<()> {
    const OP: &str = "weighting::row_sums";
    require_f32(OP, x)?;
    require_f32(OP, state)?;
    if tasks == 0 || x.is_empty() || !x.len().is_multiple_of(tasks) || state.len() != x.len() {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "'{}' ({} elements) must stack {tasks} equal rows, and the state '{}' ({}) match it",
                x.label(),
                x.len(),
                state.label(),
                state.len()
            ),
        });
    }
    let n = x.len() / tasks;
    let chunks = n.div_ceil(CHUNK);
    if scratch.partials.shape() != [chunks, tasks] || scratch.sums.len() != tasks {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "scratch {:?} does not fit {tasks} rows of {n} elements (make it with RowSumScratch::new)",
                scratch.partials.shape()
            ),
        });
    }
    let p = Params {
        n: n as u32,
        ld: n as u32,
        chunk: CHUNK as u32,
        mode: match sum {
            RowSum::Squares => 0,
            RowSum::AdagradScaled => 1,
        },
        ..params(tasks)
    };
    let binds = [
        Bind::read(1, x),
        Bind::write(3, &scratch.partials),
        Bind::write(4, state),
    ];
    rec.dispatch(
        OP,
        &ROW_PARTIALS,
        &p,
        &binds,
        [chunks as u32, tasks as u32, 1],
    )?;
    reduce::column_sums(rec, &scratch.partials, &scratch.sums)
}

/// MoCo: `y_t ← y_t − β(y_t − L_t·g_t/(‖g_t‖ + 1e-8))` for the rows of
/// `y` [T, n], with `g` [T, n] and `norms_and_losses` = [‖g_t‖² for every
/// t, then L_t for every t].
pub fn moco_update(
    rec: &mut Recorder,
    g: &Tensor,
    norms_and_losses: &Tensor,
    y: &Tensor,
    tasks: usize,
    beta: f32,
) -> Result<()> {
    const OP: &str = "weighting::moco_update";
    for t in [g, norms_and_losses, y] {
        require_f32(OP, t)?;
    }
    if tasks == 0 || g.len() != y.len() || !g.len().is_multiple_of(tasks) {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "gradients ({}) and tracked gradients ({}) must both stack {tasks} equal rows",
                g.len(),
                y.len()
            ),
        });
    }
    check_vectors(OP, &[norms_and_losses], 2 * tasks)?;
    let p = Params {
        n: (g.len() / tasks) as u32,
        scalar: beta,
        ..params(tasks)
    };
    let binds = [
        Bind::read(1, g),
        Bind::write(4, y),
        Bind::read(5, norms_and_losses),
    ];
    rec.dispatch_1d(OP, &MOCO_UPDATE, &p, &binds, g.len() as u64, 256)
}

/// `out = Σ_t c_t·y_t` over the rows of `y` [T, n]; `out` holds n.
pub fn combine_rows(rec: &mut Recorder, y: &Tensor, c: &Tensor, out: &Tensor) -> Result<()> {
    const OP: &str = "weighting::combine_rows";
    for t in [y, c, out] {
        require_f32(OP, t)?;
    }
    let tasks = c.len();
    if tasks == 0 || y.len() != tasks * out.len() {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "{} rows of {} elements do not make '{}' ({})",
                tasks,
                out.len(),
                y.label(),
                y.len()
            ),
        });
    }
    let p = Params {
        n: out.len() as u32,
        ..params(tasks)
    };
    let binds = [Bind::write(3, out), Bind::write(4, y), Bind::read(5, c)];
    rec.dispatch_1d(OP, &COMBINE_ROWS, &p, &binds, out.len() as u64, 256)
}
