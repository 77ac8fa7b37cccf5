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

use manytask::data::synthetic::{Synthetic, SyntheticSpec};
use manytask::prelude::*;

/// Prints the losses of every logged step.
struct PrintLosses;

impl Observer for PrintLosses {
    fn on_step(&mut self, e: &StepEvent) -> manytask::Result<()> {
        if let (true, Some(losses)) = (e.logged, e.losses) {
            println!("step {:>5}/{}  losses {losses:?}", e.step, e.total_steps);
        }
        Ok(())
    }
}

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
        masked: true, // short last batches are padded with masked-out rows
        ..TaskSpec::new(&t.name, t.targets.kind(), &[])
    });
    let spec = ModelSpec {
        init: WeightInit::Glorot,
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
    let optimizer = Optimizer::AdamW(AdamW {
        lr: 1e-3,
        ..AdamW::default()
    });
    let mut learner = Learner::new(&ctx, spec, optimizer, Weighting::Equal, 0)?;
    print_alphas(&ctx, &learner.program, "initial")?;

    let mut printer = PrintLosses;
    Trainer::new(TrainOptions::steps(steps).shuffle(0).read_every(50))
        .observe(&mut printer)
        .fit(&ctx, &mut learner, &split.train, Some(&split.validation))?;

    for t in learner.evaluate(&ctx, &split.test, "test")?.tasks {
        println!("test {} {}", t.task, t.line());
    }
    print_alphas(&ctx, &learner.program, "learned")?;
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
