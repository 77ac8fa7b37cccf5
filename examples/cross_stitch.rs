//! A cross-stitch network (Misra et al. 2016) on GradNorm's synthetic
//! benchmark (4 regression tasks): one column per task (250→64→64, ReLU),
//! a cross-stitch unit α (T×T, initialised 0.9 on the diagonal) after each
//! layer, linear heads. α learns 10× faster than the other parameters
//! (`StitchOptions::lr_scale`). After training it prints the per-task test
//! metrics and every learned α, read from the program's parameters by name
//! (`stitch.{layer}.alpha`, also the names in a checkpoint): row t holds
//! the weights of each source column in task t's mixed output.
//!
//!   cargo run --release --example cross_stitch              # 300 steps
//!   cargo run --release --example cross_stitch -- --steps 50

use manytask::arch::{ModelSpec, Sharing, StitchOptions, TaskSpec};
use manytask::cli::metrics::{evaluate, write_batch};
use manytask::data::synthetic::{Synthetic, SyntheticSpec};
use manytask::data::{Batcher, Dataset, Order, SplitFractions};
use manytask::graph::{Optimizer, Program, StepOptions};
use manytask::types::{Activation, AdamW};
use manytask::GpuContext;

fn main() -> manytask::Result<()> {
    let steps = steps_arg(300);
    let ctx = GpuContext::from_env()?;
    println!("adapter: {}", ctx.describe());
    let data =
        Dataset::from_synthetic(&Synthetic::generate(&SyntheticSpec::gradnorm(4, 0), 2000)?)?;
    let split = data.split(
        SplitFractions {
            validation: 0.1,
            test: 0.1,
        },
        0,
    )?;
    let tasks = data.tasks().iter().map(|t| TaskSpec {
        masked: true, // evaluation pads its last batch with masked-out rows
        ..TaskSpec::new(&t.name, t.targets.kind(), &[])
    });
    let spec = ModelSpec {
        init: manytask::types::WeightInit::Glorot,
        rows: 64,
        inputs: data.features(),
        activation: Activation::Relu,
        sharing: Sharing::CrossStitch {
            columns: vec![64, 64],
            stitch_after: vec![0, 1],
            stitch: StitchOptions {
                lr_scale: 10.0,
                ..StitchOptions::default()
            },
        },
        tasks: tasks.collect(),
    };
    let model = spec.build(&ctx)?;
    let optimizer = Optimizer::AdamW(AdamW {
        lr: 1e-3,
        ..AdamW::default()
    });
    let mut program = Program::build(&ctx, model.graph, optimizer, 0)?;
    print_alphas(&ctx, &program, "initial")?;

    let batcher = Batcher::for_model(&split.train, &spec)?;
    for (step, batch) in (1..).zip(batcher.steps(Order::Shuffled { seed: 0 }, steps)?) {
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
    print_alphas(&ctx, &program, "learned")?;
    Ok(())
}

/// Prints every cross-stitch α of the program ([T, T] per layer), one
/// line per output task.
fn print_alphas(ctx: &GpuContext, program: &Program, when: &str) -> manytask::Result<()> {
    for p in program.params().read_all(ctx)? {
        if !(p.name.starts_with("stitch.") && p.name.ends_with(".alpha")) {
            continue;
        }
        let t = p.shape[p.shape.len() - 1];
        println!(
            "{when} {} {:?} (row t: weight of each source task in task t)",
            p.name, p.shape
        );
        for (row, values) in p.values.chunks(t).take(t).enumerate() {
            let cells: Vec<String> = values.iter().map(|v| format!("{v:7.4}")).collect();
            println!("  alpha[{row}] {}", cells.join(" "));
        }
    }
    Ok(())
}

/// `--steps N` from the command line, else `default`.
fn steps_arg(default: usize) -> usize {
    let mut args = std::env::args().skip_while(|a| a != "--steps");
    args.nth(1)
        .map_or(default, |n| n.parse().expect("--steps takes a number"))
}
