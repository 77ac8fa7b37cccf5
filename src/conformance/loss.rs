//! Conformance cases for the masked per-task losses (`kernels::loss`):
//! every loss kind with every reduction it defines, side by side in one
//! logits matrix (the hard-sharing layout), at widths 1, 7 and 33, with
//! missing labels, a task whose every row is missing and an out-of-range
//! class id, checked for the loss vector, the gradients and the statistics.

use std::sync::Arc;

use crate::conformance::{Case, Expected, HostTensor, Requirement, Tolerance};
use crate::gpu::Tensor;
use crate::kernels::loss::{
    masked_losses, LossInputs, LossKind, LossOutputs, LossTable, LossTask, Reduction,
    STATS_PER_TASK,
};
use crate::reference::loss::{task_loss, TaskLossInput};
use crate::util::rng::Rng;

/// Every (kind, reduction) pair the kinds define.
const PAIRS: [(LossKind, Reduction); 6] = [
    (LossKind::SoftmaxCrossEntropy, Reduction::Mean),
    (LossKind::MeanSquaredError, Reduction::Mean),
    (LossKind::MeanSquaredError, Reduction::Sum),
    (LossKind::MeanSquaredError, Reduction::HalfSum),
    (LossKind::BinaryCrossEntropy, Reduction::Mean),
    (LossKind::BinaryCrossEntropy, Reduction::Sum),
];
/// Task widths; layout k gives pair i the width `WIDTHS[(i + k) % 3]`, so
/// the three layouts check every pair at every width.
const WIDTHS: [usize; 3] = [1, 7, 33];
/// Layouts (width rotations) per row count.
const LAYOUTS: usize = 3;
/// Batch rows every layout is checked at.
pub const ROWS: &[usize] = &[1, 7, 257, 1000];

/// One task of a case's table.
#[derive(Clone, Copy, Debug)]
struct Task {
    kind: LossKind,
    reduction: Reduction,
    width: usize,
    /// Every row unlabelled (its loss 0, its gradients 0).
    all_missing: bool,
}

/// The tasks of layout `k`: the six pairs, then a seventh task whose every
/// row is missing (a different pair per layout).
fn layout(k: usize) -> Vec<Task> {
    let mut tasks: Vec<Task> = PAIRS
        .iter()
        .enumerate()
        .map(|(i, &(kind, reduction))| Task {
            kind,
            reduction,
            width: WIDTHS[(i + k) % WIDTHS.len()],
            all_missing: false,
        })
        .collect();
    let (kind, reduction) = PAIRS[(2 * k + 1) % PAIRS.len()];
    tasks.push(Task {
        kind,
        reduction,
        width: 7,
        all_missing: true,
    });
    tasks
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Losses,
    Grads,
    Stats,
}

#[derive(Clone, Copy, Debug)]
struct LossCase {
    rows: usize,
    /// Which width rotation (`layout`).
    layout: usize,
    /// Logit magnitude: 80 checks the max-subtraction of softmax.
    scale: f32,
    /// Every row unlabelled for every task.
    all_missing: bool,
    output: Output,
}

/// Host data of one case: logits [rows, Σw], targets [rows, Σw] (CE
/// blocks unused), labels [T_ce, rows], masks [T, rows], upstream [T].
struct Data {
    logits: Vec<f32>,
    targets: Vec<f32>,
    labels: Vec<u32>,
    masks: Vec<f32>,
    upstream: Vec<f32>,
}

impl LossCase {
    fn layout(&self) -> Vec<Task> {
        layout(self.layout)
    }

    fn total_width(&self) -> usize {
        self.layout().iter().map(|t| t.width).sum()
    }

    fn data(&self) -> Data {
        let (rows, w, tasks) = (self.rows, self.total_width(), self.layout());
        let seed = rows as u64 * 31 + self.scale as u64 + 1000 * self.layout as u64;
        let mut rng = Rng::new(seed);
        let logits = rng.uniform_vec(rows * w, -self.scale, self.scale);
        let mut targets = rng.uniform_vec(rows * w, -1.0, 1.0);
        let mut labels = Vec::new();
        let mut col = 0;
        for t in &tasks {
            match t.kind {
                // BCE targets in {0, 1}.
                LossKind::BinaryCrossEntropy => {
                    for r in 0..rows {
                        for j in col..col + t.width {
                            targets[r * w + j] = (rng.next_u64() % 2) as f32;
                        }
                    }
                }
                LossKind::SoftmaxCrossEntropy => {
                    let first = labels.len();
                    labels.extend((0..rows).map(|_| (rng.next_u64() % t.width as u64) as u32));
                    // One out-of-range label on a labelled row (≥ 7 rows).
                    if rows >= 7 {
                        labels[first + 3] = t.width as u32 + 5;
                    }
                }
                LossKind::MeanSquaredError => {}
            }
            col += t.width;
        }
        let masks = tasks
            .iter()
            .flat_map(|t| {
                (0..rows).map(move |r| {
                    let missing = self.all_missing || t.all_missing || (r % 5 == 2 && rows > 1);
                    if missing {
                        0.0
                    } else {
                        1.0
                    }
                })
            })
            .collect();
        let upstream = (0..tasks.len()).map(|t| [1.0, 0.5, 2.0][t % 3]).collect();
        Data {
            logits,
            targets,
            labels,
            masks,
            upstream,
        }
    }

    fn tasks(&self) -> Vec<LossTask> {
        let w = self.total_width();
        let (mut col, mut ce) = (0, 0);
        self.layout()
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let is_ce = t.kind == LossKind::SoftmaxCrossEntropy;
                let task = LossTask {
                    kind: t.kind,
                    reduction: t.reduction,
                    rows: self.rows,
                    width: t.width,
                    logit_offset: col,
                    logit_ld: w,
                    target_offset: if is_ce { ce * self.rows } else { col },
                    target_ld: w,
                    mask_offset: Some(i * self.rows),
                };
                col += t.width;
                ce += usize::from(is_ce);
                task
            })
            .collect()
    }

    fn expected(&self) -> Expected {
        let d = self.data();
        let (rows, w) = (self.rows, self.total_width());
        let mut losses = Vec::new();
        let mut grads = vec![0f32; rows * w];
        let mut stats = Vec::new();
        let (mut col, mut ce) = (0, 0);
        for (i, t) in self.layout().iter().enumerate() {
            let wt = t.width;
            let block = |src: &[f32]| -> Vec<f32> {
                (0..rows)
                    .flat_map(|r| src[r * w + col..r * w + col + wt].to_vec())
                    .collect()
            };
            let (z, y) = (block(&d.logits), block(&d.targets));
            let is_ce = t.kind == LossKind::SoftmaxCrossEntropy;
            let labels = if is_ce {
                &d.labels[ce * rows..(ce + 1) * rows]
            } else {
                &[]
            };
            let Some(out) = task_loss(&TaskLossInput {
                kind: t.kind,
                reduction: t.reduction,
                rows,
                width: wt,
                logits: &z,
                targets: &y,
                labels,
                mask: Some(&d.masks[i * rows..(i + 1) * rows]),
                upstream: d.upstream[i],
            }) else {
                // No reference for the pair: an empty expectation fails.
                return Expected {
                    values: Vec::new(),
                    tolerance: Tolerance::EXACT,
                };
            };
            for r in 0..rows {
                grads[r * w + col..r * w + col + wt]
                    .copy_from_slice(&out.grads[r * wt..(r + 1) * wt]);
            }
            losses.push(out.loss);
            stats.extend(out.stats.map(|s| s as f32));
            col += wt;
            ce += usize::from(is_ce);
        }
        match self.output {
            // Per-row losses in f32 (exp/log of logits up to 80 in size),
            // summed over ≤ 1000 rows.
            Output::Losses => Expected {
                values: losses,
                tolerance: Tolerance::new(1e-6 * self.scale as f64, 2e-5),
            },
            Output::Grads => {
                let top = grads.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
                Expected {
                    values: grads,
                    tolerance: Tolerance::new(1e-5 * top, 0.0),
                }
            }
            Output::Stats => Expected {
                values: stats,
                tolerance: Tolerance::EXACT,
            },
        }
    }

    fn run(&self, rec: &mut crate::gpu::Recorder) -> crate::error::Result<Tensor> {
        let ctx = rec.ctx();
        let d = self.data();
        let (rows, w, t) = (self.rows, self.total_width(), self.layout().len());
        let logits = Tensor::from_f32(ctx, "logits", &[rows, w], &d.logits)?;
        let targets = Tensor::from_f32(ctx, "targets", &[rows, w], &d.targets)?;
        let labels = Tensor::from_u32(ctx, "labels", &[d.labels.len()], &d.labels)?;
        let masks = Tensor::from_f32(ctx, "masks", &[t, rows], &d.masks)?;
        let upstream = Tensor::from_f32(ctx, "upstream", &[t], &d.upstream)?;
        let grads = Tensor::from_f32(ctx, "grads", &[rows, w], &vec![f32::NAN; rows * w])?;
        let losses = Tensor::from_f32(ctx, "losses", &[t], &vec![f32::NAN; t])?;
        let stats = Tensor::from_u32(
            ctx,
            "stats",
            &[t, STATS_PER_TASK],
            &vec![u32::MAX; t * STATS_PER_TASK],
        )?;
        let table = LossTable::new(ctx, &self.tasks())?;
        let inp = LossInputs {
            logits: &logits,
            targets: Some(&targets),
            labels: Some(&labels),
            masks: Some(&masks),
            upstream: &upstream,
        };
        let out = LossOutputs {
            grads: &grads,
            losses: &losses,
            stats: &stats,
        };
        masked_losses(rec, &table, &inp, &out)?;
        Ok(match self.output {
            Output::Losses => losses,
            Output::Grads => grads,
            Output::Stats => stats,
        })
    }

    /// "ce.mean×1 mse.mean×7 … bce.sum×7(missing)".
    fn describe_layout(&self) -> String {
        let kind = |k: LossKind| match k {
            LossKind::SoftmaxCrossEntropy => "ce",
            LossKind::MeanSquaredError => "mse",
            LossKind::BinaryCrossEntropy => "bce",
        };
        let tasks: Vec<String> = self
            .layout()
            .iter()
            .map(|t| {
                format!(
                    "{}.{}×{}{}",
                    kind(t.kind),
                    t.reduction,
                    t.width,
                    if t.all_missing { "(missing)" } else { "" }
                )
            })
            .collect();
        tasks.join(" ")
    }

    fn into_case(self) -> Case {
        let spec = self;
        let output = match self.output {
            Output::Losses => "losses",
            Output::Grads => "grads",
            Output::Stats => "stats",
        };
        Case {
            kernel: format!("loss::masked_losses[{output}]"),
            case: format!(
                "rows={} {} logits±{}{}",
                self.rows,
                self.describe_layout(),
                self.scale,
                if self.all_missing { " all missing" } else { "" }
            ),
            inputs: Arc::new(Vec::<HostTensor>::new),
            gpu: Arc::new(move |rec, _| spec.run(rec)),
            reference: Arc::new(move |_| spec.expected()),
            requires: Requirement::None,
        }
    }
}

/// The conformance cases of `kernels::loss`, each against its CPU
/// reference: every layout at every row count, large logits, and every
/// row of every task missing.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for output in [Output::Losses, Output::Grads, Output::Stats] {
        for layout in 0..LAYOUTS {
            let case = |rows, scale, all_missing| LossCase {
                rows,
                layout,
                scale,
                all_missing,
                output,
            };
            for &rows in ROWS {
                cases.push(case(rows, 4.0, false).into_case());
            }
            cases.push(case(65, 80.0, false).into_case());
            cases.push(case(9, 4.0, true).into_case());
        }
    }
    cases
}
