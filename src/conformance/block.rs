//! Conformance cases for `shaders/block.wgsl` (column-block copies).

use std::sync::Arc;

use crate::conformance::{Case, Expected, HostTensor, Requirement, Tolerance};
use crate::kernels::block::{copy_block, Block};
use crate::reference::block as reference;
use crate::util::rng::Rng;

/// (rows, src_ld, dst_ld, cols, src_col, dst_col): one element, odd
/// offsets, a wide case, and one past 65 535 workgroups (folded grid).
pub const SHAPES: &[(usize, usize, usize, usize, usize, usize)] = &[
    (1, 1, 1, 1, 0, 0),
    (7, 10, 13, 3, 5, 9),
    (257, 33, 40, 20, 7, 11),
    (1 << 17, 130, 131, 129, 1, 2),
];

/// The conformance cases of `kernels::block`, each against its CPU
/// reference.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for &(rows, src_ld, dst_ld, cols, src_col, dst_col) in SHAPES {
        for accumulate in [false, true] {
            let b = Block {
                rows,
                cols,
                src_col,
                src_ld,
                dst_col,
                dst_ld,
            };
            let alpha = if accumulate { -0.5 } else { 1.0 };
            let inputs = move || {
                let mut rng = Rng::new((rows * 31 + cols) as u64);
                vec![
                    HostTensor::new(&[rows, src_ld], rng.uniform_vec(rows * src_ld, -1.0, 1.0)),
                    HostTensor::new(&[rows, dst_ld], rng.uniform_vec(rows * dst_ld, -1.0, 1.0)),
                ]
            };
            cases.push(Case {
                kernel: format!("block::copy_block[{}]", if accumulate { "add" } else { "copy" }),
                case: format!("{rows}x{cols} from col {src_col} of {src_ld} to col {dst_col} of {dst_ld} alpha={alpha}"),
                inputs: Arc::new(inputs),
                // The destination is uploaded (its other columns must
                // survive untouched) and written in place.
                gpu: Arc::new(move |rec, t| {
                    copy_block(rec, &t[0], src_col, &t[1], dst_col, cols, alpha, accumulate)?;
                    Ok(t[1].clone())
                }),
                reference: Arc::new(move |h| {
                    let mut dst = h[1].data.clone();
                    reference::copy_block(&b, alpha, accumulate, &h[0].data, &mut dst);
                    // alpha·x (+ y) in f32: one rounding each.
                    Expected { values: dst, tolerance: if accumulate { Tolerance::new(0.0, 1.2e-7) } else { Tolerance::EXACT } }
                }),
                requires: Requirement::None,
            });
        }
    }
    cases
}
