//! Times GEMM family members on square or given shapes, the way the
//! autotuner does, and prints GFLOP/s and the share of the FMA roof
//! (`manytask bench`'s roofline) side by side.
//!
//!   cargo run --release --example gemm_variants -- 1024 1024 1024 nn
//!   cargo run --release --example gemm_variants -- 512 512 512 tn all
//!   cargo run --release --example gemm_variants -- 1024 1024 1024 nn sgb:16x2k4 rb
//!   cargo run --release --example gemm_variants -- auto 512,1024,2048
//!   MANYTASK_BACKEND=gl cargo run --release --example gemm_variants -- 512 512 512 tn
//!
//! With a shape: the named variants (naive, rb, subgroup, tiled), `all`
//! (every member this adapter runs) or the members listed. With `auto`:
//! the autotuned choice for NN, NT and TN at each square size (tuning
//! first, within the autotuner's budget, unless the cache holds it).

use manytask::bench::{measure_roofline, BenchOptions};
use manytask::gpu::GpuContext;
use manytask::kernels::autotune;
use manytask::kernels::gemm::{self, GemmShape, Layout, Variant};

fn parse_layout(s: &str) -> Result<Layout, String> {
    match s {
        "nn" => Ok(Layout::NN),
        "nt" => Ok(Layout::NT),
        "tn" => Ok(Layout::TN),
        "tt" => Ok(Layout::TT),
        other => Err(format!("unknown layout {other}: nn, nt, tn or tt")),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ctx = GpuContext::from_env()?;
    println!("adapter: {}", ctx.describe());
    let opts = BenchOptions::default();
    let (roof, _) = measure_roofline(&ctx, &opts)?;
    println!("FMA roof: {:.1} GFLOP/s", roof.peak_gflops);
    let report = |name: &str, layout: Layout, shape: GemmShape, times: &[f64]| {
        let (best, median) = (times[0] / 1e3, times[times.len() / 2] / 1e3);
        let rate = shape.flops() / median / 1e9;
        println!(
            "{layout} {:>5}x{:<5}x{:<5} {name:>12}  median {:>9.3} ms  {rate:>7.2} GFLOP/s  {:>5.1}% of roof   best {:>7.2} GFLOP/s",
            shape.m,
            shape.n,
            shape.k,
            median * 1e3,
            100.0 * rate / roof.peak_gflops,
            shape.flops() / best / 1e9
        );
    };
    let runs_for = |shape: GemmShape| if shape.flops() > 4e9 { 3 } else { 7 };

    if args.first().map(String::as_str) == Some("auto") {
        let sizes: Vec<usize> = args
            .get(1)
            .map(|s| s.split(',').filter_map(|v| v.parse().ok()).collect())
            .unwrap_or_else(|| vec![512, 1024, 2048]);
        for &size in &sizes {
            for layout in [Layout::NN, Layout::NT, Layout::TN] {
                let shape = GemmShape {
                    batch: 1,
                    m: size,
                    n: size,
                    k: size,
                };
                let pick = autotune::tune_gemm(&ctx, layout, shape)?;
                let timed = autotune::time_variants(&ctx, layout, shape, &[pick], runs_for(shape))?;
                report(&format!("auto {pick}"), layout, shape, &timed[0].1);
            }
        }
        return Ok(());
    }

    let dim =
        |i: usize, default: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let shape = GemmShape {
        batch: 1,
        m: dim(0, 1024),
        n: dim(1, 1024),
        k: dim(2, 1024),
    };
    let layout = parse_layout(args.get(3).map_or("nn", String::as_str))?;
    println!(
        "C = op(A)·op(B), {layout}, M={} N={} K={} ({:.2} GFLOP)",
        shape.m,
        shape.n,
        shape.k,
        shape.flops() / 1e9
    );
    let rest = &args[args.len().min(4)..];
    let variants: Vec<Variant> = match rest.first().map(String::as_str) {
        None => gemm::available_variants(&ctx),
        Some("all") => gemm::available_family(&ctx)
            .into_iter()
            .filter(|&v| v != Variant::Naive)
            .collect(),
        Some(_) => rest
            .iter()
            .map(|s| s.parse::<Variant>())
            .collect::<Result<_, _>>()?,
    };
    for variant in variants {
        let timed = autotune::time_variants(&ctx, layout, shape, &[variant], runs_for(shape))?;
        report(&variant.name(), layout, shape, &timed[0].1);
    }
    Ok(())
}
