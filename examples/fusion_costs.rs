//! Times each fusion of the dense-layer backward on its own, side by side
//! with the plain GEMM it extends (B = 256, 512 → 1024, ReLU), to see
//! what the prologue and the fused bias gradient cost on this adapter.
//!
//!   cargo run --release --example fusion_costs [-- variant]

use manytask::bench::{time_median, BenchOptions};
use manytask::gpu::{DType, GpuContext, Tensor};
use manytask::kernels::gemm::{
    gemm_fused, Epilogue, Fusion, Layout, Operand, Prologue, Saved, Variant,
};
use manytask::types::Activation;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ctx = GpuContext::from_env()?;
    let variant: Option<Variant> = std::env::args().nth(1).map(|s| s.parse()).transpose()?;
    println!("adapter: {}, variant: {variant:?}", ctx.describe());
    let (rows, inputs, outputs) = (256, 512, 1024);
    let z = |label: &str, shape: &[usize]| Tensor::zeros(&ctx, label, shape);
    let x = z("x", &[rows, inputs])?;
    let w = z("w", &[inputs, outputs])?;
    let g = z("g", &[rows, outputs])?;
    let y = z("y", &[rows, outputs])?;
    let dx = z("dx", &[rows, inputs])?;
    let dw = z("dw", &[inputs, outputs])?;
    let db = Tensor::empty(&ctx, "db", &[outputs], DType::F32)?;
    let opts = BenchOptions {
        reps: 7,
        ..BenchOptions::default()
    };
    let pro = |operand| Prologue {
        operand,
        saved: Saved::Output(&y),
        act: Activation::Relu,
    };
    let epi = Epilogue::default();
    let runs: Vec<(&str, Layout, &Tensor, &Tensor, &Tensor, Fusion)> = vec![
        ("dX plain (NT)", Layout::NT, &g, &w, &dx, Fusion::default()),
        (
            "dX prologue A",
            Layout::NT,
            &g,
            &w,
            &dx,
            Fusion {
                prologue: Some(pro(Operand::A)),
                bias_grad: None,
            },
        ),
        ("dW plain (TN)", Layout::TN, &x, &g, &dw, Fusion::default()),
        (
            "dW prologue B",
            Layout::TN,
            &x,
            &g,
            &dw,
            Fusion {
                prologue: Some(pro(Operand::B)),
                bias_grad: None,
            },
        ),
        (
            "dW bias grad",
            Layout::TN,
            &x,
            &g,
            &dw,
            Fusion {
                prologue: None,
                bias_grad: Some(&db),
            },
        ),
        (
            "dW both",
            Layout::TN,
            &x,
            &g,
            &dw,
            Fusion {
                prologue: Some(pro(Operand::B)),
                bias_grad: Some(&db),
            },
        ),
    ];
    for round in 0..2 {
        for (name, layout, a, b, c, fusion) in &runs {
            let (ms, _) = time_median(&ctx, &opts, |rec| {
                gemm_fused(rec, variant, *layout, a, b, c, &epi, fusion)
            })?;
            println!("round {round} {name:<16} {ms:8.2} ms");
        }
    }
    Ok(())
}
