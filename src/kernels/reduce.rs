//! Launchers for `shaders/reduce.wgsl`: deterministic sums as a fixed tree
//! of passes, each pass reducing its input ≥ 4096-fold (sum) or by row
//! chunks (column sums) until one value / one row is left. All passes are
//! recorded into the caller's recorder: no host round trip in between.

use crate::error::{Error, Result};
use crate::gpu::{Bind, DType, KernelSpec, Recorder, Shader, Tensor};
use crate::kernels::check::{require_f32, require_shape};

/// Invocations of a `sum_partials` workgroup.
const SUM_WG: u64 = 256;
/// Elements each `sum_partials` invocation adds before the tree, at least:
/// barriers are the cost on CPU devices, so one tree serves ≥ 4096 elements.
const SUM_MIN_CHUNK: u64 = 16;
/// Workgroups of the first pass, at most (ample for any GPU's occupancy);
/// beyond it each invocation loops over more elements instead.
const SUM_MAX_GROUPS: u64 = 4096;
/// Columns per `colsum_partials` workgroup.
const COL_TILE: u64 = 16;
/// Rows one `colsum_partials` workgroup sums at least (keeps the row loop
/// long enough to amortise the tree).
const MIN_ROWS_PER_CHUNK: u64 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    cols: u32,
    chunk: u32,
    groups: u32,
}

/// `sum_partials`: one tree level of a sum.
pub const SUM: KernelSpec = KernelSpec::new(Shader::Reduce, "sum_partials");
/// `sum_partials` with SQUARE: the first level of a sum of squares.
pub const SUM_SQUARES: KernelSpec =
    KernelSpec::new(Shader::Reduce, "sum_partials").with_flag("SQUARE", true);
/// `colsum_partials`: per-column partial sums over row chunks.
pub const COLSUM: KernelSpec = KernelSpec::new(Shader::Reduce, "colsum_partials");

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    vec![SUM, SUM_SQUARES, COLSUM]
}

/// `out[0] = Σ x` (any shape; `out` has shape `[1]`).
pub fn sum(rec: &mut Recorder, x: &Tensor, out: &Tensor) -> Result<()> {
    sum_tree(rec, "reduce::sum", &SUM, x, out)
}

/// `out[0] = Σ x²` (any shape; `out` has shape `[1]`).
pub fn sum_squares(rec: &mut Recorder, x: &Tensor, out: &Tensor) -> Result<()> {
    sum_tree(rec, "reduce::sum_squares", &SUM_SQUARES, x, out)
}

fn sum_tree(
    rec: &mut Recorder,
    op: &'static str,
    first: &KernelSpec,
    x: &Tensor,
    out: &Tensor,
) -> Result<()> {
    require_f32(op, x)?;
    require_f32(op, out)?;
    require_shape(op, out, &[1])?;
    let mut input = x.clone();
    let mut n = x.len() as u64;
    let mut kernel = first;
    loop {
        // The tree's shape is a function of n alone: deterministic.
        let chunk = n.div_ceil(SUM_WG * SUM_MAX_GROUPS).max(SUM_MIN_CHUNK);
        // An empty input still runs one group, which writes 0.
        let groups = n.div_ceil(SUM_WG * chunk).max(1);
        let target = if groups == 1 {
            out.clone()
        } else {
            Tensor::empty(
                rec.ctx(),
                &format!("{op} partials"),
                &[groups as usize],
                DType::F32,
            )?
        };
        let params = Params {
            n: n as u32,
            cols: 0,
            chunk: chunk as u32,
            groups: groups as u32,
        };
        let grid = rec.grid_for_groups(op, groups)?;
        rec.dispatch(
            op,
            kernel,
            &params,
            &[Bind::read(1, &input), Bind::write(2, &target)],
            grid,
        )?;
        if groups == 1 {
            return Ok(());
        }
        input = target;
        n = groups;
        kernel = &SUM;
    }
}

/// `out[c] = Σ_r x[r, c]` for x of shape (rows, cols) and out of shape (cols).
pub fn column_sums(rec: &mut Recorder, x: &Tensor, out: &Tensor) -> Result<()> {
    const OP: &str = "reduce::column_sums";
    require_f32(OP, x)?;
    require_f32(OP, out)?;
    let &[rows, cols] = x.shape() else {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "'{}' is {:?}; column sums take a matrix (rows, cols)",
                x.label(),
                x.shape()
            ),
        });
    };
    require_shape(OP, out, &[cols])?;
    if cols == 0 {
        return Ok(());
    }
    let max_dim = rec.ctx().limits().max_compute_workgroups_per_dimension as u64;
    let tiles = (cols as u64).div_ceil(COL_TILE);
    let mut input = x.clone();
    let mut rows = rows as u64;
    loop {
        // Row chunks go on grid z, which holds at most max_dim of them.
        let rows_per_chunk = rows
            .div_ceil(max_dim)
            .next_multiple_of(COL_TILE)
            .max(MIN_ROWS_PER_CHUNK);
        let chunks = rows.div_ceil(rows_per_chunk).max(1);
        let target = if chunks == 1 {
            out.clone()
        } else {
            Tensor::empty(
                rec.ctx(),
                &format!("{OP} partials"),
                &[chunks as usize, cols],
                DType::F32,
            )?
        };
        let params = Params {
            n: rows as u32,
            cols: cols as u32,
            chunk: rows_per_chunk as u32,
            groups: tiles as u32,
        };
        let [gx, gy, _] = rec.grid_for_groups(OP, tiles)?;
        let binds = [Bind::read(1, &input), Bind::write(2, &target)];
        rec.dispatch(OP, &COLSUM, &params, &binds, [gx, gy, chunks as u32])?;
        if chunks == 1 {
            return Ok(());
        }
        input = target;
        rows = chunks;
    }
}
