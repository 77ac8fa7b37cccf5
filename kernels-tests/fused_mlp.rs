//! Fully fused trunk: every output against the reference at awkward
//! shapes, gradients by finite differences of the GPU forward, bit-exact
//! reruns and accumulation, argument errors (the width limit first), and
//! the graph node against the equivalent chain of dense layers.

use manytask::conformance::{self, Expected};
use manytask::gpu::{DType, GpuContext, Tensor};
use manytask::graph::{Graph, Optimizer, Program, StepOptions, TaskLoss, TrunkLayer};
use manytask::kernels::fused_mlp::{trunk_backward, trunk_forward, TrunkGrads, TrunkSpec};
use manytask::types::Activation;
use manytask::types::LossKind;
use manytask::types::Sgd;
use manytask::Error;
use std::sync::Arc;

use crate::common::{
    assert_gradients_match, check_cases, contexts, data, max_err, private_contexts,
    randomize_inputs, sample_indices,
};

#[test]
fn fused_trunk_matches_reference_at_awkward_shapes() {
    check_cases("fused_mlp", |c| c.kernel.starts_with("fused_mlp::"));
}

/// The conformance comparison bites: a reference off by 10⁻³ of the
/// output's scale in one gradient element fails.
#[test]
fn fused_trunk_conformance_rejects_a_slightly_wrong_gradient() {
    let case = conformance::all_cases()
        .into_iter()
        .find(|c| c.kernel == "fused_mlp::backward_grads" && c.case.starts_with("rows=257"))
        .expect("the rows=257 gradient case");
    let right = case.reference.clone();
    let wrong = case.with_reference(Arc::new(move |h| {
        let Expected {
            mut values,
            tolerance,
        } = right(h);
        let scale = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        values[5] += 1e-3 * scale;
        Expected { values, tolerance }
    }));
    let r = conformance::run_case(&contexts()[0], &wrong);
    assert!(r.failed(), "a wrong reference passed: {r:?}");
}

const ROWS: usize = 5;
const INPUTS: usize = 3;

fn small_layers() -> Vec<TrunkLayer> {
    let l = |outputs, act| TrunkLayer {
        outputs,
        act,
        bias: true,
    };
    vec![
        l(4, Activation::Tanh),
        l(6, Activation::Gelu),
        l(2, Activation::Sigmoid),
    ]
}

struct Small {
    trunk: TrunkSpec,
    x: Vec<f32>,
    params: Vec<f32>,
    /// Upstream gradient: L = Σ G ⊙ Y_last.
    g: Vec<f32>,
}

fn small(ctx: &GpuContext) -> Small {
    let trunk = TrunkSpec::packed(ctx, INPUTS, &small_layers()).unwrap();
    Small {
        x: data(21, ROWS * INPUTS),
        params: data(22, trunk.param_len()),
        g: data(23, ROWS * trunk.outputs()),
        trunk,
    }
}

/// Forward on the GPU: L = Σ G ⊙ Y_last in f64.
fn loss(ctx: &GpuContext, s: &Small, x: &[f32], params: &[f32]) -> f64 {
    let xt = Tensor::from_f32(ctx, "x", &[ROWS, INPUTS], x).unwrap();
    let pt = Tensor::from_f32(ctx, "params", &[params.len()], params).unwrap();
    let acts = Tensor::zeros(ctx, "acts", &[s.trunk.acts_len(ROWS)]).unwrap();
    let mut rec = ctx.recorder("fd forward");
    trunk_forward(&mut rec, &s.trunk, &xt, &pt, &acts, None).unwrap();
    rec.submit().unwrap();
    let y = s.trunk.output(ctx, &acts, ROWS).unwrap();
    let y = y.to_f32_vec(ctx).unwrap();
    y.iter().zip(&s.g).map(|(&y, &g)| y as f64 * g as f64).sum()
}

/// Forward + backward in one submit, `times` backward passes (with
/// `accumulate` all add): [dX, gradients].
fn analytic(ctx: &GpuContext, s: &Small, accumulate: bool, times: usize) -> [Vec<f32>; 2] {
    let t = &s.trunk;
    let x = Tensor::from_f32(ctx, "x", &[ROWS, INPUTS], &s.x).unwrap();
    let params = Tensor::from_f32(ctx, "params", &[s.params.len()], &s.params).unwrap();
    let g = Tensor::from_f32(ctx, "g", &[ROWS, t.outputs()], &s.g).unwrap();
    let acts = Tensor::zeros(ctx, "acts", &[t.acts_len(ROWS)]).unwrap();
    let zs = Tensor::zeros(ctx, "zs", &[t.zs_len(ROWS)]).unwrap();
    let deltas = Tensor::zeros(ctx, "deltas", &[t.acts_len(ROWS)]).unwrap();
    let dx = Tensor::zeros(ctx, "dx", &[ROWS, INPUTS]).unwrap();
    let grads = Tensor::zeros(ctx, "grads", &[t.param_len()]).unwrap();
    let mut rec = ctx.recorder("fused backward");
    trunk_forward(&mut rec, t, &x, &params, &acts, Some(&zs)).unwrap();
    for _ in 0..times {
        let out = TrunkGrads {
            dx: Some(&dx),
            grads: &grads,
            deltas: &deltas,
            accumulate,
            accumulate_dx: accumulate,
        };
        trunk_backward(&mut rec, t, &x, &params, &acts, Some(&zs), &g, &out).unwrap();
    }
    assert_eq!(rec.dispatch_count(), 1 + 2 * times as u64);
    rec.submit().unwrap();
    [dx.to_f32_vec(ctx).unwrap(), grads.to_f32_vec(ctx).unwrap()]
}

#[test]
fn fused_trunk_gradients_match_finite_differences() {
    const H: f32 = 1e-2;
    for ctx in contexts() {
        let s = small(ctx);
        let [dx, grads] = analytic(ctx, &s, false, 1);
        let mut numeric = Vec::new();
        for i in 0..s.x.len() {
            let at = |d: f32| {
                let mut x = s.x.clone();
                x[i] += d;
                loss(ctx, &s, &x, &s.params)
            };
            numeric.push(((at(H) - at(-H)) / (2.0 * H as f64)) as f32);
        }
        for i in 0..s.params.len() {
            let at = |d: f32| {
                let mut p = s.params.clone();
                p[i] += d;
                loss(ctx, &s, &s.x, &p)
            };
            numeric.push(((at(H) - at(-H)) / (2.0 * H as f64)) as f32);
        }
        let ana: Vec<f32> = dx.iter().chain(&grads).copied().collect();
        let scale = ana.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 1e-2, "degenerate gradients");
        // h = 1e-2: truncation ~h²·|f'''|, f32 rounding of L over 2h ~1e-5.
        let err = max_err(&numeric, &ana);
        assert!(
            err <= 2e-3 * scale.max(1.0),
            "{}: max |fd - analytic| = {err} (max |g| {scale})",
            ctx.describe()
        );
    }
}

#[test]
fn fused_trunk_backward_is_bit_identical_and_accumulates() {
    for ctx in contexts() {
        let s = small(ctx);
        let once = analytic(ctx, &s, false, 1);
        assert_eq!(
            once,
            analytic(ctx, &s, false, 1),
            "backward is not reproducible"
        );
        let twice = analytic(ctx, &s, true, 2);
        for (o, t) in once.iter().zip(&twice) {
            let doubled: Vec<f32> = o.iter().map(|v| 2.0 * v).collect();
            assert_eq!(&doubled, t, "accumulate did not add");
        }
    }
}

#[test]
fn fused_trunk_rejects_bad_arguments() {
    let ctx = &contexts()[0];
    let relu = |outputs| TrunkLayer {
        outputs,
        act: Activation::Relu,
        bias: true,
    };
    // Too wide: the error says what to use instead.
    let e = TrunkSpec::packed(ctx, 64, &[relu(129)]).unwrap_err();
    assert!(
        matches!(e, Error::Shape { .. }) && e.to_string().contains("kernels::dense"),
        "{e}"
    );
    let e = TrunkSpec::packed(ctx, 8, &[relu(8), relu(200), relu(8)]).unwrap_err();
    assert!(e.to_string().contains("kernels::dense"), "{e}");
    assert!(TrunkSpec::packed(ctx, 0, &[relu(8)]).is_err(), "no inputs");
    // A wide input is fine: it streams through the tile.
    TrunkSpec::packed(ctx, 5000, &[relu(8)]).unwrap();
    assert!(TrunkSpec::packed(ctx, 8, &[relu(8); 9]).is_err(), "depth 9");
    assert!(TrunkSpec::packed(ctx, 8, &[]).is_err(), "no layers");
    // The graph says the same before any GPU work.
    let mut g = Graph::new(ctx);
    let x = g.input("x", &[4, 8], DType::F32);
    let e = g.fused_trunk("trunk", x, &[relu(256)]).unwrap_err();
    assert!(e.to_string().contains("Graph::dense"), "{e}");

    let trunk = TrunkSpec::packed(ctx, 3, &[relu(4), relu(2)]).unwrap();
    let x = Tensor::zeros(ctx, "x", &[5, 3]).unwrap();
    let params = Tensor::zeros(ctx, "params", &[trunk.param_len()]).unwrap();
    let acts = Tensor::zeros(ctx, "acts", &[trunk.acts_len(5)]).unwrap();
    let mut rec = ctx.recorder("bad");
    // X with the wrong feature count.
    let bad_x = Tensor::zeros(ctx, "bad x", &[5, 4]).unwrap();
    let e = trunk_forward(&mut rec, &trunk, &bad_x, &params, &acts, None).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    // Parameters too short.
    let short = Tensor::zeros(ctx, "short", &[trunk.param_len() - 1]).unwrap();
    let e = trunk_forward(&mut rec, &trunk, &x, &short, &acts, None).unwrap_err();
    assert!(e.to_string().contains("parameters"), "{e}");
    // Not f32.
    let xu = Tensor::from_u32(ctx, "xu", &[5, 3], &[0; 15]).unwrap();
    let e = trunk_forward(&mut rec, &trunk, &xu, &params, &acts, None).unwrap_err();
    assert!(matches!(e, Error::DType { .. }), "{e}");
    // The activations written over X.
    let e = trunk_forward(
        &mut rec,
        &trunk,
        &acts.reshape(&[trunk.acts_len(5) / 3, 3]).unwrap(),
        &params,
        &acts,
        None,
    );
    assert!(
        matches!(e, Err(Error::Aliasing { .. }) | Err(Error::Shape { .. })),
        "{e:?}"
    );
    // Backward: dY of the wrong shape; dX aliasing the deltas.
    let deltas = Tensor::zeros(ctx, "deltas", &[trunk.acts_len(5)]).unwrap();
    let grads = Tensor::zeros(ctx, "grads", &[trunk.param_len()]).unwrap();
    let dy = Tensor::zeros(ctx, "dy", &[5, 3]).unwrap();
    let out = TrunkGrads {
        dx: None,
        grads: &grads,
        deltas: &deltas,
        accumulate: false,
        accumulate_dx: false,
    };
    let e = trunk_backward(&mut rec, &trunk, &x, &params, &acts, None, &dy, &out).unwrap_err();
    assert!(e.to_string().contains("dL/dY"), "{e}");
    let dy = Tensor::zeros(ctx, "dy", &[5, 2]).unwrap();
    let dx = deltas.view(ctx, 0, &[5, 3]).unwrap();
    let out = TrunkGrads {
        dx: Some(&dx),
        ..out
    };
    let e = trunk_backward(&mut rec, &trunk, &x, &params, &acts, None, &dy, &out).unwrap_err();
    assert!(matches!(e, Error::Aliasing { .. }), "{e}");
    assert_eq!(rec.dispatch_count(), 0, "a rejected call recorded work");
}

/// x → trunk (fused, or the same layers as dense nodes) → identity head
/// → MSE, with retained input gradient to compare dX too.
fn model(ctx: &GpuContext, fused: bool) -> (Program, manytask::graph::NodeId) {
    const ROWS: usize = 37;
    let mut g = Graph::new(ctx);
    let x = g.input("x", &[ROWS, 9], DType::F32);
    let targets = g.input("targets", &[ROWS, 3], DType::F32);
    // A layer before the trunk, so the trunk's dX flows somewhere.
    let h0 = g.dense("stem", x, 20, Activation::Tanh).unwrap();
    let layers = [
        (33, Activation::Relu),
        (17, Activation::Gelu),
        (24, Activation::Sigmoid),
    ];
    let h = if fused {
        let ls: Vec<TrunkLayer> = layers
            .iter()
            .map(|&(outputs, act)| TrunkLayer {
                outputs,
                act,
                bias: true,
            })
            .collect();
        g.fused_trunk("trunk", h0, &ls).unwrap()
    } else {
        let mut h = h0;
        for (i, &(w, act)) in layers.iter().enumerate() {
            h = g.dense(&format!("trunk.{i}"), h, w, act).unwrap();
        }
        h
    };
    g.retain_grad(h0);
    let y = g.dense("head", h, 3, Activation::Identity).unwrap();
    let mse = TaskLoss {
        kind: LossKind::MeanSquaredError,
        reduction: manytask::types::Reduction::Mean,
        width: 3,
        masked: false,
    };
    g.losses("loss", y, &[mse], None, Some(targets), None)
        .unwrap();
    let sgd = Sgd {
        lr: 0.1,
        momentum: 0.0,
        weight_decay: 0.0,
    };
    let mut p = Program::build(ctx, g, Optimizer::Sgd(sgd), 5).unwrap();
    // Pinned: the autotuner's timing submits would count in the step's
    // submits whenever this test is the first to meet a shape class.
    p.set_variant(Some(manytask::kernels::gemm::Variant::RegisterBlocked));
    randomize_inputs(ctx, &p, &[x, targets], 17);
    (p, h0)
}

#[test]
fn graph_fused_trunk_matches_dense_chain_with_fewer_dispatches() {
    for ctx in private_contexts().iter() {
        let (mut fused, h0f) = model(ctx, true);
        let (mut chain, h0c) = model(ctx, false);
        let rf = fused.step(ctx, StepOptions::EVALUATE).unwrap();
        let rc = chain.step(ctx, StepOptions::EVALUATE).unwrap();
        assert_eq!(rf.submits, 1);
        // Forward 1 vs 3, backward 2 vs ~3 per layer.
        assert!(
            rf.dispatches + 6 <= rc.dispatches,
            "fused {} vs chain {} dispatches",
            rf.dispatches,
            rc.dispatches
        );
        let lf = rf.losses.unwrap().wait(ctx).unwrap().losses;
        let lc = rc.losses.unwrap().wait(ctx).unwrap().losses;
        assert!(
            (lf[0] - lc[0]).abs() <= 1e-5 * lc[0].abs().max(1.0),
            "loss {lf:?} vs {lc:?}"
        );
        // Same names, same initial values, same gradients (by name).
        let named = |p: &Program| {
            let grads = p.params().read_grads(ctx).unwrap();
            let mut v: Vec<(String, Vec<f32>)> = p
                .params()
                .layout
                .entries()
                .iter()
                .map(|e| (e.name.clone(), grads[e.offset..e.offset + e.len()].to_vec()))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let (gf, gc) = (named(&fused), named(&chain));
        assert_eq!(
            gf.iter().map(|g| &g.0).collect::<Vec<_>>(),
            gc.iter().map(|g| &g.0).collect::<Vec<_>>()
        );
        for ((name, a), (_, b)) in gf.iter().zip(&gc) {
            let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let err = max_err(a, b);
            assert!(err <= 1e-4 * scale, "{name}: max err {err} (scale {scale})");
        }
        let dh_f = fused.grad_of(h0f).unwrap().to_f32_vec(ctx).unwrap();
        let dh_c = chain.grad_of(h0c).unwrap().to_f32_vec(ctx).unwrap();
        let scale = dh_c.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        assert!(
            max_err(&dh_f, &dh_c) <= 1e-4 * scale,
            "dX of the trunk differs"
        );
    }
}

#[test]
fn graph_fused_trunk_gradients_match_finite_differences() {
    for ctx in contexts() {
        let (mut p, _) = model(ctx, true);
        let idx = sample_indices(&p, 12);
        assert_gradients_match(ctx, &mut p, &idx, "fused trunk graph");
    }
}

/// The trunk choice for `Sharing::Hard`: dense unless asked; `auto` is the
/// measured rule (fused on GL over llvmpipe, dense elsewhere); `fused`
/// only where the trunk fits; an unknown setting is an error.
#[test]
fn hard_trunk_kernel_choice_follows_the_measured_rule() {
    use manytask::kernels::fused_mlp::{measured_choice, trunk_kernels_for, TrunkKernels};
    for ctx in contexts() {
        let info = ctx.info();
        let llvmpipe_gl =
            info.backend == wgpu::Backend::Gl && info.device_type == wgpu::DeviceType::Cpu;
        let narrow = [64, 64, 64];
        let want = if llvmpipe_gl {
            TrunkKernels::Fused
        } else {
            TrunkKernels::Dense
        };
        assert_eq!(
            measured_choice(ctx, 256, &narrow),
            want,
            "{}",
            ctx.describe()
        );
        // Too wide or too deep for the fused kernels: dense, always.
        assert_eq!(measured_choice(ctx, 8, &[256]), TrunkKernels::Dense);
        assert_eq!(measured_choice(ctx, 8, &[8; 9]), TrunkKernels::Dense);
        let choose = |s: Option<&str>, widths: &[usize]| trunk_kernels_for(s, ctx, 32, widths);
        assert_eq!(choose(None, &narrow).unwrap(), TrunkKernels::Dense);
        assert_eq!(choose(Some("dense"), &narrow).unwrap(), TrunkKernels::Dense);
        assert_eq!(choose(Some("auto"), &narrow).unwrap(), want);
        assert_eq!(choose(Some("fused"), &narrow).unwrap(), TrunkKernels::Fused);
        assert_eq!(choose(Some("fused"), &[200]).unwrap(), TrunkKernels::Dense);
        let e = choose(Some("fast"), &narrow).unwrap_err();
        assert!(
            e.to_string().contains("expected dense, auto or fused"),
            "{e}"
        );
    }
}
