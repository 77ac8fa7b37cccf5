//! Launchers for `shaders/soft_sharing.wgsl`: soft-sharing regularisers
//! on stacked per-task weights W [T, d] (task t's d weights at t·d): the
//! L2-distance and task-clustering gradient terms (added to the weight
//! gradients), and the group-lasso proximal step (after the optimiser).
//! Each also writes per-element partials of its value; `value` sums them
//! with the deterministic `reduce::sum`.
//! Reference: `reference::soft_sharing`; tests: kernels-tests/soft_sharing.rs.

use crate::error::{Error, Result};
use crate::gpu::{Bind, KernelSpec, Recorder, Shader, Tensor};
use crate::kernels::check::require_f32;
use crate::kernels::reduce;
pub use crate::types::Regulariser;

/// `l2_distance`: the L2-distance gradient term and value partials.
pub const L2_DISTANCE: KernelSpec = KernelSpec::new(Shader::SoftSharing, "l2_distance");
/// `clustering`: the task-clustering gradient term and value partials.
pub const CLUSTERING: KernelSpec = KernelSpec::new(Shader::SoftSharing, "clustering");
/// `group_lasso_prox`: the group-lasso shrinkage, in place.
pub const GROUP_LASSO_PROX: KernelSpec = KernelSpec::new(Shader::SoftSharing, "group_lasso_prox");

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    vec![L2_DISTANCE, CLUSTERING, GROUP_LASSO_PROX]
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    tasks: u32,
    d: u32,
    row_groups: u32,
    _pad: u32,
    lambda: f32,
    step: f32,
    _pad1: [f32; 2],
}

/// Checks W (T·d elements), the partials buffer ([d]) and returns d.
fn check(
    op: &'static str,
    tasks: usize,
    w: &Tensor,
    partial: &Tensor,
    lambda: f32,
) -> Result<usize> {
    require_f32(op, w)?;
    require_f32(op, partial)?;
    if tasks < 2 || !w.len().is_multiple_of(tasks) {
        return Err(Error::Shape {
            op,
            detail: format!(
                "'{}' ({} elements) must stack ≥ 2 equal task blocks; got {tasks} tasks",
                w.label(),
                w.len()
            ),
        });
    }
    let d = w.len() / tasks;
    if partial.len() != d {
        return Err(Error::Shape {
            op,
            detail: format!("partials '{}' must have {d} elements", partial.label()),
        });
    }
    if !lambda.is_finite() || lambda < 0.0 {
        return Err(Error::Shape {
            op,
            detail: format!("λ = {lambda} must be finite and ≥ 0"),
        });
    }
    Ok(d)
}

#[allow(clippy::too_many_arguments)]
fn dispatch(
    rec: &mut Recorder,
    op: &'static str,
    spec: &KernelSpec,
    tasks: usize,
    d: usize,
    lambda: f32,
    step: f32,
    binds: &[Bind],
) -> Result<()> {
    let [gx, gy, gz] = rec.grid_for_groups(op, (d as u64).div_ceil(256))?;
    let params = Params {
        tasks: tasks as u32,
        d: d as u32,
        row_groups: gx,
        _pad: 0,
        lambda,
        step,
        _pad1: [0.0; 2],
    };
    rec.dispatch(op, spec, &params, binds, [gx, gy, gz])
}

/// Adds the regulariser's gradient to `grad` (same layout as `w`) and
/// writes its value's partials. Not for `GroupLasso` (use `prox`).
pub fn add_gradient(
    rec: &mut Recorder,
    reg: &Regulariser,
    tasks: usize,
    w: &Tensor,
    grad: &Tensor,
    partial: &Tensor,
) -> Result<()> {
    const OP: &str = "soft_sharing::add_gradient";
    let d = check(OP, tasks, w, partial, reg.lambda())?;
    if grad.len() != w.len() {
        return Err(Error::Shape {
            op: OP,
            detail: format!("gradient '{}' must match '{}'", grad.label(), w.label()),
        });
    }
    let spec = match reg {
        Regulariser::L2Distance { .. } => &L2_DISTANCE,
        Regulariser::Clustering { .. } => &CLUSTERING,
        _ => {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "{reg:?} is not an elementwise gradient term (group lasso: prox; trace norm: kernels::trace_norm)"
                ),
            })
        }
    };
    let binds = [
        Bind::write(1, w),
        Bind::write(2, grad),
        Bind::write(3, partial),
    ];
    dispatch(rec, OP, spec, tasks, d, reg.lambda(), 0.0, &binds)
}

/// The group-lasso proximal step with step size `eta·λ`, in place on `w`;
/// the partials hold the value before the step.
pub fn group_lasso_prox(
    rec: &mut Recorder,
    tasks: usize,
    lambda: f32,
    eta: f32,
    w: &Tensor,
    partial: &Tensor,
) -> Result<()> {
    const OP: &str = "soft_sharing::group_lasso_prox";
    let d = check(OP, tasks, w, partial, lambda)?;
    let binds = [Bind::write(1, w), Bind::write(3, partial)];
    dispatch(
        rec,
        OP,
        &GROUP_LASSO_PROX,
        tasks,
        d,
        lambda,
        eta * lambda,
        &binds,
    )
}

/// `out[0] = Σ partials`: the regulariser's value.
pub fn value(rec: &mut Recorder, partial: &Tensor, out: &Tensor) -> Result<()> {
    reduce::sum(rec, partial, out)
}
