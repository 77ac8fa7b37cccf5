//! `manytask eval`: per-task metrics of a saved checkpoint on one split
//! of its data. The model and split come from the config (a file, or the
//! JSON `train --save` stores in the checkpoint), so the same seed cuts
//! the same split `train` reported on. `--baseline F` adds Δm% against
//! the single-task baselines in `F` on the split evaluated;
//! `--single-task NAME` reports only that task (of a single-task
//! checkpoint from `train --single-task NAME`, or of a multi-task one).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::checkpoint;
use crate::cli::summary::{delta_against, delta_line, metrics_table};
use crate::cli::{backend_from, open_contexts, BackendArg};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::train::baseline;
use crate::train::metrics::Metrics;
use crate::train::setup::{self, Setup};
use crate::train::state;

/// `manytask eval`'s flags.
#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// The checkpoint to evaluate (from `train --save`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The TOML run config the checkpoint was trained with; default: the config stored in the checkpoint's metadata.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The split to report on (cut from the config's seed and fractions, as train cut it).
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    pub split: SplitArg,
    /// Adapter: auto, vulkan, metal, dx12 or gl.
    #[arg(long)]
    pub backend: Option<BackendArg>,
    /// Single-task baselines (JSON, from `train --single-task NAME --baseline FILE`): report Δm% against them on the split evaluated.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Report only this task: a checkpoint of `train --single-task TASK`, or one task of a multi-task checkpoint.
    #[arg(long)]
    pub single_task: Option<String>,
}

/// The three parts of a split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    /// The samples the model trained on.
    Train,
    /// The held-out validation samples.
    Validation,
    /// The held-out test samples (what `train` reports on).
    Test,
}

/// The config of `--config`, else the one stored in the checkpoint.
fn config(args: &EvalArgs) -> Result<Config> {
    if let Some(path) = &args.config {
        return Config::load(path);
    }
    setup::checkpoint_config(&args.checkpoint)?.ok_or_else(|| Error::Checkpoint {
        file: args.checkpoint.display().to_string(),
        detail: format!(
            "no '{}' metadata (not saved by `manytask train --save`?): pass the run's --config",
            checkpoint::CONFIG_KEY
        ),
    })
}

/// `metrics` reduced to the task `name`; an error naming the model's
/// tasks when it has none of that name.
fn only_task(mut metrics: Metrics, name: &str, checkpoint: &std::path::Path) -> Result<Metrics> {
    if metrics.task(name).is_none() {
        let names: Vec<&str> = metrics.tasks.iter().map(|t| t.task.as_str()).collect();
        return Err(Error::Checkpoint {
            file: checkpoint.display().to_string(),
            detail: format!(
                "--single-task: the model has no task '{name}' (its tasks: {})",
                names.join(", ")
            ),
        });
    }
    metrics.tasks.retain(|t| t.task == name);
    Ok(metrics)
}

/// Loads the checkpoint into the config's model and prints the metrics.
pub fn run(args: &EvalArgs) -> Result<ExitCode> {
    let mut config = config(args)?;
    // A bad baseline file fails before any GPU work.
    let baseline = args.baseline.as_deref().map(baseline::read).transpose()?;
    let ctx = open_contexts(backend_from(args.backend)?)?
        .into_iter()
        .next()
        .expect("open_contexts returns at least one adapter");
    println!("manytask eval on {}", ctx.describe());
    let Setup {
        split, mut learner, ..
    } = setup::build(&ctx, &mut config, None)?;
    state::load_parameters(&ctx, &mut learner, &args.checkpoint)?;
    println!(
        "checkpoint: {} ({} sharing, widths {:?}; config {})",
        args.checkpoint.display(),
        config.model.kind,
        config.model.widths,
        config.source
    );
    let (name, part) = match args.split {
        SplitArg::Train => ("train", &split.train),
        SplitArg::Validation => ("validation", &split.validation),
        SplitArg::Test => ("test", &split.test),
    };
    let mut metrics = learner.evaluate(&ctx, part, name)?;
    if let Some(task) = &args.single_task {
        metrics = only_task(metrics, task, &args.checkpoint)?;
    }
    let delta = baseline
        .as_ref()
        .zip(args.baseline.as_deref())
        .map(|(b, path)| delta_against(&metrics, b, path));
    // The same table as `train` prints.
    print!("\n{}", metrics_table(&metrics, delta.as_ref()));
    if let Some(d) = &delta {
        print!("{}", delta_line(d));
    }
    Ok(ExitCode::SUCCESS)
}
