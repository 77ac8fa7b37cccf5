// scratch: per-pass timing of the fused trunk (not committed)
use manytask::gpu::{DType, GpuContext, Tensor};
use manytask::kernels::fused_mlp::{trunk_backward, trunk_forward, TrunkGrads, TrunkSpec};
use manytask::reference::activation::Activation;
use manytask::reference::fused_mlp::TrunkLayer;
use manytask::util::rng::Rng;
use std::time::Instant;

fn tensor(ctx: &GpuContext, label: &str, n: usize) -> Tensor {
    let data = Rng::new(n as u64).uniform_vec(n, -1.0, 1.0);
    Tensor::from_f32(ctx, label, &[n], &data).unwrap()
}
fn time(ctx: &GpuContext, reps: usize, f: &dyn Fn(&mut manytask::Recorder)) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..reps {
        let mut rec = ctx.recorder("t");
        f(&mut rec);
        let t = Instant::now();
        rec.submit().unwrap();
        ctx.wait_idle().unwrap();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best * 1e3
}
fn main() {
    let ctx = GpuContext::from_env().unwrap();
    let rows = 4096;
    let width: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(64);
    let layer = TrunkLayer {
        outputs: width,
        act: Activation::Relu,
        bias: true,
    };
    let trunk = TrunkSpec::packed(&ctx, width, &[layer; 3]).unwrap();
    let e = |l: &str, n: usize| Tensor::empty(&ctx, l, &[n], DType::F32).unwrap();
    let x = tensor(&ctx, "x", rows * width)
        .reshape(&[rows, width])
        .unwrap();
    let dy = tensor(&ctx, "dy", rows * width)
        .reshape(&[rows, width])
        .unwrap();
    let params = tensor(&ctx, "p", trunk.param_len());
    let grads = e("g", trunk.param_len());
    let acts = e("a", trunk.acts_len(rows));
    let deltas = e("d", trunk.acts_len(rows));
    let dx = e("dx", rows * width).reshape(&[rows, width]).unwrap();
    let fwd = |rec: &mut manytask::Recorder| {
        trunk_forward(rec, &trunk, &x, &params, &acts, None).unwrap()
    };
    let bwd = |rec: &mut manytask::Recorder| {
        let out = TrunkGrads {
            dx: Some(&dx),
            grads: &grads,
            deltas: &deltas,
            accumulate: false,
            accumulate_dx: false,
        };
        trunk_backward(rec, &trunk, &x, &params, &acts, None, &dy, &out).unwrap();
    };
    let bwd_nodx = |rec: &mut manytask::Recorder| {
        let out = TrunkGrads {
            dx: None,
            grads: &grads,
            deltas: &deltas,
            accumulate: false,
            accumulate_dx: false,
        };
        trunk_backward(rec, &trunk, &x, &params, &acts, None, &dy, &out).unwrap();
    };
    let f = trunk.forward_flops(rows);
    for _ in 0..2 {
        let tf = time(&ctx, 5, &fwd);
        let tb = time(&ctx, 5, &bwd);
        let tbn = time(&ctx, 5, &bwd_nodx);
        println!("width {width}: fwd {tf:.1} ms ({:.2} GFLOP/s)  bwd {tb:.1} ms  bwd(no dx) {tbn:.1} ms  flops fwd {:.0} M", f / tf / 1e6, f / 1e6);
    }
}
