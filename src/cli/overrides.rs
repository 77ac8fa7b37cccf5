//! A `train` run's settings: the config file (or the defaults) with the
//! flags given on the command line laid over it.

use crate::cli::train::TrainArgs;
use crate::config::model::MODEL_KINDS;
use crate::config::train::{EarlyStoppingConfig, ScheduleConfig};
use crate::config::{Config, WeightingConfig};
use crate::error::{Error, Result};
use crate::weighting;

/// The config of `--config` (else the defaults), each settings flag that
/// was given replacing its key, then validated: a flag that leaves the
/// config impossible (`--model hard` over a file with soft-sharing
/// regularisers) is an error naming the key.
pub fn resolve(args: &TrainArgs) -> Result<Config> {
    check_flags(args)?;
    let mut c = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::defaults(),
    };
    if let Some(path) = &args.data {
        c.data = c.data.safetensors(path.clone());
    }
    if let Some(tasks) = args.tasks {
        if c.data.source != "synthetic" {
            return Err(c.error(format!(
                "--tasks {tasks}: only for synthetic data (data.source = {:?})",
                c.data.source
            )));
        }
        c.data.tasks = Some(tasks);
    }
    // --steps and --epochs replace each other as well as the file's value.
    if args.steps.is_some() {
        (c.train.steps, c.train.epochs) = (args.steps, None);
    }
    if args.epochs.is_some() {
        (c.train.steps, c.train.epochs) = (None, args.epochs);
    }
    if let Some(batch) = args.batch {
        c.train.batch = batch;
    }
    if let Some(seed) = args.seed {
        c.train.seed = seed;
    }
    if let Some(kind) = &args.model {
        c.model.kind = kind.clone();
    }
    if let Some(widths) = &args.widths {
        c.model.widths = widths.clone();
    }
    if let Some(optimizer) = &args.optimizer {
        c.train.optimizer = optimizer.clone();
    }
    if args.lr.is_some() {
        c.train.lr = args.lr;
    }
    if let Some(name) = &args.weighting {
        c.train.weighting = WeightingConfig::named(name);
    }
    if args.no_shuffle {
        c.train.shuffle = false;
    }
    if let Some(every) = args.every {
        c.train.every = every;
    }
    if args.drop_last {
        c.train.drop_last = true;
    }
    schedule_flags(args, &mut c);
    if let Some(patience) = args.patience {
        let e = c
            .train
            .early_stopping
            .get_or_insert_with(|| EarlyStoppingConfig::new("loss", patience));
        e.patience = Some(patience);
    }
    if let Some(metric) = &args.monitor {
        match &mut c.train.early_stopping {
            Some(e) => {
                e.metric = metric.clone();
                e.mode = None;
            }
            None if args.save_best.is_some() || c.train.save_best.is_some() => {
                return Err(c.error(format!(
                    "--monitor {metric}: the best checkpoint watches early stopping's metric; \
                     give --patience too (or [train.early_stopping] in the config)"
                )));
            }
            None => {
                return Err(c.error(format!(
                    "--monitor {metric}: only with early stopping (--patience) or --save-best"
                )));
            }
        }
    }
    if let Some(path) = &args.save_best {
        c.train.save_best = Some(path.clone());
    }
    if let Some(n) = args.save_every {
        c.train.save_every = Some(n);
    }
    if let Some(path) = &args.save_every_path {
        c.train.save_every_path = Some(path.clone());
    }
    c.validate()?;
    Ok(c)
}

/// `--schedule` replaces the config's kind (and drops the keys of another
/// kind); `--warmup`, `--min-lr`, `--step-size` and `--gamma` set theirs.
fn schedule_flags(args: &TrainArgs, c: &mut Config) {
    let any = args.schedule.is_some()
        || args.warmup.is_some()
        || args.min_lr.is_some()
        || args.step_size.is_some()
        || args.gamma.is_some();
    if !any {
        return;
    }
    let s = c
        .train
        .schedule
        .get_or_insert_with(|| ScheduleConfig::named("constant"));
    if let Some(kind) = &args.schedule {
        if *kind != s.kind {
            *s = ScheduleConfig {
                warmup_steps: s.warmup_steps,
                ..ScheduleConfig::named(kind)
            };
        }
    }
    if let Some(w) = args.warmup {
        s.warmup_steps = w;
    }
    if args.min_lr.is_some() {
        s.min_lr = args.min_lr;
    }
    if args.step_size.is_some() {
        s.step_size = args.step_size;
    }
    if args.gamma.is_some() {
        s.gamma = args.gamma;
    }
}

/// Names checked against their flag first, so the message names the flag
/// the user typed rather than the config key it sets.
fn check_flags(args: &TrainArgs) -> Result<()> {
    let bad = |detail: String| Error::InvalidInput {
        op: "train",
        detail,
    };
    if let Some(kind) = &args.model {
        if !MODEL_KINDS.contains(&kind.as_str()) {
            return Err(bad(format!(
                "--model '{kind}': expected {}",
                MODEL_KINDS.join(", ")
            )));
        }
    }
    if let Some(name) = &args.optimizer {
        if name != "sgd" && name != "adamw" {
            return Err(bad(format!("--optimizer '{name}': expected sgd or adamw")));
        }
    }
    if let Some(name) = &args.weighting {
        weighting::parse(name)?;
    }
    Ok(())
}
