//! Real data: Fashion-MNIST (28×28 grey images) as two classification
//! tasks, "class" (the 10 labels) and "group" (4 coarse groups: tops,
//! bottoms and dresses, footwear, bags). Trains the same budget with hard
//! sharing (trunk 784→128→128, ReLU) and with a cross-stitch network (one
//! 784→128→128 column per task, α after each layer), then prints each
//! model's test accuracy per task. Training is the library's `Trainer`;
//! an `Observer` prints the losses a few times per run.
//!
//! Needs the Debian package `dataset-fashion-mnist` (files under
//! /usr/share/datasets/fashion-mnist; another directory with `--data DIR`);
//! without it the example says so and exits with status 2.
//!
//!   cargo run --release --example fashion_multitask                # 600 steps each
//!   cargo run --release --example fashion_multitask -- --steps 100 --test-rows 2000

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use manytask::data::fashion_mnist::{self, FashionMnist};
use manytask::prelude::*;

const ROWS: usize = 128;

fn main() -> ExitCode {
    let steps: usize = arg("--steps").unwrap_or(600);
    let test_rows: usize = arg("--test-rows").unwrap_or(10_000);
    let dir: PathBuf = arg("--data").unwrap_or_else(|| fashion_mnist::DEFAULT_DIR.into());
    let data = match fashion_mnist::load(&dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("fashion_multitask needs Fashion-MNIST: {e}");
            eprintln!("(apt-get install dataset-fashion-mnist, or pass --data DIR)");
            return ExitCode::from(2);
        }
    };
    match run(&data, steps, test_rows) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(data: &FashionMnist, steps: usize, test_rows: usize) -> manytask::Result<()> {
    let ctx = GpuContext::from_env()?;
    println!("adapter: {}", ctx.describe());
    let rows: Vec<usize> = (0..test_rows.min(data.test.rows())).collect();
    let test = data.test.subset(&rows);
    println!(
        "data: {} train / {} test images, tasks class (10) and group (4)",
        data.train.rows(),
        test.rows()
    );
    let models = [
        (
            "hard",
            Sharing::Hard {
                trunk: vec![128, 128],
            },
        ),
        (
            "cross_stitch",
            Sharing::CrossStitch {
                columns: vec![128, 128],
                stitch_after: vec![0, 1],
                stitch: StitchOptions::default(),
            },
        ),
    ];
    let mut results = Vec::new();
    for (name, sharing) in models {
        let start = Instant::now();
        let metrics = train(&ctx, &data.train, &test, sharing, steps)?;
        println!(
            "{name}: {steps} steps + test in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        results.push((name, metrics));
    }
    println!();
    for (name, metrics) in &results {
        for t in &metrics.tasks {
            println!("test {name} {} {}", t.task, t.line());
        }
    }
    Ok(())
}

/// Prints the losses of every logged step, indented under the model.
struct PrintLosses;

impl Observer for PrintLosses {
    fn on_step(&mut self, e: &StepEvent) -> manytask::Result<()> {
        if let (true, Some(losses)) = (e.logged, e.losses) {
            println!("  step {:>5}/{}  losses {losses:?}", e.step, e.total_steps);
        }
        Ok(())
    }
}

/// Trains one model for `steps` batches of the training images and returns
/// its per-task test metrics.
fn train(
    ctx: &GpuContext,
    train: &Dataset,
    test: &Dataset,
    sharing: Sharing,
    steps: usize,
) -> manytask::Result<Metrics> {
    let tasks = train.tasks().iter().map(|t| TaskSpec {
        masked: true, // short last batches are padded with masked-out rows
        ..TaskSpec::new(&t.name, t.targets.kind(), &[])
    });
    let spec = ModelSpec {
        init: WeightInit::Glorot,
        rows: ROWS,
        inputs: train.features(),
        activation: Activation::Relu,
        sharing,
        tasks: tasks.collect(),
    };
    let optimizer = Optimizer::AdamW(AdamW {
        lr: 1e-3,
        ..AdamW::default()
    });
    let mut learner = Learner::new(ctx, spec, optimizer, Weighting::Equal, 0)?;
    let options = TrainOptions::steps(steps)
        .shuffle(0)
        .read_every((steps / 4).max(1));
    let mut printer = PrintLosses;
    Trainer::new(options)
        .observe(&mut printer)
        .fit(ctx, &mut learner, train, None)?;
    learner.evaluate(ctx, test, "test")
}

/// The value after `flag` on the command line, if present; exits with
/// status 2 when it does not parse.
fn arg<T: std::str::FromStr>(flag: &str) -> Option<T> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == flag)?;
    match args.get(i + 1).and_then(|s| s.parse().ok()) {
        Some(v) => Some(v),
        None => {
            eprintln!("{flag} takes a value");
            std::process::exit(2)
        }
    }
}
