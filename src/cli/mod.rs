//! The `manytask` command line: verbs over the library, nothing more —
//! flags, printing, progress, the run log and plots. Training itself is
//! `crate::train`'s. Behind the cargo feature `cli` (on by default).

pub mod bench;
pub mod devices;
pub mod eval;
pub mod info;
pub mod overrides;
pub mod plot;
pub mod progress;
pub mod runlog;
pub mod summary;
pub mod train;
pub mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::Result;
use crate::gpu::{BackendChoice, GpuContext, BACKEND_ENV};

#[derive(Parser, Debug)]
#[command(
    name = "manytask",
    version,
    about = "GPU compute engine for multi-task learning (WGSL kernels through wgpu)",
    long_about = "GPU compute engine for multi-task learning (WGSL kernels through wgpu).\n\n\
                  With no verb, runs `train`: the embedded synthetic multi-task benchmark with hard sharing."
)]
/// The parsed command line.
pub struct Cli {
    /// The verb; none runs `train` with its defaults.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The verbs.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train an MTL model (default: the embedded synthetic benchmark, hard sharing) and report per-task metrics.
    Train(Box<train::TrainArgs>),
    /// Per-task metrics of a checkpoint on a split of its data (model and split from the config).
    Eval(eval::EvalArgs),
    /// List every adapter: name, backend, device type, driver, granted features, key limits.
    Info(info::InfoArgs),
    /// Run the kernel conformance cases against their CPU references; exits 1 on any failure.
    Validate(validate::ValidateArgs),
    /// Measure the adapter's roofline (FMA peak, copy bandwidth) and every kernel against it.
    Bench(bench::BenchArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Some(Command::Info(args)) => info::run(&args),
        Some(Command::Validate(args)) => validate::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Train(args)) => train::run(&args),
        Some(Command::Eval(args)) => eval::run(&args),
        None => train::run(&train::TrainArgs::default()),
    }
}

/// `--backend` values: one API, `auto` (the best adapter) or `all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendArg {
    /// One API, or `auto` (the best adapter).
    One(BackendChoice),
    /// Every adapter found.
    All,
}

impl std::str::FromStr for BackendArg {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.eq_ignore_ascii_case("all") {
            return Ok(BackendArg::All);
        }
        s.parse::<BackendChoice>()
            .map(BackendArg::One)
            .map_err(|e| format!("{e}, or all"))
    }
}

impl Default for BackendArg {
    fn default() -> Self {
        BackendArg::One(BackendChoice::Auto)
    }
}

/// Backend from the flag, else `MANYTASK_BACKEND`, else auto.
pub fn backend_from(flag: Option<BackendArg>) -> Result<BackendArg> {
    match flag {
        Some(b) => Ok(b),
        None => match std::env::var(BACKEND_ENV) {
            Ok(v) if v.eq_ignore_ascii_case("all") => Ok(BackendArg::All),
            _ => Ok(BackendArg::One(BackendChoice::from_env()?)),
        },
    }
}

/// The contexts a verb runs on: the best adapter of one backend, or every
/// adapter of every backend.
pub fn open_contexts(backend: BackendArg) -> Result<Vec<GpuContext>> {
    match backend {
        BackendArg::One(choice) => Ok(vec![GpuContext::new(choice)?]),
        BackendArg::All => GpuContext::all(BackendChoice::Auto),
    }
}
