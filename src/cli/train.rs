//! `manytask train`: the flags, and what the run prints and writes. The
//! training itself is the library's (`train::Trainer`). With no data file
//! it runs the embedded default: GradNorm's synthetic multi-task
//! regression benchmark, generated from the seed, with hard sharing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::checkpoint;
use crate::cli::overrides::resolve;
use crate::cli::plot::{self, History};
use crate::cli::progress::{Mode, Progress};
use crate::cli::runlog::RunLog;
use crate::cli::summary::{delta_against, format_summary, RunStats};
use crate::cli::{backend_from, devices, open_contexts, BackendArg};
use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use crate::train::baseline::{self, Baseline};
use crate::train::parallel::{
    self, DataParallel, HostReducer, ParallelOptions, Precision, Reducer, Replica,
};
use crate::train::paths::{check_run_files, Overwrite};
use crate::train::setup::{self, Setup};
use crate::train::{state, Observer, TrainState, Trainer};

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
    /// Optimiser steps, counted from the start of training (default 400, or --epochs).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Epochs over the training split (instead of --steps).
    #[arg(long, conflicts_with = "steps")]
    pub epochs: Option<usize>,
    /// Rows per batch [default: 64].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Drop the short last batch of each epoch (default: train on it).
    #[arg(long)]
    pub drop_last: bool,
    /// Seed of data generation, splits, shuffling and initialisation [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Adapter: auto, vulkan, metal, dx12 or gl.
    #[arg(long)]
    pub backend: Option<BackendArg>,
    /// Data-parallel replicas, one per device: BACKEND:INDEX,… or BACKEND,… (vulkan:0,vulkan:1; an entry repeated opens another device on that adapter) or all; each takes its shard of every batch (under mpirun: per rank).
    #[arg(long, conflicts_with = "backend")]
    pub devices: Option<String>,
    /// Data-parallel gradient exchange precision: f32 (exact) or f16 [default: f32].
    #[arg(long)]
    pub reduce_precision: Option<String>,
    /// Data-parallel: steps between checks that every replica's parameters are identical [default: 50].
    #[arg(long)]
    pub check_every: Option<usize>,
    /// Sharing: hard, hard_fused, cross_stitch, sluice, soft (soft = columns + trace norm), mmoe, cgc, ple, dselect_k (their expert keys: a --config file) [default: hard].
    #[arg(long)]
    pub model: Option<String>,
    /// Trunk (or per-task column) layer widths [default: 256,256].
    #[arg(long, value_delimiter = ',')]
    pub widths: Option<Vec<usize>>,
    /// Optimiser: sgd (plain unless the config gives momentum) or adamw [default: adamw].
    #[arg(long)]
    pub optimizer: Option<String>,
    /// Learning rate (default: 1e-3 for adamw, 1e-2 for sgd).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Learning-rate schedule: constant, step or cosine [default: constant].
    #[arg(long)]
    pub schedule: Option<String>,
    /// Steps of linear learning-rate warmup before the schedule [default: 0].
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Cosine schedule: the rate at the end of the run [default: 0].
    #[arg(long)]
    pub min_lr: Option<f32>,
    /// Step schedule: steps between decays.
    #[arg(long)]
    pub step_size: Option<usize>,
    /// Step schedule: the decay factor [default: 0.1].
    #[arg(long)]
    pub gamma: Option<f32>,
    /// Task weighting: equal, static:w1,w2,…, uncertainty, uncertainty_warm, gradnorm, dwa, pcgrad, mgda, mgda_ub, cagrad, imtl_g, rlw, upgrad, aligned_mtl, nash_mtl, fairgrad, db_mtl [default: equal].
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
    /// Resume a run: parameters, optimiser state, and its step, epoch and place in the epoch's order.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Save a checkpoint here at the end (atomically); its metadata holds the resolved config as JSON.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Keep the best checkpoint here (the watched validation metric: --monitor, else the loss).
    #[arg(long)]
    pub save_best: Option<PathBuf>,
    /// Epochs between periodic checkpoints (to --save-every-path).
    #[arg(long)]
    pub save_every: Option<usize>,
    /// Where --save-every writes: `{epoch}` and `{step}` are replaced.
    #[arg(long)]
    pub save_every_path: Option<PathBuf>,
    /// Early stopping: validation passes without improvement before training stops.
    #[arg(long)]
    pub patience: Option<usize>,
    /// The validation metric early stopping and --save-best watch: loss or TASK.METRIC (e.g. task0.mae) [default: loss].
    #[arg(long)]
    pub monitor: Option<String>,
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
    /// Overwrite existing output files of another kind (a checkpoint, log, plot or baseline over an unrelated file), and an --init/--resume checkpoint with --save.
    #[arg(long)]
    pub force: bool,
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

/// The baseline to report Δm% against (a run of several tasks), read
/// before training so a bad file fails at once.
fn read_baseline(args: &TrainArgs) -> Result<Option<Baseline>> {
    match (&args.baseline, &args.single_task) {
        (Some(path), None) => baseline::read(path).map(Some),
        // A file to merge into: a corrupt one fails now, not after training.
        (Some(path), Some(_)) if path.exists() => baseline::read(path).map(|_| None),
        _ => Ok(None),
    }
}

/// Every output path the flags and the config name, checked before the
/// first step: writable, not one of the run's inputs nor another output,
/// and not over an existing file of another kind unless `--force`.
fn check_outputs(
    args: &TrainArgs,
    config: &crate::config::Config,
    options: &crate::train::TrainOptions,
) -> Result<()> {
    use crate::train::paths::{InputKind, OutputKind, RunInput, RunOutput};
    let input = |path: &Path, role: &str, kind: InputKind| RunInput {
        path: path.to_path_buf(),
        role: role.to_string(),
        kind,
    };
    let mut inputs = Vec::new();
    let data = &config.data;
    let data_role = if args.data.is_some() {
        "--data"
    } else {
        "data.path"
    };
    for (p, role) in [
        (&data.path, data_role),
        (&data.images, "data.images"),
        (&data.labels, "data.labels"),
    ] {
        if let Some(p) = p {
            inputs.push(input(p, role, InputKind::Source));
        }
    }
    if let Some(p) = &args.config {
        inputs.push(input(p, "--config", InputKind::Source));
    }
    if let (Some(p), None) = (&args.baseline, &args.single_task) {
        inputs.push(input(p, "--baseline", InputKind::Source));
    }
    if let Some(p) = &args.init {
        inputs.push(input(p, "--init", InputKind::Checkpoint));
    }
    if let Some(p) = &args.resume {
        inputs.push(input(p, "--resume", InputKind::Checkpoint));
    }
    let mut outputs = Vec::new();
    let mut output = |path: &Path, role: &str, kind: OutputKind| {
        outputs.push(RunOutput {
            path: path.to_path_buf(),
            role: role.to_string(),
            kind,
        })
    };
    if let Some(p) = &args.save {
        output(p, "--save", OutputKind::Checkpoint);
    }
    if let Some(p) = &args.log {
        output(p, "--log", OutputKind::JsonLines);
    }
    if let Some(p) = &args.plot {
        output(p, "--plot", OutputKind::Svg);
    }
    if let (Some(p), Some(_)) = (&args.baseline, &args.single_task) {
        output(p, "--baseline", OutputKind::JsonObject);
    }
    if let Some(p) = &options.save_best {
        output(p, "save_best", OutputKind::Checkpoint);
    }
    if let Some(p) = &options.save_every {
        output(&p.path(1, 0), "save_every_path", OutputKind::Checkpoint);
    }
    let overwrite = if args.force {
        Overwrite::Any
    } else {
        Overwrite::SameKindOnly
    };
    check_run_files(&inputs, &outputs, overwrite)
}

/// A single-task baseline needs test samples of its task: refused before
/// training rather than recorded from nothing.
fn check_baseline_samples(args: &TrainArgs, test: &Dataset) -> Result<()> {
    let (Some(path), Some(task)) = (&args.baseline, &args.single_task) else {
        return Ok(());
    };
    let labelled = test.task(task).map_or(0, |t| {
        (0..test.rows()).filter(|&r| t.is_labelled(r)).count()
    });
    if labelled == 0 {
        return Err(Error::Data {
            file: path.display().to_string(),
            detail: format!(
                "--baseline: the test split has no labelled sample of task '{task}' ({} samples): \
                 a baseline from zero samples would be meaningless",
                test.rows()
            ),
        });
    }
    Ok(())
}

/// Prints a line on the process that writes files (rank 0 of an MPI run;
/// the only process otherwise).
macro_rules! say {
    ($writer:expr, $($t:tt)*) => {
        if $writer {
            println!($($t)*);
        }
    };
}

/// Trains the model `args` (and its `--config`) describe, prints per-task
/// test metrics, and saves a checkpoint holding the resolved config.
/// Started by an MPI launcher (`mpirun`, `srun`) it is one rank of a
/// data-parallel run (cargo feature `mpi`); a rank that fails stops the
/// others (`MPI_Abort`).
pub fn run(args: &TrainArgs) -> Result<ExitCode> {
    if !parallel::launched_by_mpi() {
        return run_on(args, Box::new(HostReducer));
    }
    #[cfg(feature = "mpi")]
    {
        let session = parallel::mpi::MpiSession::start()?;
        let reducer = session.reducer();
        let rank = parallel::Reducer::rank(&reducer);
        match run_on(args, Box::new(reducer)) {
            Ok(code) => Ok(code),
            Err(e) => {
                eprintln!("error: rank {rank}: {e}");
                parallel::mpi::abort(2)
            }
        }
    }
    #[cfg(not(feature = "mpi"))]
    Err(Error::InvalidInput {
        op: "train",
        detail: "started by an MPI launcher (mpirun or srun), but this manytask was built without \
                 the `mpi` feature: build it with `cargo build --release --features mpi`"
            .into(),
    })
}

/// The data-parallel options of the flags.
fn parallel_options(args: &TrainArgs) -> Result<ParallelOptions> {
    let precision = match args.reduce_precision.as_deref() {
        None | Some("f32") => Precision::F32,
        Some("f16") => Precision::F16,
        Some(other) => {
            return Err(Error::InvalidInput {
                op: "--reduce-precision",
                detail: format!("'{other}': give f32 or f16"),
            })
        }
    };
    Ok(ParallelOptions {
        check_every: args
            .check_every
            .unwrap_or(ParallelOptions::default().check_every),
        precision,
    })
}

/// `run` with the processes' reducer (one process: `HostReducer`).
fn run_on(args: &TrainArgs, reducer: Box<dyn Reducer>) -> Result<ExitCode> {
    let mut config = resolve(args)?;
    let mut options = setup::train_options(&config)?;
    let writer = reducer.rank() == 0;
    if writer {
        check_outputs(args, &config, &options)?;
    }
    let baseline = read_baseline(args)?;
    let parallel_opts = parallel_options(args)?;
    let contexts = match &args.devices {
        Some(d) => devices::open(d)?,
        None => vec![open_contexts(backend_from(args.backend)?)?
            .into_iter()
            .next()
            .expect("open_contexts returns at least one adapter")],
    };
    let replicas = contexts.len() * reducer.processes();
    let rows = if replicas > 1 {
        Some(parallel::local_rows(
            config.train.batch,
            contexts.len(),
            &*reducer,
        )?)
    } else {
        None
    };
    let mut contexts = contexts.into_iter();
    let ctx = contexts.next().expect("at least one device");
    say!(writer, "manytask train on {}", ctx.describe());
    let Setup {
        data,
        split,
        mut learner,
    } = setup::build_with_rows(
        &ctx,
        &mut config,
        args.single_task.as_deref(),
        rows.as_ref().map(|r| r[0]),
    )?;
    say!(
        writer,
        "data: {} ({} samples: {} train / {} validation / {} test), {} task(s): {}",
        data.source(),
        data.rows(),
        split.train.rows(),
        split.validation.rows(),
        split.test.rows(),
        learner.spec.tasks.len(),
        learner.task_names().join(", ")
    );
    check_baseline_samples(args, &split.test)?;
    if let Some(path) = &args.init {
        state::load_parameters(&ctx, &mut learner, path)?;
    }
    let start = match &args.resume {
        Some(path) => {
            let s = state::resume(&ctx, &mut learner, path)?;
            say!(
                writer,
                "resume: {} at step {} (epoch {}, batch {} of it)",
                path.display(),
                s.step,
                s.epoch + 1,
                s.batch
            );
            s
        }
        None => TrainState::default(),
    };
    let mut parallel = match &rows {
        Some(rows) => {
            let mut extra = Vec::new();
            for (c, &r) in contexts.zip(&rows[1..]) {
                say!(writer, "replica on {}", c.describe());
                let l = setup::replica(&c, &config, &learner, r)?;
                extra.push(Replica { ctx: c, learner: l });
            }
            let dp = DataParallel::new(config.train.batch, extra, reducer, parallel_opts)?;
            let (_, processes) = dp.process();
            say!(
                writer,
                "data-parallel: {} replicas ({processes} process(es) × {} device(s)), global batch \
                 {} in shards of {:?} rows, gradients exchanged as {:?}",
                dp.replicas(),
                rows.len(),
                config.train.batch,
                crate::train::parallel::shard_rows(config.train.batch, dp.replicas())?
                    .iter()
                    .map(|r| r.len())
                    .collect::<Vec<_>>(),
                parallel_opts.precision
            );
            Some(dp)
        }
        None => None,
    };
    let config_json = config.to_json()?;
    options = options.checkpoint_metadata(checkpoint::CONFIG_KEY, &config_json);
    say!(
        writer,
        "model: {} sharing, widths {:?}; weighting {}{}",
        config.model.kind,
        config.model.widths,
        learner.balancer.weighting().name(),
        if config.train.drop_last {
            " (short last batch dropped)"
        } else {
            ""
        }
    );
    let adversarial = learner.spec.tasks.iter().filter(|t| t.adversarial).count();
    if adversarial > 0 {
        say!(
            writer,
            "adversarial: {adversarial} task(s) behind a gradient reversal, λ {:?}",
            options.reversal
        );
    }
    // Rank 0 alone writes the log and the plot and shows progress.
    let mut log = args
        .log
        .as_deref()
        .filter(|_| writer)
        .map(RunLog::create)
        .transpose()?;
    let mut history = args
        .plot
        .as_ref()
        .filter(|_| writer)
        .map(|_| History::default());
    let mut progress = Progress::new(Mode::detect(args.quiet || !writer));
    let mut stats = RunStats::default();
    let report = {
        let mut observers: Vec<&mut dyn Observer> = vec![&mut stats];
        if writer {
            observers.push(&mut progress);
        }
        if let Some(l) = &mut log {
            observers.push(l);
        }
        if let Some(h) = &mut history {
            observers.push(h);
        }
        let mut trainer = Trainer::new(options).resume_from(start);
        for o in observers {
            trainer = trainer.observe(o);
        }
        if let Some(dp) = &mut parallel {
            trainer = trainer.data_parallel(dp);
        }
        trainer.fit(&ctx, &mut learner, &split.train, Some(&split.validation))?
    };
    progress.finish();
    if let Some(dp) = &parallel {
        let st = dp.stats();
        if st.steps > 0 {
            let per = |d: std::time::Duration| d.as_secs_f64() * 1e3 / st.steps as f64;
            say!(
                writer,
                "data-parallel: {} steps, {:.2} ms per step, of which all-reduce {:.2} ms ({:.0}%; \
                 {} values per replica per step)",
                st.steps,
                per(st.step_time),
                per(st.reduce_time),
                100.0 * st.reduce_time.as_secs_f64() / st.step_time.as_secs_f64().max(1e-12),
                st.values_per_step
            );
        }
    }
    if !writer {
        return Ok(ExitCode::SUCCESS);
    }
    let metrics = learner.evaluate(&ctx, &split.test, "test")?;
    let delta = baseline
        .as_ref()
        .zip(args.baseline.as_deref())
        .map(|(b, path)| delta_against(&metrics, b, path));
    print!("\n{}", format_summary(&metrics, delta.as_ref(), &stats));
    if let Some(path) = &args.save {
        let meta = vec![(checkpoint::CONFIG_KEY.to_string(), config_json)];
        state::save(&ctx, &learner, &report.state, &meta, path)?;
        println!("saved {}", path.display());
    }
    if let (Some(path), Some(task)) = (&args.baseline, &args.single_task) {
        baseline::merge_write(path, &metrics)?;
        println!("baseline: wrote task '{task}' into {}", path.display());
    }
    if let (Some(path), Some(h)) = (&args.plot, &history) {
        plot::write_svg(path, &learner.task_names(), h)?;
        println!("plot: wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
