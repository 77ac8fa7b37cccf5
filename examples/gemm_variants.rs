//! Times every GEMM variant this adapter can run on one shape, the way the
//! autotuner does, and prints GFLOP/s side by side.
//!
//!   cargo run --release --example gemm_variants -- 1024 1024 1024 nn
//!   MANYTASK_BACKEND=gl cargo run --release --example gemm_variants -- 512 512 512 tn

use manytask::gpu::{DType, GpuContext, Tensor};
use manytask::kernels::gemm::{self, Epilogue, GemmShape, Layout};

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

    let (ar, ac) = if layout.trans_a() {
        (shape.k, shape.m)
    } else {
        (shape.m, shape.k)
    };
    let (br, bc) = if layout.trans_b() {
        (shape.n, shape.k)
    } else {
        (shape.k, shape.n)
    };
    let a = Tensor::zeros(&ctx, "A", &[ar, ac])?;
    let b = Tensor::zeros(&ctx, "B", &[br, bc])?;
    let c = Tensor::empty(&ctx, "C", &[shape.m, shape.n], DType::F32)?;
    for variant in gemm::available_variants(&ctx) {
        let mut times = Vec::new();
        let runs = if shape.flops() > 4e9 { 4 } else { 8 };
        for run in 0..runs {
            let mut rec = ctx.recorder("gemm");
            gemm::gemm_with(&mut rec, variant, layout, &a, &b, &c, &Epilogue::default())?;
            let start = std::time::Instant::now();
            rec.submit()?;
            ctx.wait_idle()?;
            if run > 0 {
                times.push(start.elapsed().as_secs_f64());
            }
        }
        times.sort_by(f64::total_cmp);
        let (best, median) = (times[0], times[times.len() / 2]);
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
