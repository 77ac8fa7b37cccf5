//! Masked per-task losses: reference cases, hand-computed reductions,
//! finite differences of the GPU loss for every reduction, NaN/Inf
//! flagging, determinism and argument errors.

use manytask::gpu::{GpuContext, Tensor};
use manytask::kernels::loss::{
    masked_losses, LossInputs, LossKind, LossOutputs, LossTable, LossTask, Reduction,
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

/// The MSE and BCE reductions of the three-task table (CE takes the mean).
#[derive(Clone, Copy, Debug)]
struct Reductions {
    mse: Reduction,
    bce: Reduction,
}

/// Every reduction of each kind at least once.
const REDUCTIONS: [Reductions; 3] = [
    Reductions {
        mse: Reduction::Mean,
        bce: Reduction::Mean,
    },
    Reductions {
        mse: Reduction::Sum,
        bce: Reduction::Sum,
    },
    Reductions {
        mse: Reduction::HalfSum,
        bce: Reduction::Mean,
    },
];

fn tasks(masked: bool, r: Reductions) -> Vec<LossTask> {
    let task = |kind, reduction, width, col| LossTask {
        kind,
        reduction,
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
        task(LossKind::SoftmaxCrossEntropy, Reduction::Mean, 3, 0),
        task(LossKind::MeanSquaredError, r.mse, 2, 3),
        task(LossKind::BinaryCrossEntropy, r.bce, 2, 5),
    ]
}

struct Run {
    losses: Vec<f32>,
    grads: Vec<f32>,
    stats: Vec<u32>,
}

/// One dispatch of `tasks` on [rows, width] logits and targets, `labels`
/// (CE) and `masks` (one row, shared by every masked task).
struct Table<'a> {
    tasks: &'a [LossTask],
    rows: usize,
    width: usize,
    logits: &'a [f32],
    targets: &'a [f32],
    labels: &'a [u32],
    masks: &'a [f32],
}

impl Table<'_> {
    fn run(&self, ctx: &GpuContext, upstream: &[f32]) -> Run {
        let (rows, w, n) = (self.rows, self.width, self.tasks.len());
        let z = Tensor::from_f32(ctx, "z", &[rows, w], self.logits).unwrap();
        let y = Tensor::from_f32(ctx, "y", &[rows, w], self.targets).unwrap();
        let l = Tensor::from_u32(ctx, "labels", &[self.labels.len()], self.labels).unwrap();
        let m = Tensor::from_f32(ctx, "mask", &[self.masks.len()], self.masks).unwrap();
        let up = Tensor::from_f32(ctx, "upstream", &[n], upstream).unwrap();
        let g = Tensor::zeros(ctx, "g", &[rows, w]).unwrap();
        let losses = Tensor::zeros(ctx, "losses", &[n]).unwrap();
        let stats = Tensor::from_u32(ctx, "stats", &[n, 4], &vec![0; 4 * n]).unwrap();
        let table = LossTable::new(ctx, self.tasks).unwrap();
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
}

fn run_with(
    ctx: &GpuContext,
    logits: &[f32],
    mask: &[f32],
    labels: &[u32],
    reductions: Reductions,
) -> Run {
    let mut targets = data(5, ROWS * W);
    for r in 0..ROWS {
        targets[r * W + 5] = (r % 2) as f32;
        targets[r * W + 6] = ((r + 1) % 2) as f32;
    }
    Table {
        tasks: &tasks(true, reductions),
        rows: ROWS,
        width: W,
        logits,
        targets: &targets,
        labels,
        masks: mask,
    }
    .run(ctx, &[1.0, 0.5, 2.0])
}

fn run(ctx: &GpuContext, logits: &[f32], mask: &[f32], labels: &[u32]) -> Run {
    run_with(ctx, logits, mask, labels, REDUCTIONS[0])
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
fn loss_gradients_match_finite_differences_for_every_reduction() {
    let logits: Vec<f32> = data(7, ROWS * W).iter().map(|v| 2.0 * v).collect();
    let mask = [1.0, 0.0, 1.0, 1.0];
    let labels = [2, 0, 1, 0];
    for ctx in contexts() {
        for reductions in REDUCTIONS {
            let run = |z: &[f32]| run_with(ctx, z, &mask, &labels, reductions);
            let base = run(&logits);
            const H: f32 = 1e-2;
            let mut worst = 0f32;
            for i in 0..logits.len() {
                let mut p = logits.clone();
                p[i] += H;
                let up = objective(&run(&p));
                p[i] -= 2.0 * H;
                let down = objective(&run(&p));
                let fd = ((up - down) / (2.0 * H as f64)) as f32;
                worst = worst.max((fd - base.grads[i]).abs());
            }
            // Gradients here are O(0.1–1); truncation h²·|f'''| ≈ 1e-4 and
            // f32 rounding of the losses over 2h ≈ 1e-5.
            assert!(
                worst < 1e-3,
                "{reductions:?}: max |fd - analytic| = {worst} on {}",
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
}

/// A 2×3 MSE task and a 2×2 BCE task side by side (width 5), every row
/// labelled, upstream 1.
fn hand_case(ctx: &GpuContext, mse: Reduction, bce: Reduction) -> Run {
    let task = |kind, reduction, width, col| LossTask {
        kind,
        reduction,
        rows: 2,
        width,
        logit_offset: col,
        logit_ld: 5,
        target_offset: col,
        target_ld: 5,
        mask_offset: None,
    };
    let ln3 = 3f32.ln();
    #[rustfmt::skip]
    let logits = [
        1.0, 2.0, 3.0,   0.0, 0.0,
        4.0, 5.0, 6.0,   ln3, 0.0,
    ];
    #[rustfmt::skip]
    let targets = [
        0.0, 4.0, 3.0,   1.0, 0.0,
        1.0, 4.0, 6.0,   1.0, 0.0,
    ];
    Table {
        tasks: &[
            task(LossKind::MeanSquaredError, mse, 3, 0),
            task(LossKind::BinaryCrossEntropy, bce, 2, 3),
        ],
        rows: 2,
        width: 5,
        logits: &logits,
        targets: &targets,
        labels: &[0],
        masks: &[0.0],
    }
    .run(ctx, &[1.0, 1.0])
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (*g as f64 - w).abs() <= 1e-6 * (1.0 + w.abs()),
            "{what}: got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn reductions_match_hand_computed_values() {
    for ctx in contexts() {
        // MSE, ŷ − y = [[1, −2, 0], [3, 1, 0]]: squares 1, 4, 0, 9, 1, 0.
        // Mean (PyTorch MSELoss()): (1+4+0+9+1+0)/6 = 15/6 = 2.5, and
        // dL/dŷ = 2(ŷ − y)/6 = [[1/3, −2/3, 0], [1, 1/3, 0]].
        // BCE with logits z = [[0, 0], [ln 3, 0]], y = [[1, 0], [1, 0]]:
        // −ln σ(0) = ln 2, −ln(1 − σ(0)) = ln 2, −ln σ(ln 3) = −ln(3/4)
        // = 2 ln 2 − ln 3, −ln(1 − σ(0)) = ln 2. Mean (PyTorch
        // BCEWithLogitsLoss()) over the 4 elements: (5 ln 2 − ln 3)/4
        // ≈ 0.59178, and dL/dz = (σ(z) − y)/4 = [[−1/8, 1/8], [−1/16, 1/8]].
        let (ln2, ln3) = (2f64.ln(), 3f64.ln());
        let bce_mean = (5.0 * ln2 - ln3) / 4.0;
        assert!((bce_mean - 0.59178).abs() < 1e-5);
        let r = hand_case(ctx, Reduction::Mean, Reduction::Mean);
        assert_close(&r.losses, &[2.5, bce_mean], "mean losses");
        #[rustfmt::skip]
        let grads = [
            1.0 / 3.0, -2.0 / 3.0, 0.0,   -0.125, 0.125,
            1.0,        1.0 / 3.0, 0.0,  -0.0625, 0.125,
        ];
        assert_close(&r.grads, &grads, "mean gradients");
        assert_eq!(&r.stats, &[2, 0, 0, 0, 2, 0, 0, 0]);
        // Sum: each row's sum, averaged over the 2 rows: 15/2 = 7.5 and
        // (5 ln 2 − ln 3)/2; the gradients 3× (MSE) and 2× (BCE) the mean's.
        let r = hand_case(ctx, Reduction::Sum, Reduction::Sum);
        assert_close(&r.losses, &[7.5, 2.0 * bce_mean], "sum losses");
        let scaled: Vec<f64> = grads
            .iter()
            .enumerate()
            .map(|(i, g)| g * if i % 5 < 3 { 3.0 } else { 2.0 })
            .collect();
        assert_close(&r.grads, &scaled, "sum gradients");
        // Half sum: ½·15/2 = 3.75, the gradients (ŷ − y)/2.
        let r = hand_case(ctx, Reduction::HalfSum, Reduction::Sum);
        assert_close(&r.losses[..1], &[3.75], "half-sum loss");
        let got: Vec<f32> = (0..2)
            .flat_map(|row| r.grads[row * 5..row * 5 + 3].to_vec())
            .collect();
        let want = [0.5, -1.0, 0.0, 1.5, 0.5, 0.0];
        assert_close(&got, &want, "half-sum gradients");
    }
}

#[test]
fn a_short_batch_is_normalised_by_its_own_labelled_rows() {
    // One MSE task over 2 outputs, mean reduction: 4 rows with rows 1 and
    // 3 unlabelled (garbage logits), and the same 2 labelled rows as a
    // batch of 2. Both are (Σ over 2 rows × 2 outputs of d²) / 4.
    let task = |rows, masked: bool| LossTask {
        kind: LossKind::MeanSquaredError,
        reduction: Reduction::Mean,
        rows,
        width: 2,
        logit_offset: 0,
        logit_ld: 2,
        target_offset: 0,
        target_ld: 2,
        mask_offset: masked.then_some(0),
    };
    let logits = [1.0, 2.0, 1e6, f32::NAN, -1.0, 0.5, 7.0, 7.0];
    let targets = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0];
    // d = [1, 2] and [−2, −0.5]: (1 + 4 + 4 + 0.25)/4 = 2.3125.
    let want = [2.3125];
    for ctx in contexts() {
        let masked = Table {
            tasks: &[task(4, true)],
            rows: 4,
            width: 2,
            logits: &logits,
            targets: &targets,
            labels: &[0],
            masks: &[1.0, 0.0, 1.0, 0.0],
        }
        .run(ctx, &[1.0]);
        assert_close(&masked.losses, &want, "masked batch of 4");
        assert_eq!(masked.stats[0], 2);
        let short = Table {
            tasks: &[task(2, false)],
            rows: 2,
            width: 2,
            logits: &[1.0, 2.0, -1.0, 0.5],
            targets: &[0.0, 0.0, 1.0, 1.0],
            labels: &[0],
            masks: &[0.0],
        }
        .run(ctx, &[1.0]);
        assert_close(&short.losses, &want, "batch of 2");
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
    let table = LossTable::new(ctx, &tasks(false, REDUCTIONS[0])).unwrap();
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
    let mut t = tasks(false, REDUCTIONS[0]);
    t[1].logit_offset = 2;
    let e = LossTable::new(ctx, &t).err().unwrap();
    assert!(e.to_string().contains("overlap"), "{e}");
    // Reductions the kinds do not define.
    for (task, reduction, why) in [
        (
            0,
            Reduction::Sum,
            "task 0: reduction sum is not defined for softmax_ce (expected mean)",
        ),
        (
            0,
            Reduction::HalfSum,
            "reduction half_sum is not defined for softmax_ce",
        ),
        (
            2,
            Reduction::HalfSum,
            "task 2: reduction half_sum is not defined for bce_logits (expected mean or sum)",
        ),
    ] {
        let mut t = tasks(false, REDUCTIONS[0]);
        t[task].reduction = reduction;
        let e = LossTable::new(ctx, &t).err().unwrap();
        assert!(matches!(e, Error::Shape { .. }), "{e}");
        assert!(e.to_string().contains(why), "{e}");
    }
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

#[test]
fn a_task_spec_reduction_reaches_the_loss_kernel() {
    use manytask::arch::{ModelSpec, Sharing, TaskKind, TaskSpec};
    use manytask::graph::{Program, StepOptions};
    use manytask::types::{Activation, WeightInit};
    let spec = |tasks: Vec<TaskSpec>| ModelSpec {
        init: WeightInit::Glorot,
        rows: 7,
        inputs: 4,
        activation: Activation::Tanh,
        sharing: Sharing::Hard { trunk: vec![6] },
        tasks,
    };
    let reg = || TaskSpec::new("reg", TaskKind::Regression { outputs: 5 }, &[]);
    let bin = || TaskSpec::new("bin", TaskKind::Binary { labels: 3 }, &[2]);
    let with = |mse, bce| spec(vec![reg().with_reduction(mse), bin().with_reduction(bce)]);
    for ctx in contexts() {
        // The same weights (seed) and inputs under each reduction.
        let losses = |s: ModelSpec| -> Vec<f32> {
            let m = s.build(ctx).unwrap();
            let mut p = Program::build(ctx, m.graph, crate::common::sgd(0.1), 3).unwrap();
            let inputs = [m.nodes.x, m.nodes.targets.unwrap()];
            crate::common::randomize_inputs(ctx, &p, &inputs, 9);
            let r = p.step(ctx, StepOptions::EVALUATE).unwrap();
            r.losses.unwrap().wait(ctx).unwrap().losses
        };
        let default = losses(spec(vec![reg(), bin()]));
        let mean = losses(with(Reduction::Mean, Reduction::Mean));
        assert_eq!(default, mean, "TaskSpec::new takes the mean");
        let sum = losses(with(Reduction::Sum, Reduction::Sum));
        let half = losses(with(Reduction::HalfSum, Reduction::Sum));
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-5 * b.abs();
        // Over 5 outputs and 3 labels: the sum is 5× and 3× the mean.
        assert!(close(sum[0], 5.0 * mean[0]), "{sum:?} vs {mean:?}");
        assert!(close(sum[1], 3.0 * mean[1]), "{sum:?} vs {mean:?}");
        assert!(close(half[0], 2.5 * mean[0]), "{half:?} vs {mean:?}");
        assert!(mean.iter().all(|&l| l > 0.01), "degenerate: {mean:?}");
        // A reduction the kind does not define: a clear error, no graph.
        let class = TaskSpec::new("class", TaskKind::Classification { classes: 3 }, &[]);
        let e = spec(vec![class.with_reduction(Reduction::Sum)])
            .build(ctx)
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("task 'class': reduction sum is not defined for softmax_ce"),
            "{e}"
        );
        let e = with(Reduction::Mean, Reduction::HalfSum)
            .build(ctx)
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("task 'bin': reduction half_sum is not defined for bce_logits"),
            "{e}"
        );
    }
}
