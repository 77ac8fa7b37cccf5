//! Times every GEMM variant this adapter can run on one shape, the way the
//! autotuner does, and prints GFLOP/s side by side.
//!
//!   cargo run --release --example gemm_variants -- 1024 1024 1024 nn
//!   MANYTASK_BACKEND=gl cargo run --release --example gemm_variants -- 512 512 512 tn

use manytask::gpu::GpuContext;
use manytask::kernels::autotune;
use manytask::kernels::gemm::{self, GemmShape, Layout};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dim =
        |i: usize, default: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let shape = GemmShape {
        batch: 1,
        m: dim(0, 1024),
        n: dim(1, 1024),
        k: dim(2, 1024),
    };
    let layout = match args.get(3).map(String::as_str) {
        None | Some("nn") => Layout::NN,
        Some("nt") => Layout::NT,
        Some("tn") => Layout::TN,
        Some("tt") => Layout::TT,
        Some(other) => return Err(format!("unknown layout {other}: nn, nt, tn or tt").into()),
    };
    let ctx = GpuContext::from_env()?;
    println!("adapter: {}", ctx.describe());
    println!(
        "C = op(A)·op(B), {layout}, M={} N={} K={} ({:.2} GFLOP)",
        shape.m,
        shape.n,
        shape.k,
        shape.flops() / 1e9
    );

    let runs = if shape.flops() > 4e9 { 3 } else { 7 };
    let variants = gemm::available_variants(&ctx);
    for (variant, times) in autotune::time_variants(&ctx, layout, shape, &variants, runs)? {
        let (best, median) = (times[0] / 1e3, times[times.len() / 2] / 1e3);
        println!(
            "{:>9}  median {:>9.3} ms  {:>7.2} GFLOP/s   best {:>7.2} GFLOP/s",
            variant.name(),
            median * 1e3,
            shape.flops() / median / 1e9,
            shape.flops() / best / 1e9
        );
    }
    Ok(())
}
