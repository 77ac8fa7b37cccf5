//! Kernel benchmarks: GFLOP/s of every GEMM variant (criterion prints
//! "elem/s" for GEMM: one element = one flop), of the fused dense layer
//! against the separate kernels it replaces and of batched task heads
//! against one GEMM per head; GB/s of elementwise, reduction, loss,
//! optimiser and non-finite watch kernels; GFLOP/s of the trace norms (napkin GEMM flops,
//! `TraceNormPlan::flops`) and GB/s of the soft-sharing regularisers;
//! GB/s of the mixture-of-experts ops (`moe`);
//! dispatch and submit overhead; host <-> device
//! transfer rates. `manytask bench` prints the same measurements as one
//! table with the adapter's roofline.
//!
//! Runs on the adapter `MANYTASK_BACKEND` picks (default: the best one):
//!   cargo bench --bench kernels
//!   MANYTASK_BACKEND=gl cargo bench --bench kernels -- transfer
//! Every measurement submits, then waits for the GPU before the clock stops.
//! On lavapipe / llvmpipe these are CPU times, not GPU times.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use manytask::bench::workloads::{DenseWorkload, HeadsWorkload, LossWorkload};
use manytask::gpu::{DType, GpuContext, Tensor};
use manytask::kernels::dense::BackwardPlan;
use manytask::kernels::gemm::{self, Epilogue, Layout, Variant};
use manytask::kernels::{elementwise, nonfinite, optim, reduce};
use manytask::types::Activation;
use manytask::util::rng::Rng;

fn context() -> GpuContext {
    match GpuContext::from_env() {
        Ok(ctx) => {
            eprintln!("benchmarking on {}", ctx.describe());
            ctx
        }
        Err(e) => panic!("no adapter to benchmark on: {e}"),
    }
}

fn tensor(ctx: &GpuContext, label: &str, n: usize) -> Tensor {
    let data = Rng::new(n as u64).uniform_vec(n, -1.0, 1.0);
    Tensor::from_f32(ctx, label, &[n], &data).expect("upload")
}

/// Times `iters` runs of `record` + submit + wait, one submit per run.
fn time_submits(
    ctx: &GpuContext,
    iters: u64,
    mut record: impl FnMut(&mut manytask::Recorder),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut rec = ctx.recorder("bench");
        record(&mut rec);
        let start = Instant::now();
        rec.submit().expect("submit");
        ctx.wait_idle().expect("wait");
        total += start.elapsed();
    }
    total
}

fn elementwise_bench(c: &mut Criterion) {
    let ctx = context();
    let mut group = c.benchmark_group("elementwise");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for n in [1 << 16, 1 << 20, 1 << 24] {
        let a = tensor(&ctx, "a", n);
        let b = tensor(&ctx, "b", n);
        let out = Tensor::empty(&ctx, "out", &[n], DType::F32).expect("alloc");
        // add: read a, b, write out = 12 bytes per element.
        group.throughput(Throughput::Bytes(12 * n as u64));
        group.bench_with_input(BenchmarkId::new("add", n), &n, |bench, _| {
            bench.iter_custom(|iters| {
                time_submits(&ctx, iters, |rec| {
                    elementwise::add(rec, &a, &b, &out).expect("add")
                })
            })
        });
        // gelu backward: read z, g, write dz = 12 bytes per element (and ~30 flops).
        group.bench_with_input(BenchmarkId::new("act_backward_gelu", n), &n, |bench, _| {
            bench.iter_custom(|iters| {
                time_submits(&ctx, iters, |rec| {
                    elementwise::act_backward(rec, elementwise::Activation::Gelu, &a, &b, &out)
                        .expect("gelu'")
                })
            })
        });
    }
    group.finish();
}

fn reduce_bench(c: &mut Criterion) {
    let ctx = context();
    let mut group = c.benchmark_group("reduce");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let out = Tensor::empty(&ctx, "sum", &[1], DType::F32).expect("alloc");
    for n in [1 << 20, 1 << 24] {
        let x = tensor(&ctx, "x", n);
        // sum: reads 4 bytes per element (partials add < 0.5%).
        group.throughput(Throughput::Bytes(4 * n as u64));
        group.bench_with_input(BenchmarkId::new("sum", n), &n, |bench, _| {
            bench.iter_custom(|iters| {
                time_submits(&ctx, iters, |rec| reduce::sum(rec, &x, &out).expect("sum"))
            })
        });
    }
    for (rows, cols) in [(4096usize, 1024usize), (65_536, 16)] {
        let x = tensor(&ctx, "x", rows * cols)
            .reshape(&[rows, cols])
            .expect("reshape");
        let sums = Tensor::empty(&ctx, "colsum", &[cols], DType::F32).expect("alloc");
        group.throughput(Throughput::Bytes(4 * (rows * cols) as u64));
        group.bench_with_input(
            BenchmarkId::new("column_sums", format!("{rows}x{cols}")),
            &rows,
            |bench, _| {
                bench.iter_custom(|iters| {
                    time_submits(&ctx, iters, |rec| {
                        reduce::column_sums(rec, &x, &sums).expect("colsum")
                    })
                })
            },
        );
    }
    group.finish();
}

/// Fused optimiser steps over a flat parameter arena. Bytes per parameter:
/// SGD reads g, θ, v and writes θ, v (20 B); AdamW reads g, θ, m, v and
/// writes θ, m, v (28 B).
fn optim_bench(c: &mut Criterion) {
    let ctx = context();
    let mut group = c.benchmark_group("optim");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for n in [1 << 20, 1 << 23] {
        let param = tensor(&ctx, "θ", n);
        let grad = tensor(&ctx, "g", n);
        let m = Tensor::zeros(&ctx, "m", &[n]).expect("alloc");
        let v = Tensor::zeros(&ctx, "v", &[n]).expect("alloc");
        let sgd = optim::Sgd {
            lr: 1e-3,
            momentum: 0.9,
            weight_decay: 0.0,
        };
        group.throughput(Throughput::Bytes(20 * n as u64));
        group.bench_with_input(BenchmarkId::new("sgd_step", n), &n, |bench, _| {
            bench.iter_custom(|iters| {
                time_submits(&ctx, iters, |rec| {
                    optim::sgd_step(rec, &sgd, &param, &grad, &m).expect("sgd")
                })
            })
        });
        let adamw = optim::AdamW::default();
        group.throughput(Throughput::Bytes(28 * n as u64));
        group.bench_with_input(BenchmarkId::new("adamw_step", n), &n, |bench, _| {
            bench.iter_custom(|iters| {
                time_submits(&ctx, iters, |rec| {
                    optim::adamw_step(rec, &adamw, 1, &param, &grad, &m, &v).expect("adamw")
                })
            })
        });
    }
    group.finish();
}

/// The non-finite watch over T task losses (one workgroup): reads 4 bytes
/// per task plus the 16-byte record. At training's T (a handful) it costs a
/// dispatch; T up to 2^20 shows the one workgroup's own bandwidth.
fn nonfinite_bench(c: &mut Criterion) {
    let ctx = context();
    let mut group = c.benchmark_group("nonfinite");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let record = nonfinite::new_record(&ctx, "record").expect("alloc");
    for tasks in [8usize, 5000, 1 << 20] {
        // All finite: every lane walks its whole stride.
        let losses = tensor(&ctx, "losses", tasks);
        group.throughput(Throughput::Bytes(4 * tasks as u64 + 16));
        group.bench_with_input(
            BenchmarkId::new("watch_losses", tasks),
            &tasks,
            |bench, _| {
                bench.iter_custom(|iters| {
                    time_submits(&ctx, iters, |rec| {
                        nonfinite::watch_losses(rec, &losses, &record, 1).expect("watch")
                    })
                })
            },
        );
    }
    group.finish();
}

/// What one dispatch and one submit cost, with a kernel doing nothing of
/// note (fill of one element).
fn dispatch_bench(c: &mut Criterion) {
    let ctx = context();
    let mut group = c.benchmark_group("dispatch");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    let y = Tensor::zeros(&ctx, "y", &[1]).expect("alloc");
    group.throughput(Throughput::Elements(1));
    group.bench_function("1 dispatch, 1 submit, wait", |bench| {
        bench.iter_custom(|iters| {
            time_submits(&ctx, iters, |rec| {
                elementwise::fill(rec, &y, 1.0).expect("fill")
            })
        })
    });
    // Throughput in elements = dispatches, so criterion prints dispatches/s.
    group.throughput(Throughput::Elements(100));
    group.bench_function("100 dispatches, 1 submit, wait", |bench| {
        bench.iter_custom(|iters| {
            time_submits(&ctx, iters, |rec| {
                for _ in 0..100 {
                    elementwise::fill(rec, &y, 1.0).expect("fill");
                }
            })
        })
    });
    group.bench_function("100 dispatches, 100 submits, wait", |bench| {
        bench.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for _ in 0..100 {
                    let mut rec = ctx.recorder("bench");
                    elementwise::fill(&mut rec, &y, 1.0).expect("fill");
                    rec.submit().expect("submit");
                }
                ctx.wait_idle().expect("wait");
            }
            start.elapsed()
        })
    });
    group.finish();
}

fn transfer_bench(c: &mut Criterion) {
    let ctx = context();
    let mut group = c.benchmark_group("transfer");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for mib in [4usize, 64] {
        let n = mib * (1 << 20) / 4;
        let host = Rng::new(1).uniform_vec(n, -1.0, 1.0);
        let t = Tensor::from_f32(&ctx, "t", &[n], &host).expect("alloc");
        group.throughput(Throughput::Bytes(4 * n as u64));
        group.bench_with_input(
            BenchmarkId::new("upload", format!("{mib} MiB")),
            &n,
            |bench, _| {
                bench.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        t.write_f32(&ctx, &host).expect("write");
                        ctx.queue().submit([]);
                        ctx.wait_idle().expect("wait");
                    }
                    start.elapsed()
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("download", format!("{mib} MiB")),
            &n,
            |bench, _| {
                bench.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        std::hint::black_box(t.to_f32_vec(&ctx).expect("read"));
                    }
                    start.elapsed()
                })
            },
        );
    }
    group.finish();
}

/// GFLOP/s of every GEMM family member this adapter runs (the named
/// variants and every generated configuration) in the three training
/// layouts. The naive variant runs up to 1024 only (at ~0.5 GFLOP/s on
/// lavapipe a 2048³ run takes ~35 s); compare members within one run.
/// `cargo bench --bench kernels -- 'gemm/sgb'` runs one sharing mode.
fn gemm_bench(c: &mut Criterion) {
    let ctx = context();
    let mut group = c.benchmark_group("gemm");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    for size in [256usize, 512, 1024, 2048] {
        let a = Tensor::zeros(&ctx, "A", &[size, size]).expect("alloc");
        let b = Tensor::zeros(&ctx, "B", &[size, size]).expect("alloc");
        let out = Tensor::empty(&ctx, "C", &[size, size], DType::F32).expect("alloc");
        // 2·M·N·K flops.
        group.throughput(Throughput::Elements(2 * (size as u64).pow(3)));
        for layout in [Layout::NN, Layout::NT, Layout::TN] {
            for variant in gemm::available_family(&ctx) {
                if variant == Variant::Naive && size > 1024 {
                    continue;
                }
                let id = BenchmarkId::new(format!("{variant}/{layout}"), size);
                group.bench_with_input(id, &size, |bench, _| {
                    bench.iter_custom(|iters| {
                        time_submits(&ctx, iters, |rec| {
                            gemm::gemm_with(
                                rec,
                                variant,
                                layout,
                                &a,
                                &b,
                                &out,
                                &Epilogue::default(),
                            )
                            .expect("gemm")
                        })
                    })
                });
            }
        }
    }
    group.finish();
}

/// The fused dense layer, forward + backward, under both backward plans,
/// against the separate kernels (GEMM + bias, activation, activation
/// backward, two GEMMs, column sums) at the MTL trunk shapes B = 256,
/// 512 → 1024 → 1024. Throughput: the three GEMMs' flops.
fn dense_bench(c: &mut Criterion) {
    let ctx = context();
    let mut group = c.benchmark_group("dense");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(6));
    for (inputs, outputs) in [(512usize, 1024usize), (1024, 1024)] {
        let w = DenseWorkload::new(&ctx, 256, inputs, outputs, Activation::Relu).expect("alloc");
        group.throughput(Throughput::Elements(w.flops() as u64));
        let shape = format!("256x{inputs}->{outputs}");
        for (name, plan) in [
            ("fused_prologue", Some(BackwardPlan::Prologue)),
            ("fused_store_d", Some(BackwardPlan::StoreDelta)),
            ("separate", None),
        ] {
            group.bench_function(BenchmarkId::new(name, &shape), |bench| {
                bench.iter_custom(|iters| {
                    time_submits(&ctx, iters, |rec| match plan {
                        Some(_) => w.record_fused(rec, None, plan).expect("dense"),
                        None => w.record_separate(rec, None).expect("separate"),
                    })
                })
            });
        }
    }
    group.finish();
}

/// Eight task heads 1024 → 256 on B = 256: one batched task GEMM against
/// eight GEMM dispatches; then the masked losses of eight 10-class tasks.
fn heads_bench(c: &mut Criterion) {
    let ctx = context();
    let mut group = c.benchmark_group("task_heads");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    let heads = HeadsWorkload::new(&ctx, 256, 1024, &[256; 8]).expect("alloc");
    group.throughput(Throughput::Elements(heads.flops() as u64));
    group.bench_function("batched", |bench| {
        bench.iter_custom(|iters| {
            time_submits(&ctx, iters, |rec| {
                heads.record_batched(rec, None).expect("heads")
            })
        })
    });
    group.bench_function("per_task", |bench| {
        bench.iter_custom(|iters| {
            time_submits(&ctx, iters, |rec| {
                heads.record_per_task(rec, None).expect("heads")
            })
        })
    });
    let loss = LossWorkload::new(&ctx, 256, 8, 10).expect("alloc");
    group.throughput(Throughput::Bytes(loss.bytes() as u64));
    group.bench_function("masked_losses_softmax_ce_8x10", |bench| {
        bench.iter_custom(|iters| time_submits(&ctx, iters, |rec| loss.record(rec).expect("loss")))
    });
    group.finish();
}

/// The cross-stitch unit at the MTL shapes: T = 8 columns of 1024
/// channels, B = 256: the mix (forward; dX is the same kernel with αᵀ)
/// and dα (two fixed-order stages: row-chunk partials, then their sum).
/// Throughput counts every operand once (as `manytask bench` does).
fn cross_stitch_bench(c: &mut Criterion) {
    use manytask::kernels::cross_stitch::{stitch_alpha_grad, stitch_mix, Stitch};
    let ctx = context();
    let mut group = c.benchmark_group("cross_stitch");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    let (rows, tasks, channels) = (256usize, 8usize, 1024usize);
    let n = rows * tasks * channels;
    let x = tensor(&ctx, "x", n)
        .reshape(&[rows, tasks * channels])
        .expect("reshape");
    let dy = tensor(&ctx, "dy", n)
        .reshape(&[rows, tasks * channels])
        .expect("reshape");
    let out = Tensor::empty(&ctx, "out", &[rows, tasks * channels], DType::F32).expect("alloc");
    for per_channel in [false, true] {
        let unit = Stitch { tasks, per_channel };
        let shape = unit.alpha_shape(channels);
        let alpha = tensor(&ctx, "alpha", shape.iter().product())
            .reshape(&shape)
            .expect("reshape");
        let dalpha = Tensor::empty(&ctx, "dalpha", &shape, DType::F32).expect("alloc");
        let kind = if per_channel {
            "per_channel"
        } else {
            "per_layer"
        };
        // Mix: reads T values of x per output, writes one.
        group.throughput(Throughput::Bytes(8 * n as u64));
        group.bench_function(BenchmarkId::new("mix", kind), |bench| {
            bench.iter_custom(|iters| {
                time_submits(&ctx, iters, |rec| {
                    stitch_mix(rec, &unit, &x, &alpha, &out, false, false).expect("mix")
                })
            })
        });
        // dα: x and dy once each (stage 1 reads them in 4×4 task blocks:
        // twice for T = 8).
        group.throughput(Throughput::Bytes(8 * n as u64));
        group.bench_function(BenchmarkId::new("alpha_grad", kind), |bench| {
            bench.iter_custom(|iters| {
                time_submits(&ctx, iters, |rec| {
                    stitch_alpha_grad(rec, &unit, &x, &dy, &dalpha, false).expect("alpha grad")
                })
            })
        });
    }
    group.finish();
}

/// Sluice-network ops at the MTL shapes: the layer stitch over K = 2
/// layers of T = 8 columns × 128 channels, B = 256 (bytes moved), and the
/// subspace orthogonality penalty on T = 8 task weights [128, 128] split
/// into G = 2 subspaces (FLOPs of its two batched GEMMs).
fn sluice_bench(c: &mut Criterion) {
    use manytask::kernels::layer_stitch::{
        layer_stitch_beta_grad, layer_stitch_mix, layer_stitch_spread, LayerStitch,
    };
    use manytask::kernels::subspace::{Orthogonality, Subspaces};
    let ctx = context();
    let mut group = c.benchmark_group("sluice");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    let (rows, tasks, layers, channels) = (256usize, 8usize, 2usize, 128usize);
    let w = tasks * channels;
    let unit = LayerStitch { tasks, layers };
    let h = tensor(&ctx, "h", rows * layers * w)
        .reshape(&[rows, layers * w])
        .expect("reshape");
    let dz = tensor(&ctx, "dz", rows * w)
        .reshape(&[rows, w])
        .expect("reshape");
    let beta = tensor(&ctx, "beta", tasks * layers)
        .reshape(&[tasks, layers])
        .expect("reshape");
    let z = Tensor::empty(&ctx, "z", &[rows, w], DType::F32).expect("alloc");
    let dh = Tensor::empty(&ctx, "dh", &[rows, layers * w], DType::F32).expect("alloc");
    let dbeta = Tensor::empty(&ctx, "dbeta", &[tasks, layers], DType::F32).expect("alloc");
    // Each reads H (K·n) and z or dz (n) once: 4·(K + 1)·n bytes.
    let n = (rows * w) as u64;
    group.throughput(Throughput::Bytes(4 * (layers as u64 + 1) * n));
    group.bench_function("layer_stitch_mix", |bench| {
        bench.iter_custom(|iters| {
            time_submits(&ctx, iters, |rec| {
                layer_stitch_mix(rec, &unit, &h, &beta, &z, false).expect("mix")
            })
        })
    });
    group.bench_function("layer_stitch_spread", |bench| {
        bench.iter_custom(|iters| {
            time_submits(&ctx, iters, |rec| {
                layer_stitch_spread(rec, &unit, &dz, &beta, &dh, false).expect("spread")
            })
        })
    });
    group.bench_function("layer_stitch_beta_grad", |bench| {
        bench.iter_custom(|iters| {
            time_submits(&ctx, iters, |rec| {
                layer_stitch_beta_grad(rec, &unit, &h, &dz, &dbeta, false).expect("beta grad")
            })
        })
    });
    let shape = Subspaces {
        tasks,
        inputs: 128,
        outputs: 128,
        subspaces: 2,
    };
    let orth = Orthogonality::new(&ctx, shape).expect("tables");
    let weights = tensor(&ctx, "w", shape.weights());
    let grad = tensor(&ctx, "g", shape.weights());
    let value = Tensor::empty(&ctx, "value", &[1], DType::F32).expect("alloc");
    // Off-diagonal Gram blocks (T·G(G−1) of s×s×in) + W·S (T of in×out×out).
    let s = shape.outputs / shape.subspaces;
    let macs =
        tasks * 2 * s * s * shape.inputs + tasks * shape.inputs * shape.outputs * shape.outputs;
    group.throughput(Throughput::Elements(2 * macs as u64));
    group.bench_function("orthogonality", |bench| {
        bench.iter_custom(|iters| {
            time_submits(&ctx, iters, |rec| {
                orth.record(rec, &weights, &grad, 1e-3, &value)
                    .expect("orthogonality")
            })
        })
    });
    group.finish();
}

/// Trace norm gradient and prox per variant and route. LAF at an MTL-MLP
/// layer (T=8, 512→1024: route (a)); Tucker / TT at 128→256, where the
/// input and output unfoldings ([128, 2048], [1024, 256]) take
/// Newton–Schulz (24 steps: ~10 GFLOP per Tucker gradient, seconds on
/// lavapipe at the full layer size); a [256, 512] matrix for the NS prox.
fn trace_norm_bench(c: &mut Criterion) {
    use manytask::kernels::trace_norm::{GramKernel, TaskStack, TraceNormPlan, TraceNormVariant};
    let ctx = context();
    let mut group = c.benchmark_group("trace_norm");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let stack = |tasks, inputs, outputs| TaskStack {
        tasks,
        inputs,
        outputs,
    };
    let runs = [
        (TraceNormVariant::LastAxis, stack(8, 512, 1024), false),
        (TraceNormVariant::LastAxis, stack(8, 512, 1024), true),
        (TraceNormVariant::Tucker, stack(8, 128, 256), false),
        (TraceNormVariant::TensorTrain, stack(8, 128, 256), false),
        (TraceNormVariant::LastAxis, stack(256, 1, 512), false),
        (TraceNormVariant::LastAxis, stack(256, 1, 512), true),
    ];
    for (variant, s, prox) in runs {
        let plan = TraceNormPlan::new(&ctx, s, variant, prox).expect("plan");
        let w = tensor(&ctx, "w", s.len());
        let out = Tensor::zeros(&ctx, "out", &[s.len()]).expect("alloc");
        let norm = Tensor::zeros(&ctx, "norm", &[1]).expect("alloc");
        group.throughput(Throughput::Elements(plan.flops(prox) as u64));
        let what = if prox { "prox" } else { "gradient" };
        let id = BenchmarkId::new(
            format!("{}_{what}", variant.name()),
            format!("T{}x{}x{}", s.tasks, s.inputs, s.outputs),
        );
        group.bench_function(id, |bench| {
            bench.iter_custom(|iters| {
                time_submits(&ctx, iters, |rec| {
                    if prox {
                        plan.prox(rec, &w, 0.01, &out, &norm).expect("prox")
                    } else {
                        plan.gradient(rec, &w, 0.01, &out, &norm).expect("gradient")
                    }
                })
            })
        });
    }
    // Route (a)'s Gram on long thin LAF stacks [T, d] (the flattened
    // layer): GB/s of X read, once by the Gram and once by the apply GEMM
    // (8·T·d bytes). `laf_gradient_flat` is the plan as built
    // (`GramKernel::for_matrix`), `_gemm` / `_chunked` force the Gram
    // kernel. Prints each plan's dispatch count once.
    let mut flat = Vec::new();
    // No forced GEMM past 65536 columns: on lavapipe / llvmpipe its K loop
    // stops after 65535 (`LP_LOOP_LIMIT`), so it would time a wrong result.
    for shape in [(8usize, 524_288usize), (16, 65_536)] {
        flat.push((shape, None));
        if shape.1 <= 65_536 {
            flat.push((shape, Some(GramKernel::Gemm)));
        }
        flat.push((shape, Some(GramKernel::Chunked)));
    }
    for ((tasks, d), kernel) in flat {
        let s = TaskStack::flat(tasks, d);
        let mut plan =
            TraceNormPlan::new(&ctx, s, TraceNormVariant::LastAxis, false).expect("plan");
        let name = match kernel {
            None => "laf_gradient_flat",
            Some(k) => {
                plan = plan.with_gram_kernel(k);
                match k {
                    GramKernel::Gemm => "laf_gradient_flat_gemm",
                    GramKernel::Chunked => "laf_gradient_flat_chunked",
                }
            }
        };
        let w = tensor(&ctx, "w", s.len());
        let out = Tensor::zeros(&ctx, "out", &[s.len()]).expect("alloc");
        let norm = Tensor::zeros(&ctx, "norm", &[1]).expect("alloc");
        let mut rec = ctx.recorder("count");
        plan.gradient(&mut rec, &w, 0.01, &out, &norm)
            .expect("gradient");
        eprintln!(
            "trace_norm {name} T{tasks}x{d}: {} dispatches",
            rec.dispatch_count()
        );
        drop(rec);
        group.throughput(Throughput::Bytes(8 * s.len() as u64));
        let id = BenchmarkId::new(name, format!("T{tasks}x{d}"));
        group.bench_function(id, |bench| {
            bench.iter_custom(|iters| {
                time_submits(&ctx, iters, |rec| {
                    plan.gradient(rec, &w, 0.01, &out, &norm).expect("gradient")
                })
            })
        });
    }
    group.finish();
}

/// The fully fused trunk against the same layers as separate
/// `kernels::dense` dispatches: forward + backward (dX included) of
/// B = 4096 rows through 3 ReLU layers of width 64 and 128. Throughput:
/// 6·B·Σ in·out flops (forward, dX and dW GEMMs). Prints both dispatch
/// counts once.
fn fused_mlp_bench(c: &mut Criterion) {
    use manytask::kernels::dense::{dense_backward, dense_forward, Dense, DenseGrads};
    use manytask::kernels::fused_mlp::{trunk_backward, trunk_forward, TrunkGrads, TrunkSpec};
    use manytask::kernels::gemm::Saved;
    use manytask::reference::fused_mlp::TrunkLayer;
    let ctx = context();
    let mut group = c.benchmark_group("fused_mlp");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    let rows = 4096;
    for width in [64usize, 128] {
        let layer = TrunkLayer {
            outputs: width,
            act: Activation::Relu,
            bias: true,
        };
        let trunk = TrunkSpec::packed(&ctx, width, &[layer; 3]).expect("trunk");
        let shape = format!("{rows}x{width}x3");
        group.throughput(Throughput::Elements(
            (3.0 * trunk.forward_flops(rows)) as u64,
        ));
        let empty =
            |label: &str, n: usize| Tensor::empty(&ctx, label, &[n], DType::F32).expect("alloc");
        let x = tensor(&ctx, "x", rows * width)
            .reshape(&[rows, width])
            .expect("x");
        let dy = tensor(&ctx, "dy", rows * width)
            .reshape(&[rows, width])
            .expect("dy");
        let params = tensor(&ctx, "params", trunk.param_len());
        let grads = empty("grads", trunk.param_len());
        let acts = empty("acts", trunk.acts_len(rows));
        let deltas = empty("deltas", trunk.acts_len(rows));
        let dx = empty("dx", rows * width)
            .reshape(&[rows, width])
            .expect("dx");
        let fused = |rec: &mut manytask::Recorder| {
            trunk_forward(rec, &trunk, &x, &params, &acts, None).expect("forward");
            let out = TrunkGrads {
                dx: Some(&dx),
                grads: &grads,
                deltas: &deltas,
                accumulate: false,
                accumulate_dx: false,
            };
            trunk_backward(rec, &trunk, &x, &params, &acts, None, &dy, &out).expect("backward");
        };
        // The same layers as dense layers: per layer W, b, Y, and the
        // gradients of each layer's input.
        let mat = |label: &str, r: usize, c: usize| {
            Tensor::empty(&ctx, label, &[r, c], DType::F32).expect("alloc")
        };
        let ws: Vec<Tensor> = (0..3)
            .map(|_| {
                tensor(&ctx, "w", width * width)
                    .reshape(&[width, width])
                    .expect("w")
            })
            .collect();
        let bs: Vec<Tensor> = (0..3).map(|_| tensor(&ctx, "b", width)).collect();
        let ys: Vec<Tensor> = (0..3).map(|_| mat("y", rows, width)).collect();
        let gs: Vec<Tensor> = (0..3).map(|_| mat("g", rows, width)).collect();
        let dws: Vec<Tensor> = (0..3).map(|_| mat("dw", width, width)).collect();
        let dbs: Vec<Tensor> = (0..3).map(|_| empty("db", width)).collect();
        let separate = |rec: &mut manytask::Recorder| {
            let input = |l: usize| if l == 0 { &x } else { &ys[l - 1] };
            let layer = |l: usize| Dense {
                x: input(l),
                w: &ws[l],
                bias: Some(&bs[l]),
                act: Activation::Relu,
            };
            for (l, y) in ys.iter().enumerate() {
                dense_forward(rec, None, &layer(l), y, None).expect("dense forward");
            }
            for l in (0..3).rev() {
                let g = if l == 2 { &dy } else { &gs[l + 1] };
                let dx_l = if l == 0 { &dx } else { &gs[l] };
                let out = DenseGrads {
                    dx: Some(dx_l),
                    dw: &dws[l],
                    db: Some(&dbs[l]),
                    accumulate: false,
                    accumulate_dx: false,
                    delta_scratch: None,
                };
                dense_backward(rec, None, None, &layer(l), Saved::Output(&ys[l]), g, &out)
                    .expect("dense backward");
            }
        };
        let count = |f: &dyn Fn(&mut manytask::Recorder)| {
            let mut rec = ctx.recorder("count");
            f(&mut rec);
            rec.dispatch_count()
        };
        eprintln!(
            "fused_mlp {shape}: fused {} dispatches, separate dense {} dispatches",
            count(&fused),
            count(&separate)
        );
        group.bench_function(BenchmarkId::new("fused", &shape), |bench| {
            bench.iter_custom(|iters| time_submits(&ctx, iters, |rec| fused(rec)))
        });
        group.bench_function(BenchmarkId::new("separate_dense", &shape), |bench| {
            bench.iter_custom(|iters| time_submits(&ctx, iters, |rec| separate(rec)))
        });
    }
    group.finish();
}

/// The element-wise soft-sharing regularisers on T=8 blocks of 512·1024.
fn soft_sharing_bench(c: &mut Criterion) {
    use manytask::kernels::soft_sharing::{add_gradient, group_lasso_prox, Regulariser};
    let ctx = context();
    let mut group = c.benchmark_group("soft_sharing");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let (tasks, d) = (8usize, 512 * 1024);
    let w = tensor(&ctx, "w", tasks * d);
    let g = Tensor::zeros(&ctx, "g", &[tasks * d]).expect("alloc");
    let partial = Tensor::zeros(&ctx, "partial", &[d]).expect("alloc");
    // Gradient terms: read W, read and write the gradient (12 B / weight).
    group.throughput(Throughput::Bytes(12 * (tasks * d) as u64));
    for (name, reg) in [
        ("l2_distance", Regulariser::L2Distance { lambda: 0.1 }),
        ("clustering", Regulariser::Clustering { lambda: 0.1 }),
    ] {
        group.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                time_submits(&ctx, iters, |rec| {
                    add_gradient(rec, &reg, tasks, &w, &g, &partial).expect("gradient")
                })
            })
        });
    }
    // The prox reads and writes W (8 B / weight).
    group.throughput(Throughput::Bytes(8 * (tasks * d) as u64));
    group.bench_function("group_lasso_prox", |bench| {
        bench.iter_custom(|iters| {
            time_submits(&ctx, iters, |rec| {
                group_lasso_prox(rec, tasks, 1e-6, 1.0, &w, &partial).expect("prox")
            })
        })
    });
    group.finish();
}

/// Route (a)'s Gram alone, GEMM against the chunked kernel, across the
/// crossover `CHUNKED_GRAM_MAX_MACS` documents (s²·c = 2^24): the rule's
/// evidence. Throughput: bytes of X read once. Columns ≤ 65536 (at 65536
/// the GEMM drops one column on lavapipe, `LP_LOOP_LIMIT`; past it, more:
/// its time would be of a wrong result).
fn trace_norm_gram_bench(c: &mut Criterion) {
    use manytask::kernels::trace_norm::{chunked_gram, gram_chunks};
    let ctx = context();
    let mut group = c.benchmark_group("trace_norm_gram");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    let shapes = [
        (8usize, 65_536usize),
        (12, 65_536),
        (16, 16_384),
        (16, 65_536),
        (24, 65_536),
        (32, 65_536),
        (48, 65_536),
    ];
    for (s, cols) in shapes {
        let x = tensor(&ctx, "x", s * cols)
            .reshape(&[s, cols])
            .expect("reshape");
        let g = Tensor::empty(&ctx, "g", &[s, s], DType::F32).expect("alloc");
        let partials = Tensor::empty(&ctx, "partials", &[gram_chunks(cols), s * s], DType::F32)
            .expect("alloc");
        group.throughput(Throughput::Bytes(4 * (s * cols) as u64));
        let shape = format!("T{s}x{cols}");
        group.bench_function(BenchmarkId::new("gemm", &shape), |bench| {
            bench.iter_custom(|iters| {
                time_submits(&ctx, iters, |rec| {
                    gemm::gemm(rec, Layout::NT, &x, &x, &g, &Epilogue::default()).expect("gemm")
                })
            })
        });
        group.bench_function(BenchmarkId::new("chunked", &shape), |bench| {
            bench.iter_custom(|iters| {
                time_submits(&ctx, iters, |rec| {
                    chunked_gram(rec, &x, &partials, &g).expect("chunked gram")
                })
            })
        });
    }
    group.finish();
}

/// Mixture-of-experts ops at the MTL shapes (B = 256, T = 8 tasks, E = 8
/// experts of width 128; bytes moved): the gated combination, its fused
/// backward (dF and dg), the gate softmax, and the DSelect-k gate (k = 2).
fn moe_bench(c: &mut Criterion) {
    use manytask::kernels::moe::{
        dselect_gate, gate_softmax, moe_mix, moe_mix_backward, DSelect, MixGrads, Mixture,
        SharedOutput,
    };
    let ctx = context();
    let mut group = c.benchmark_group("moe");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    let (rows, tasks, experts, width) = (256usize, 8usize, 8usize, 128usize);
    let mix = Mixture {
        tasks,
        task_experts: 0,
        shared_experts: experts,
        shared_output: SharedOutput::No,
        width,
    };
    let matrix = |label: &str, cols: usize| {
        tensor(&ctx, label, rows * cols)
            .reshape(&[rows, cols])
            .expect("reshape")
    };
    let f = matrix("experts", experts * width);
    let g = matrix("gates", mix.gate_columns());
    let h = matrix("mixture", tasks * width);
    let df = matrix("d experts", experts * width);
    let dg = matrix("d gates", mix.gate_columns());
    // Mix: reads E expert values and gates per output, writes one.
    let mix_bytes = 4 * rows * tasks * width * (2 * experts + 1);
    group.throughput(Throughput::Bytes(mix_bytes as u64));
    group.bench_function("mix", |bench| {
        bench.iter_custom(|iters| {
            time_submits(&ctx, iters, |rec| {
                moe_mix(rec, &mix, &f, &g, &h).expect("mix")
            })
        })
    });
    // Backward: dF reads T gates and dh per element; dg reads W of dh and F.
    let grads = MixGrads {
        experts: &df,
        gates: &dg,
        accumulate_experts: false,
        accumulate_gates: false,
    };
    let back_bytes =
        4 * rows * (experts * width * (2 * tasks + 1) + tasks * experts * (2 * width + 1));
    group.throughput(Throughput::Bytes(back_bytes as u64));
    group.bench_function("mix_backward", |bench| {
        bench.iter_custom(|iters| {
            time_submits(&ctx, iters, |rec| {
                moe_mix_backward(rec, &mix, &f, &g, &h, &grads).expect("mix backward")
            })
        })
    });
    group.throughput(Throughput::Bytes((8 * rows * mix.gate_columns()) as u64));
    group.bench_function("gate_softmax", |bench| {
        bench.iter_custom(|iters| {
            time_submits(&ctx, iters, |rec| {
                gate_softmax(rec, &mix, &dg, &g).expect("softmax")
            })
        })
    });
    let gate = DSelect {
        tasks,
        experts,
        selectors: 2,
        gamma: 1.0,
        entropy: 1e-3,
    };
    let logits = matrix("selector logits", tasks * gate.task_logits());
    let gates = matrix("dselect gates", tasks * experts);
    let bytes = 4 * rows * tasks * (gate.task_logits() + experts);
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("dselect_gate", |bench| {
        bench.iter_custom(|iters| {
            time_submits(&ctx, iters, |rec| {
                dselect_gate(rec, &gate, &logits, &gates).expect("dselect")
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = elementwise_bench, reduce_bench, optim_bench, nonfinite_bench, dispatch_bench, transfer_bench, gemm_bench, dense_bench, heads_bench, cross_stitch_bench, sluice_bench, trace_norm_bench, trace_norm_gram_bench, soft_sharing_bench, fused_mlp_bench, moe_bench
}
criterion_main!(benches);
