//! Launcher for `shaders/nonfinite.wgsl`: a GPU-side record of the first
//! optimiser step whose per-task losses hold a NaN or ±inf, and of the
//! lowest task that went non-finite at that step. Recorded after the loss
//! kernel in every step and read back with the losses when they are read,
//! it names the true step of a divergence at no extra submit and no extra
//! round trip. Reference: `reference::nonfinite`; tests:
//! kernels-tests/nonfinite.rs.

use crate::error::{Error, Result};
use crate::gpu::{Bind, DType, GpuContext, KernelSpec, Recorder, Shader, Tensor};
use crate::kernels::check::{require_f32, require_loop_budget, require_shape};

/// `watch_losses`: updates the record from one step's loss vector.
pub const WATCH_LOSSES: KernelSpec = KernelSpec::new(Shader::Nonfinite, "watch_losses");

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    vec![WATCH_LOSSES]
}

/// Length of the record buffer (u32 words):
/// `[first_step, first_task, first_kind, nonfinite_steps]`.
/// `first_step` 0 means empty (steps are 1-based); `first_kind` is 1 NaN,
/// 2 +inf, 3 −inf; `nonfinite_steps` counts the watched steps with any
/// non-finite loss since the last reset (saturating at `u32::MAX`).
pub const RECORD_WORDS: usize = 4;

/// Lanes of the one workgroup; its tree has log2(256) = 8 levels.
const WG: u64 = 256;
const TREE_LEVELS: u64 = 8;
/// The stride loop's final exit test counts as an iteration on llvmpipe
/// (measured on GL: 65526 strides + 8 levels fit, 65527 + 8 do not).
const EXIT_TEST: u64 = 1;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    tasks: u32,
    step: u32,
    _pad: [u32; 2],
}

/// A new, empty record: u32 [`RECORD_WORDS`] of zeros.
pub fn new_record(ctx: &GpuContext, label: &str) -> Result<Tensor> {
    Tensor::from_u32(ctx, label, &[RECORD_WORDS], &[0; RECORD_WORDS])
}

/// Empties `record` (writes zeros from the host). Like every host write,
/// it lands before the next submit, i.e. before every dispatch of a
/// recorder still being filled: reset between submits, not inside one.
pub fn reset_record(ctx: &GpuContext, record: &Tensor) -> Result<()> {
    check_record("nonfinite::reset_record", record)?;
    record.write_u32(ctx, &[0; RECORD_WORDS])
}

fn check_record(op: &'static str, record: &Tensor) -> Result<()> {
    if record.dtype() != DType::U32 {
        return Err(Error::DType {
            op,
            got: record.dtype(),
            supported: "u32 (the record; make it with nonfinite::new_record)",
        });
    }
    require_shape(op, record, &[RECORD_WORDS])
}

/// Records one dispatch (one workgroup) that updates `record` from the
/// loss vector `losses` of optimiser step `step`: if any loss is NaN or
/// ±inf (tested on the bits), the step is counted and, when the record is
/// still empty, `[step, lowest non-finite task, kind]` is written. A set
/// record is never overwritten until `reset_record`. Deterministic: a
/// fixed-order min tree, no atomics.
///
/// Arguments: `losses` f32 `[T]`, T ≥ 1 (the loss kernel's loss vector);
/// `record` u32 `[RECORD_WORDS]`; `step` ≥ 1, the 1-based optimiser step
/// (the one `optim::adamw_step` takes). Errors: `Error::DType` for other
/// element types, `Error::Shape` for other shapes or step 0,
/// `Error::Aliasing` when the two overlap, `Error::LoopLimit` past
/// llvmpipe's loop cap (T > 256 · 65526 ≈ 16.77 million).
///
/// # Wiring it into a training step
///
/// 1. Once per run: `let record = new_record(ctx, "nonfinite record")?;`
///    (zeros = empty) and keep it with the program.
/// 2. Every step, in the step's recorder right after the loss kernel wrote
///    the loss vector: `watch_losses(&mut rec, &losses, &record, step)?`.
///    No extra submit; one small dispatch.
/// 3. On steps whose losses are read back: after the watch dispatch, in the
///    same recorder, `let words = rec.read(&record);` next to the losses'
///    `rec.read`. After the submit, `words.wait_u32(ctx)?` and
///    `NonFiniteRecord::from_words(&words)?`: `Some(r)` means divergence
///    at step `r.step` in task `r.task` (its loss was `r.kind.value()`),
///    which becomes `Error::Diverged { step: r.step as u64, task, value }`
///    whatever step the losses were read at; `None`, all finite so far.
/// 4. To watch afresh (a new run on the same program, a resume from a
///    checkpoint): `reset_record(ctx, &record)` before the next submit.
pub fn watch_losses(rec: &mut Recorder, losses: &Tensor, record: &Tensor, step: u32) -> Result<()> {
    const OP: &str = "nonfinite::watch_losses";
    require_f32(OP, losses)?;
    check_record(OP, record)?;
    let &[tasks] = losses.shape() else {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "'{}' is {:?}; the losses are a vector [T]",
                losses.label(),
                losses.shape()
            ),
        });
    };
    if tasks == 0 {
        return Err(Error::Shape {
            op: OP,
            detail: format!("'{}' holds no task losses (T = 0)", losses.label()),
        });
    }
    if step == 0 {
        return Err(Error::Shape {
            op: OP,
            detail: "step must be ≥ 1 (step 0 marks an empty record)".into(),
        });
    }
    // Each lane walks T/256 losses, then the 8 tree levels.
    let iterations = (tasks as u64).div_ceil(WG) + EXIT_TEST + TREE_LEVELS;
    require_loop_budget(
        rec.ctx(),
        OP,
        iterations,
        || format!("{tasks} task losses loop {iterations} times per lane"),
        "watch fewer tasks per dispatch, or run on a GPU",
    )?;
    let params = Params {
        tasks: tasks as u32,
        step,
        _pad: [0; 2],
    };
    let binds = [Bind::read(1, losses), Bind::write(2, record)];
    rec.dispatch(OP, &WATCH_LOSSES, &params, &binds, [1, 1, 1])
}

/// What the first non-finite loss was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonFiniteKind {
    /// Not a number (any sign or payload).
    Nan,
    /// +inf.
    PosInf,
    /// −inf.
    NegInf,
}

impl NonFiniteKind {
    /// The record's code for it (1, 2, 3).
    pub fn code(self) -> u32 {
        match self {
            NonFiniteKind::Nan => 1,
            NonFiniteKind::PosInf => 2,
            NonFiniteKind::NegInf => 3,
        }
    }

    /// The kind with record code `code`, if any.
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(NonFiniteKind::Nan),
            2 => Some(NonFiniteKind::PosInf),
            3 => Some(NonFiniteKind::NegInf),
            _ => None,
        }
    }

    /// A loss of this kind (for `Error::Diverged`'s `value`).
    pub fn value(self) -> f32 {
        match self {
            NonFiniteKind::Nan => f32::NAN,
            NonFiniteKind::PosInf => f32::INFINITY,
            NonFiniteKind::NegInf => f32::NEG_INFINITY,
        }
    }
}

/// A set record, decoded on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonFiniteRecord {
    /// The first (1-based) step with a non-finite loss.
    pub step: u32,
    /// The lowest task index whose loss was non-finite at that step.
    pub task: u32,
    /// That loss.
    pub kind: NonFiniteKind,
    /// Watched steps with any non-finite loss since the last reset
    /// (≥ 1; saturates at `u32::MAX`).
    pub nonfinite_steps: u32,
}

impl NonFiniteRecord {
    /// Decodes the record's words (read back from the record tensor):
    /// `None` while every watched loss was finite. `Error::Shape` when
    /// `words` is not `RECORD_WORDS` long or holds no valid record.
    pub fn from_words(words: &[u32]) -> Result<Option<NonFiniteRecord>> {
        const OP: &str = "nonfinite::NonFiniteRecord::from_words";
        let &[step, task, code, nonfinite_steps] = words else {
            return Err(Error::Shape {
                op: OP,
                detail: format!("{} words; the record has {RECORD_WORDS}", words.len()),
            });
        };
        if step == 0 {
            return Ok(None);
        }
        match NonFiniteKind::from_code(code) {
            Some(kind) if nonfinite_steps > 0 => Ok(Some(NonFiniteRecord {
                step,
                task,
                kind,
                nonfinite_steps,
            })),
            _ => Err(Error::Shape {
                op: OP,
                detail: format!("{words:?} is not a record (kind 1..=3, count ≥ 1)"),
            }),
        }
    }
}
