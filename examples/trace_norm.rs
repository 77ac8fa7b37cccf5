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
//! per-task losses (an `Observer` of the library's `Trainer`, reading the
//! values through the learner it is shown), then the per-task test metrics
//! of both. The objective is the mean of the task losses (static weights
//! 1/T). SGD (momentum
//! μ = 0.9, lr 2e-3) and λ = 1 by default (`--lambda`, `--lr`). The prox
//! runs with λ/(1 − μ) = 10λ: momentum multiplies the step of a steady
//! gradient term by 1/(1 − μ), while the prox shrinks by lr·λ once per
//! step, so this gives both forms the same pull. (This benchmark's task
//! losses move by a few percent in hundreds of steps: here the regulariser
//! is the point.)
//!
//!   cargo run --release --example trace_norm                 # 300 steps each
//!   cargo run --release --example trace_norm -- --steps 50 --lambda 0.1

use manytask::data::synthetic::{Synthetic, SyntheticSpec};
use manytask::prelude::*;
use manytask::types::{Regulariser, TraceNormVariant};

/// SGD's momentum μ.
const MOMENTUM: f32 = 0.9;

/// Prints each read step's regulariser values and losses: the first step
/// and every logged one.
struct PrintRegulariser {
    mode: &'static str,
}

impl Observer for PrintRegulariser {
    fn wants_losses(&self, step: usize) -> bool {
        step == 1
    }

    fn on_step(&mut self, e: &StepEvent) -> manytask::Result<()> {
        if let Some(losses) = e.losses {
            // One value per column layer, as of this step.
            let reg = e.learner.program.regulariser_values(e.ctx)?;
            println!(
                "{} step {:>5}/{}  regulariser {reg:?}  losses {losses:?}",
                self.mode, e.step, e.total_steps
            );
        }
        Ok(())
    }
}

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
            masked: true, // short last batches are padded with masked-out rows
            ..TaskSpec::new(&t.name, t.targets.kind(), &[])
        });
        let spec = ModelSpec {
            init: WeightInit::Glorot,
            rows: 64,
            inputs: data.features(),
            activation: Activation::Relu,
            sharing: Sharing::Soft {
                columns: vec![64, 64],
                regularisers: vec![regulariser],
            },
            tasks: tasks.collect(),
        };
        let optimizer = Optimizer::Sgd(Sgd {
            lr,
            momentum: MOMENTUM,
            weight_decay: 0.0,
        });
        let weighting = Weighting::Static(vec![0.25; 4]);
        let mut learner = Learner::new(&ctx, spec, optimizer, weighting, 0)?;
        let options = TrainOptions::steps(steps)
            .shuffle(0)
            .read_every((steps / 6).max(1));
        let mut printer = PrintRegulariser { mode };
        Trainer::new(options).observe(&mut printer).fit(
            &ctx,
            &mut learner,
            &split.train,
            Some(&split.validation),
        )?;
        for t in learner.evaluate(&ctx, &split.test, "test")?.tasks {
            println!("test {mode} {} {}", t.task, t.line());
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
