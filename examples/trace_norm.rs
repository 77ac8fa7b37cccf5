//! Soft parameter sharing with the trace-norm regulariser (Yang &
//! Hospedales 2017; `kernels::trace_norm`): one column per task
//! (250→64→64, ReLU) on GradNorm's synthetic benchmark (4 regression
//! tasks), each layer's stacked task weights W [T, in, out] pulled towards
//! low rank by λ·‖unfold_T(W)‖_* (the last-axis / LAF variant). Trains it
//! twice, with the norm as
//!
//! - a gradient term (`Regulariser::TraceNorm`: λ·U·Vᵀ added to the weight
//!   gradients after backward), and
//! - a proximal step (`Regulariser::TraceNormProx`: singular values shrunk
//!   by lr·λ after the optimiser),
//!
//! printing each layer's regulariser value (λ included) going down with the
//! per-task losses, then the per-task test metrics of both. SGD (momentum
//! μ = 0.9, lr 2e-3) and λ = 1 by default (`--lambda`, `--lr`). The prox
//! runs with λ/(1 − μ) = 10λ: momentum multiplies the step of a steady
//! gradient term by 1/(1 − μ), while the prox shrinks by lr·λ once per
//! step, so this gives both forms the same pull. (This benchmark's task
//! losses move by a few percent in hundreds of steps: here the regulariser
//! is the point.)
//!
//!   cargo run --release --example trace_norm                 # 300 steps each
//!   cargo run --release --example trace_norm -- --steps 50 --lambda 0.1

use manytask::arch::{ModelSpec, Sharing, TaskSpec};
use manytask::cli::metrics::{evaluate, write_batch};
use manytask::data::synthetic::{Synthetic, SyntheticSpec};
use manytask::data::{Batcher, Dataset, Order, SplitFractions};
use manytask::graph::{Optimizer, Program, StepOptions};
use manytask::types::Regulariser;
use manytask::types::TraceNormVariant;
use manytask::types::{Activation, Sgd};
use manytask::GpuContext;

/// SGD's momentum μ.
const MOMENTUM: f32 = 0.9;

fn main() -> manytask::Result<()> {
    let steps = steps_arg(300);
    let lambda: f32 = arg("--lambda").unwrap_or(1.0);
    let lr: f32 = arg("--lr").unwrap_or(2e-3);
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
    let variant = TraceNormVariant::LastAxis;
    let modes = [
        ("gradient", Regulariser::TraceNorm { lambda, variant }),
        (
            "proximal",
            Regulariser::TraceNormProx {
                lambda: lambda * 10.0, // λ / (1 − μ)
                variant,
            },
        ),
    ];
    for (mode, regulariser) in modes {
        println!("\n{mode}: {regulariser:?}, SGD lr {lr}");
        let tasks = data.tasks().iter().map(|t| TaskSpec {
            masked: true, // evaluation pads its last batch with masked-out rows
            ..TaskSpec::new(&t.name, t.targets.kind(), &[])
        });
        let spec = ModelSpec {
            init: manytask::types::WeightInit::Glorot,
            rows: 64,
            inputs: data.features(),
            activation: Activation::Relu,
            sharing: Sharing::Soft {
                columns: vec![64, 64],
                regularisers: vec![regulariser],
            },
            tasks: tasks.collect(),
        };
        let model = spec.build(&ctx)?;
        let optimizer = Optimizer::Sgd(Sgd {
            lr,
            momentum: MOMENTUM,
            weight_decay: 0.0,
        });
        let mut program = Program::build(&ctx, model.graph, optimizer, 0)?;

        let batcher = Batcher::for_model(&split.train, &spec)?;
        let every = (steps / 6).max(1);
        for (step, batch) in (1..).zip(batcher.steps(Order::Shuffled { seed: 0 }, steps)?) {
            write_batch(&ctx, &program, &model.nodes, &batch)?;
            let read = step == 1 || step % every == 0 || step == steps;
            let opts = if read {
                StepOptions::TRAIN_AND_READ
            } else {
                StepOptions::TRAIN
            };
            if let Some(losses) = program.step(&ctx, opts)?.losses {
                let losses = losses.wait(&ctx)?.losses;
                // One value per column layer, as of this step.
                let reg = program.regulariser_values(&ctx)?;
                println!("{mode} step {step:>5}/{steps}  regulariser {reg:?}  losses {losses:?}");
            }
        }
        for (task, metrics) in evaluate(&ctx, &program, &model.nodes, &spec, &split.test)? {
            let cells: Vec<String> = metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
            println!("test {mode} {task} {}", cells.join("  "));
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

/// The value after `flag` on the command line, if present.
fn arg<T: std::str::FromStr>(flag: &str) -> Option<T> {
    let mut args = std::env::args().skip_while(|a| a != flag);
    args.nth(1)
        .map(|v| v.parse().ok().expect("a number after the flag"))
}
