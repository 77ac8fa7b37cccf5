//! Training: the loop every run shares, as a library. A [`Learner`] is a
//! built model (spec, program, task balancer); a [`Trainer`] with
//! [`TrainOptions`] trains it on a dataset split and reports what happens
//! to [`Observer`]s; [`Metrics`] are what evaluation measures.
//!
//! ```
//! use manytask::data::synthetic::{Synthetic, SyntheticSpec};
//! use manytask::prelude::*;
//!
//! # fn main() -> manytask::Result<()> {
//! let ctx = GpuContext::from_env()?;
//! // 2 regression tasks of 2 outputs each, on 8 features; 120 samples.
//! let data = Dataset::from_synthetic(&Synthetic::generate(
//!     &SyntheticSpec::new(2, 8, 2, 10.0, 0),
//!     120,
//! )?)?;
//! let split = data.split(SplitFractions { validation: 0.2, test: 0.2 }, 0)?;
//! let spec = ModelSpec {
//!     init: WeightInit::default(),
//!     rows: 16,
//!     inputs: data.features(),
//!     activation: Activation::Relu,
//!     sharing: Sharing::Hard { trunk: vec![16] },
//!     // masked: the short last batch is padded with masked-out rows.
//!     tasks: data
//!         .tasks()
//!         .iter()
//!         .map(|t| TaskSpec { masked: true, ..TaskSpec::new(&t.name, t.targets.kind(), &[]) })
//!         .collect(),
//! };
//! let optimizer = Optimizer::AdamW(AdamW { lr: 1e-2, ..AdamW::default() });
//! let mut learner = Learner::new(&ctx, spec, optimizer, Weighting::Equal, 0)?;
//! let report = Trainer::new(TrainOptions::epochs(2).shuffle(0))
//!     .fit(&ctx, &mut learner, &split.train, Some(&split.validation))?;
//! assert_eq!(report.state.epoch, 2);
//! let test = learner.evaluate(&ctx, &split.test, "test")?;
//! assert!(test.get("task0.mse").is_some_and(f64::is_finite));
//! # Ok(())
//! # }
//! ```
//!
//! Modules, one job each:
//! - [`options`]: what a run does (length, order, last batch, schedules,
//!   early stopping, checkpoints);
//! - [`trainer`]: the loop;
//! - [`learner`]: the model it trains;
//! - [`batches`]: writing batches into the program, epoch sizes;
//! - [`schedule`]: learning-rate schedules;
//! - [`stopping`]: watching a validation metric (best value, patience);
//! - [`metrics`]: per-task metrics of a split;
//! - [`events`]: the observer interface;
//! - [`state`]: the run's position, saved in checkpoints for resuming;
//! - [`baseline`]: single-task baselines and Δm%;
//! - [`parallel`]: data-parallel replicas and the gradient all-reduce;
//! - [`setup`]: a run config made into data, split, learner and options;
//! - [`paths`]: output paths checked before training.

pub mod baseline;
pub mod batches;
pub mod events;
pub mod learner;
pub mod metrics;
pub mod options;
pub mod parallel;
pub mod paths;
pub mod schedule;
pub mod setup;
pub mod state;
pub mod stopping;
pub mod trainer;

pub use events::{
    CheckpointEvent, CheckpointKind, EndEvent, EpochEvent, EvaluationEvent, Observer, StartEvent,
    StepEvent, StopReason, Watched,
};
pub use learner::Learner;
pub use metrics::{GateReport, Metrics, TargetScale, TaskGateReport, TaskMetrics};
pub use options::{Length, Periodic, TrainOptions, Validation};
pub use schedule::{LrSchedule, ScheduleKind};
pub use state::TrainState;
pub use stopping::{Direction, EarlyStopping, Monitor};
pub use trainer::{TrainReport, Trainer};
