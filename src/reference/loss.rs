//! Reference for the masked per-task losses (`kernels::loss`), in f64
//! with plain loops. The definitions are spelled out in shaders/loss.wgsl
//! and on `types::Reduction`; here each reduction is written out directly
//! (the mean divides by the width, the half sum halves), not through the
//! kernel's per-task scale.

use crate::types::{Activation, LossKind, Reduction};

/// One task's rows as dense host arrays: logits rows×width, targets
/// rows×width (MSE/BCE) or labels \[rows\] (CE), mask \[rows\] or none.
#[derive(Clone, Copy, Debug)]
pub struct TaskLossInput<'a> {
    /// The task's loss.
    pub kind: LossKind,
    /// How its terms are reduced.
    pub reduction: Reduction,
    /// Batch rows.
    pub rows: usize,
    /// Classes or outputs per row.
    pub width: usize,
    /// [rows, width].
    pub logits: &'a [f32],
    /// [rows, width] (MSE, BCE; unused for CE).
    pub targets: &'a [f32],
    /// \[rows\] class ids (CE; unused otherwise).
    pub labels: &'a [u32],
    /// \[rows\], 1 = labelled; None: every row labelled.
    pub mask: Option<&'a [f32]>,
    /// dObjective / dL_t.
    pub upstream: f32,
}

/// What the kernel writes for one task.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskLossOutput {
    /// Mean loss over the labelled rows (0 if none).
    pub loss: f32,
    /// rows×width.
    pub grads: Vec<f32>,
    /// [labelled rows, out-of-range labels, non-finite rows, 0].
    pub stats: [u32; 4],
}

fn sigmoid(x: f64) -> f64 {
    crate::reference::activation::act(Activation::Sigmoid, x)
}

/// The loss, gradient and statistics the kernel writes for one task;
/// None when the kind does not define the reduction (cross-entropy with
/// anything but the mean, BCE with the half sum).
pub fn task_loss(t: &TaskLossInput) -> Option<TaskLossOutput> {
    let w = t.width;
    // What a row's summed terms are divided by.
    let divisor = match (t.kind, t.reduction) {
        (LossKind::SoftmaxCrossEntropy, Reduction::Mean) => 1.0,
        (LossKind::SoftmaxCrossEntropy, _) => return None,
        (LossKind::BinaryCrossEntropy, Reduction::HalfSum) => return None,
        (_, Reduction::Mean) => w as f64,
        (_, Reduction::Sum) => 1.0,
        (_, Reduction::HalfSum) => 2.0,
    };
    let mut stats = [0u32; 4];
    let weight = |r: usize| -> f64 {
        let m = t.mask.map_or(1.0, |m| m[r] as f64);
        let ok = t.kind != LossKind::SoftmaxCrossEntropy || (t.labels[r] as usize) < w;
        if ok {
            m
        } else {
            0.0
        }
    };
    let mut wsum = 0f64;
    for r in 0..t.rows {
        let m = t.mask.map_or(1.0, |m| m[r] as f64);
        let wr = weight(r);
        if m != 0.0 && wr == 0.0 {
            stats[1] += 1;
        }
        if wr != 0.0 {
            stats[0] += 1;
        }
        wsum += wr;
    }
    let denom = wsum.max(1.0);
    let g = t.upstream as f64 / denom;
    let mut grads = vec![0f32; t.rows * w];
    let mut lsum = 0f64;
    for r in 0..t.rows {
        let m = weight(r);
        if m == 0.0 {
            continue;
        }
        let z = &t.logits[r * w..(r + 1) * w];
        let out = &mut grads[r * w..(r + 1) * w];
        let l = match t.kind {
            LossKind::SoftmaxCrossEntropy => {
                let zmax = z.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
                let sum: f64 = z.iter().map(|&v| (v as f64 - zmax).exp()).sum();
                let y = t.labels[r] as usize;
                for j in 0..w {
                    let p = (z[j] as f64 - zmax).exp() / sum;
                    out[j] = (g * m * (p - if j == y { 1.0 } else { 0.0 })) as f32;
                }
                sum.ln() + zmax - z[y] as f64
            }
            LossKind::MeanSquaredError => {
                let mut l = 0.0;
                for j in 0..w {
                    let d = z[j] as f64 - t.targets[r * w + j] as f64;
                    l += d * d / divisor;
                    out[j] = (g * m * 2.0 * d / divisor) as f32;
                }
                l
            }
            LossKind::BinaryCrossEntropy => {
                let mut l = 0.0;
                for j in 0..w {
                    let (zj, y) = (z[j] as f64, t.targets[r * w + j] as f64);
                    l += (zj.max(0.0) - zj * y + (-zj.abs()).exp().ln_1p()) / divisor;
                    out[j] = (g * m * (sigmoid(zj) - y) / divisor) as f32;
                }
                l
            }
        };
        if !l.is_finite() {
            stats[2] += 1;
        }
        lsum += m * l;
    }
    Some(TaskLossOutput {
        loss: (lsum / denom) as f32,
        grads,
        stats,
    })
}
