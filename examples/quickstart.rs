//! The embedded default of `manytask train` in a few lines of library API:
//! GradNorm's synthetic benchmark (4 regression tasks, 250 inputs → 4 × 100
//! outputs, σ from 1 to 100), hard sharing (trunk 250→256→256 ReLU, linear
//! heads), AdamW; prints the per-task losses while training and the
//! per-task test metrics (MSE, RMSE, MAE) at the end.
//!
//!   cargo run --release --example quickstart              # 400 steps
//!   cargo run --release --example quickstart -- --steps 50

use manytask::arch::{ModelSpec, Sharing, TaskSpec};
use manytask::cli::metrics::{evaluate, write_batch};
use manytask::data::synthetic::{Synthetic, SyntheticSpec};
use manytask::data::{Batcher, Dataset, Order, SplitFractions};
use manytask::graph::{Optimizer, Program, StepOptions};
use manytask::types::{Activation, AdamW};
use manytask::GpuContext;

fn main() -> manytask::Result<()> {
    let steps = steps_arg(400);
    let ctx = GpuContext::from_env()?;
    println!("adapter: {}", ctx.describe());

    // 2000 samples generated from seed 0, split 80/10/10.
    let data =
        Dataset::from_synthetic(&Synthetic::generate(&SyntheticSpec::gradnorm(4, 0), 2000)?)?;
    let split = data.split(
        SplitFractions {
            validation: 0.1,
            test: 0.1,
        },
        0,
    )?;
    // One model task per data task, masked so evaluation can pad its last batch.
    let tasks = data.tasks().iter().map(|t| TaskSpec {
        masked: true,
        ..TaskSpec::new(&t.name, t.targets.kind(), &[])
    });
    let spec = ModelSpec {
        init: manytask::types::WeightInit::Glorot,
        rows: 64,
        inputs: data.features(),
        activation: Activation::Relu,
        sharing: Sharing::Hard {
            trunk: vec![256, 256],
        },
        tasks: tasks.collect(),
    };
    let model = spec.build(&ctx)?;
    let optimizer = Optimizer::AdamW(AdamW {
        lr: 1e-3,
        ..AdamW::default()
    });
    let mut program = Program::build(&ctx, model.graph, optimizer, 0)?;
    // As `manytask train --weighting equal`: every task weight 1 (the
    // program's default is 1/T, the mean of the task losses).
    program.set_task_weights(&ctx, &[1.0; 4])?;

    let batcher = Batcher::for_model(&split.train, &spec)?;
    let batches = batcher.steps(Order::Shuffled { seed: 0 }, steps)?;
    for (step, batch) in (1..).zip(batches) {
        write_batch(&ctx, &program, &model.nodes, &batch)?;
        let read = step % 50 == 0 || step == steps;
        let opts = if read {
            StepOptions::TRAIN_AND_READ
        } else {
            StepOptions::TRAIN
        };
        if let Some(losses) = program.step(&ctx, opts)?.losses {
            println!(
                "step {step:>5}/{steps}  losses {:?}",
                losses.wait(&ctx)?.losses
            );
        }
    }

    for (task, metrics) in evaluate(&ctx, &program, &model.nodes, &spec, &split.test)? {
        let cells: Vec<String> = metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        println!("test {task} {}", cells.join("  "));
    }
    Ok(())
}

/// `--steps N` from the command line, else `default`.
fn steps_arg(default: usize) -> usize {
    let mut args = std::env::args().skip_while(|a| a != "--steps");
    args.nth(1)
        .map_or(default, |n| n.parse().expect("--steps takes a number"))
}
