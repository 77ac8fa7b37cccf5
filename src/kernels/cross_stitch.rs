//! Launchers for `shaders/cross_stitch.wgsl`: the cross-stitch unit's
//! mix (forward, and αᵀ for dX) and its α gradient, deterministic.
//! Reference: `reference::cross_stitch`; tests: kernels-tests/cross_stitch.rs.

use crate::error::{Error, Result};
use crate::gpu::{Bind, KernelSpec, Recorder, Shader, Tensor};
use crate::kernels::check::require_f32;

const WG: u64 = 256;

/// The mix kernel for (per channel, transposed α, accumulate).
pub fn mix_spec(per_channel: bool, transpose: bool, accumulate: bool) -> KernelSpec {
    KernelSpec::new(Shader::CrossStitch, "stitch_mix")
        .with_flag("PER_CHANNEL", per_channel)
        .with_flag("TRANSPOSE", transpose)
        .with_flag("ACCUMULATE", accumulate)
}

/// The α-gradient kernel (per layer: workgroup tree; per channel: one
/// invocation per entry).
pub fn alpha_grad_spec(per_channel: bool, accumulate: bool) -> KernelSpec {
    let entry = if per_channel {
        "stitch_alpha_grad_channel"
    } else {
        "stitch_alpha_grad"
    };
    KernelSpec::new(Shader::CrossStitch, entry)
        .with_flag("PER_CHANNEL", per_channel)
        .with_flag("ACCUMULATE", accumulate)
}

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    let mut all = Vec::new();
    for pc in [false, true] {
        for acc in [false, true] {
            all.push(alpha_grad_spec(pc, acc));
            for tr in [false, true] {
                all.push(mix_spec(pc, tr, acc));
            }
        }
    }
    all
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    channels: u32,
    tasks: u32,
    row_groups: u32,
}

/// The shape of one unit: X is [rows, tasks·channels].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stitch {
    /// T: task blocks mixed.
    pub tasks: usize,
    /// One α per channel ([C, T, T]) instead of one [T, T].
    pub per_channel: bool,
}

impl Stitch {
    /// (rows, channels) of `x`, checked; and α's expected shape.
    fn check(&self, op: &'static str, x: &Tensor, alpha: &Tensor) -> Result<(usize, usize)> {
        require_f32(op, x)?;
        require_f32(op, alpha)?;
        let bad = |detail: String| Error::Shape { op, detail };
        let &[rows, width] = x.shape() else {
            return Err(bad(format!(
                "'{}' is {:?}; expected [rows, tasks·channels]",
                x.label(),
                x.shape()
            )));
        };
        if self.tasks == 0 || width % self.tasks != 0 {
            return Err(bad(format!(
                "{width} columns of '{}' do not split into {} tasks",
                x.label(),
                self.tasks
            )));
        }
        let channels = width / self.tasks;
        let want = self.alpha_shape(channels);
        if alpha.shape() != want.as_slice() {
            return Err(bad(format!(
                "α '{}' is {:?}, expected {want:?}",
                alpha.label(),
                alpha.shape()
            )));
        }
        Ok((rows, channels))
    }

    /// α's shape for `channels` columns per task: [T, T] or [C, T, T].
    pub fn alpha_shape(&self, channels: usize) -> Vec<usize> {
        if self.per_channel {
            vec![channels, self.tasks, self.tasks]
        } else {
            vec![self.tasks, self.tasks]
        }
    }
}

/// `out = mix(x)` (α, or αᵀ with `transpose`: the backward dX = αᵀ·dY);
/// `accumulate` adds into `out`.
pub fn stitch_mix(
    rec: &mut Recorder,
    unit: &Stitch,
    x: &Tensor,
    alpha: &Tensor,
    out: &Tensor,
    transpose: bool,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "cross_stitch::stitch_mix";
    let (rows, channels) = unit.check(OP, x, alpha)?;
    if out.shape() != x.shape() {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "'{}' {:?} must match '{}' {:?}",
                out.label(),
                out.shape(),
                x.label(),
                x.shape()
            ),
        });
    }
    // One invocation per (row, channel).
    let n = (rows * channels) as u64;
    if n == 0 {
        return Ok(());
    }
    let [gx, gy, gz] = rec.grid_for_groups(OP, n.div_ceil(WG))?;
    let params = Params {
        rows: rows as u32,
        channels: channels as u32,
        tasks: unit.tasks as u32,
        row_groups: gx,
    };
    // Each invocation runs T outputs × T sources.
    let t = unit.tasks as u64;
    crate::kernels::check::require_loop_budget(
        rec.ctx(),
        OP,
        t * t + t,
        || format!("{t} tasks loop {} times per invocation", t * t + t),
        "stitch fewer task columns per unit; or run on a GPU",
    )?;
    let binds = [Bind::read(1, x), Bind::read(2, alpha), Bind::write(3, out)];
    rec.dispatch(
        OP,
        &mix_spec(unit.per_channel, transpose, accumulate),
        &params,
        &binds,
        [gx, gy, gz],
    )
}

/// dα from the unit's input `x` and the gradient of its output `dy`;
/// `accumulate` adds into `dalpha` (α shared by several units).
pub fn stitch_alpha_grad(
    rec: &mut Recorder,
    unit: &Stitch,
    x: &Tensor,
    dy: &Tensor,
    dalpha: &Tensor,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "cross_stitch::stitch_alpha_grad";
    let (rows, channels) = unit.check(OP, x, dalpha)?;
    if dy.shape() != x.shape() {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "dY '{}' {:?} must match X {:?}",
                dy.label(),
                dy.shape(),
                x.shape()
            ),
        });
    }
    let tt = (unit.tasks * unit.tasks) as u64;
    let groups = if unit.per_channel {
        (channels as u64 * tt).div_ceil(WG)
    } else {
        tt
    };
    let [gx, gy, gz] = rec.grid_for_groups(OP, groups)?;
    if !unit.per_channel && gy > 1 {
        return Err(Error::GridTooLarge {
            op: OP,
            detail: format!("{} tasks need {tt} workgroups in one row", unit.tasks),
        });
    }
    let params = Params {
        rows: rows as u32,
        channels: channels as u32,
        tasks: unit.tasks as u32,
        row_groups: gx,
    };
    // Per layer: each lane walks rows / phases rows and channels / span
    // channels (the shader's lane split); per channel: every row.
    let iterations = if unit.per_channel {
        rows as u64
    } else {
        let span = channels.clamp(1, 256) as u64;
        (rows as u64).div_ceil(256 / span) * (channels as u64).div_ceil(span) + 8
    };
    crate::kernels::check::require_row_walk(rec.ctx(), OP, rows, channels, iterations)?;
    let binds = [Bind::read(1, x), Bind::write(3, dalpha), Bind::read(4, dy)];
    rec.dispatch(
        OP,
        &alpha_grad_spec(unit.per_channel, accumulate),
        &params,
        &binds,
        [gx, gy, gz],
    )
}
