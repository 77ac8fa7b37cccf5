//! Launchers for `shaders/cross_stitch.wgsl`: the cross-stitch unit's
//! mix (forward, and αᵀ for dX) and its α gradient, deterministic.
//! Reference: `reference::cross_stitch`; tests: kernels-tests/cross_stitch.rs.

use crate::error::{Error, Result};
use crate::gpu::{Bind, DType, KernelSpec, Recorder, Shader, Tensor};
use crate::kernels::check::require_f32;

const WG: u64 = 256;

/// How a kernel's lanes move channels: 4 at a time as vec4s (C % 4 == 0:
/// every task block starts on a 16-byte boundary), or one float at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lanes {
    /// vec4 loads and stores.
    Vec4,
    /// Scalar loads and stores.
    Scalar,
}

impl Lanes {
    /// Vec4 where `channels` allows it.
    pub fn for_channels(channels: usize) -> Self {
        if channels.is_multiple_of(4) {
            Lanes::Vec4
        } else {
            Lanes::Scalar
        }
    }
}

/// Most tasks the loop-free mix kernels take (α in 16 named registers).
pub const SMALL_TASKS: usize = 4;
/// Rows one invocation of the loop-free mix kernels walks (α loaded once
/// for all of them).
const MIX_ROWS: u64 = 16;

/// The mix kernel for (lanes, T ≤ `SMALL_TASKS`, per channel, transposed
/// α, accumulate).
pub fn mix_spec(
    lanes: Lanes,
    small: bool,
    per_channel: bool,
    transpose: bool,
    accumulate: bool,
) -> KernelSpec {
    let entry = match (lanes, small) {
        (Lanes::Vec4, true) => "stitch_mix4_small",
        (Lanes::Scalar, true) => "stitch_mix_small",
        (Lanes::Vec4, false) => "stitch_mix4",
        (Lanes::Scalar, false) => "stitch_mix",
    };
    KernelSpec::new(Shader::CrossStitch, entry)
        .with_flag("PER_CHANNEL", per_channel)
        .with_flag("TRANSPOSE", transpose)
        .with_flag("ACCUMULATE", accumulate)
}

/// dα's first stage: per-chunk partial sums over 4×4 blocks of task
/// pairs and groups of 4 channels (per layer: summed over the 4; per
/// channel: apart).
pub fn alpha_partials_spec(lanes: Lanes, per_channel: bool) -> KernelSpec {
    KernelSpec::new(Shader::CrossStitch, "stitch_alpha_partials")
        .with_flag("PER_CHANNEL", per_channel)
        .with_flag("VEC4", lanes == Lanes::Vec4)
}

/// dα's second stage: the partials summed in a fixed order (per channel:
/// one invocation per entry; per layer: one workgroup tree per entry).
pub fn alpha_sum_spec(per_channel: bool, accumulate: bool) -> KernelSpec {
    let entry = if per_channel {
        "stitch_alpha_sum"
    } else {
        "stitch_alpha_sum_tree"
    };
    KernelSpec::new(Shader::CrossStitch, entry).with_flag("ACCUMULATE", accumulate)
}

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    let mut all = Vec::new();
    for pc in [false, true] {
        for acc in [false, true] {
            all.push(alpha_sum_spec(pc, acc));
            for lanes in [Lanes::Vec4, Lanes::Scalar] {
                for small in [false, true] {
                    for tr in [false, true] {
                        all.push(mix_spec(lanes, small, pc, tr, acc));
                    }
                }
            }
        }
        for lanes in [Lanes::Vec4, Lanes::Scalar] {
            all.push(alpha_partials_spec(lanes, pc));
        }
    }
    all
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    channels: u32,
    tasks: u32,
    row_groups: u32,
    chunk_rows: u32,
    chunks: u32,
    terms: u32,
    outputs: u32,
}

/// Stage 1 of dα aims at this many invocations (enough to fill a CPU
/// adapter's threads and SIMD lanes; a GPU wants no more for a sum this
/// small) ...
const TARGET_INVOCATIONS: u64 = 16_384;
/// ... with each walking at least this many rows of its chunk.
const MIN_CHUNK_ROWS: u64 = 8;
/// The most partials one stage-2 lane sums (under llvmpipe's loop cap).
const MAX_STAGE2_TERMS: u64 = 32_768;

/// How a two-stage row reduction (dα here, dβ in `layer_stitch`) splits
/// the rows: stage 1 sums chunks of rows, stage 2 the chunks' partials.
/// A function of the shape alone: the sums' order never depends on the
/// adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkPlan {
    /// Rows per chunk (what one stage-1 lane walks).
    pub chunk_rows: u64,
    /// Row chunks.
    pub chunks: u64,
    /// Partials per output entry (stage 2 sums them; 0 for no rows).
    pub terms: u64,
}

impl ChunkPlan {
    /// `per_chunk` stage-1 invocations per chunk, each writing
    /// `partial_rows_per_chunk` rows of partials; stage 2 sums them with
    /// `stage2_lanes` lanes per entry (1, or a 256-lane tree). `empty`:
    /// nothing to sum.
    pub fn new(
        rows: usize,
        per_chunk: u64,
        partial_rows_per_chunk: u64,
        stage2_lanes: u64,
        empty: bool,
    ) -> Self {
        let rows = rows as u64;
        let per_chunk = per_chunk.max(1);
        // Enough invocations, at least MIN_CHUNK_ROWS rows each, and few
        // enough chunks that stage 2's lanes stay under the loop cap.
        let max_chunks = (MAX_STAGE2_TERMS * stage2_lanes / partial_rows_per_chunk.max(1)).max(1);
        let chunk_rows = (rows * per_chunk)
            .div_ceil(TARGET_INVOCATIONS)
            .max(MIN_CHUNK_ROWS)
            .max(rows.div_ceil(max_chunks))
            .max(1);
        let chunks = rows.div_ceil(chunk_rows).max(1);
        ChunkPlan {
            chunk_rows,
            chunks,
            terms: if empty || rows == 0 {
                0
            } else {
                chunks * partial_rows_per_chunk
            },
        }
    }

    /// Loop iterations of the busiest lane of either stage.
    pub fn iterations(&self, stage2_lanes: u64) -> u64 {
        self.chunk_rows.max(self.terms.div_ceil(stage2_lanes)) + 8
    }
}

/// How stage 2 sums the partials of each entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage2 {
    /// One invocation per entry, partials in order.
    PerEntry,
    /// One workgroup per entry: 256 strided lanes, then a fixed tree.
    Tree,
}

impl Stage2 {
    /// Lanes summing one entry.
    pub fn lanes(self) -> u64 {
        match self {
            Stage2::PerEntry => 1,
            Stage2::Tree => WG,
        }
    }
}

/// Stage 2: `out[i] (+)= Σ_j partials[j·outputs + i]` over `terms` rows
/// of partials, in a fixed order (`terms` = 0: zeros).
pub(crate) fn sum_partials(
    rec: &mut Recorder,
    op: &'static str,
    how: Stage2,
    partials: &Tensor,
    out: &Tensor,
    terms: u64,
    accumulate: bool,
) -> Result<()> {
    let outputs = out.len() as u64;
    if outputs == 0 {
        return Ok(());
    }
    let groups = match how {
        Stage2::PerEntry => outputs.div_ceil(WG),
        Stage2::Tree => outputs,
    };
    let [gx, gy, gz] = rec.grid_for_groups(op, groups)?;
    let params = Params {
        row_groups: gx,
        terms: terms as u32,
        outputs: outputs as u32,
        ..Params::default()
    };
    let binds = [Bind::read(1, partials), Bind::write(3, out)];
    let spec = alpha_sum_spec(how == Stage2::PerEntry, accumulate);
    rec.dispatch(op, &spec, &params, &binds, [gx, gy, gz])
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
    // Lanes of 4 channels as vec4s, or of one; T ≤ 4: MIX_ROWS rows per
    // invocation, else one.
    let lanes = Lanes::for_channels(channels);
    let per_row = match lanes {
        Lanes::Vec4 => channels / 4,
        Lanes::Scalar => channels,
    } as u64;
    let small = unit.tasks <= SMALL_TASKS;
    let rows_per_lane = if small { MIX_ROWS } else { 1 };
    let n = (rows as u64).div_ceil(rows_per_lane) * per_row;
    if n == 0 {
        return Ok(());
    }
    let [gx, gy, gz] = rec.grid_for_groups(OP, n.div_ceil(WG))?;
    let params = Params {
        rows: rows as u32,
        channels: channels as u32,
        tasks: unit.tasks as u32,
        row_groups: gx,
        chunk_rows: rows_per_lane as u32,
        ..Params::default()
    };
    // T > 4: ⌈T/4⌉ output blocks × T sources per invocation.
    let t = unit.tasks as u64;
    let iterations = if small {
        rows_per_lane
    } else {
        t.div_ceil(4) * (t + 1)
    };
    crate::kernels::check::require_loop_budget(
        rec.ctx(),
        OP,
        iterations,
        || format!("{t} tasks loop {iterations} times per invocation"),
        "stitch fewer task columns per unit; or run on a GPU",
    )?;
    let spec = mix_spec(lanes, small, unit.per_channel, transpose, accumulate);
    match lanes {
        Lanes::Vec4 => {
            let binds = [Bind::read(5, x), Bind::read(2, alpha), Bind::write(6, out)];
            rec.dispatch(OP, &spec, &params, &binds, [gx, gy, gz])
        }
        Lanes::Scalar => {
            let binds = [Bind::read(1, x), Bind::read(2, alpha), Bind::write(3, out)];
            rec.dispatch(OP, &spec, &params, &binds, [gx, gy, gz])
        }
    }
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
    let outputs = dalpha.len() as u64;
    if outputs == 0 {
        return Ok(());
    }
    // Stage 1: per-chunk partials into a scratch tensor; stage 2: the
    // partials summed in a fixed order into dα.
    let groups = channels.div_ceil(4) as u64;
    let blocks = unit.tasks.div_ceil(4) as u64;
    let (how, partial_rows) = if unit.per_channel {
        (Stage2::PerEntry, 1)
    } else {
        (Stage2::Tree, groups)
    };
    let plan = ChunkPlan::new(
        rows,
        blocks * blocks * groups,
        partial_rows,
        how.lanes(),
        channels == 0,
    );
    crate::kernels::check::require_row_walk(
        rec.ctx(),
        OP,
        rows,
        channels,
        plan.iterations(how.lanes()),
    )?;
    let lanes = Lanes::for_channels(channels);
    let partials = Tensor::empty(
        rec.ctx(),
        "cross_stitch dα partials",
        &[(plan.terms * outputs).max(1) as usize],
        DType::F32,
    )?;
    if plan.terms > 0 {
        let stage1 = plan.chunks * blocks * blocks * groups;
        let [gx, gy, gz] = rec.grid_for_groups(OP, stage1.div_ceil(WG))?;
        let params = Params {
            rows: rows as u32,
            channels: channels as u32,
            tasks: unit.tasks as u32,
            row_groups: gx,
            chunk_rows: plan.chunk_rows as u32,
            chunks: plan.chunks as u32,
            terms: plan.terms as u32,
            outputs: outputs as u32,
        };
        let binds = [
            Bind::read(1, x),
            Bind::write(3, &partials),
            Bind::read(4, dy),
            Bind::read(5, x),
            Bind::read(7, dy),
        ];
        rec.dispatch(
            OP,
            &alpha_partials_spec(lanes, unit.per_channel),
            &params,
            &binds,
            [gx, gy, gz],
        )?;
    }
    sum_partials(rec, OP, how, &partials, dalpha, plan.terms, accumulate)
}
