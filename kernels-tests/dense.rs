//! Fused dense layer: forward/backward outputs against the reference for
//! every GEMM variant, gradients by finite differences of the GPU forward,
//! accumulation, determinism and argument errors.

use manytask::gpu::{GpuContext, Tensor};
use manytask::kernels::dense::{dense_backward, dense_forward, BackwardPlan, Dense, DenseGrads};
use manytask::kernels::gemm::{Saved, Variant};
use manytask::types::Activation;
use manytask::Error;

use crate::common::{check_cases, contexts, data, max_err};

fn check_variant(variant: Variant) {
    let suffix = format!("[{variant}]");
    check_cases(&format!("dense {variant}"), |c| {
        c.kernel.starts_with("dense::") && c.kernel.ends_with(&suffix)
    });
}

#[test]
fn dense_naive_matches_reference() {
    check_variant(Variant::Naive);
}

#[test]
fn dense_register_blocked_matches_reference() {
    check_variant(Variant::RegisterBlocked);
}

#[test]
fn dense_subgroup_matches_reference() {
    check_variant(Variant::Subgroup);
}

#[test]
fn dense_tiled_matches_reference() {
    check_variant(Variant::Tiled);
}

const ROWS: usize = 3;
const INPUTS: usize = 5;
const OUTPUTS: usize = 4;

struct Small {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    /// Upstream gradient: L = Σ G ⊙ Y.
    g: Vec<f32>,
}

fn small() -> Small {
    Small {
        x: data(11, ROWS * INPUTS),
        w: data(12, INPUTS * OUTPUTS),
        b: data(13, OUTPUTS),
        g: data(14, ROWS * OUTPUTS),
    }
}

/// L = Σ G ⊙ act(X·W + b), the forward on the GPU in f32, summed in f64.
fn loss(ctx: &GpuContext, s: &Small, act: Activation) -> f64 {
    let x = Tensor::from_f32(ctx, "x", &[ROWS, INPUTS], &s.x).unwrap();
    let w = Tensor::from_f32(ctx, "w", &[INPUTS, OUTPUTS], &s.w).unwrap();
    let b = Tensor::from_f32(ctx, "b", &[OUTPUTS], &s.b).unwrap();
    let y = Tensor::empty(ctx, "y", &[ROWS, OUTPUTS], manytask::types::DType::F32).unwrap();
    let mut rec = ctx.recorder("fd forward");
    let layer = Dense {
        x: &x,
        w: &w,
        bias: Some(&b),
        act,
    };
    dense_forward(&mut rec, None, &layer, &y, None).unwrap();
    rec.submit().unwrap();
    let y = y.to_f32_vec(ctx).unwrap();
    y.iter().zip(&s.g).map(|(&y, &g)| y as f64 * g as f64).sum()
}

/// (dX, dW, db) from the fused backward, the derivative taken as `grad_act`
/// (the layer's own activation, or a wrong one to prove the check bites).
fn analytic(
    ctx: &GpuContext,
    s: &Small,
    act: Activation,
    grad_act: Activation,
    plan: BackwardPlan,
) -> Vec<f32> {
    let x = Tensor::from_f32(ctx, "x", &[ROWS, INPUTS], &s.x).unwrap();
    let w = Tensor::from_f32(ctx, "w", &[INPUTS, OUTPUTS], &s.w).unwrap();
    let b = Tensor::from_f32(ctx, "b", &[OUTPUTS], &s.b).unwrap();
    let g = Tensor::from_f32(ctx, "g", &[ROWS, OUTPUTS], &s.g).unwrap();
    let y = Tensor::zeros(ctx, "y", &[ROWS, OUTPUTS]).unwrap();
    let z = Tensor::zeros(ctx, "z", &[ROWS, OUTPUTS]).unwrap();
    let dx = Tensor::zeros(ctx, "dx", &[ROWS, INPUTS]).unwrap();
    let dw = Tensor::zeros(ctx, "dw", &[INPUTS, OUTPUTS]).unwrap();
    let db = Tensor::zeros(ctx, "db", &[OUTPUTS]).unwrap();
    let mut rec = ctx.recorder("fd backward");
    let layer = Dense {
        x: &x,
        w: &w,
        bias: Some(&b),
        act,
    };
    dense_forward(&mut rec, None, &layer, &y, Some(&z)).unwrap();
    let back = Dense {
        act: grad_act,
        ..layer
    };
    let grads = DenseGrads {
        dx: Some(&dx),
        dw: &dw,
        db: Some(&db),
        accumulate: false,
        accumulate_dx: false,
        delta_scratch: None,
    };
    dense_backward(
        &mut rec,
        None,
        Some(plan),
        &back,
        Saved::PreActivation(&z),
        &g,
        &grads,
    )
    .unwrap();
    rec.submit().unwrap();
    let mut all = dx.to_f32_vec(ctx).unwrap();
    all.extend(dw.to_f32_vec(ctx).unwrap());
    all.extend(db.to_f32_vec(ctx).unwrap());
    all
}

/// Central differences of the GPU forward for every input, weight and bias.
fn numeric(ctx: &GpuContext, s: &Small, act: Activation) -> Vec<f32> {
    const H: f32 = 1e-2;
    let mut out = Vec::new();
    for which in 0..3 {
        let len = [s.x.len(), s.w.len(), s.b.len()][which];
        for i in 0..len {
            let at = |delta: f32| {
                let mut p = Small {
                    x: s.x.clone(),
                    w: s.w.clone(),
                    b: s.b.clone(),
                    g: s.g.clone(),
                };
                [&mut p.x, &mut p.w, &mut p.b][which][i] += delta;
                loss(ctx, &p, act)
            };
            out.push(((at(H) - at(-H)) / (2.0 * H as f64)) as f32);
        }
    }
    out
}

#[test]
fn dense_gradients_match_finite_differences() {
    let s = small();
    for ctx in contexts() {
        for act in [Activation::Tanh, Activation::Gelu, Activation::Sigmoid] {
            let num = numeric(ctx, &s, act);
            for plan in [BackwardPlan::Prologue, BackwardPlan::StoreDelta] {
                let ana = analytic(ctx, &s, act, act, plan);
                let scale = ana.iter().fold(0f32, |m, v| m.max(v.abs()));
                // h = 1e-2: truncation ~h²·|f'''| ≈ 1e-4, f32 rounding of L
                // over 2h ≈ 1e-5; gradients here are O(1).
                let tol = 2e-3 * scale.max(1.0);
                let err = max_err(&num, &ana);
                assert!(
                    err <= tol,
                    "{act} on {}: max |fd - analytic| = {err} > {tol}",
                    ctx.describe()
                );
                // The same check rejects a backward with the wrong derivative.
                let wrong = if act == Activation::Tanh {
                    Activation::Sigmoid
                } else {
                    Activation::Tanh
                };
                let bad = max_err(&num, &analytic(ctx, &s, act, wrong, plan));
                assert!(
                    bad > 10.0 * tol,
                    "{act}: a wrong derivative passed ({bad} vs tol {tol})"
                );
            }
        }
    }
}

#[test]
fn dense_backward_accumulates_and_is_deterministic() {
    let s = small();
    for ctx in contexts() {
        let x = Tensor::from_f32(ctx, "x", &[ROWS, INPUTS], &s.x).unwrap();
        let w = Tensor::from_f32(ctx, "w", &[INPUTS, OUTPUTS], &s.w).unwrap();
        let b = Tensor::from_f32(ctx, "b", &[OUTPUTS], &s.b).unwrap();
        let g = Tensor::from_f32(ctx, "g", &[ROWS, OUTPUTS], &s.g).unwrap();
        let y = Tensor::zeros(ctx, "y", &[ROWS, OUTPUTS]).unwrap();
        let layer = Dense {
            x: &x,
            w: &w,
            bias: Some(&b),
            act: Activation::Relu,
        };
        let run = |accumulate: bool, times: usize| {
            let dx = Tensor::zeros(ctx, "dx", &[ROWS, INPUTS]).unwrap();
            let dw = Tensor::zeros(ctx, "dw", &[INPUTS, OUTPUTS]).unwrap();
            let db = Tensor::zeros(ctx, "db", &[OUTPUTS]).unwrap();
            let mut rec = ctx.recorder("accumulate");
            dense_forward(&mut rec, None, &layer, &y, None).unwrap();
            for _ in 0..times {
                let grads = DenseGrads {
                    dx: Some(&dx),
                    dw: &dw,
                    db: Some(&db),
                    accumulate,
                    accumulate_dx: accumulate,
                    delta_scratch: None,
                };
                dense_backward(&mut rec, None, None, &layer, Saved::Output(&y), &g, &grads)
                    .unwrap();
            }
            rec.submit().unwrap();
            [dx, dw, db].map(|t| t.to_f32_vec(ctx).unwrap())
        };
        let once = run(false, 1);
        assert_eq!(once, run(false, 1), "backward is not bit-reproducible");
        let twice = run(true, 2);
        for (o, t) in once.iter().zip(&twice) {
            let doubled: Vec<f32> = o.iter().map(|v| 2.0 * v).collect();
            assert_eq!(&doubled, t, "accumulate=true did not add");
        }
        assert!(
            once[1].iter().any(|&v| v != 0.0),
            "dW is all zeros: the test data is degenerate"
        );
    }
}

#[test]
fn dense_rejects_bad_arguments() {
    let ctx = &contexts()[0];
    let x = Tensor::zeros(ctx, "x", &[4, 3]).unwrap();
    let w = Tensor::zeros(ctx, "w", &[5, 2]).unwrap();
    let y = Tensor::zeros(ctx, "y", &[4, 2]).unwrap();
    let mut rec = ctx.recorder("bad");
    let layer = Dense {
        x: &x,
        w: &w,
        bias: None,
        act: Activation::Relu,
    };
    let e = dense_forward(&mut rec, None, &layer, &y, None).unwrap_err();
    assert!(
        matches!(e, Error::Shape { .. }) && e.to_string().contains("[inputs, outputs]"),
        "{e}"
    );

    // GELU's derivative cannot come from Y.
    let w = Tensor::zeros(ctx, "w", &[3, 2]).unwrap();
    let dw = Tensor::zeros(ctx, "dw", &[3, 2]).unwrap();
    let layer = Dense {
        x: &x,
        w: &w,
        bias: None,
        act: Activation::Gelu,
    };
    let grads = DenseGrads {
        dx: None,
        dw: &dw,
        db: None,
        accumulate: false,
        accumulate_dx: false,
        delta_scratch: None,
    };
    let e =
        dense_backward(&mut rec, None, None, &layer, Saved::Output(&y), &y, &grads).unwrap_err();
    assert!(e.to_string().contains("pre-activation Z"), "{e}");

    // A gradient of the wrong shape.
    let g = Tensor::zeros(ctx, "g", &[4, 3]).unwrap();
    let layer = Dense {
        act: Activation::Relu,
        ..layer
    };
    let e =
        dense_backward(&mut rec, None, None, &layer, Saved::Output(&y), &g, &grads).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    assert_eq!(rec.dispatch_count(), 0, "a rejected call recorded work");
}
