use manytask::gpu::{GpuContext, Tensor};
use manytask::kernels::gemm::{gemm_with, Epilogue, Layout, Variant};
fn main() {
    for ctx in GpuContext::all(manytask::gpu::BackendChoice::Auto).unwrap() {
        println!("{}", ctx.describe());
        for variant in Variant::ALL {
            for layout in [Layout::NN, Layout::NT, Layout::TN] {
                let mut line = format!("{variant:?} {layout:?}:");
                for k in [
                    16384usize, 32768, 65535, 65536, 70000, 140000, 300000, 600000,
                ] {
                    let (m, n) = (8, 8);
                    let a_host = vec![1.0f32; m * k];
                    let b_host = vec![1.0f32; k * n];
                    let a_shape = if layout == Layout::TN { [k, m] } else { [m, k] };
                    let b_shape = if layout == Layout::NT { [n, k] } else { [k, n] };
                    let a = Tensor::from_f32(&ctx, "a", &a_shape, &a_host).unwrap();
                    let b = Tensor::from_f32(&ctx, "b", &b_shape, &b_host).unwrap();
                    let c = Tensor::zeros(&ctx, "c", &[m, n]).unwrap();
                    let mut rec = ctx.recorder("k");
                    if let Err(e) =
                        gemm_with(&mut rec, variant, layout, &a, &b, &c, &Epilogue::default())
                    {
                        line += &format!(" {k}:ERR({e})");
                        continue;
                    }
                    rec.submit().unwrap();
                    let got = c.to_f32_vec(&ctx).unwrap()[0];
                    line += &format!(
                        " {k}:{}",
                        if got == k as f32 {
                            "ok".to_string()
                        } else {
                            format!("{got}")
                        }
                    );
                }
                println!("{line}");
            }
        }
    }
}
