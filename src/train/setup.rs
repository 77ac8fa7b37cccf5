//! A run config made real: its data and split, the model built on a
//! context, and the trainer options of its `[train]` table. `manytask
//! train` and `eval` both start here, so they cut the same split from the
//! same seed and build the same parameters.

use std::path::Path;

use crate::config::train::TrainConfig;
use crate::config::Config;
use crate::data::batch::{Batcher, LastBatch};
use crate::data::dataset::{Dataset, Split};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::train::learner::Learner;
use crate::train::metrics::target_scales;
use crate::train::options::{Length, TrainOptions};
use crate::train::schedule::{LrSchedule, ScheduleKind};
use crate::train::stopping::{Direction, EarlyStopping, Monitor};
use crate::types::ModelSpec;

/// A built run: data, split and the model to train.
pub struct Setup {
    /// All samples, as the config's source gave them.
    pub data: Dataset,
    /// Train / validation / test, cut from `train.seed`.
    pub split: Split,
    /// The model, its program freshly initialised from `train.seed`.
    pub learner: Learner,
}

/// Loads the data, completes `config` (the data's tasks when it lists
/// none; only `single_task` when given) so it describes the model exactly,
/// checks the model against the data, and builds it.
pub fn build(ctx: &GpuContext, config: &mut Config, single_task: Option<&str>) -> Result<Setup> {
    build_with_rows(ctx, config, single_task, None)
}

/// `build`, the model's batch rows `rows` instead of the config's when
/// given: a data-parallel replica's shard of the global batch
/// (`parallel::local_rows`). The config keeps the global batch size.
pub fn build_with_rows(
    ctx: &GpuContext,
    config: &mut Config,
    single_task: Option<&str>,
    rows: Option<usize>,
) -> Result<Setup> {
    // The split files when the config names them, else a seeded split.
    let (data, split) = config.split()?;
    config.fill_tasks(&data);
    if let Some(name) = single_task {
        config.keep_only_task(name)?;
    }
    let mut spec = config.model_spec(data.features())?;
    if let Some(rows) = rows {
        spec.rows = rows;
    }
    // Task names, kinds and the input width against the data, before any
    // GPU work.
    Batcher::for_model(&data, &spec)?;
    let weighting = config
        .train
        .weighting
        .weighting()
        .map_err(|d| config.error(d))?;
    let optimizer = config.train.optimizer().map_err(|d| config.error(d))?;
    let mut learner = Learner::new(ctx, spec, optimizer, weighting, config.train.seed)?;
    learner.target_scales = target_scales(&data, &learner.spec.tasks);
    Ok(Setup {
        data,
        split,
        learner,
    })
}

/// Another data-parallel replica of `learner` (built by `build` from
/// `config`) on `ctx`, with `rows` batch rows: the same model, optimiser,
/// weighting and seed.
pub fn replica(
    ctx: &GpuContext,
    config: &Config,
    learner: &Learner,
    rows: usize,
) -> Result<Learner> {
    let weighting = config
        .train
        .weighting
        .weighting()
        .map_err(|d| config.error(d))?;
    let optimizer = config.train.optimizer().map_err(|d| config.error(d))?;
    let spec = ModelSpec {
        rows,
        ..learner.spec.clone()
    };
    let mut replica = Learner::new(ctx, spec, optimizer, weighting, config.train.seed)?;
    replica.target_scales = learner.target_scales.clone();
    Ok(replica)
}

/// The trainer options of `config`'s `[train]` table (its values already
/// checked by `Config::validate`; errors name the config).
pub fn train_options(config: &Config) -> Result<TrainOptions> {
    options_of(&config.train).map_err(|d| config.error(d))
}

fn options_of(t: &TrainConfig) -> std::result::Result<TrainOptions, String> {
    let length = match (t.steps, t.epochs) {
        (Some(s), _) => Length::Steps(s),
        (None, Some(e)) => Length::Epochs(e),
        (None, None) => Length::Steps(400),
    };
    let mut options = TrainOptions::with_length(length)
        .order(t.order())
        .last_batch(if t.drop_last {
            LastBatch::Drop
        } else {
            LastBatch::Pad
        })
        .read_every(t.every)
        .schedule(schedule_of(t))
        .reversal(t.reversal()?);
    if let Some(e) = &t.early_stopping {
        let mut monitor = Monitor::new(&e.metric).with_min_delta(e.min_delta);
        match e.mode.as_deref() {
            Some("min") => monitor = monitor.with_direction(Direction::Min),
            Some("max") => monitor = monitor.with_direction(Direction::Max),
            _ => {}
        }
        options = options.early_stopping(EarlyStopping {
            monitor,
            patience: e.patience.unwrap_or(0),
        });
    }
    if let Some(path) = &t.save_best {
        options = options.save_best(path);
    }
    if let (Some(n), Some(pattern)) = (t.save_every, &t.save_every_path) {
        options = options.save_every(n, pattern);
    }
    Ok(options)
}

fn schedule_of(t: &TrainConfig) -> LrSchedule {
    let Some(s) = &t.schedule else {
        return LrSchedule::constant();
    };
    let kind = match s.kind.as_str() {
        "step" => ScheduleKind::Step {
            step_size: s.step_size.unwrap_or(0),
            gamma: s.gamma.unwrap_or(0.1),
        },
        "cosine" => ScheduleKind::Cosine {
            min_lr: s.min_lr.unwrap_or(0.0),
        },
        _ => ScheduleKind::Constant,
    };
    LrSchedule::new(kind).with_warmup(s.warmup_steps)
}

/// The config stored in a checkpoint's metadata, when `path` has one.
pub fn checkpoint_config(path: &Path) -> Result<Option<Config>> {
    let meta = crate::checkpoint::metadata(path)?;
    match meta.get(crate::checkpoint::CONFIG_KEY) {
        Some(json) => {
            let source = format!("stored in {}", path.display());
            Config::from_json(json, &source).map(Some)
        }
        None => Ok(None),
    }
}
