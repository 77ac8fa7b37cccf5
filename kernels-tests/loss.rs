//! Masked per-task losses: reference cases, finite differences of the GPU
//! loss, NaN/Inf flagging, determinism and argument errors.

use manytask::gpu::{GpuContext, Tensor};
use manytask::kernels::loss::{
    masked_losses, LossInputs, LossKind, LossOutputs, LossTable, LossTask,
};
use manytask::Error;

use crate::common::{check_cases, contexts, data};

#[test]
fn losses_match_reference() {
    check_cases("loss", |c| c.kernel.starts_with("loss::"));
}

const ROWS: usize = 4;
/// CE over 3 classes, MSE over 2 outputs, BCE over 2 labels, side by side.
const W: usize = 7;

fn tasks(masked: bool) -> Vec<LossTask> {
    let task = |kind, width, col| LossTask {
        kind,
        rows: ROWS,
        width,
        logit_offset: col,
        logit_ld: W,
        target_offset: if kind == LossKind::SoftmaxCrossEntropy {
            0
        } else {
            col
        },
        target_ld: W,
        mask_offset: masked.then_some(0),
    };
    vec![
        task(LossKind::SoftmaxCrossEntropy, 3, 0),
        task(LossKind::MeanSquaredError, 2, 3),
        task(LossKind::BinaryCrossEntropy, 2, 5),
    ]
}

struct Run {
    losses: Vec<f32>,
    grads: Vec<f32>,
    stats: Vec<u32>,
}

fn run(ctx: &GpuContext, logits: &[f32], mask: &[f32], labels: &[u32]) -> Run {
    let mut targets = data(5, ROWS * W);
    for r in 0..ROWS {
        targets[r * W + 5] = (r % 2) as f32;
        targets[r * W + 6] = ((r + 1) % 2) as f32;
    }
    let z = Tensor::from_f32(ctx, "z", &[ROWS, W], logits).unwrap();
    let y = Tensor::from_f32(ctx, "y", &[ROWS, W], &targets).unwrap();
    let l = Tensor::from_u32(ctx, "labels", &[ROWS], labels).unwrap();
    let m = Tensor::from_f32(ctx, "mask", &[ROWS], mask).unwrap();
    let up = Tensor::from_f32(ctx, "upstream", &[3], &[1.0, 0.5, 2.0]).unwrap();
    let g = Tensor::zeros(ctx, "g", &[ROWS, W]).unwrap();
    let losses = Tensor::zeros(ctx, "losses", &[3]).unwrap();
    let stats = Tensor::from_u32(ctx, "stats", &[3, 4], &[0; 12]).unwrap();
    let table = LossTable::new(ctx, &tasks(true)).unwrap();
    let mut rec = ctx.recorder("loss");
    let inp = LossInputs {
        logits: &z,
        targets: Some(&y),
        labels: Some(&l),
        masks: Some(&m),
        upstream: &up,
    };
    masked_losses(
        &mut rec,
        &table,
        &inp,
        &LossOutputs {
            grads: &g,
            losses: &losses,
            stats: &stats,
        },
    )
    .unwrap();
    rec.submit().unwrap();
    Run {
        losses: losses.to_f32_vec(ctx).unwrap(),
        grads: g.to_f32_vec(ctx).unwrap(),
        stats: stats.to_u32_vec(ctx).unwrap(),
    }
}

/// The objective the gradients are of: Σ_t upstream_t · L_t.
fn objective(r: &Run) -> f64 {
    r.losses
        .iter()
        .zip([1.0, 0.5, 2.0])
        .map(|(&l, u)| l as f64 * u)
        .sum()
}

#[test]
fn loss_gradients_match_finite_differences() {
    let logits: Vec<f32> = data(7, ROWS * W).iter().map(|v| 2.0 * v).collect();
    let mask = [1.0, 0.0, 1.0, 1.0];
    let labels = [2, 0, 1, 0];
    for ctx in contexts() {
        let base = run(ctx, &logits, &mask, &labels);
        const H: f32 = 1e-2;
        let mut worst = 0f32;
        for i in 0..logits.len() {
            let mut p = logits.clone();
            p[i] += H;
            let up = objective(&run(ctx, &p, &mask, &labels));
            p[i] -= 2.0 * H;
            let down = objective(&run(ctx, &p, &mask, &labels));
            let fd = ((up - down) / (2.0 * H as f64)) as f32;
            worst = worst.max((fd - base.grads[i]).abs());
        }
        // Gradients here are O(0.1–1); truncation h²·|f'''| ≈ 1e-4 and
        // f32 rounding of the losses over 2h ≈ 1e-5.
        assert!(
            worst < 1e-3,
            "max |fd - analytic| = {worst} on {}",
            ctx.describe()
        );
        // Row 1 is unlabelled: zero gradients.
        assert!(base.grads[W..2 * W].iter().all(|&g| g == 0.0));
        assert!(
            base.grads.iter().any(|&g| g.abs() > 0.05),
            "degenerate test data"
        );
    }
}

#[test]
fn non_finite_logits_are_flagged_and_propagate() {
    let mut logits: Vec<f32> = data(8, ROWS * W);
    let labels = [0, 1, 2, 7]; // row 3: class 7 of 3, out of range
    for ctx in contexts() {
        // A NaN in an unlabelled row (row 1) changes nothing.
        logits[W] = f32::NAN;
        let r = run(ctx, &logits, &[1.0, 0.0, 1.0, 1.0], &labels);
        assert!(r.losses.iter().all(|l| l.is_finite()), "{:?}", r.losses);
        // CE: rows 0 and 2 labelled, row 3 out of range (counted, masked).
        assert_eq!(&r.stats[0..4], &[2, 1, 0, 0]);
        assert_eq!(&r.stats[4..8], &[3, 0, 0, 0]);
        // An Inf in a labelled row of the MSE task: flagged, propagated.
        logits[3] = f32::INFINITY;
        let r = run(ctx, &logits, &[1.0, 0.0, 1.0, 1.0], &labels);
        assert!(!r.losses[1].is_finite(), "{:?}", r.losses);
        assert_eq!(r.stats[4 + 2], 1, "{:?}", r.stats);
        assert!(r.losses[0].is_finite() && r.losses[2].is_finite());
        logits[3] = 0.5;
        logits[W] = 0.5;
        // Same inputs, same bits.
        let a = run(ctx, &logits, &[1.0; ROWS], &[0, 1, 2, 1]);
        let b = run(ctx, &logits, &[1.0; ROWS], &[0, 1, 2, 1]);
        assert_eq!((a.losses, a.grads), (b.losses, b.grads));
    }
}

#[test]
fn loss_rejects_bad_arguments() {
    let ctx = &contexts()[0];
    let z = Tensor::zeros(ctx, "z", &[ROWS, W]).unwrap();
    let g = Tensor::zeros(ctx, "g", &[ROWS, W]).unwrap();
    let up = Tensor::zeros(ctx, "up", &[3]).unwrap();
    let losses = Tensor::zeros(ctx, "losses", &[3]).unwrap();
    let stats = Tensor::from_u32(ctx, "stats", &[3, 4], &[0; 12]).unwrap();
    let table = LossTable::new(ctx, &tasks(false)).unwrap();
    let out = LossOutputs {
        grads: &g,
        losses: &losses,
        stats: &stats,
    };
    let mut rec = ctx.recorder("bad");
    // Cross-entropy without labels.
    let inp = LossInputs {
        logits: &z,
        targets: Some(&z),
        labels: None,
        masks: None,
        upstream: &up,
    };
    let e = masked_losses(&mut rec, &table, &inp, &out).unwrap_err();
    assert!(e.to_string().contains("labels"), "{e}");
    // Labels as f32.
    let inp = LossInputs {
        labels: Some(&z),
        ..inp
    };
    let e = masked_losses(&mut rec, &table, &inp, &out).unwrap_err();
    assert!(matches!(e, Error::DType { .. }), "{e}");
    // Overlapping logit windows.
    let mut t = tasks(false);
    t[1].logit_offset = 2;
    let e = LossTable::new(ctx, &t).err().unwrap();
    assert!(e.to_string().contains("overlap"), "{e}");
    // Logits too short for the table.
    let short = Tensor::zeros(ctx, "short", &[2, W]).unwrap();
    let labels = Tensor::from_u32(ctx, "l", &[ROWS], &[0; ROWS]).unwrap();
    let inp = LossInputs {
        logits: &short,
        targets: Some(&z),
        labels: Some(&labels),
        masks: None,
        upstream: &up,
    };
    let out = LossOutputs {
        grads: &short,
        ..out
    };
    let e = masked_losses(&mut rec, &table, &inp, &out).unwrap_err();
    assert!(e.to_string().contains("'short' has 14 elements"), "{e}");
    assert_eq!(rec.dispatch_count(), 0);
}
