//! What a training run reports while it runs: events passed to
//! [`Observer`]s (the CLI's progress bar, JSON-lines log, loss plot and
//! summary are observers; so can an embedding application's be).
//!
//! Every method has a default that does nothing. An observer's error
//! (a log that cannot be written) stops the run with that error.

use std::path::Path;
use std::time::Duration;

use crate::error::Result;
use crate::gpu::GpuContext;
use crate::train::learner::Learner;
use crate::train::metrics::Metrics;
use crate::train::stopping::{Best, Verdict};

/// The run is about to take its first step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartEvent {
    /// Steps done before this run (resumed) or 0.
    pub start_step: usize,
    /// The run's last step: it trains steps `start_step + 1 ..= total_steps`.
    pub total_steps: usize,
    /// Batches in one epoch of the training split.
    pub steps_per_epoch: usize,
    /// Rows per batch (the model's).
    pub batch_rows: usize,
}

/// One optimiser step is done.
pub struct StepEvent<'a> {
    /// Steps done, this one included (1-based).
    pub step: usize,
    /// The run's last step.
    pub total_steps: usize,
    /// The epoch this step belongs to (1-based).
    pub epoch: usize,
    /// The learning rate the step used.
    pub lr: f32,
    /// The task coefficients the step used.
    pub weights: &'a [f32],
    /// The per-task losses, when this step read them back (logged steps,
    /// the last step of each epoch and of the run, and steps an observer
    /// asked for through [`Observer::wants_losses`]).
    pub losses: Option<&'a [f32]>,
    /// A logged step (every `read_every` steps, and the last).
    pub logged: bool,
    /// Logged steps of soft sharing: each regulariser's value; else empty.
    pub regularisers: &'a [f32],
    /// Logged steps of sluice: the subspace orthogonality values; else empty.
    pub orthogonality: &'a [f32],
    /// The step's compute dispatches.
    pub dispatches: u64,
    /// The step's queue submits.
    pub submits: u64,
    /// Wall time since the run started.
    pub elapsed: Duration,
    /// The context, to read more from the learner.
    pub ctx: &'a GpuContext,
    /// The model being trained, after the step.
    pub learner: &'a Learner,
}

/// An epoch over the training split is complete.
pub struct EpochEvent<'a> {
    /// The epoch (1-based).
    pub epoch: usize,
    /// Steps done.
    pub step: usize,
    /// Wall time since the run started.
    pub elapsed: Duration,
    /// The context, to read more from the learner.
    pub ctx: &'a GpuContext,
    /// The model being trained, as the epoch left it.
    pub learner: &'a Learner,
}

/// The validation split was evaluated (after each epoch, and at the end
/// of a run that stops mid-epoch).
pub struct EvaluationEvent<'a> {
    /// The epoch the pass ends (1-based); mid-epoch when `complete` is false.
    pub epoch: usize,
    /// Whether that epoch is complete.
    pub complete: bool,
    /// Steps done.
    pub step: usize,
    /// The per-task validation metrics.
    pub metrics: &'a Metrics,
    /// The watched metric's value and verdict, when one is watched
    /// (early stopping or the best checkpoint).
    pub watched: Option<Watched<'a>>,
    /// The context, to read more from the learner.
    pub ctx: &'a GpuContext,
    /// The model evaluated.
    pub learner: &'a Learner,
}

/// The watched metric at one validation pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Watched<'a> {
    /// Its name (`loss`, `<task>.<metric>`).
    pub metric: &'a str,
    /// Its value at this pass.
    pub value: f64,
    /// Improved, passes without improvement, stop.
    pub verdict: Verdict,
    /// The best pass so far (this one when it improved).
    pub best: Option<Best>,
}

/// Why a checkpoint was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointKind {
    /// The watched metric improved (`save_best`).
    Best,
    /// Every N epochs (`save_every`).
    Periodic,
}

/// A checkpoint was written (atomically).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointEvent<'a> {
    /// Where.
    pub path: &'a Path,
    /// Why.
    pub kind: CheckpointKind,
    /// The epoch (1-based) it was taken at.
    pub epoch: usize,
    /// Steps done.
    pub step: usize,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Every step of the run was taken.
    Completed,
    /// Early stopping: the watched metric stopped improving.
    EarlyStopped {
        /// The epoch (1-based) after which it stopped.
        epoch: usize,
    },
}

/// The run is over (not sent when it fails).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EndEvent {
    /// Steps done.
    pub step: usize,
    /// Complete epochs.
    pub epochs: usize,
    /// Steps this run took (without those of a resumed checkpoint).
    pub steps_run: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Why it ended.
    pub reason: StopReason,
}

/// Receives a run's events. Every method defaults to doing nothing.
pub trait Observer {
    /// Whether the losses of step `step` (1-based) should be read back
    /// (a readback costs a wait; logged steps are read anyway).
    fn wants_losses(&self, _step: usize) -> bool {
        false
    }
    /// Before the first step.
    fn on_start(&mut self, _event: &StartEvent) -> Result<()> {
        Ok(())
    }
    /// After every step.
    fn on_step(&mut self, _event: &StepEvent) -> Result<()> {
        Ok(())
    }
    /// After every complete epoch (before its validation pass).
    fn on_epoch(&mut self, _event: &EpochEvent) -> Result<()> {
        Ok(())
    }
    /// After every validation pass.
    fn on_evaluation(&mut self, _event: &EvaluationEvent) -> Result<()> {
        Ok(())
    }
    /// After every checkpoint the trainer writes.
    fn on_checkpoint(&mut self, _event: &CheckpointEvent) -> Result<()> {
        Ok(())
    }
    /// When the run ends without an error.
    fn on_end(&mut self, _event: &EndEvent) -> Result<()> {
        Ok(())
    }
}
