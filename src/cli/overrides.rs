//! A `train` run's settings: the config file (or the defaults) with the
//! flags given on the command line laid over it.

use crate::cli::train::TrainArgs;
use crate::config::model::MODEL_KINDS;
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
    c.validate()?;
    Ok(c)
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
