//! Batches into a program: writing one batch into the model's inputs, and
//! how many batches an epoch of the training split has.
//!
//! The short last batch of an epoch is kept by default (`LastBatch::Pad`:
//! filled up with masked-out rows, so its losses are means over its own
//! labelled rows, like PyTorch's `DataLoader(drop_last=False)`), or
//! dropped (`LastBatch::Drop`). A split too small for one batch is an
//! error naming it, never an endless loop.

use crate::arch::ModelNodes;
use crate::data::batch::{Batch, Batcher, LastBatch};
use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::graph::Program;

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

/// Batches per epoch of `train` (the training split, `split` in errors):
/// ≥ 1, or an error naming the split and its size when it has no sample,
/// or fewer samples than one batch and the last batch is dropped.
pub fn batches_per_epoch(
    batcher: &Batcher,
    train: &Dataset,
    split: &str,
    last: LastBatch,
) -> Result<usize> {
    let (rows, batch) = (train.rows(), batcher.rows());
    let fail = |detail: String| Error::Data {
        file: train.source().to_string(),
        detail,
    };
    if rows == 0 {
        return Err(fail(format!(
            "the {split} split is empty (0 samples): nothing to train on"
        )));
    }
    match batcher.batch_count(rows, last) {
        0 => Err(fail(format!(
            "the {split} split has {rows} samples, fewer than one batch of {batch}, and \
             drop_last is set: no batch would ever be trained (lower the batch size, or keep \
             the short last batch with drop_last = false)"
        ))),
        n => Ok(n),
    }
}
