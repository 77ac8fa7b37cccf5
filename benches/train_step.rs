//! Time per training step of the MTL-MLP workloads (forward, backward and
//! SGD in one submit), with dispatches and submits per step printed
//! beside the time:
//!   MTL-MLP        x B=256×512, trunk 512→1024→1024 ReLU, 8 heads
//!                  1024→256 ReLU → 10, softmax CE per task, mean, SGD 0.01
//!   MTL-MLP-small  B=64×128, trunk 128→256→256, 4 heads 256→64→10
//!
//!   arch_step/*    the MTL architectures on the MTL-MLP shapes (hard
//!                  sharing, cross-stitch, sluice, soft + trace norm;
//!                  see `ArchWorkload`)
//!
//!   balancing/*    every task-weighting method at T = 2, 8, 32 (overhead
//!                  over `equal`; see `balancing_bench`)
//!
//!   cargo bench --bench train_step
//! Each measured step waits for the GPU before the clock stops. On
//! lavapipe these are CPU times, not GPU times.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use manytask::bench::workloads::{ArchWorkload, MtlMlpWorkload};
use manytask::gpu::GpuContext;
use manytask::graph::StepOptions;

/// `iters` steps, each waited for before its clock stops.
fn timed_steps(ctx: &GpuContext, iters: u64, mut step: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        step();
        ctx.wait_idle().expect("wait");
        total += start.elapsed();
    }
    total
}

fn train_step_bench(c: &mut Criterion) {
    let ctx = GpuContext::from_env().expect("an adapter");
    eprintln!("benchmarking on {}", ctx.describe());
    let mut group = c.benchmark_group("train_step");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for (name, build) in [
        (
            "mtl_mlp",
            MtlMlpWorkload::standard as fn(&GpuContext) -> manytask::Result<MtlMlpWorkload>,
        ),
        ("mtl_mlp_small", MtlMlpWorkload::small),
    ] {
        let mut w = build(&ctx).expect("workload");
        // Warm up: pipelines, autotuning (its own submits), first step.
        for _ in 0..2 {
            w.program.step(&ctx, StepOptions::default()).expect("step");
        }
        ctx.wait_idle().expect("wait");
        let r = w.program.step(&ctx, StepOptions::default()).expect("step");
        ctx.wait_idle().expect("wait");
        let m = w.program.memory();
        eprintln!(
            "{name}: {} dispatches, {} submit(s) per step; {:.2} GFLOP per step; planned intermediates {:.1} MiB (no reuse: {:.1} MiB)",
            r.dispatches,
            r.submits,
            w.flops / 1e9,
            m.planned_bytes as f64 / (1 << 20) as f64,
            m.no_reuse_bytes as f64 / (1 << 20) as f64
        );
        group.throughput(Throughput::Elements(w.flops as u64));
        group.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                timed_steps(&ctx, iters, || {
                    w.program.step(&ctx, StepOptions::default()).expect("step");
                })
            })
        });
    }
    group.finish();
}

/// Hard sharing vs cross-stitch vs sluice vs soft sharing + trace norm on
/// the MTL-MLP shapes (`ArchWorkload`), one step each.
fn architecture_bench(c: &mut Criterion) {
    let ctx = GpuContext::from_env().expect("an adapter");
    let mut group = c.benchmark_group("arch_step");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for (name, sharing) in ArchWorkload::mtl_mlp_sharings() {
        let mut w = ArchWorkload::mtl_mlp(&ctx, sharing).expect("workload");
        for _ in 0..2 {
            w.program.step(&ctx, StepOptions::default()).expect("step");
        }
        ctx.wait_idle().expect("wait");
        let r = w.program.step(&ctx, StepOptions::default()).expect("step");
        ctx.wait_idle().expect("wait");
        eprintln!(
            "{name}: {} dispatches, {} submit(s) per step; {:.2} GFLOP per step (dense layers)",
            r.dispatches,
            r.submits,
            w.flops / 1e9
        );
        group.throughput(Throughput::Elements(w.flops as u64));
        group.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                timed_steps(&ctx, iters, || {
                    w.program.step(&ctx, StepOptions::default()).expect("step");
                })
            })
        });
    }
    group.finish();
}

/// Step time of each task-weighting method on hard sharing at the
/// MTL-MLP-small shapes (B = 64×128, trunk 128→256→256 ReLU, T heads
/// 256→64→10, softmax CE, AdamW) for T = 2, 8, 32: the overhead over
/// `equal` is the method's cost (gradient methods add the Gram phase: a
/// second submit, a T×T readback, and T trunk backward passes unless they
/// work on the representation).
fn balancing_bench(c: &mut Criterion) {
    use manytask::arch::{ModelSpec, Sharing, TaskKind, TaskSpec};
    use manytask::graph::{Optimizer, Program};
    use manytask::types::Activation;
    use manytask::types::AdamW;
    use manytask::weighting::Balancer;
    let ctx = GpuContext::from_env().expect("an adapter");
    let mut group = c.benchmark_group("balancing");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let methods = [
        "equal",
        "uncertainty",
        "dwa",
        "rlw",
        "gradnorm",
        "mgda_ub",
        "mgda",
        "pcgrad",
        "cagrad",
        "imtl_g",
        "upgrad",
        "aligned_mtl",
        "nash_mtl",
        "fairgrad",
        "db_mtl",
        "gls",
        "stch",
        "famo",
        "gradvac",
        "graddrop",
        "excess_mtl",
        "moco",
    ];
    for tasks in [2usize, 8, 32] {
        for method in methods {
            let spec = ModelSpec {
                init: manytask::types::WeightInit::Glorot,
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
            let mut balancer =
                Balancer::new(method.parse().expect("method"), tasks, 0).expect("balancer");
            let mut model = spec.build(&ctx).expect("model");
            model
                .set_balancing(balancer.balancing())
                .expect("balancing");
            let labels = model.nodes.labels.expect("labels");
            let mut p = Program::build(&ctx, model.graph, Optimizer::AdamW(AdamW::default()), 1)
                .expect("program");
            let ids: Vec<u32> = (0..tasks * 64).map(|i| (i % 10) as u32).collect();
            p.input(labels)
                .expect("labels")
                .write_u32(&ctx, &ids)
                .expect("write");
            let x: Vec<f32> = (0..64 * 128)
                .map(|i| ((i % 17) as f32 - 8.0) / 8.0)
                .collect();
            p.input(model.nodes.x)
                .expect("x")
                .write_f32(&ctx, &x)
                .expect("write");
            for _ in 0..2 {
                balancer
                    .step(&ctx, &mut p, StepOptions::TRAIN)
                    .expect("step");
            }
            ctx.wait_idle().expect("wait");
            let r = balancer
                .step(&ctx, &mut p, StepOptions::TRAIN)
                .expect("step")
                .report;
            ctx.wait_idle().expect("wait");
            eprintln!(
                "T={tasks} {method}: {} dispatches, {} submit(s) per step",
                r.dispatches, r.submits
            );
            group.bench_function(BenchmarkId::new(method, format!("T{tasks}")), |bench| {
                bench.iter_custom(|iters| {
                    timed_steps(&ctx, iters, || {
                        balancer
                            .step(&ctx, &mut p, StepOptions::TRAIN)
                            .expect("step");
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(
    benches,
    train_step_bench,
    architecture_bench,
    balancing_bench
);
criterion_main!(benches);
