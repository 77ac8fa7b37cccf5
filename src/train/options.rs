//! What a training run does: its length, sample order, last-batch rule,
//! learning-rate schedule, gradient-reversal schedule, loss readbacks,
//! early stopping and checkpoints. Built step by step:
//!
//! ```
//! use manytask::train::{EarlyStopping, LrSchedule, ScheduleKind, TrainOptions};
//! let options = TrainOptions::epochs(20)
//!     .shuffle(7)
//!     .schedule(LrSchedule::new(ScheduleKind::Cosine { min_lr: 1e-5 }).with_warmup(100))
//!     .early_stopping(EarlyStopping::new("loss", 3))
//!     .save_best("best.safetensors");
//! assert_eq!(options.read_every, 50);
//! ```

use std::path::{Path, PathBuf};

use crate::data::batch::LastBatch;
use crate::data::dataset::Order;
use crate::error::{Error, Result};
use crate::train::schedule::LrSchedule;
use crate::train::stopping::{EarlyStopping, Monitor};
use crate::types::ReversalSchedule;

/// How long a run trains. Counted from the start of training: a resumed
/// run continues up to the same length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Length {
    /// This many optimiser steps.
    Steps(usize),
    /// This many epochs over the training split.
    Epochs(usize),
}

impl Length {
    /// The run's steps, for epochs of `per_epoch` batches.
    pub fn total_steps(self, per_epoch: usize) -> usize {
        match self {
            Length::Steps(n) => n,
            Length::Epochs(e) => e.saturating_mul(per_epoch),
        }
    }
}

/// Periodic checkpoints: every `epochs` epochs, to `pattern` with
/// `{epoch}` (1-based) and `{step}` replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Periodic {
    /// Epochs between checkpoints (≥ 1).
    pub epochs: usize,
    /// The path, e.g. `ckpt/epoch-{epoch}.safetensors` (without a
    /// placeholder every checkpoint replaces the last).
    pub pattern: PathBuf,
}

impl Periodic {
    /// The path of the checkpoint after `epoch` (1-based) at `step`.
    pub fn path(&self, epoch: usize, step: usize) -> PathBuf {
        let text = self.pattern.to_string_lossy();
        let text = text
            .replace("{epoch}", &epoch.to_string())
            .replace("{step}", &step.to_string());
        PathBuf::from(text)
    }
}

/// The options of a [`Trainer`](crate::train::Trainer) run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// Steps or epochs.
    pub length: Length,
    /// The sample order of each epoch (default: shuffled from seed 0).
    pub order: Order,
    /// The short last batch of an epoch: kept, padded with masked-out
    /// rows (`Pad`, the default, PyTorch's `drop_last=False`), or dropped.
    pub last_batch: LastBatch,
    /// The learning rate at every step (default constant).
    pub schedule: LrSchedule,
    /// λ of adversarial tasks' gradient reversal (default Ganin's).
    pub reversal: ReversalSchedule,
    /// Steps between logged steps, whose losses are read back (default 50).
    pub read_every: usize,
    /// Evaluate the validation split after every epoch (default on, when
    /// the run has a validation split with samples).
    pub validate: Validation,
    /// Stop when a validation metric stops improving.
    pub early_stopping: Option<EarlyStopping>,
    /// Write the checkpoint here whenever the watched metric improves.
    pub save_best: Option<PathBuf>,
    /// Periodic checkpoints.
    pub save_every: Option<Periodic>,
    /// Extra metadata stored in every checkpoint the trainer writes
    /// (`manytask train` stores its config).
    pub checkpoint_metadata: Vec<(String, String)>,
}

/// Whether the trainer evaluates the validation split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validation {
    /// After every epoch (and at the end of a run stopping mid-epoch).
    EveryEpoch,
    /// Never (early stopping and the best checkpoint then cannot work).
    Never,
}

impl TrainOptions {
    /// A run of `steps` optimiser steps with the defaults.
    pub fn steps(steps: usize) -> TrainOptions {
        TrainOptions::with_length(Length::Steps(steps))
    }

    /// A run of `epochs` epochs with the defaults.
    pub fn epochs(epochs: usize) -> TrainOptions {
        TrainOptions::with_length(Length::Epochs(epochs))
    }

    /// A run of `length` with the defaults.
    pub fn with_length(length: Length) -> TrainOptions {
        TrainOptions {
            length,
            order: Order::Shuffled { seed: 0 },
            last_batch: LastBatch::Pad,
            schedule: LrSchedule::constant(),
            reversal: ReversalSchedule::Ganin,
            read_every: 50,
            validate: Validation::EveryEpoch,
            early_stopping: None,
            save_best: None,
            save_every: None,
            checkpoint_metadata: Vec::new(),
        }
    }

    /// Shuffle every epoch from `seed`.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.order = Order::Shuffled { seed };
        self
    }

    /// Visit the samples in this order every epoch.
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// Keep (`Pad`) or drop (`Drop`) the short last batch.
    pub fn last_batch(mut self, last: LastBatch) -> Self {
        self.last_batch = last;
        self
    }

    /// The learning-rate schedule.
    pub fn schedule(mut self, schedule: LrSchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// The gradient-reversal schedule.
    pub fn reversal(mut self, reversal: ReversalSchedule) -> Self {
        self.reversal = reversal;
        self
    }

    /// Read the losses back every `steps` steps.
    pub fn read_every(mut self, steps: usize) -> Self {
        self.read_every = steps;
        self
    }

    /// Evaluate the validation split or not.
    pub fn validate(mut self, validation: Validation) -> Self {
        self.validate = validation;
        self
    }

    /// Stop early.
    pub fn early_stopping(mut self, stopping: EarlyStopping) -> Self {
        self.early_stopping = Some(stopping);
        self
    }

    /// Keep the best checkpoint at `path`.
    pub fn save_best(mut self, path: impl AsRef<Path>) -> Self {
        self.save_best = Some(path.as_ref().to_path_buf());
        self
    }

    /// A checkpoint every `epochs` epochs at `pattern` ([`Periodic`]).
    pub fn save_every(mut self, epochs: usize, pattern: impl AsRef<Path>) -> Self {
        self.save_every = Some(Periodic {
            epochs,
            pattern: pattern.as_ref().to_path_buf(),
        });
        self
    }

    /// Store `key` = `value` in every checkpoint the trainer writes.
    pub fn checkpoint_metadata(mut self, key: &str, value: &str) -> Self {
        self.checkpoint_metadata
            .push((key.to_string(), value.to_string()));
        self
    }

    /// The watched metric: early stopping's, else the validation loss
    /// when the best checkpoint is kept, else none.
    pub fn monitor(&self) -> Option<Monitor> {
        match (&self.early_stopping, &self.save_best) {
            (Some(e), _) => Some(e.monitor.clone()),
            (None, Some(_)) => Some(Monitor::loss()),
            (None, None) => None,
        }
    }

    /// Checks the values that need no data.
    pub fn check(&self) -> Result<()> {
        let bad = |detail: String| Error::InvalidInput {
            op: "train",
            detail,
        };
        if self.read_every == 0 {
            return Err(bad("read_every must be ≥ 1".into()));
        }
        if self.length == Length::Epochs(0) {
            return Err(bad("a run of 0 epochs".into()));
        }
        self.schedule.check().map_err(bad)?;
        if let Some(e) = &self.early_stopping {
            if e.patience == 0 {
                return Err(bad("early stopping: patience must be ≥ 1".into()));
            }
            let d = e.monitor.min_delta;
            if !(d.is_finite() && d >= 0.0) {
                return Err(bad(format!(
                    "early stopping: min_delta = {d} must be finite and ≥ 0"
                )));
            }
        }
        if let Some(p) = &self.save_every {
            if p.epochs == 0 {
                return Err(bad("save_every: epochs must be ≥ 1".into()));
            }
        }
        if self.monitor().is_some() && self.validate == Validation::Never {
            return Err(bad(
                "early stopping and save_best watch the validation split, which \
                 Validation::Never turns off"
                    .into(),
            ));
        }
        Ok(())
    }
}
