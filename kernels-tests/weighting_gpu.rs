//! GPU side of task weighting: the Gram kernel and uncertainty weighting
//! against their references (conformance cases), determinism of the Gram
//! reduction, and clear errors.

use manytask::gpu::Tensor;
use manytask::kernels::weighting::{gram, loss_accumulate, GramScratch};

use crate::common::{check_cases, contexts, data};

#[test]
fn weighting_kernels_match_reference() {
    check_cases("weighting", |c| c.kernel.starts_with("weighting::"));
}

#[test]
fn gram_is_bit_identical_across_runs_and_symmetric() {
    for ctx in contexts() {
        let (tasks, n) = (6, 50_001);
        let x = Tensor::from_f32(ctx, "x", &[tasks * n], &data(5, tasks * n)).unwrap();
        let run = || {
            let scratch = GramScratch::new(ctx, tasks, n).unwrap();
            let mut rec = ctx.recorder("gram");
            gram(&mut rec, &x, tasks, &scratch).unwrap();
            rec.submit().unwrap();
            scratch.sums.to_f32_vec(ctx).unwrap()
        };
        let a = run();
        assert_eq!(a, run());
        let m = a;
        for i in 0..tasks {
            assert!(m[i * tasks + i] > 0.0);
            for j in 0..tasks {
                assert_eq!(m[i * tasks + j], m[j * tasks + i]);
            }
        }
    }
}

#[test]
fn gram_rejects_bad_shapes() {
    let ctx = &contexts()[0];
    let x = Tensor::zeros(ctx, "x", &[10]).unwrap();
    let scratch = GramScratch::new(ctx, 2, 5).unwrap();
    let mut rec = ctx.recorder("bad");
    let e = gram(&mut rec, &x, 3, &scratch).unwrap_err();
    assert!(e.to_string().contains("equal task rows"), "{e}");
    let e = gram(&mut rec, &x, 65, &scratch).unwrap_err();
    assert!(e.to_string().contains("1..=64"), "{e}");
    let wrong = GramScratch::new(ctx, 2, 50_000).unwrap();
    let e = gram(&mut rec, &x, 2, &wrong).unwrap_err();
    assert!(e.to_string().contains("GramScratch::new"), "{e}");
}

#[test]
fn loss_sums_accumulate() {
    for ctx in contexts() {
        let losses = Tensor::from_f32(ctx, "losses", &[3], &[1.0, 2.5, -1.0]).unwrap();
        let sums = Tensor::from_f32(ctx, "sums", &[3], &[10.0, 0.0, 1.0]).unwrap();
        let mut rec = ctx.recorder("acc");
        loss_accumulate(&mut rec, &losses, &sums).unwrap();
        loss_accumulate(&mut rec, &losses, &sums).unwrap();
        rec.submit().unwrap();
        assert_eq!(sums.to_f32_vec(ctx).unwrap(), vec![12.0, 5.0, -1.0]);
    }
}
