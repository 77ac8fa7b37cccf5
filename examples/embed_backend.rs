//! manytask as the training backend of a host application that keeps its
//! own data and loop: the minimal public API an embedding needs.
//!
//! The host holds its samples in plain `Vec<f32>` / `Vec<u32>` (here a toy
//! problem: 16 features; task "size", a regression of one output, and task
//! "quadrant", 4 classes). It builds a model (`ModelSpec::build`), a
//! `Program`, and then per step
//!
//! 1. writes x [rows, D], labels [class tasks, rows] and targets
//!    [rows, Σ widths] into the program's input tensors
//!    (`Program::input(node)?.write_f32 / write_u32`; the nodes and each
//!    task's logit columns are in `Model::nodes`),
//! 2. calls `Program::step` (one GPU submit), reading the per-task losses
//!    back every 50 steps without stalling the next step,
//!
//! evaluates on held-out rows from `Program::predict`'s logits, saves a
//! checkpoint with `checkpoint::save`, loads it into a freshly built
//! program and checks that both predict the same logits bit for bit
//! (exit status 1 if not).
//!
//!   cargo run --release --example embed_backend              # 300 steps
//!   cargo run --release --example embed_backend -- --steps 50

use manytask::arch::{ModelNodes, ModelSpec, Sharing, TaskKind, TaskSpec};
use manytask::checkpoint::{self, Restore};
use manytask::graph::{Optimizer, Program, StepOptions};
use manytask::types::{Activation, AdamW};
use manytask::GpuContext;

const FEATURES: usize = 16;
const ROWS: usize = 32;

/// The host's own data: row-major features and one target per task.
struct HostData {
    x: Vec<f32>,
    size: Vec<f32>,
    quadrant: Vec<u32>,
}

impl HostData {
    /// `n` samples from a small xorshift generator.
    fn generate(n: usize, seed: u64) -> HostData {
        let mut s = seed.max(1);
        let mut uniform = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        let x: Vec<f32> = (0..n * FEATURES).map(|_| uniform()).collect();
        let rows = x.chunks(FEATURES);
        let size = rows
            .clone()
            .map(|r| r[..8].iter().sum::<f32>() / 4.0)
            .collect();
        let quadrant = rows
            .map(|r| (r[0] > 0.0) as u32 + 2 * (r[1] > 0.0) as u32)
            .collect();
        HostData { x, size, quadrant }
    }

    /// Writes rows [start, start + ROWS) into the program's inputs.
    fn write_batch(
        &self,
        ctx: &GpuContext,
        program: &Program,
        nodes: &ModelNodes,
        start: usize,
    ) -> manytask::Result<()> {
        let n = self.size.len();
        let rows: Vec<usize> = (start..start + ROWS).map(|r| r % n).collect();
        let x: Vec<f32> = rows
            .iter()
            .flat_map(|&r| &self.x[r * FEATURES..(r + 1) * FEATURES])
            .copied()
            .collect();
        // labels [classification tasks, rows]: one class task here.
        let labels: Vec<u32> = rows.iter().map(|&r| self.quadrant[r]).collect();
        // targets [rows, Σ widths], laid out like the logits; the class
        // task's columns are unused.
        let width: usize = nodes.columns.iter().map(|c| c.1).sum();
        let (size_col, _) = nodes.columns[0];
        let mut targets = vec![0f32; ROWS * width];
        for (i, &r) in rows.iter().enumerate() {
            targets[i * width + size_col] = self.size[r];
        }
        program.input(nodes.x)?.write_f32(ctx, &x)?;
        if let Some(node) = nodes.labels {
            program.input(node)?.write_u32(ctx, &labels)?;
        }
        if let Some(node) = nodes.targets {
            program.input(node)?.write_f32(ctx, &targets)?;
        }
        Ok(())
    }
}

fn spec() -> ModelSpec {
    ModelSpec {
        init: manytask::types::WeightInit::Glorot,
        rows: ROWS,
        inputs: FEATURES,
        activation: Activation::Relu,
        sharing: Sharing::Hard {
            trunk: vec![64, 64],
        },
        tasks: vec![
            TaskSpec::new("size", TaskKind::Regression { outputs: 1 }, &[]),
            TaskSpec::new("quadrant", TaskKind::Classification { classes: 4 }, &[]),
        ],
    }
}

/// Builds the model and its program; parameters initialised from `seed`.
fn build(ctx: &GpuContext, seed: u64) -> manytask::Result<(Program, ModelNodes)> {
    let model = spec().build(ctx)?;
    let optimizer = Optimizer::AdamW(AdamW {
        lr: 3e-3,
        ..AdamW::default()
    });
    Ok((
        Program::build(ctx, model.graph, optimizer, seed)?,
        model.nodes,
    ))
}

fn main() -> manytask::Result<()> {
    let steps = steps_arg(300);
    let ctx = GpuContext::from_env()?;
    println!("adapter: {}", ctx.describe());
    let train = HostData::generate(4096, 1);
    let held_out = HostData::generate(8 * ROWS, 2);

    let (mut program, nodes) = build(&ctx, 0)?;
    for step in 1..=steps {
        train.write_batch(&ctx, &program, &nodes, (step - 1) * ROWS)?;
        let read = step % 50 == 0 || step == steps;
        let opts = if read {
            StepOptions::TRAIN_AND_READ
        } else {
            StepOptions::TRAIN
        };
        let report = program.step(&ctx, opts)?;
        if let Some(pending) = report.losses {
            // Waiting here is the host's choice; it could wait a step later.
            let losses = pending.wait(&ctx)?.losses;
            println!(
                "step {step:>5}/{steps}  loss size {:.4}  quadrant {:.4}  ({} dispatches, {} submit)",
                losses[0], losses[1], report.dispatches, report.submits
            );
        }
    }

    // Held-out metrics from the logits [rows, Σ widths].
    let width: usize = nodes.columns.iter().map(|c| c.1).sum();
    let ((size_col, _), (quad_col, classes)) = (nodes.columns[0], nodes.columns[1]);
    let (mut squared, mut correct) = (0f64, 0usize);
    for start in (0..held_out.size.len()).step_by(ROWS) {
        held_out.write_batch(&ctx, &program, &nodes, start)?;
        let (logits, _) = program.predict(&ctx)?;
        for (i, row) in logits.chunks(width).enumerate() {
            let e = (row[size_col] - held_out.size[start + i]) as f64;
            squared += e * e;
            let scores = &row[quad_col..quad_col + classes];
            let best = (0..classes)
                .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
                .unwrap_or(0);
            correct += (best as u32 == held_out.quadrant[start + i]) as usize;
        }
    }
    let n = held_out.size.len();
    println!("test size mse {:.4}", squared / n as f64);
    println!("test quadrant accuracy {:.4}", correct as f64 / n as f64);

    // Save, reload into a fresh program (other initial values), compare.
    let path =
        std::env::temp_dir().join(format!("manytask-embed-{}.safetensors", std::process::id()));
    let meta = vec![("app".to_string(), "embed_backend example".to_string())];
    checkpoint::save(&ctx, &program, &nodes.pieces, &meta, &path)?;
    let (mut fresh, fresh_nodes) = build(&ctx, 1)?;
    checkpoint::load(
        &ctx,
        &mut fresh,
        &fresh_nodes.pieces,
        &path,
        Restore::Everything,
    )?;
    let _ = std::fs::remove_file(&path);
    held_out.write_batch(&ctx, &program, &nodes, 0)?;
    held_out.write_batch(&ctx, &fresh, &fresh_nodes, 0)?;
    let (a, _) = program.predict(&ctx)?;
    let (b, _) = fresh.predict(&ctx)?;
    let max_diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    println!(
        "checkpoint: saved and reloaded at step {}; max |Δ logit| {max_diff:e} over {} logits",
        fresh.steps(),
        a.len()
    );
    if a != b {
        eprintln!("the reloaded program predicts different logits");
        std::process::exit(1);
    }
    println!("predictions match");
    Ok(())
}

/// `--steps N` from the command line, else `default`.
fn steps_arg(default: usize) -> usize {
    let mut args = std::env::args().skip_while(|a| a != "--steps");
    args.nth(1)
        .map_or(default, |n| n.parse().expect("--steps takes a number"))
}
