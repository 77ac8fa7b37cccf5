//! Where a training step's time goes, op by op: one step of each MTL
//! architecture on the MTL-MLP shapes (B = 256 × 512 inputs, 8 tasks,
//! heads 256 → 10; see `bench::workloads::ArchWorkload`), profiled with a
//! GPU timestamp around every dispatch (`Program::profile_step`).
//!
//!   cargo run --release --example profile_step             # every architecture
//!   cargo run --release --example profile_step -- sluice   # names containing "sluice"
//!   cargo run --release --example profile_step -- hard 5   # the 5 costliest kernels
//!
//! Gradient-combination methods (GradNorm, MGDA, PCGrad, …) add a Gram
//! phase before the step (`Program::profile_gram_phase`): per-task
//! gradients and their Gram matrix. `--balancing METHOD T…` profiles that
//! phase and the step that follows on the balancing bench's model
//! (hard sharing, B = 64 × 128 inputs, trunk 256, 256, T heads 64 → 10)
//! and times whole balanced steps (wall clock, median of 5):
//!
//!   cargo run --release --example profile_step -- --balancing gradnorm 2 8 32
//!
//! Needs timestamp queries (Vulkan lavapipe has them; GL does not). On
//! lavapipe the "GPU" is the CPU: these are CPU times per dispatch.

use std::time::Instant;

use manytask::arch::{ModelSpec, Sharing, TaskKind, TaskSpec};
use manytask::bench::workloads::ArchWorkload;
use manytask::gpu::{GpuContext, Profile};
use manytask::graph::{Optimizer, Program, StepOptions};
use manytask::types::{Activation, AdamW, WeightInit};
use manytask::weighting::Balancer;

fn main() -> manytask::Result<()> {
    let ctx = GpuContext::from_env()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("adapter: {}", ctx.describe());
    if args.first().map(String::as_str) == Some("--balancing") {
        let method = args.get(1).map_or("gradnorm", String::as_str);
        let counts: Vec<usize> = args[2.min(args.len())..]
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        let counts = if counts.is_empty() {
            vec![2, 8, 32]
        } else {
            counts
        };
        for tasks in counts {
            balancing(&ctx, method, tasks)?;
        }
        return Ok(());
    }
    let filter = args.first().cloned().unwrap_or_default();
    let top: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(12);
    for (name, sharing) in ArchWorkload::mtl_mlp_sharings() {
        if !name.contains(&filter) {
            continue;
        }
        let mut w = ArchWorkload::mtl_mlp(&ctx, sharing)?;
        // A warm-up step builds every pipeline first.
        w.program.step(&ctx, StepOptions::TRAIN)?;
        let (report, profile) = w.program.profile_step(&ctx, StepOptions::TRAIN)?;
        println!(
            "\n{name}: {} dispatches, {} submit(s); {:.1} ms summed over dispatches",
            report.dispatches,
            report.submits,
            profile.total_ms()
        );
        print_top(&profile, top);
    }
    Ok(())
}

/// The costliest kernels, then the rest as one line.
fn print_top(profile: &Profile, top: usize) {
    let table = profile.table();
    let lines: Vec<&str> = table.lines().collect();
    let body = &lines[1..lines.len() - 1];
    println!("{}", lines[0]);
    for line in body.iter().take(top) {
        println!("{line}");
    }
    if body.len() > top {
        let rest: f64 = profile.by_label()[top..].iter().map(|t| t.ms).sum();
        println!(
            "{rest:>10.3}        {:>6}  (the other kernels)",
            body.len() - top
        );
    }
    println!("{}", lines[lines.len() - 1]);
}

/// One balancing method at `tasks` tasks: the Gram phase and the step
/// profiled, and the wall time of whole balanced steps.
fn balancing(ctx: &GpuContext, method: &str, tasks: usize) -> manytask::Result<()> {
    let spec = ModelSpec {
        init: WeightInit::Glorot,
        rows: 64,
        inputs: 128,
        activation: Activation::Relu,
        sharing: Sharing::Hard {
            trunk: vec![256, 256],
        },
        tasks: (0..tasks)
            .map(|t| {
                TaskSpec::new(
                    &format!("t{t}"),
                    TaskKind::Classification { classes: 10 },
                    &[64],
                )
            })
            .collect(),
    };
    let mut balancer = Balancer::new(method.parse()?, tasks, 0)?;
    let mut model = spec.build(ctx)?;
    model.set_balancing(balancer.balancing())?;
    let labels = model.nodes.labels.ok_or_else(|| manytask::Error::Shape {
        op: "profile_step",
        detail: "no labels".into(),
    })?;
    let mut p = Program::build(ctx, model.graph, Optimizer::AdamW(AdamW::default()), 1)?;
    let ids: Vec<u32> = (0..tasks * 64).map(|i| (i % 10) as u32).collect();
    p.input(labels)?.write_u32(ctx, &ids)?;
    let x: Vec<f32> = (0..64 * 128)
        .map(|i| ((i % 17) as f32 - 8.0) / 8.0)
        .collect();
    p.input(model.nodes.x)?.write_f32(ctx, &x)?;
    for _ in 0..2 {
        balancer.step(ctx, &mut p, StepOptions::TRAIN)?;
    }
    ctx.wait_idle()?;
    let mut times = Vec::new();
    let mut report = None;
    for _ in 0..5 {
        let t0 = Instant::now();
        let r = balancer.step(ctx, &mut p, StepOptions::TRAIN)?;
        ctx.wait_idle()?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        report = Some(r.report);
    }
    times.sort_by(f64::total_cmp);
    let report = report.expect("five steps");
    println!(
        "\n{method} T={tasks}: {:.1} ms per balanced step (median of 5), {} dispatches, {} submit(s)",
        times[2], report.dispatches, report.submits
    );
    if matches!(balancer.balancing(), manytask::graph::Balancing::Gram(_)) {
        let (_, profile) = p.profile_gram_phase(ctx)?;
        println!(
            "gram phase: {:.1} ms summed over dispatches",
            profile.total_ms()
        );
        print_top(&profile, 8);
    }
    let (_, profile) = p.profile_step(ctx, StepOptions::TRAIN)?;
    println!("step: {:.1} ms summed over dispatches", profile.total_ms());
    print_top(&profile, 5);
    Ok(())
}
