//! Launcher for `shaders/loss.wgsl`: masked per-task losses, forward and
//! backward fused, every task in ONE dispatch, deterministic.
//!
//! Policies (see the shader header for the formulas):
//! - missing labels: a per-row mask (f32; 0 = missing). Each task's loss
//!   is the mean over its labelled rows (`max(1, Σ mask)`), so a batch
//!   with no labels for a task gives loss 0 and zero gradients;
//! - a class label ≥ the class count is treated as missing and counted in
//!   `stats[1]` (the data loader rejects such files up front; this is the
//!   kernel's last line of defence, never an out-of-bounds read);
//! - reduction: each task's `Reduction` (PyTorch's mean by default) is a
//!   per-task scale s in the table: a row's loss is s·Σ_j e_j (e_j the
//!   squared error or the BCE term; CE's row loss with s = 1), so the
//!   mean over outputs (s = 1/width), the sum (1) or the half sum (½) cost
//!   no extra pass;
//! - NaN/Inf: propagate into the loss and gradients, and the rows are
//!   counted in `stats[2]` so a trainer can stop after reading T·4 words.
//!
//! Reference: `reference::loss`; tests: kernels-tests/loss.rs.

use crate::error::{Error, Result};
use crate::gpu::{Bind, DType, GpuContext, KernelSpec, Recorder, Shader, Tensor};
use crate::kernels::check::require_f32;

pub use crate::types::{LossKind, Reduction};

const OP: &str = "loss";
/// u32 words per loss-table row (`LossTask` in the shader).
const TASK_WORDS: usize = 9;
/// u32 statistics per task.
pub const STATS_PER_TASK: usize = 4;
const NO_MASK: u32 = u32::MAX;

/// `masked_losses`: every task's loss, gradient and statistics.
pub const MASKED_LOSSES: KernelSpec = KernelSpec::new(Shader::Loss, "masked_losses");

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    vec![MASKED_LOSSES]
}

/// One task's loss: where its logits (and gradients), targets or labels,
/// and mask live in the shared buffers. Offsets are in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossTask {
    /// Softmax cross-entropy, MSE or BCE with logits.
    pub kind: LossKind,
    /// How the row's terms are reduced (`Reduction::check` says which
    /// the kind defines; `LossTable::new` rejects the others).
    pub reduction: Reduction,
    /// Rows of the batch.
    pub rows: usize,
    /// Classes (cross-entropy) or outputs per row.
    pub width: usize,
    /// First logit of the task in the logits (and gradients) buffer.
    pub logit_offset: usize,
    /// Row stride of the logits (and gradients): ≥ width.
    pub logit_ld: usize,
    /// Cross-entropy: first label in `labels`; otherwise first target.
    pub target_offset: usize,
    /// Row stride of the targets (MSE/BCE; ignored for labels).
    pub target_ld: usize,
    /// First mask value in `masks`, or None when every row is labelled.
    pub mask_offset: Option<usize>,
}

/// The checked, uploaded task list of one model.
pub struct LossTable {
    tasks: Vec<LossTask>,
    gpu: Tensor,
}

impl LossTable {
    /// Checks the tasks (widths ≥ 1, strides ≥ widths, offsets fit u32,
    /// reductions the kinds define, no two tasks' gradient windows
    /// overlap) and uploads the table.
    pub fn new(ctx: &GpuContext, tasks: &[LossTask]) -> Result<LossTable> {
        let bad = |t: usize, detail: String| Error::Shape {
            op: OP,
            detail: format!("task {t}: {detail}"),
        };
        if tasks.is_empty() {
            return Err(Error::Shape {
                op: OP,
                detail: "no tasks".into(),
            });
        }
        let mut words = Vec::with_capacity(tasks.len() * TASK_WORDS);
        for (i, t) in tasks.iter().enumerate() {
            if t.width == 0 {
                return Err(bad(i, "width 0: a task needs at least one output".into()));
            }
            if t.logit_ld < t.width {
                return Err(bad(
                    i,
                    format!("logit_ld {} < width {}", t.logit_ld, t.width),
                ));
            }
            if t.kind != LossKind::SoftmaxCrossEntropy && t.target_ld < t.width {
                return Err(bad(
                    i,
                    format!("target_ld {} < width {}", t.target_ld, t.width),
                ));
            }
            t.reduction.check(t.kind).map_err(|why| bad(i, why))?;
            let fields = [
                t.kind as usize,
                t.rows,
                t.width,
                t.logit_offset,
                t.logit_ld,
                t.target_offset,
                t.target_ld,
            ];
            for f in fields {
                words.push(
                    u32::try_from(f).map_err(|_| bad(i, format!("{f} does not fit in u32")))?,
                );
            }
            let mask = match t.mask_offset {
                None => NO_MASK,
                Some(m) => u32::try_from(m)
                    .ok()
                    .filter(|&m| m != NO_MASK)
                    .ok_or_else(|| bad(i, format!("mask offset {m} does not fit in u32")))?,
            };
            words.push(mask);
            words.push(row_scale(t).to_bits());
        }
        // Gradient windows must not overlap (each row is written by one task).
        let mut runs: Vec<(usize, usize, usize)> = Vec::new();
        for (i, t) in tasks.iter().enumerate() {
            for r in 0..t.rows {
                let s = t.logit_offset + r * t.logit_ld;
                runs.push((s, s + t.width, i));
            }
        }
        runs.sort_unstable();
        if let Some(w) = runs.windows(2).find(|w| w[1].0 < w[0].1) {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "the logit windows of tasks {} and {} overlap",
                    w[0].2, w[1].2
                ),
            });
        }
        let gpu = Tensor::from_u32(ctx, "loss.table", &[words.len()], &words)?;
        Ok(LossTable {
            tasks: tasks.to_vec(),
            gpu,
        })
    }

    /// The tasks, as given.
    pub fn tasks(&self) -> &[LossTask] {
        &self.tasks
    }
}

/// The scale s of a row's summed terms (the table's `scale`): 1/width for
/// the mean over outputs, 1 for the sum (and cross-entropy's row loss), ½
/// for the half sum.
fn row_scale(t: &LossTask) -> f32 {
    match (t.kind, t.reduction) {
        (LossKind::SoftmaxCrossEntropy, _) => 1.0,
        (_, Reduction::Mean) => 1.0 / t.width as f32,
        (_, Reduction::Sum) => 1.0,
        (_, Reduction::HalfSum) => 0.5,
    }
}

/// What the kernel reads. `targets` (f32) is needed when a task is MSE or
/// BCE, `labels` (u32) when one is cross-entropy, `masks` (f32) when one
/// has a mask; `upstream` \[T\] holds dObjective/dL_t.
#[derive(Clone, Copy, Debug)]
pub struct LossInputs<'t> {
    /// Every task's logits (f32), at the table's offsets.
    pub logits: &'t Tensor,
    /// Real or 0/1 targets (f32).
    pub targets: Option<&'t Tensor>,
    /// Class ids (u32).
    pub labels: Option<&'t Tensor>,
    /// 1 = labelled, 0 = missing (f32).
    pub masks: Option<&'t Tensor>,
    /// dObjective/dL_t \[T\] (f32): each task's gradient scale.
    pub upstream: &'t Tensor,
}

/// What the kernel writes: `grads` (the logits' shape), `losses` \[T\], and
/// `stats` (u32 [T, 4]: labelled rows, out-of-range labels, non-finite
/// rows, 0).
#[derive(Clone, Copy, Debug)]
pub struct LossOutputs<'t> {
    /// dObjective/dlogits, the logits' shape.
    pub grads: &'t Tensor,
    /// L_t \[T\].
    pub losses: &'t Tensor,
    /// u32 [T, 4] statistics.
    pub stats: &'t Tensor,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    tasks: u32,
    _pad: [u32; 3],
}

fn require_len(what: &str, t: &Tensor, needed: usize) -> Result<()> {
    if t.len() < needed {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "{what} '{}' has {} elements but the loss table reaches element {}",
                t.label(),
                t.len(),
                needed - 1
            ),
        });
    }
    Ok(())
}

fn missing(what: &str, kind: &str) -> Error {
    Error::Shape {
        op: OP,
        detail: format!("a {kind} task needs {what}, and none was given"),
    }
}

/// Every task's loss and logit gradients, in one dispatch.
pub fn masked_losses(
    rec: &mut Recorder,
    table: &LossTable,
    inp: &LossInputs,
    out: &LossOutputs,
) -> Result<()> {
    let n_tasks = table.tasks.len();
    for t in [inp.logits, inp.upstream, out.grads, out.losses]
        .into_iter()
        .chain(inp.targets)
        .chain(inp.masks)
    {
        require_f32(OP, t)?;
    }
    for t in [out.stats].into_iter().chain(inp.labels) {
        if t.dtype() != DType::U32 {
            return Err(Error::DType {
                op: OP,
                got: t.dtype(),
                supported: "u32 (labels and stats)",
            });
        }
    }
    if out.grads.shape() != inp.logits.shape() {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "gradients '{}' {:?} must have the logits' shape {:?}",
                out.grads.label(),
                out.grads.shape(),
                inp.logits.shape()
            ),
        });
    }
    let expect = |t: &Tensor, shape: &[usize]| -> Result<()> {
        if t.shape() != shape {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "'{}' is {:?}, expected {shape:?} for {n_tasks} tasks",
                    t.label(),
                    t.shape()
                ),
            });
        }
        Ok(())
    };
    expect(inp.upstream, &[n_tasks])?;
    expect(out.losses, &[n_tasks])?;
    expect(out.stats, &[n_tasks, STATS_PER_TASK])?;
    for t in &table.tasks {
        if t.rows == 0 {
            continue;
        }
        require_len(
            "logits",
            inp.logits,
            t.logit_offset + (t.rows - 1) * t.logit_ld + t.width,
        )?;
        if t.kind == LossKind::SoftmaxCrossEntropy {
            let labels = inp
                .labels
                .ok_or_else(|| missing("labels (u32 class ids)", "cross-entropy"))?;
            require_len("labels", labels, t.target_offset + t.rows)?;
        } else {
            let targets = inp
                .targets
                .ok_or_else(|| missing("targets (f32)", t.kind.name()))?;
            require_len(
                "targets",
                targets,
                t.target_offset + (t.rows - 1) * t.target_ld + t.width,
            )?;
        }
        if let Some(m) = t.mask_offset {
            let masks = inp.masks.ok_or_else(|| missing("masks (f32)", "masked"))?;
            require_len("masks", masks, m + t.rows)?;
        }
    }
    let max = rec.ctx().limits().max_compute_workgroups_per_dimension as usize;
    if n_tasks > max {
        return Err(Error::GridTooLarge {
            op: OP,
            detail: format!("{n_tasks} tasks exceed {max} workgroups; split the table"),
        });
    }
    // One workgroup per task: each lane walks rows/256 rows, each row its
    // width about 4 times (softmax max, sum, loss, gradient).
    for t in &table.tasks {
        let iterations = (t.rows as u64).div_ceil(256) * (2 + 4 * t.width as u64) + 16;
        crate::kernels::check::require_loop_budget(
            rec.ctx(),
            OP,
            iterations,
            || {
                format!(
                    "a task of {} rows × {} outputs loops about {iterations} times per lane",
                    t.rows, t.width
                )
            },
            "fewer rows per step or fewer outputs per task; or run on a GPU",
        )?;
    }
    // Unused inputs get stand-ins the kernel never reads.
    let stand_in = inp.logits;
    let binds = [
        Bind::read(1, inp.logits),
        Bind::read(2, inp.targets.unwrap_or(stand_in)),
        Bind::read(3, inp.labels.unwrap_or(stand_in)),
        Bind::read(4, inp.masks.unwrap_or(stand_in)),
        Bind::read(5, inp.upstream),
        Bind::write(6, out.grads),
        Bind::write(7, out.losses),
        Bind::write(8, out.stats),
        Bind::read(9, &table.gpu),
    ];
    let params = Params {
        tasks: n_tasks as u32,
        _pad: [0; 3],
    };
    rec.dispatch(OP, &MASKED_LOSSES, &params, &binds, [n_tasks as u32, 1, 1])
}
