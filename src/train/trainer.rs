//! The training loop: epochs of batches in a seeded order, the learning
//! rate and gradient-reversal λ set before every step, task weighting
//! through the learner's `Balancer`, loss readbacks on logged steps with a
//! divergence check, a validation pass after every epoch, early stopping,
//! and the best and periodic checkpoints. Everything it does is reported
//! to its [`Observer`]s.
//!
//! A run is counted from the start of training: `Length::Steps(n)` ends
//! at step n however many of those steps a resumed checkpoint had done.

use std::time::{Duration, Instant};

use crate::data::batch::{Batch, Batcher};
use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::graph::StepOptions;
use crate::train::batches::{batches_per_epoch, write_batch};
use crate::train::events::{
    CheckpointEvent, CheckpointKind, EndEvent, EpochEvent, EvaluationEvent, Observer, StartEvent,
    StepEvent, StopReason, Watched,
};
use crate::train::learner::Learner;
use crate::train::metrics::{metric_names, Metrics};
use crate::train::options::{TrainOptions, Validation};
use crate::train::parallel::DataParallel;
use crate::train::paths::check_output;
use crate::train::state::{self, TrainState};
use crate::train::stopping::{Best, Monitor, Verdict};

/// What a finished run reports.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainReport {
    /// Where the run stopped (save it with `train::state::save` to resume).
    pub state: TrainState,
    /// Steps this run took (without a resumed checkpoint's).
    pub steps_run: usize,
    /// Why it stopped.
    pub reason: StopReason,
    /// The best validation pass of the watched metric, if one is watched.
    pub best: Option<Best>,
    /// The last losses read back.
    pub last_losses: Option<Vec<f32>>,
    /// The last validation pass's metrics.
    pub validation: Option<Metrics>,
    /// The last step's (dispatches, submits).
    pub last_step: Option<(u64, u64)>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// What one step produced, single-replica or data-parallel alike.
struct StepOutcome {
    losses: Option<Vec<f32>>,
    first_non_finite: Option<crate::kernels::nonfinite::NonFiniteRecord>,
    weights: Vec<f32>,
    dispatches: u64,
    submits: u64,
}

/// Runs training: options, observers and the state to start from.
pub struct Trainer<'o> {
    options: TrainOptions,
    observers: Vec<&'o mut dyn Observer>,
    start: TrainState,
    parallel: Option<&'o mut DataParallel>,
}

/// One run's fixed facts, shared by the loop's helpers.
struct Run<'d> {
    total: usize,
    per_epoch: usize,
    monitor: Option<Monitor>,
    patience: Option<usize>,
    validation: Option<&'d Dataset>,
    started: Instant,
}

/// What the loop keeps between steps.
#[derive(Default)]
struct Progress {
    last_losses: Option<Vec<f32>>,
    last_step: Option<(u64, u64)>,
    validation: Option<Metrics>,
}

impl<'o> Trainer<'o> {
    /// A trainer with these options, starting at step 0.
    pub fn new(options: TrainOptions) -> Trainer<'o> {
        Trainer {
            options,
            observers: Vec::new(),
            start: TrainState::default(),
            parallel: None,
        }
    }

    /// Trains data-parallel: the learner given to `fit` is this process's
    /// first replica (built with its shard's rows, `parallel::local_rows`),
    /// batches are `parallel`'s global batches, and only the process that
    /// `writes_files` writes checkpoints.
    pub fn data_parallel(mut self, parallel: &'o mut DataParallel) -> Trainer<'o> {
        self.parallel = Some(parallel);
        self
    }

    /// Reports every event to `observer` too.
    pub fn observe(mut self, observer: &'o mut dyn Observer) -> Trainer<'o> {
        self.observers.push(observer);
        self
    }

    /// Continues a run from `state` (`train::state::resume` reads it from
    /// a checkpoint, with the learner's parameters and optimiser state).
    pub fn resume_from(mut self, state: TrainState) -> Trainer<'o> {
        self.start = state;
        self
    }

    /// The options.
    pub fn options(&self) -> &TrainOptions {
        &self.options
    }

    /// Trains `learner` on `train`, evaluating `validation` (if given and
    /// not empty) after every epoch. Options, output paths, the watched
    /// metric and the split sizes are all checked before the first step.
    /// A non-finite loss read back stops the run with `Error::Diverged`
    /// before any checkpoint is written over.
    pub fn fit(
        &mut self,
        ctx: &GpuContext,
        learner: &mut Learner,
        train: &Dataset,
        validation: Option<&Dataset>,
    ) -> Result<TrainReport> {
        self.options.check()?;
        let validation =
            validation.filter(|v| v.rows() > 0 && self.options.validate == Validation::EveryEpoch);
        let monitor = self.options.monitor();
        if let Some(m) = &monitor {
            check_metric(&m.metric, learner)?;
            if validation.is_none() {
                return Err(Error::InvalidInput {
                    op: "train",
                    detail: format!(
                        "early stopping and save_best watch '{}' on the validation split, but the \
                         run has no validation samples",
                        m.metric
                    ),
                });
            }
        }
        if let Some(path) = &self.options.save_best {
            check_output(path, "save_best")?;
        }
        if let Some(p) = &self.options.save_every {
            check_output(&p.path(1, 0), "save_every")?;
        }
        let batcher = match &mut self.parallel {
            Some(p) => {
                p.synchronise(ctx, learner)?;
                Batcher::new(train, &learner.spec.tasks, p.global_rows())?
            }
            None => Batcher::for_model(train, &learner.spec)?,
        };
        let last = self.options.last_batch;
        let per_epoch = batches_per_epoch(&batcher, train, "training", last)?;
        let run = Run {
            total: self.options.length.total_steps(per_epoch),
            per_epoch,
            monitor,
            patience: self.options.early_stopping.as_ref().map(|e| e.patience),
            validation,
            started: Instant::now(),
        };
        let mut state = self.start.for_epochs_of(per_epoch)?;
        let start_step = state.step;
        let start = StartEvent {
            start_step,
            total_steps: run.total,
            steps_per_epoch: per_epoch,
            batch_rows: batcher.rows(),
        };
        for o in self.observers.iter_mut() {
            o.on_start(&start)?;
        }
        let mut progress = Progress::default();
        let mut reason = StopReason::Completed;
        while state.step < run.total {
            let batches = batcher.epoch(self.options.order, state.epoch as u64, last)?;
            for batch in batches.skip(state.batch) {
                if state.step >= run.total {
                    break;
                }
                self.step(ctx, learner, &batch, &mut state, &run, &mut progress)?;
            }
            if state.batch < per_epoch {
                break; // the run ends mid-epoch
            }
            if self.end_epoch(ctx, learner, &mut state, &run, &mut progress)? {
                reason = StopReason::EarlyStopped { epoch: state.epoch };
                break;
            }
        }
        // A run ending mid-epoch still gets its validation pass.
        if state.batch > 0 && state.step > start_step {
            if let Some(v) = run.validation {
                self.validation_pass(ctx, learner, v, &mut state, &run, false, &mut progress)?;
            }
        }
        if let Some(p) = &mut self.parallel {
            p.check_identical(ctx, learner)?;
        }
        let end = EndEvent {
            step: state.step,
            epochs: state.epoch,
            steps_run: state.step - start_step,
            elapsed: run.started.elapsed(),
            reason,
        };
        for o in self.observers.iter_mut() {
            o.on_end(&end)?;
        }
        Ok(TrainReport {
            state,
            steps_run: state.step - start_step,
            reason,
            best: state.watch.best.filter(|_| run.monitor.is_some()),
            last_losses: progress.last_losses,
            validation: progress.validation,
            last_step: progress.last_step,
            elapsed: end.elapsed,
        })
    }

    /// One optimiser step on `batch`.
    fn step(
        &mut self,
        ctx: &GpuContext,
        learner: &mut Learner,
        batch: &Batch,
        state: &mut TrainState,
        run: &Run,
        progress: &mut Progress,
    ) -> Result<()> {
        let s = state.step;
        if !self.options.schedule.is_constant() {
            let lr = self.options.schedule.lr(learner.base_lr, s, run.total);
            learner.program.set_learning_rate(lr);
        }
        if learner.has_adversarial_task() {
            let lambda = self.options.reversal.lambda(s, run.total);
            learner.program.set_reversal_lambda(lambda);
        }
        let done = s + 1;
        let logged = done.is_multiple_of(self.options.read_every) || done == run.total;
        // The last step of an epoch is always read: no checkpoint or
        // validation pass follows a diverged step unnoticed.
        let epoch_end = state.batch + 1 == run.per_epoch;
        let read = logged || epoch_end || self.observers.iter().any(|o| o.wants_losses(done));
        let opts = if read {
            StepOptions::TRAIN_AND_READ
        } else {
            StepOptions::TRAIN
        };
        let lr = learner.program.learning_rate();
        let mut balanced = match &mut self.parallel {
            Some(p) => {
                let step = p.step(ctx, learner, batch)?;
                StepOutcome {
                    losses: read.then_some(step.losses),
                    first_non_finite: None,
                    weights: step.weights,
                    dispatches: step.dispatches,
                    submits: step.submits,
                }
            }
            None => {
                write_batch(ctx, &learner.program, &learner.nodes, batch)?;
                let mut balanced = learner.balancer.step(ctx, &mut learner.program, opts)?;
                let report = match balanced.report.losses.take() {
                    Some(pending) => Some(pending.wait(ctx)?),
                    None => None,
                };
                StepOutcome {
                    first_non_finite: report.as_ref().and_then(|r| r.first_non_finite),
                    losses: report.map(|r| r.losses),
                    weights: balanced.weights,
                    dispatches: balanced.report.dispatches,
                    submits: balanced.report.submits,
                }
            }
        };
        // The GPU watched every step's losses: the error names the first
        // step that went non-finite, not the step that read it.
        if let Some(first) = balanced.first_non_finite {
            let task = learner.spec.tasks.get(first.task as usize);
            return Err(Error::Diverged {
                step: u64::from(first.step),
                task: match task {
                    Some(t) => format!("task '{}'", t.name),
                    None => format!("task {}", first.task),
                },
                value: first.kind.value(),
            });
        }
        let losses = balanced.losses.take();
        if let Some(l) = &losses {
            if let Some(t) = l.iter().position(|v| !v.is_finite()) {
                return Err(Error::Diverged {
                    step: done as u64,
                    task: format!("task '{}'", learner.spec.tasks[t].name),
                    value: l[t],
                });
            }
        }
        state.step = done;
        state.batch += 1;
        let (regularisers, orthogonality) = if logged {
            (
                learner.program.regulariser_values(ctx)?,
                learner.program.orthogonality_values(ctx)?,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        progress.last_step = Some((balanced.dispatches, balanced.submits));
        let event = StepEvent {
            step: done,
            total_steps: run.total,
            epoch: state.epoch + 1,
            lr,
            weights: &balanced.weights,
            losses: losses.as_deref(),
            logged,
            regularisers: &regularisers,
            orthogonality: &orthogonality,
            dispatches: balanced.dispatches,
            submits: balanced.submits,
            elapsed: run.started.elapsed(),
            ctx,
            learner,
        };
        for o in self.observers.iter_mut() {
            o.on_step(&event)?;
        }
        if losses.is_some() {
            progress.last_losses = losses;
        }
        Ok(())
    }

    /// Closes a complete epoch: the balancer's epoch end, the validation
    /// pass and the periodic checkpoint. True when early stopping says stop.
    fn end_epoch(
        &mut self,
        ctx: &GpuContext,
        learner: &mut Learner,
        state: &mut TrainState,
        run: &Run,
        progress: &mut Progress,
    ) -> Result<bool> {
        learner.balancer.end_epoch(ctx, &mut learner.program)?;
        state.epoch += 1;
        state.batch = 0;
        let event = EpochEvent {
            epoch: state.epoch,
            step: state.step,
            elapsed: run.started.elapsed(),
            ctx,
            learner,
        };
        for o in self.observers.iter_mut() {
            o.on_epoch(&event)?;
        }
        let mut stop = false;
        if let Some(v) = run.validation {
            let verdict = self.validation_pass(ctx, learner, v, state, run, true, progress)?;
            stop = verdict.is_some_and(|v| v.stop);
        }
        let periodic = self.options.save_every.as_ref();
        if let Some(path) = periodic
            .filter(|p| state.epoch.is_multiple_of(p.epochs))
            .map(|p| p.path(state.epoch, state.step))
        {
            self.checkpoint(ctx, learner, state, &path, CheckpointKind::Periodic)?;
        }
        Ok(stop)
    }

    /// Evaluates the validation split, watches the monitored metric and
    /// keeps the best checkpoint. `complete`: the pass ends an epoch.
    #[allow(clippy::too_many_arguments)]
    fn validation_pass(
        &mut self,
        ctx: &GpuContext,
        learner: &Learner,
        data: &Dataset,
        state: &mut TrainState,
        run: &Run,
        complete: bool,
        progress: &mut Progress,
    ) -> Result<Option<Verdict>> {
        let metrics = learner.evaluate(ctx, data, "validation")?;
        for t in &metrics.tasks {
            if let Some(l) = t.value("loss").filter(|l| !l.is_finite()) {
                return Err(Error::Diverged {
                    step: state.step as u64,
                    task: format!("task '{}' (validation)", t.task),
                    value: l as f32,
                });
            }
        }
        let epoch = if complete {
            state.epoch
        } else {
            state.epoch + 1
        };
        let mut watched = None;
        if let Some(m) = &run.monitor {
            let value = metrics.get(&m.metric).ok_or_else(|| {
                let why = m
                    .metric
                    .split_once('.')
                    .and_then(|(task, _)| metrics.task(task))
                    .and_then(|t| metrics.why_empty(t))
                    .unwrap_or_else(|| "no task has labelled samples".into());
                Error::InvalidInput {
                    op: "train",
                    detail: format!("the watched metric '{}' has no value: {why}", m.metric),
                }
            })?;
            // Every process must take the same early-stopping decision:
            // replicas of other batch sizes may differ in the last bits.
            let value = match &mut self.parallel {
                Some(p) => p.agree(value)?,
                None => value,
            };
            let verdict = state
                .watch
                .observe(m, run.patience, value, epoch, state.step);
            watched = Some((m.metric.clone(), value, verdict));
        }
        let event = EvaluationEvent {
            epoch,
            complete,
            step: state.step,
            metrics: &metrics,
            watched: watched.as_ref().map(|(metric, value, verdict)| Watched {
                metric,
                value: *value,
                verdict: *verdict,
                best: state.watch.best,
            }),
            ctx,
            learner,
        };
        for o in self.observers.iter_mut() {
            o.on_evaluation(&event)?;
        }
        let verdict = watched.map(|w| w.2);
        if let (Some(path), Some(true)) = (&self.options.save_best, verdict.map(|v| v.improved)) {
            let path = path.clone();
            self.checkpoint(ctx, learner, state, &path, CheckpointKind::Best)?;
        }
        progress.validation = Some(metrics);
        Ok(verdict)
    }

    /// Writes a checkpoint of `learner` at `state` and reports it.
    fn checkpoint(
        &mut self,
        ctx: &GpuContext,
        learner: &Learner,
        state: &TrainState,
        path: &std::path::Path,
        kind: CheckpointKind,
    ) -> Result<()> {
        if self.parallel.as_ref().is_some_and(|p| !p.writes_files()) {
            return Ok(()); // rank 0 writes it
        }
        state::save(ctx, learner, state, &self.options.checkpoint_metadata, path)?;
        let event = CheckpointEvent {
            path,
            kind,
            epoch: if state.batch == 0 {
                state.epoch
            } else {
                state.epoch + 1
            },
            step: state.step,
        };
        for o in self.observers.iter_mut() {
            o.on_checkpoint(&event)?;
        }
        Ok(())
    }
}

/// Checks a watched metric's name against the learner's tasks: `loss`,
/// or `<task>.<metric>` with a metric that task reports.
pub fn check_metric(metric: &str, learner: &Learner) -> Result<()> {
    if metric == "loss" {
        return Ok(());
    }
    let names = learner.task_names();
    let bad = |detail: String| Error::InvalidInput {
        op: "train",
        detail: format!("watched metric '{metric}': {detail}"),
    };
    let Some((task, name)) = metric.split_once('.') else {
        return Err(bad(format!(
            "expected loss or <task>.<metric> (tasks: {})",
            names.join(", ")
        )));
    };
    let Some(t) = learner.spec.tasks.iter().position(|s| s.name == task) else {
        return Err(bad(format!(
            "no task '{task}' (tasks: {})",
            names.join(", ")
        )));
    };
    let scaled = learner.target_scales.get(t).is_some_and(|s| s.is_some());
    let known = metric_names(learner.spec.tasks[t].kind, scaled);
    if !known.contains(&name) {
        return Err(bad(format!("task '{task}' reports {}", known.join(", "))));
    }
    Ok(())
}
