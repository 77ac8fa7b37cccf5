//! Column-block copies: reference cases (including a folded grid) and
//! argument errors.

use manytask::gpu::Tensor;
use manytask::kernels::block::copy_block;

use crate::common::{check_cases, contexts};

#[test]
fn copy_block_matches_reference() {
    check_cases("block", |c| c.kernel.starts_with("block::"));
}

#[test]
fn copy_block_rejects_blocks_outside_the_matrices() {
    let ctx = &contexts()[0];
    let a = Tensor::zeros(ctx, "a", &[3, 4]).unwrap();
    let b = Tensor::zeros(ctx, "b", &[3, 2]).unwrap();
    let c = Tensor::zeros(ctx, "c", &[2, 4]).unwrap();
    let mut rec = ctx.recorder("bad");
    let e = copy_block(&mut rec, &a, 1, &b, 0, 3, 1.0, false).unwrap_err();
    assert!(e.to_string().contains("columns 0..3 of 'b'"), "{e}");
    assert!(copy_block(&mut rec, &a, 0, &c, 0, 1, 1.0, false).is_err());
    assert_eq!(rec.dispatch_count(), 0);
}
