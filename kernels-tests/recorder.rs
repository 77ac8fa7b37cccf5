//! The one-submit recorder: counters, the uniform arena, readback inside a
//! submit, and buffers kept alive until their work is submitted.

use manytask::gpu::{fold_grid, DType, Tensor};
use manytask::kernels::{elementwise, reduce};

use crate::common::{contexts, data, private_contexts};

#[test]
fn many_dispatches_and_a_readback_cost_one_submit() {
    for ctx in &private_contexts() {
        let x = Tensor::from_f32(ctx, "x", &[1000], &data(2, 1000)).unwrap();
        let y = Tensor::empty(ctx, "y", &[1000], DType::F32).unwrap();
        let s = Tensor::empty(ctx, "s", &[1], DType::F32).unwrap();
        let before = ctx.counters();
        let mut rec = ctx.recorder("step");
        elementwise::scale(&mut rec, &x, 2.0, &y).unwrap();
        elementwise::axpy(&mut rec, 1.0, &x, &y).unwrap();
        reduce::sum(&mut rec, &y, &s).unwrap(); // 1000 elements: one pass
        let readback = rec.read(&s);
        assert_eq!(rec.dispatch_count(), 3);
        rec.submit().unwrap();
        let got = readback.wait_f32(ctx).unwrap();
        let delta = ctx.counters().since(&before);
        assert_eq!(delta.dispatches, 3);
        assert_eq!(
            delta.submits, 1,
            "dispatches and the readback copy share one submit"
        );
        assert_eq!(delta.bytes_downloaded, 4);
        let want: f64 = data(2, 1000).iter().map(|&v| 3.0 * v as f64).sum();
        assert!((got[0] as f64 - want).abs() < 1e-3, "{} vs {want}", got[0]);
    }
}

/// 300 dispatches need 300 parameter blocks: several arena buffers, all in
/// one submit, each dispatch seeing its own alpha.
#[test]
fn parameters_of_hundreds_of_dispatches_stay_distinct() {
    for ctx in &private_contexts() {
        let n = 33;
        let x = Tensor::from_f32(ctx, "x", &[n], &vec![1.0; n]).unwrap();
        let y = Tensor::zeros(ctx, "y", &[n]).unwrap();
        let before = ctx.counters();
        let mut rec = ctx.recorder("300 axpys");
        for k in 0..300 {
            elementwise::axpy(&mut rec, k as f32, &x, &y).unwrap();
        }
        rec.submit().unwrap();
        let delta = ctx.counters().since(&before);
        assert_eq!((delta.dispatches, delta.submits), (300, 1));
        assert!(delta.uniform_bytes >= 300 * 16, "{delta:?}");
        // Σ k for k < 300 = 44 850, exact in f32.
        assert_eq!(y.to_f32_vec(ctx).unwrap(), vec![44_850.0; n]);
    }
}

/// A tensor dropped after its dispatch was recorded must not lend its
/// buffer to a new tensor before the submit.
#[test]
fn a_tensor_dropped_before_submit_keeps_its_contents() {
    for ctx in contexts() {
        let n = 4096;
        let values = data(3, n);
        let out = Tensor::empty(ctx, "out", &[n], DType::F32).unwrap();
        let mut rec = ctx.recorder("drop early");
        {
            let src = Tensor::from_f32(ctx, "src", &[n], &values).unwrap();
            elementwise::copy(&mut rec, &src, &out).unwrap();
        } // src dropped here, before submit
          // Same size class: would reuse src's buffer if it had been freed.
        let intruder = Tensor::from_f32(ctx, "intruder", &[n], &vec![-7.0; n]).unwrap();
        rec.submit().unwrap();
        assert_eq!(
            out.to_f32_vec(ctx).unwrap(),
            values,
            "on {}",
            ctx.describe()
        );
        drop(intruder);
    }
}

#[test]
fn recorder_copy_moves_a_tensor_in_order_with_dispatches() {
    for ctx in contexts() {
        let a = Tensor::from_f32(ctx, "a", &[3], &[1.0, 2.0, 3.0]).unwrap();
        let b = Tensor::empty(ctx, "b", &[3], DType::F32).unwrap();
        let c = Tensor::empty(ctx, "c", &[3], DType::F32).unwrap();
        let mut rec = ctx.recorder("copy");
        elementwise::scale(&mut rec, &a, 10.0, &b).unwrap();
        rec.copy(&b, &c).unwrap();
        elementwise::fill(&mut rec, &b, 0.0).unwrap();
        rec.submit().unwrap();
        assert_eq!(c.to_f32_vec(ctx).unwrap(), vec![10.0, 20.0, 30.0]);
        assert_eq!(b.to_f32_vec(ctx).unwrap(), vec![0.0; 3]);
    }
}

#[test]
fn grids_fold_into_two_dimensions_only_when_needed() {
    assert_eq!(fold_grid(1, 65_535), Some([1, 1, 1]));
    assert_eq!(fold_grid(65_535, 65_535), Some([65_535, 1, 1]));
    assert_eq!(fold_grid(65_536, 65_535), Some([65_535, 2, 1]));
    assert_eq!(
        fold_grid(65_535 * 65_535, 65_535),
        Some([65_535, 65_535, 1])
    );
    assert_eq!(fold_grid(65_535 * 65_535 + 1, 65_535), None);
}

#[test]
fn an_unsubmitted_recorder_is_dropped_without_side_effects() {
    let ctx = &private_contexts()[0];
    let y = Tensor::from_f32(ctx, "y", &[4], &[1.0; 4]).unwrap();
    let before = ctx.counters();
    {
        let mut rec = ctx.recorder("abandoned");
        elementwise::fill(&mut rec, &y, 9.0).unwrap();
    }
    assert_eq!(y.to_f32_vec(ctx).unwrap(), vec![1.0; 4]);
    assert_eq!(ctx.counters().since(&before).dispatches, 0);
}
