//! `manytask train`: trains an MTL model and reports per-task metrics.
//! With no data file it runs the embedded default: GradNorm's synthetic
//! multi-task regression benchmark (../shared/MATH.md §7), generated from
//! the seed, with hard sharing.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;

use crate::cli::metrics::{evaluate, write_batch};
use crate::checkpoint::{self, Restore};
use crate::cli::overrides::resolve;
use crate::cli::setup::{self, Setup};
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
    /// Task weighting: equal, static:w1,w2,…, uncertainty, gradnorm, dwa, pcgrad, mgda, mgda_ub, cagrad, imtl_g, rlw [default: equal].
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
    /// Write per-step losses and task weights as JSON lines.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Steps between progress lines and log records [default: 50].
    #[arg(long)]
    pub every: Option<usize>,
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

fn bad(detail: String) -> Error {
    Error::Shape {
        op: "train",
        detail,
    }
}

fn json_list(v: &[f32]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
    format!("[{}]", items.join(","))
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
    let mut log = match &args.log {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| bad(format!("--log {}: {e}", p.display())))?,
        )),
        None => None,
    };
    let order = config.train.order();
    let start = Instant::now();
    let mut last: Option<StepReport> = None;
    let (mut step, mut epoch) = (0usize, 0u64);
    while step < steps {
        for batch in batcher.epoch(order, epoch, LastBatch::Drop)? {
            if step >= steps {
                break;
            }
            write_batch(&ctx, &program, &nodes, &batch)?;
            let read = (step + 1) % config.train.every == 0 || step + 1 == steps;
            let opts = if read {
                StepOptions::TRAIN_AND_READ
            } else {
                StepOptions::TRAIN
            };
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
                println!(
                    "step {:>6}/{steps}  losses {}  weights {}  {rate:.1} steps/s",
                    step + 1,
                    json_list(&losses),
                    json_list(&done.weights)
                );
                if let Some(f) = &mut log {
                    writeln!(
                        f,
                        "{{\"step\":{},\"losses\":{},\"weights\":{}}}",
                        step + 1,
                        json_list(&losses),
                        json_list(&done.weights)
                    )
                    .map_err(|e| bad(format!("--log: {e}")))?;
                }
            }
            last = Some(done.report);
            step += 1;
        }
        balancer.end_epoch(&ctx, &mut program)?;
        epoch += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    let metrics = evaluate(&ctx, &program, &nodes, &spec, &split.test)?;
    println!("\ntest split ({} samples):", split.test.rows());
    for (name, m) in &metrics {
        let cells: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v:>10.4}")).collect();
        println!("  {name:<12} {}", cells.join("   "));
    }
    if let Some(r) = &last {
        println!(
            "{steps} steps in {seconds:.1} s ({:.1} steps/s); last step: {} dispatches, {} submit(s)",
            steps as f64 / seconds,
            r.dispatches,
            r.submits
        );
    }
    if let Some(path) = &args.save {
        let meta = vec![(checkpoint::CONFIG_KEY.to_string(), config.to_json()?)];
        checkpoint::save(&ctx, &program, &nodes.pieces, &meta, path)?;
        println!("saved {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
