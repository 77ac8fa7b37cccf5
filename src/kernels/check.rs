//! Argument checks shared by the launchers: each returns an error naming
//! the op and the offending tensors.

use crate::error::{Error, Result};
use crate::gpu::{DType, GpuContext, Tensor};

/// `Error::DType` unless `t` holds f32.
pub fn require_f32(op: &'static str, t: &Tensor) -> Result<()> {
    if t.dtype() != DType::F32 {
        return Err(Error::DType {
            op,
            got: t.dtype(),
            supported: "f32",
        });
    }
    Ok(())
}

/// `Error::Shape` unless `a` and `b` have the same shape.
pub fn require_same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::Shape {
            op,
            detail: format!(
                "'{}' is {:?} but '{}' is {:?}",
                a.label(),
                a.shape(),
                b.label(),
                b.shape()
            ),
        });
    }
    Ok(())
}

/// `Error::Shape` unless `t` has shape `expected`.
pub fn require_shape(op: &'static str, t: &Tensor, expected: &[usize]) -> Result<()> {
    if t.shape() != expected {
        return Err(Error::Shape {
            op,
            detail: format!("'{}' is {:?}, expected {expected:?}", t.label(), t.shape()),
        });
    }
    Ok(())
}

/// `Error::LoopLimit` when one invocation of `op` would run more than the
/// adapter's `GpuContext::loop_limit` loop iterations (`iterations`, an
/// upper estimate from the launcher; `detail` says what needs them).
pub fn require_loop_budget(
    ctx: &GpuContext,
    op: &'static str,
    iterations: u64,
    detail: impl FnOnce() -> String,
    hint: &'static str,
) -> Result<()> {
    match ctx.loop_limit() {
        Some(limit) if iterations > limit => Err(Error::LoopLimit {
            op,
            detail: detail(),
            adapter: ctx.describe(),
            limit,
            hint,
        }),
        _ => Ok(()),
    }
}

/// `require_loop_budget` for kernels whose lanes walk the rows of a
/// [rows, channels] operand (`iterations` per lane, from the launcher).
pub fn require_row_walk(
    ctx: &GpuContext,
    op: &'static str,
    rows: usize,
    channels: usize,
    iterations: u64,
) -> Result<()> {
    require_loop_budget(
        ctx,
        op,
        iterations,
        || format!("{rows} rows × {channels} channels loop {iterations} times per lane"),
        "split the batch into fewer rows per step, or run on a GPU",
    )
}
