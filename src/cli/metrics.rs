//! Per-task metrics of a trained program over a dataset split (accuracy
//! for classification and binary tasks; MSE, RMSE and MAE for regression),
//! and writing a batch into a program's inputs. Shared by `train` and
//! `eval`.

use crate::arch::{ModelNodes, ModelSpec, TaskKind};
use crate::data::batch::{Batch, Batcher, LastBatch};
use crate::data::dataset::{Dataset, Order};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::graph::Program;

/// Per-task metrics over a split: (name, [(metric, value)]).
pub type Metrics = Vec<(String, Vec<(&'static str, f64)>)>;

/// Per-task metrics of `program` over every sample of `data`, in batches
/// of the model's rows (the last one padded and masked out): accuracy for
/// classification and binary tasks, MSE/RMSE/MAE for regression; only
/// labelled samples count.
pub fn evaluate(
    ctx: &GpuContext,
    program: &Program,
    nodes: &ModelNodes,
    spec: &ModelSpec,
    data: &Dataset,
) -> Result<Metrics> {
    let batcher = Batcher::for_model(data, spec)?;
    let width: usize = nodes.columns.iter().map(|c| c.1).sum();
    // Σ per task and metric, and the labelled count.
    let mut sums = vec![[0f64; 2]; spec.tasks.len()];
    let mut counts = vec![0f64; spec.tasks.len()];
    for batch in batcher.epoch(Order::Sequential, 0, LastBatch::Pad)? {
        write_batch(ctx, program, nodes, &batch)?;
        let (logits, _) = program.predict(ctx)?;
        let mut ce = 0;
        for (t, task) in spec.tasks.iter().enumerate() {
            let (col, w) = nodes.columns[t];
            for r in 0..batch.real_rows {
                let labelled = batch
                    .masks
                    .as_ref()
                    .is_none_or(|m| m[t * batch.rows + r] > 0.5);
                if !labelled {
                    continue;
                }
                let out = &logits[r * width + col..r * width + col + w];
                match task.kind {
                    TaskKind::Classification { .. } => {
                        let label = batch.labels.as_ref().expect("labels")[ce * batch.rows + r];
                        let best = (0..w)
                            .max_by(|&a, &b| out[a].total_cmp(&out[b]))
                            .unwrap_or(0);
                        sums[t][0] += (best as u32 == label) as u8 as f64;
                    }
                    _ => {
                        let y = &batch.targets.as_ref().expect("targets")
                            [r * width + col..r * width + col + w];
                        for (o, v) in out.iter().zip(y) {
                            let e = (o - v) as f64;
                            if let TaskKind::Binary { .. } = task.kind {
                                sums[t][0] += ((*o > 0.0) == (*v > 0.5)) as u8 as f64 / w as f64;
                            } else {
                                sums[t][0] += e * e / w as f64;
                                sums[t][1] += e.abs() / w as f64;
                            }
                        }
                    }
                }
                counts[t] += 1.0;
            }
            if let TaskKind::Classification { .. } = task.kind {
                ce += 1;
            }
        }
    }
    Ok(spec
        .tasks
        .iter()
        .enumerate()
        .map(|(t, task)| {
            let n = counts[t].max(1.0);
            let m = match task.kind {
                TaskKind::Regression { .. } => vec![
                    ("mse", sums[t][0] / n),
                    ("rmse", (sums[t][0] / n).sqrt()),
                    ("mae", sums[t][1] / n),
                ],
                _ => vec![("accuracy", sums[t][0] / n)],
            };
            (task.name.clone(), m)
        })
        .collect())
}

/// Writes a batch's x, labels, targets and masks into the program's
/// input tensors (those the model has).
pub fn write_batch(
    ctx: &GpuContext,
    program: &Program,
    nodes: &ModelNodes,
    batch: &Batch,
) -> Result<()> {
    program.input(nodes.x)?.write_f32(ctx, &batch.x)?;
    if let (Some(n), Some(v)) = (nodes.labels, &batch.labels) {
        program.input(n)?.write_u32(ctx, v)?;
    }
    if let (Some(n), Some(v)) = (nodes.targets, &batch.targets) {
        program.input(n)?.write_f32(ctx, v)?;
    }
    if let (Some(n), Some(v)) = (nodes.masks, &batch.masks) {
        program.input(n)?.write_f32(ctx, v)?;
    }
    Ok(())
}
