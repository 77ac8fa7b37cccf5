//! Batches in exactly the layout a model's inputs take (`arch::ModelNodes`):
//! x [rows, D]; labels [classification tasks, rows] (u32, in task order);
//! targets [rows, Σ widths] (f32, task t at its logit column offset;
//! classification columns unused, left 0); masks [T, rows] (f32, 1 =
//! labelled).
//!
//! The model's row count is fixed, so when N is not a multiple of it the
//! last batch of an epoch is either dropped or padded: padding rows have
//! x = 0, label 0, targets 0 and mask 0 for EVERY task, so the masked
//! losses (mean over labelled rows) ignore them. That only works when the
//! model masks every task (`TaskSpec::masked`); an epoch that would pad an
//! unmasked model is refused with an error saying what to change.
//! `Batch::real_rows` counts the rows that hold samples.

use crate::data::dataset::{Dataset, Order, Targets};
use crate::error::Result;
use crate::types::{ModelSpec, TaskSpec};

/// What to do with the last batch of an epoch when it has fewer samples
/// than the model's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LastBatch {
    /// Fill it up with masked-out padding rows (needs every task masked).
    Pad,
    /// Skip it; those samples are seen in other epochs when shuffling.
    Drop,
}

/// One batch, in the model's input layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The model's fixed row count; every array below has this many rows.
    pub rows: usize,
    /// Rows that hold samples (the first `real_rows`); the rest is padding.
    pub real_rows: usize,
    /// x [rows, D].
    pub x: Vec<f32>,
    /// Class ids [classification tasks, rows], if any task classifies.
    pub labels: Option<Vec<u32>>,
    /// Targets [rows, Σ widths], if any task regresses or has binary labels.
    pub targets: Option<Vec<f32>>,
    /// Masks [T, rows] (1 = labelled), if any task is masked.
    pub masks: Option<Vec<f32>>,
}

/// Where one model task's data goes.
#[derive(Clone, Debug)]
struct Slot {
    /// Index of the task in the dataset.
    data_task: usize,
    /// First logit/target column.
    column: usize,
    /// Row of `labels`, for classification tasks.
    label_row: Option<usize>,
}

/// Turns samples of one dataset into batches for a model's task list.
#[derive(Clone, Debug)]
pub struct Batcher<'d> {
    data: &'d Dataset,
    rows: usize,
    slots: Vec<Slot>,
    /// Σ task widths: the row length of targets.
    width: usize,
    class_tasks: usize,
    any_masked: bool,
    every_masked: bool,
}

impl<'d> Batcher<'d> {
    /// Batches of `rows` rows for the tasks `tasks`, in that order (a
    /// subset of the dataset's tasks, matched by name). Fails when a task
    /// is missing from the data, has another kind or width, or has missing
    /// labels that the task spec does not mask.
    pub fn new(data: &'d Dataset, tasks: &[TaskSpec], rows: usize) -> Result<Self> {
        if rows == 0 || tasks.is_empty() {
            return Err(data.error(format!(
                "batches need ≥ 1 row and ≥ 1 task (got {rows} rows, {} tasks)",
                tasks.len()
            )));
        }
        let mut slots = Vec::with_capacity(tasks.len());
        let (mut column, mut class_tasks) = (0, 0);
        for spec in tasks {
            let Some(data_task) = data.tasks().iter().position(|t| t.name == spec.name) else {
                let names: Vec<&str> = data.tasks().iter().map(|t| t.name.as_str()).collect();
                return Err(data.error(format!(
                    "the model's task '{}' is not in the data (tasks: {})",
                    spec.name,
                    names.join(", ")
                )));
            };
            let task = &data.tasks()[data_task];
            if task.targets.kind() != spec.kind {
                return Err(data.error(format!(
                    "task '{}' is {:?} in the data but {:?} in the model",
                    spec.name,
                    task.targets.kind(),
                    spec.kind
                )));
            }
            if task.mask.is_some() && !spec.masked {
                return Err(data.error(format!(
                    "task '{}' has missing labels: set masked = true on its TaskSpec",
                    spec.name
                )));
            }
            let label_row = matches!(task.targets, Targets::Classes { .. }).then(|| {
                class_tasks += 1;
                class_tasks - 1
            });
            slots.push(Slot {
                data_task,
                column,
                label_row,
            });
            column += spec.kind.width();
        }
        Ok(Batcher {
            data,
            rows,
            slots,
            width: column,
            class_tasks,
            any_masked: tasks.iter().any(|t| t.masked),
            every_masked: tasks.iter().all(|t| t.masked),
        })
    }

    /// Batches for `model`'s rows and tasks; also checks its input width.
    pub fn for_model(data: &'d Dataset, model: &ModelSpec) -> Result<Self> {
        if model.inputs != data.features() {
            return Err(data.error(format!(
                "the model takes {} inputs but the data has {} features",
                model.inputs,
                data.features()
            )));
        }
        Batcher::new(data, &model.tasks, model.rows)
    }

    /// Rows per batch.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Task t's target columns (offset, width), as `ModelNodes::columns`.
    pub fn columns(&self) -> Vec<(usize, usize)> {
        self.slots
            .iter()
            .map(|s| {
                (
                    s.column,
                    self.data.tasks()[s.data_task].targets.kind().width(),
                )
            })
            .collect()
    }

    /// Batches in an epoch of `samples` samples.
    pub fn batch_count(&self, samples: usize, last: LastBatch) -> usize {
        match last {
            LastBatch::Pad => samples.div_ceil(self.rows),
            LastBatch::Drop => samples / self.rows,
        }
    }

    /// One batch of the samples `samples` (≤ rows of them), padded.
    pub fn batch(&self, samples: &[usize]) -> Result<Batch> {
        if samples.len() > self.rows {
            return Err(self.data.error(format!(
                "{} samples do not fit a batch of {} rows",
                samples.len(),
                self.rows
            )));
        }
        self.check_padding(self.rows - samples.len())?;
        if let Some(&bad) = samples.iter().find(|&&s| s >= self.data.rows()) {
            return Err(self.data.error(format!(
                "sample {bad} is out of range (the data has {})",
                self.data.rows()
            )));
        }
        Ok(self.assemble(samples))
    }

    /// Every batch of epoch `epoch`, visiting the samples in `order`.
    pub fn epoch(&self, order: Order, epoch: u64, last: LastBatch) -> Result<Batches<'_, 'd>> {
        let samples = order.indices(self.data.rows(), epoch);
        let partial = samples.len() % self.rows;
        if last == LastBatch::Pad && partial > 0 {
            self.check_padding(self.rows - partial)?;
        }
        let count = self.batch_count(samples.len(), last);
        Ok(Batches {
            batcher: self,
            samples,
            next: 0,
            count,
        })
    }

    /// The batches of a fixed-step training run: `steps` full batches,
    /// epoch 0, 1, … in turn (each `epoch(order, e, LastBatch::Drop)`).
    /// Fails when the data holds fewer samples than one batch (no epoch
    /// has a full batch).
    pub fn steps(
        &self,
        order: Order,
        steps: usize,
    ) -> Result<impl Iterator<Item = Batch> + use<'_, 'd>> {
        if self.batch_count(self.data.rows(), LastBatch::Drop) == 0 {
            return Err(self.data.error(format!(
                "{} samples do not fill one batch of {} rows",
                self.data.rows(),
                self.rows
            )));
        }
        let epochs = (0u64..).map(move |e| {
            let samples = order.indices(self.data.rows(), e);
            let count = self.batch_count(samples.len(), LastBatch::Drop);
            Batches {
                batcher: self,
                samples,
                next: 0,
                count,
            }
        });
        Ok(epochs.flatten().take(steps))
    }

    fn check_padding(&self, padding: usize) -> Result<()> {
        if padding > 0 && !self.every_masked {
            return Err(self.data.error(format!(
                "a batch of {} rows would need {padding} padding rows, which only masks hide: \
                 set masked = true on every TaskSpec, or drop the last batch (LastBatch::Drop)",
                self.rows
            )));
        }
        Ok(())
    }

    /// Writes `samples` into a zeroed batch; padding rows stay 0 (masked).
    fn assemble(&self, samples: &[usize]) -> Batch {
        let (rows, d) = (self.rows, self.data.features());
        let mut x = vec![0f32; rows * d];
        let mut labels = vec![0u32; self.class_tasks * rows];
        let mut targets = vec![0f32; rows * self.width];
        let mut masks = vec![0f32; self.slots.len() * rows];
        for (r, &s) in samples.iter().enumerate() {
            x[r * d..(r + 1) * d].copy_from_slice(self.data.sample(s));
            for (t, slot) in self.slots.iter().enumerate() {
                let task = &self.data.tasks()[slot.data_task];
                masks[t * rows + r] = if task.is_labelled(s) { 1.0 } else { 0.0 };
                let row = &mut targets[r * self.width..(r + 1) * self.width];
                match &task.targets {
                    Targets::Classes { ids, .. } => {
                        let label_row = slot.label_row.expect("class tasks have a label row");
                        labels[label_row * rows + r] = ids[s];
                    }
                    Targets::Real { outputs: k, values }
                    | Targets::Binary { labels: k, values } => {
                        row[slot.column..slot.column + k]
                            .copy_from_slice(&values[s * k..(s + 1) * k]);
                    }
                }
            }
        }
        Batch {
            rows,
            real_rows: samples.len(),
            x,
            labels: (self.class_tasks > 0).then_some(labels),
            targets: (self.class_tasks < self.slots.len()).then_some(targets),
            masks: self.any_masked.then_some(masks),
        }
    }
}

/// The batches of one epoch, in order.
#[derive(Debug)]
pub struct Batches<'b, 'd> {
    batcher: &'b Batcher<'d>,
    samples: Vec<usize>,
    next: usize,
    count: usize,
}

impl Batches<'_, '_> {
    /// The sample indices of the epoch, in visiting order.
    pub fn samples(&self) -> &[usize] {
        &self.samples
    }
}

impl Iterator for Batches<'_, '_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.count {
            return None;
        }
        let rows = self.batcher.rows;
        let start = self.next * rows;
        let end = (start + rows).min(self.samples.len());
        self.next += 1;
        Some(self.batcher.assemble(&self.samples[start..end]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.count - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_, '_> {}
