//! Reference for `shaders/block.wgsl`: column blocks of row-major
//! matrices.

/// A block of `rows`×`cols` at column `src_col` of a matrix with `src_ld`
/// columns, written (or added, `accumulate`) at column `dst_col` of a
/// matrix with `dst_ld` columns, scaled by `alpha`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// Rows of the block (and of both matrices).
    pub rows: usize,
    /// Columns of the block.
    pub cols: usize,
    /// First column of the block in the source.
    pub src_col: usize,
    /// Columns of the source matrix (its row stride).
    pub src_ld: usize,
    /// First column of the block in the destination.
    pub dst_col: usize,
    /// Columns of the destination matrix (its row stride).
    pub dst_ld: usize,
}

/// dst block = alpha · src block, or += with `accumulate`.
pub fn copy_block(b: &Block, alpha: f32, accumulate: bool, src: &[f32], dst: &mut [f32]) {
    for r in 0..b.rows {
        for c in 0..b.cols {
            let v = alpha as f64 * src[r * b.src_ld + b.src_col + c] as f64;
            let d = &mut dst[r * b.dst_ld + b.dst_col + c];
            *d = if accumulate {
                (*d as f64 + v) as f32
            } else {
                v as f32
            };
        }
    }
}
