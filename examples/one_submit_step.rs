//! A forward and backward pass built from the foundation kernels, recorded
//! into one submit and checked against the CPU references:
//!
//!   y = gelu(x),  L = Σ y²,  dL/dx = gelu'(x) · 2y
//!
//!   cargo run --release --example one_submit_step
//!   MANYTASK_BACKEND=gl cargo run --release --example one_submit_step

use manytask::gpu::{DType, GpuContext, Tensor};
use manytask::kernels::elementwise::{self, Activation};
use manytask::kernels::reduce;
use manytask::reference;
use manytask::util::rng::Rng;

fn main() -> manytask::Result<()> {
    let ctx = GpuContext::from_env()?;
    println!("adapter: {}", ctx.describe());

    let n = 100_003;
    let x_host = Rng::new(42).uniform_vec(n, -3.0, 3.0);
    let x = Tensor::from_f32(&ctx, "x", &[n], &x_host)?;
    let y = Tensor::empty(&ctx, "y", &[n], DType::F32)?;
    let two_y = Tensor::empty(&ctx, "2y", &[n], DType::F32)?;
    let dx = Tensor::empty(&ctx, "dL/dx", &[n], DType::F32)?;
    let loss = Tensor::empty(&ctx, "L", &[1], DType::F32)?;

    let before = ctx.counters();
    let mut step = ctx.recorder("gelu step");
    elementwise::act_forward(&mut step, Activation::Gelu, &x, &y)?;
    reduce::sum_squares(&mut step, &y, &loss)?;
    elementwise::scale(&mut step, &y, 2.0, &two_y)?;
    elementwise::act_backward(&mut step, Activation::Gelu, &x, &two_y, &dx)?;
    let loss_read = step.read(&loss);
    let dx_read = step.read(&dx);
    step.submit()?;
    let loss_gpu = loss_read.wait_f32(&ctx)?[0];
    let dx_gpu = dx_read.wait_f32(&ctx)?;
    let work = ctx.counters().since(&before);

    // CPU references for the same step.
    let y_ref = reference::elementwise::act_forward(Activation::Gelu, &x_host);
    let loss_ref = reference::reduce::sum_squares(&y_ref);
    let two_y_ref = reference::elementwise::scale(&y_ref, 2.0);
    let dx_ref = reference::elementwise::act_backward(Activation::Gelu, &x_host, &two_y_ref);
    let max_dx_err = dx_gpu
        .iter()
        .zip(&dx_ref)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);

    println!(
        "L        gpu {loss_gpu:.6}  cpu {loss_ref:.6}  rel err {:.2e}",
        ((loss_gpu - loss_ref) / loss_ref).abs()
    );
    println!("dL/dx    max abs err {max_dx_err:.2e} over {n} elements");
    println!(
        "counters {} dispatches, {} submit(s), {} B uploaded (params: {} B), {} B downloaded",
        work.dispatches,
        work.submits,
        work.bytes_uploaded,
        work.uniform_bytes,
        work.bytes_downloaded
    );
    Ok(())
}
