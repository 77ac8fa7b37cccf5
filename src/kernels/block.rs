//! Launcher for `shaders/block.wgsl`: copy (or add) a column block of one
//! row-major matrix into a column block of another, scaled.
//! Reference: `reference::block`; tests: kernels-tests/block.rs.

use crate::error::{Error, Result};
use crate::gpu::{Bind, KernelSpec, Recorder, Shader, Tensor};
use crate::kernels::check::require_f32;

pub use crate::reference::block::Block;

/// `copy_block`: dst block = scale · src block.
pub const COPY_BLOCK: KernelSpec = KernelSpec::new(Shader::Block, "copy_block");
/// `copy_block` with ACCUMULATE: dst block += scale · src block.
pub const ADD_BLOCK: KernelSpec =
    KernelSpec::new(Shader::Block, "copy_block").with_flag("ACCUMULATE", true);

/// Every pipeline this module can build (for the naga cross-compile test).
pub fn specs() -> Vec<KernelSpec> {
    vec![COPY_BLOCK, ADD_BLOCK]
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    src0: u32,
    src_ld: u32,
    dst0: u32,
    dst_ld: u32,
    row_groups: u32,
    alpha: f32,
}

const OP: &str = "block::copy_block";

fn cols_of(t: &Tensor) -> Result<(usize, usize)> {
    match *t.shape() {
        [r, c] => Ok((r, c)),
        _ => Err(Error::Shape {
            op: OP,
            detail: format!("'{}' is {:?}; expected a matrix", t.label(), t.shape()),
        }),
    }
}

/// `dst[:, dst_col..+cols] (+)= alpha · src[:, src_col..+cols]` over all
/// rows (both matrices have the same row count).
#[allow(clippy::too_many_arguments)]
pub fn copy_block(
    rec: &mut Recorder,
    src: &Tensor,
    src_col: usize,
    dst: &Tensor,
    dst_col: usize,
    cols: usize,
    alpha: f32,
    accumulate: bool,
) -> Result<()> {
    require_f32(OP, src)?;
    require_f32(OP, dst)?;
    let (rows, src_ld) = cols_of(src)?;
    let (dst_rows, dst_ld) = cols_of(dst)?;
    if rows != dst_rows || src_col + cols > src_ld || dst_col + cols > dst_ld {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "columns {src_col}..{} of '{}' {:?} into columns {dst_col}..{} of '{}' {:?}",
                src_col + cols,
                src.label(),
                src.shape(),
                dst_col + cols,
                dst.label(),
                dst.shape()
            ),
        });
    }
    let n = (rows * cols) as u64;
    if n == 0 {
        return Ok(());
    }
    let [gx, gy, gz] = rec.grid_for_groups(OP, n.div_ceil(256))?;
    let params = Params {
        rows: rows as u32,
        cols: cols as u32,
        src0: src_col as u32,
        src_ld: src_ld as u32,
        dst0: dst_col as u32,
        dst_ld: dst_ld as u32,
        row_groups: gx,
        alpha,
    };
    let spec = if accumulate { &ADD_BLOCK } else { &COPY_BLOCK };
    rec.dispatch(
        OP,
        spec,
        &params,
        &[Bind::read(1, src), Bind::write(2, dst)],
        [gx, gy, gz],
    )
}
