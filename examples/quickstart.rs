//! The embedded default of `manytask train` in a few lines of library API:
//! GradNorm's synthetic benchmark (4 regression tasks, 250 inputs → 4 × 100
//! outputs, σ from 1 to 100), hard sharing (trunk 250→256→256 ReLU, linear
//! heads), AdamW, trained by the library's `Trainer` (shuffled epochs,
//! a validation pass per epoch); prints the per-task losses while training
//! (an `Observer`) and the per-task test metrics (loss, MSE, RMSE, MAE) at
//! the end.
//!
//!   cargo run --release --example quickstart              # 400 steps
//!   cargo run --release --example quickstart -- --steps 50

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
    // One model task per data task, masked so a short last batch can be
    // padded with masked-out rows.
    let tasks = data.tasks().iter().map(|t| TaskSpec {
        masked: true,
        ..TaskSpec::new(&t.name, t.targets.kind(), &[])
    });
    let spec = ModelSpec {
        init: WeightInit::Glorot,
        rows: 64,
        inputs: data.features(),
        activation: Activation::Relu,
        sharing: Sharing::Hard {
            trunk: vec![256, 256],
        },
        tasks: tasks.collect(),
    };
    let optimizer = Optimizer::AdamW(AdamW {
        lr: 1e-3,
        ..AdamW::default()
    });
    // Equal weighting, as `manytask train --weighting equal`: every task
    // weight 1.
    let mut learner = Learner::new(&ctx, spec, optimizer, Weighting::Equal, 0)?;
    let mut printer = PrintLosses;
    Trainer::new(TrainOptions::steps(steps).shuffle(0).read_every(50))
        .observe(&mut printer)
        .fit(&ctx, &mut learner, &split.train, Some(&split.validation))?;

    for t in learner.evaluate(&ctx, &split.test, "test")?.tasks {
        println!("test {} {}", t.task, t.line());
    }
    Ok(())
}

/// `--steps N` from the command line, else `default`.
fn steps_arg(default: usize) -> usize {
    let mut args = std::env::args().skip_while(|a| a != "--steps");
    args.nth(1)
        .map_or(default, |n| n.parse().expect("--steps takes a number"))
}
