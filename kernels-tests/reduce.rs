//! Reduction family: every entry point against its CPU reference, bitwise
//! determinism, and argument errors.

use manytask::gpu::{DType, Tensor};
use manytask::kernels::reduce;
use manytask::Error;

use crate::common::{check_kernel, contexts, data};

#[test]
fn sum_matches_reference_at_every_size() {
    check_kernel("reduce::sum");
}

#[test]
fn sum_squares_matches_reference_at_every_size() {
    check_kernel("reduce::sum_squares");
}

#[test]
fn column_sums_match_reference_at_every_shape() {
    check_kernel("reduce::column_sums");
}

/// Same input, same adapter: the same bits, every time (no atomics, fixed
/// tree). Real-valued data, so a different summation order would show.
#[test]
fn reductions_are_bit_identical_across_runs() {
    let x = data(5, 1_234_569); // 7 × 176 367
    for ctx in contexts() {
        let run = || {
            let t = Tensor::from_f32(ctx, "x", &[1_234_569], &x).unwrap();
            let m = t.reshape(&[1_234_569 / 7, 7]).unwrap();
            let s = Tensor::empty(ctx, "sum", &[1], DType::F32).unwrap();
            let q = Tensor::empty(ctx, "sumsq", &[1], DType::F32).unwrap();
            let c = Tensor::empty(ctx, "colsum", &[7], DType::F32).unwrap();
            let mut rec = ctx.recorder("determinism");
            reduce::sum(&mut rec, &t, &s).unwrap();
            reduce::sum_squares(&mut rec, &t, &q).unwrap();
            reduce::column_sums(&mut rec, &m, &c).unwrap();
            rec.submit().unwrap();
            let mut bits: Vec<u32> = s
                .to_f32_vec(ctx)
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            bits.extend(q.to_f32_vec(ctx).unwrap().iter().map(|v| v.to_bits()));
            bits.extend(c.to_f32_vec(ctx).unwrap().iter().map(|v| v.to_bits()));
            bits
        };
        let first = run();
        for _ in 0..3 {
            assert_eq!(
                run(),
                first,
                "reduction result changed between runs on {}",
                ctx.describe()
            );
        }
    }
}

#[test]
fn a_multi_pass_sum_is_recorded_into_one_submit() {
    let ctx = &crate::common::private_contexts()[0];
    let x = Tensor::from_f32(ctx, "x", &[100_000], &data(1, 100_000)).unwrap();
    let s = Tensor::empty(ctx, "sum", &[1], DType::F32).unwrap();
    let before = ctx.counters();
    let mut rec = ctx.recorder("sum");
    reduce::sum(&mut rec, &x, &s).unwrap();
    // 100 000 -> 25 partials (4096 elements per workgroup) -> 1: two passes.
    assert_eq!(rec.dispatch_count(), 2);
    rec.submit().unwrap();
    let delta = ctx.counters().since(&before);
    assert_eq!((delta.dispatches, delta.submits), (2, 1));
}

#[test]
fn column_sums_reject_a_vector_and_a_wrong_output_shape() {
    let ctx = &contexts()[0];
    let v = Tensor::zeros(ctx, "v", &[6]).unwrap();
    let out = Tensor::zeros(ctx, "out", &[6]).unwrap();
    let mut rec = ctx.recorder("bad colsum");
    let err = reduce::column_sums(&mut rec, &v, &out).unwrap_err();
    assert!(
        matches!(err, Error::Shape { .. }) && err.to_string().contains("matrix"),
        "{err}"
    );
    let m = v.reshape(&[2, 3]).unwrap();
    let err = reduce::column_sums(&mut rec, &m, &out).unwrap_err();
    assert!(err.to_string().contains("expected [3]"), "{err}");
}

#[test]
fn sum_output_must_have_shape_one() {
    let ctx = &contexts()[0];
    let x = Tensor::zeros(ctx, "x", &[4]).unwrap();
    let out = Tensor::zeros(ctx, "out", &[2]).unwrap();
    let mut rec = ctx.recorder("bad sum");
    let err = reduce::sum(&mut rec, &x, &out).unwrap_err();
    assert!(
        err.to_string().contains("reduce::sum") && err.to_string().contains("[1]"),
        "{err}"
    );
}
