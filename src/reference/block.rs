//! Reference for `shaders/block.wgsl`: column blocks of row-major
//! matrices.

/// A block of `rows`×`cols` at column `src_col` of a matrix with `src_ld`
/// columns, written (or added, `accumulate`) at column `dst_col` of a
/// matrix with `dst_ld` columns, scaled by `alpha`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub rows: usize,
    pub cols: usize,
    pub src_col: usize,
    pub src_ld: usize,
    pub dst_col: usize,
    pub dst_ld: usize,
}

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
