//! `manytask train`: trains an MTL model and reports per-task metrics.
//! With no data file it runs the embedded default: GradNorm's synthetic
//! multi-task regression benchmark (../shared/MATH.md §7), generated from
//! the seed, with hard sharing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;

use crate::checkpoint::{self, Restore};
use crate::cli::baseline::{self, Baseline};
use crate::cli::metrics::{evaluate, write_batch};
use crate::cli::overrides::resolve;
use crate::cli::plot::{self, History};
use crate::cli::progress::{Mode, Progress};
use crate::cli::runlog::{RunLog, StepRecord};
use crate::cli::setup::{self, Setup};
use crate::cli::summary::{format_summary, RunStats};
use crate::cli::{backend_from, open_contexts, BackendArg};
use crate::data::batch::{Batcher, LastBatch};
use crate::error::{Error, Result};
use crate::graph::{StepOptions, StepReport};

/// `manytask train`'s flags. Settings flags left out take the config
/// file's value (`--config`), else the default shown.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// A TOML run config (README "Config files"); flags given here override its values.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A safetensors dataset (`x` [N, D], `y.<task>`, optional `mask.<task>`); default: the embedded synthetic benchmark.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Tasks of the embedded synthetic benchmark [default: 4].
    #[arg(long)]
    pub tasks: Option<usize>,
    /// Optimiser steps (default 400, or --epochs).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Epochs over the training split (instead of --steps).
    #[arg(long, conflicts_with = "steps")]
    pub epochs: Option<usize>,
    /// Rows per batch [default: 64].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Seed of data generation, splits, shuffling and initialisation [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Adapter: auto, vulkan, metal, dx12 or gl.
    #[arg(long)]
    pub backend: Option<BackendArg>,
    /// Sharing: hard, hard_fused, cross_stitch, sluice, soft (soft = columns + trace norm) [default: hard].
    #[arg(long)]
    pub model: Option<String>,
    /// Trunk (or per-task column) layer widths [default: 256,256].
    #[arg(long, value_delimiter = ',')]
    pub widths: Option<Vec<usize>>,
    /// Optimiser: sgd or adamw [default: adamw].
    #[arg(long)]
    pub optimizer: Option<String>,
    /// Learning rate (default: 1e-3 for adamw, 1e-2 for sgd).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Task weighting: equal, static:w1,w2,…, uncertainty, uncertainty_warm, gradnorm, dwa, pcgrad, mgda, mgda_ub, cagrad, imtl_g, rlw [default: equal].
    #[arg(long)]
    pub weighting: Option<String>,
    /// Visit the training samples in file order every epoch.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Train one task alone (a single-task baseline).
    #[arg(long)]
    pub single_task: Option<String>,
    /// Load parameters (PyTorch-layout safetensors) before training.
    #[arg(long, conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// Resume: parameters, optimiser state and step count.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Save a checkpoint here at the end (atomically); its metadata holds the resolved config as JSON.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Write JSON lines: losses, task weights and regulariser values every --every steps, validation metrics every epoch.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Steps between progress lines and log records [default: 50].
    #[arg(long)]
    pub every: Option<usize>,
    /// Draw per-task loss curves and task weights over the run into this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Single-task baselines (JSON): with --single-task, merge this task's test metrics into it; otherwise report Δm% against it.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// No progress bar or progress lines (the summary still prints).
    #[arg(long)]
    pub quiet: bool,
}

impl Default for TrainArgs {
    fn default() -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            args: TrainArgs,
        }
        Wrap::parse_from(["train"]).args
    }
}

fn read_baseline(args: &TrainArgs) -> Result<Option<Baseline>> {
    match &args.baseline {
        Some(path) if args.single_task.is_none() || path.exists() => baseline::read(path).map(Some),
        _ => Ok(None),
    }
}

/// Trains the model `args` (and its `--config`) describe, prints per-task
/// test metrics, and saves a checkpoint holding the resolved config.
pub fn run(args: &TrainArgs) -> Result<ExitCode> {
    let mut config = resolve(args)?;
    let ctx = open_contexts(backend_from(args.backend)?)?
        .into_iter()
        .next()
        .expect("open_contexts returns at least one adapter");
    println!("manytask train on {}", ctx.describe());
    let Setup {
        data,
        split,
        spec,
        mut balancer,
        mut program,
        nodes,
    } = setup::build(&ctx, &mut config, args.single_task.as_deref())?;
    println!(
        "data: {} ({} samples: {} train / {} validation / {} test), {} task(s): {}",
        data.source(),
        data.rows(),
        split.train.rows(),
        split.validation.rows(),
        split.test.rows(),
        spec.tasks.len(),
        spec.tasks
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(path) = &args.init {
        checkpoint::load(&ctx, &mut program, &nodes.pieces, path, Restore::Parameters)?;
    }
    if let Some(path) = &args.resume {
        checkpoint::load(&ctx, &mut program, &nodes.pieces, path, Restore::Everything)?;
    }
    let batcher = Batcher::for_model(&split.train, &spec)?;
    let per_epoch = batcher
        .batch_count(split.train.rows(), LastBatch::Drop)
        .max(1);
    let steps = config.train.total_steps(per_epoch);
    println!(
        "model: {} sharing, widths {:?}; weighting {}; {} steps of {} rows",
        config.model.kind,
        config.model.widths,
        balancer.weighting().name(),
        steps,
        config.train.batch
    );
    // Adversarial tasks: λ of their gradient reversal follows the schedule.
    let reversal = match spec.tasks.iter().filter(|t| t.adversarial).count() {
        0 => None,
        n => {
            let schedule = config.train.reversal().map_err(|d| config.error(d))?;
            println!("adversarial: {n} task(s) behind a gradient reversal, λ {schedule:?}");
            Some(schedule)
        }
    };
    // Fail before training on a baseline that cannot be read or a plot
    // that cannot be written, not after it.
    let baseline = read_baseline(args)?;
    if let Some(path) = &args.plot {
        plot::check_destination(path)?;
    }
    let mut log = args.log.as_deref().map(RunLog::create).transpose()?;
    let mut history = args.plot.as_ref().map(|_| History::default());
    // The plot samples about 200 points however long the run.
    let plot_every = steps.div_ceil(200).max(1);
    let every = config.train.every;
    let order = config.train.order();
    let progress = Progress::new(Mode::detect(args.quiet), steps);
    let start = Instant::now();
    let mut last: Option<StepReport> = None;
    let (mut step, mut epoch) = (0usize, 0u64);
    while step < steps {
        for batch in batcher.epoch(order, epoch, LastBatch::Drop)? {
            if step >= steps {
                break;
            }
            write_batch(&ctx, &program, &nodes, &batch)?;
            let logged = (step + 1) % every == 0 || step + 1 == steps;
            let sampled = history.is_some() && (step + 1) % plot_every == 0;
            let opts = if logged || sampled {
                StepOptions::TRAIN_AND_READ
            } else {
                StepOptions::TRAIN
            };
            if let Some(r) = reversal {
                program.set_reversal_lambda(r.lambda(step, steps));
            }
            let mut done = balancer.step(&ctx, &mut program, opts)?;
            if let Some(pending) = done.report.losses.take() {
                let losses = pending.wait(&ctx)?.losses;
                if let Some(t) = losses.iter().position(|l| !l.is_finite()) {
                    // Nothing is saved after this: a previous checkpoint stays intact.
                    return Err(Error::Diverged {
                        step: step as u64 + 1,
                        task: format!("task '{}'", spec.tasks[t].name),
                        value: losses[t],
                    });
                }
                let rate = (step + 1) as f64 / start.elapsed().as_secs_f64();
                progress.losses(step + 1, &losses, &done.weights, rate, logged);
                if let Some(h) = &mut history {
                    h.push(step + 1, &losses, &done.weights);
                }
                if let (true, Some(log)) = (logged, &mut log) {
                    // One small readback per term: logged steps only.
                    log.step(&StepRecord {
                        step: step + 1,
                        losses: &losses,
                        weights: &done.weights,
                        regularisers: &program.regulariser_values(&ctx)?,
                        orthogonality: &program.orthogonality_values(&ctx)?,
                    })?;
                }
            }
            last = Some(done.report);
            step += 1;
            progress.advance(step);
        }
        balancer.end_epoch(&ctx, &mut program)?;
        epoch += 1;
        if let (Some(log), true) = (&mut log, split.validation.rows() > 0) {
            let metrics = evaluate(&ctx, &program, &nodes, &spec, &split.validation)?;
            log.epoch(epoch, step, "validation", &metrics)?;
        }
    }
    progress.finish();
    let seconds = start.elapsed().as_secs_f64();
    let metrics = evaluate(&ctx, &program, &nodes, &spec, &split.test)?;
    let delta = match (&baseline, &args.single_task) {
        (Some(b), None) => Some(baseline::delta_m(&metrics, b)),
        _ => None,
    };
    if let (Some(d), Some(path)) = (&delta, &args.baseline) {
        for task in &d.missing {
            eprintln!(
                "warning: {} has no single-task baseline for task '{task}' \
                 (make one with --single-task {task} --baseline {})",
                path.display(),
                path.display()
            );
        }
    }
    let stats = RunStats {
        steps,
        seconds,
        last_step: last.as_ref().map(|r| (r.dispatches, r.submits)),
    };
    print!(
        "\n{}",
        format_summary(split.test.rows(), &metrics, delta.as_ref(), &stats)
    );
    if let Some(path) = &args.save {
        let meta = vec![(checkpoint::CONFIG_KEY.to_string(), config.to_json()?)];
        checkpoint::save(&ctx, &program, &nodes.pieces, &meta, path)?;
        println!("saved {}", path.display());
    }
    if let (Some(path), Some(task)) = (&args.baseline, &args.single_task) {
        baseline::merge_write(path, &metrics)?;
        println!("baseline: wrote task '{task}' into {}", path.display());
    }
    if let (Some(path), Some(h)) = (&args.plot, &history) {
        let names: Vec<String> = spec.tasks.iter().map(|t| t.name.clone()).collect();
        plot::write_svg(path, &names, h)?;
        println!("plot: wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
