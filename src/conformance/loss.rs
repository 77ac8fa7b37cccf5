//! Conformance cases for the masked per-task losses (`kernels::loss`):
//! three tasks of different kinds side by side in one logits matrix (the
//! hard-sharing layout), with missing labels and an out-of-range class id,
//! checked for the loss vector, the gradients and the statistics.

use std::sync::Arc;

use crate::conformance::{Case, Expected, HostTensor, Requirement, Tolerance};
use crate::gpu::Tensor;
use crate::kernels::loss::{
    masked_losses, LossInputs, LossKind, LossOutputs, LossTable, LossTask, STATS_PER_TASK,
};
use crate::reference::loss::{task_loss, TaskLossInput};
use crate::util::rng::Rng;

/// Task widths: 10 classes (CE), 3 regression outputs (MSE), 5 labels (BCE).
const WIDTHS: [usize; 3] = [10, 3, 5];
const KINDS: [LossKind; 3] = [
    LossKind::SoftmaxCrossEntropy,
    LossKind::MeanSquaredError,
    LossKind::BinaryCrossEntropy,
];
/// Batch rows every loss kind is checked at.
pub const ROWS: &[usize] = &[1, 7, 257, 1000];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Losses,
    Grads,
    Stats,
}

#[derive(Clone, Copy, Debug)]
struct LossCase {
    rows: usize,
    /// Logit magnitude: 80 checks the max-subtraction of softmax.
    scale: f32,
    /// Every row unlabelled for every task.
    all_missing: bool,
    output: Output,
}

/// Host data of one case: logits [rows, Σw], targets [rows, Σw] (the CE
/// block unused), labels [rows], masks [3, rows], upstream [3].
struct Data {
    logits: Vec<f32>,
    targets: Vec<f32>,
    labels: Vec<u32>,
    masks: Vec<f32>,
    upstream: Vec<f32>,
}

impl LossCase {
    fn total_width() -> usize {
        WIDTHS.iter().sum()
    }

    fn data(&self) -> Data {
        let (rows, w) = (self.rows, Self::total_width());
        let mut rng = Rng::new(rows as u64 * 31 + self.scale as u64);
        let logits = rng.uniform_vec(rows * w, -self.scale, self.scale);
        let mut targets = rng.uniform_vec(rows * w, -1.0, 1.0);
        // BCE targets in {0, 1}.
        let bce0 = WIDTHS[0] + WIDTHS[1];
        for r in 0..rows {
            for j in bce0..w {
                targets[r * w + j] = (rng.next_u64() % 2) as f32;
            }
        }
        let mut labels: Vec<u32> = (0..rows)
            .map(|_| (rng.next_u64() % WIDTHS[0] as u64) as u32)
            .collect();
        // One out-of-range label on a labelled row (every case with ≥ 7 rows).
        if rows >= 7 {
            labels[3] = WIDTHS[0] as u32 + 5;
        }
        let masks = (0..3 * rows)
            .map(|i| {
                if self.all_missing || (i % 5 == 2 && rows > 1) {
                    0.0
                } else {
                    1.0
                }
            })
            .collect();
        Data {
            logits,
            targets,
            labels,
            masks,
            upstream: vec![1.0, 0.5, 2.0],
        }
    }

    fn tasks(&self) -> Vec<LossTask> {
        let w = Self::total_width();
        let mut col = 0;
        (0..3)
            .map(|t| {
                let task = LossTask {
                    kind: KINDS[t],
                    rows: self.rows,
                    width: WIDTHS[t],
                    logit_offset: col,
                    logit_ld: w,
                    target_offset: if t == 0 { 0 } else { col },
                    target_ld: w,
                    mask_offset: Some(t * self.rows),
                };
                col += WIDTHS[t];
                task
            })
            .collect()
    }

    fn expected(&self) -> Expected {
        let d = self.data();
        let (rows, w) = (self.rows, Self::total_width());
        let mut losses = Vec::new();
        let mut grads = vec![0f32; rows * w];
        let mut stats = Vec::new();
        let mut col = 0;
        for t in 0..3 {
            let wt = WIDTHS[t];
            let block = |src: &[f32]| -> Vec<f32> {
                (0..rows)
                    .flat_map(|r| src[r * w + col..r * w + col + wt].to_vec())
                    .collect()
            };
            let (z, y) = (block(&d.logits), block(&d.targets));
            let out = task_loss(&TaskLossInput {
                kind: KINDS[t],
                rows,
                width: wt,
                logits: &z,
                targets: &y,
                labels: &d.labels,
                mask: Some(&d.masks[t * rows..(t + 1) * rows]),
                upstream: d.upstream[t],
            });
            for r in 0..rows {
                grads[r * w + col..r * w + col + wt]
                    .copy_from_slice(&out.grads[r * wt..(r + 1) * wt]);
            }
            losses.push(out.loss);
            stats.extend(out.stats.map(|s| s as f32));
            col += wt;
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
        let (rows, w) = (self.rows, Self::total_width());
        let logits = Tensor::from_f32(ctx, "logits", &[rows, w], &d.logits)?;
        let targets = Tensor::from_f32(ctx, "targets", &[rows, w], &d.targets)?;
        let labels = Tensor::from_u32(ctx, "labels", &[rows], &d.labels)?;
        let masks = Tensor::from_f32(ctx, "masks", &[3, rows], &d.masks)?;
        let upstream = Tensor::from_f32(ctx, "upstream", &[3], &d.upstream)?;
        let grads = Tensor::from_f32(ctx, "grads", &[rows, w], &vec![f32::NAN; rows * w])?;
        let losses = Tensor::from_f32(ctx, "losses", &[3], &[f32::NAN; 3])?;
        let stats = Tensor::from_u32(ctx, "stats", &[3, STATS_PER_TASK], &[u32::MAX; 12])?;
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
                "rows={} ce10+mse3+bce5 logits±{}{}",
                self.rows,
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
/// reference.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for output in [Output::Losses, Output::Grads, Output::Stats] {
        for &rows in ROWS {
            cases.push(
                LossCase {
                    rows,
                    scale: 4.0,
                    all_missing: false,
                    output,
                }
                .into_case(),
            );
        }
        cases.push(
            LossCase {
                rows: 65,
                scale: 80.0,
                all_missing: false,
                output,
            }
            .into_case(),
        );
        cases.push(
            LossCase {
                rows: 9,
                scale: 4.0,
                all_missing: true,
                output,
            }
            .into_case(),
        );
    }
    cases
}
